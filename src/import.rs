//! `netc import`: an ONNX model as a `.net` file and its weights. The text is compiled and
//! its parameters compared with the weights before anything is written, so that a mistake
//! of the importer is reported as one and never leaves a file that does not load.

use std::path::Path;
use std::process::ExitCode;

use safetensors::tensor::{Dtype, TensorView};

pub(crate) fn import(
    file: &Path,
    output: &Path,
    weights_out: Option<&Path>,
    name: Option<&str>,
    force: bool,
) -> ExitCode {
    match run(file, output, weights_out, name, force) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("netc: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(
    file: &Path,
    output: &Path,
    weights_out: Option<&Path>,
    name: Option<&str>,
    force: bool,
) -> Result<(), String> {
    let weights_out = weights_out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| output.with_extension("safetensors"));
    if weights_out == output {
        return Err(format!(
            "the weights and the network would both be written to {}\n  help: pass --weights-out FILE",
            output.display()
        ));
    }
    for p in [output, weights_out.as_path()] {
        if p.exists() && !force {
            return Err(format!(
                "{} exists\n  help: pass --force to replace it",
                p.display()
            ));
        }
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into());
    let name = name.map(str::to_string).unwrap_or(stem);
    let imported = netc_onnx::import::import(&bytes, &name, &reserved())
        .map_err(|e| format!("cannot import {}: {e}", file.display()))?;
    verify(output, &imported)?;
    write_weights(&weights_out, &imported.weights)?;
    netc_train::files::write_atomic(output, imported.net.as_bytes())?;
    for note in &imported.notes {
        eprintln!("netc: note: {note}");
    }
    eprintln!(
        "netc: wrote {} and {} ({} tensors)",
        output.display(),
        weights_out.display(),
        imported.weights.len()
    );
    Ok(())
}

/// Compiles the text and checks that its parameters are exactly the weights, by name and
/// shape; any difference is the importer's bug.
fn verify(output: &Path, imported: &netc_onnx::import::Imported) -> Result<(), String> {
    let bug = |what: String| {
        format!(
            "netc import made a network that {what}; this is a bug in netc import (please report it with the model)\n--- the text it made:\n{}",
            imported.net
        )
    };
    let checked =
        netc_compiler::check_source(&output.display().to_string(), &imported.net, output, None);
    // The original model's windows are what they are.
    let mut checked = checked;
    checked.allow(&["window-drops"]);
    if checked.has_errors() {
        return Err(bug(format!("does not check:\n{}", checked.render())));
    }
    if checked.warnings().next().is_some() {
        eprintln!("{}", checked.render().trim_end());
    }
    let [g] = checked.graphs.as_slice() else {
        return Err(bug(format!("has {} networks", checked.graphs.len())));
    };
    let want = netc_compiler::interp::param_shapes(g);
    let mut problems = Vec::new();
    for (name, shape) in &want {
        match imported.weights.iter().find(|(n, ..)| n == name) {
            None => problems.push(format!("`{name}` {shape:?} has no weights")),
            Some((_, dims, _)) if dims != shape => {
                problems.push(format!("`{name}` is {shape:?}, its weights {dims:?}"))
            }
            Some(_) => {}
        }
    }
    for (name, dims, _) in &imported.weights {
        if !want.iter().any(|(n, _)| n == name) {
            problems.push(format!("weights `{name}` {dims:?} are no parameter of it"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bug(format!(
            "does not match its weights:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// The weights as f32 safetensors, written atomically.
fn write_weights(path: &Path, weights: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), String> {
    let bytes: Vec<Vec<u8>> = weights
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = weights
        .iter()
        .zip(&bytes)
        .map(|((n, dims, _), b)| {
            TensorView::new(Dtype::F32, dims.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| format!("cannot encode `{n}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, None)
        .map_err(|e| format!("cannot encode the weights: {e}"))?;
    netc_train::files::write_atomic(path, &data)
}

/// The names a block may not take: the language's ops and losses, from the registry.
pub(crate) fn reserved() -> Vec<&'static str> {
    netc_compiler::ops::all()
        .iter()
        .map(|s| s.name)
        .chain(netc_compiler::ops::LOSSES.iter().copied())
        .collect()
}
