//! `netc graph`: a network's graph as DOT, SVG (by Graphviz's `dot`) or text, optionally
//! after a pass.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::GraphFormat;
use crate::{one_network, write_output};
use netc_compiler::dot;

pub(crate) fn graph(
    file: &Path,
    network: Option<&str>,
    format: GraphFormat,
    after: Option<&str>,
    output: Option<&Path>,
) -> ExitCode {
    let mut g = match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    if let Some(pass) = after {
        // clap took only the passes' names.
        match netc_compiler::passes::after(&g, pass) {
            Some(Ok(rewritten)) => g = rewritten,
            Some(Err(d)) => {
                eprintln!("netc: {}", d.message);
                return ExitCode::from(1);
            }
            None => unreachable!("clap checks pass names"),
        }
    }
    let text = match format {
        GraphFormat::Text => g.describe(),
        _ => dot::to_dot(&g),
    };
    let bytes = match format {
        GraphFormat::Dot | GraphFormat::Text => text.into_bytes(),
        GraphFormat::Svg => match render_svg(&text) {
            Ok(svg) => svg,
            Err(msg) => {
                eprintln!("netc: {msg}");
                return ExitCode::from(1);
            }
        },
    };
    write_output(output, &bytes)
}

/// Renders DOT to SVG with Graphviz's `dot`, which netc does not bundle.
fn render_svg(dot_text: &str) -> Result<Vec<u8>, String> {
    use std::process::{Command, Stdio};
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("`--format svg` needs Graphviz's `dot` program, which is not installed.\n\
                 Install it with `apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` \
                 (Fedora) or `brew install graphviz` (macOS), or write DOT with `--format dot` \
                 and render it elsewhere."
                .to_string())
        }
        Err(e) => return Err(format!("cannot run `dot`: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot_text.as_bytes())
            .map_err(|e| format!("cannot write to `dot`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`dot` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
