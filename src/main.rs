//! The `netc` command line: check a network (report its shapes, parameters and costs) and
//! draw its graph. Exit status 0 when the input is valid, 1 when it has errors, 2 for bad
//! usage.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use cli::{Bench, BenchFormat, Cli, Command};

use netc_compiler::Checked;

// `eprintln!` and `println!` that never panic: std's panic when the stream is a closed pipe
// (`netc check FILE | head -1`, `netc train FILE 2>&1 | head -1`), which would end netc with
// a backtrace, and while a trainer runs beneath it, lose its exit status. Declared before
// the modules so that every one of them uses these.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        netc_train::files::say(&format!($($arg)*))
    };
}
macro_rules! println {
    ($($arg:tt)*) => {
        netc_train::files::say_out(&format!($($arg)*))
    };
}

mod bench;
mod cache;
mod check;
mod cli;
mod export;
mod graph;
mod import;
mod predict;
mod run;
mod trainer;

/// The passes `--skip-pass` named, for every command that generates code.
static SKIP_PASSES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// The passes to skip (set once from the command line).
pub(crate) fn skipped_passes() -> &'static [&'static str] {
    SKIP_PASSES.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The algorithm `--conv-algo` asked for (set once from the command line).
static CONV_ALGO: std::sync::OnceLock<netc_compiler::passes::conv_algo::Pin> =
    std::sync::OnceLock::new();

/// The kinds of warning `--allow` named.
static ALLOWED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// Checks `file` as [`netc_compiler::check_file`] does, less the warnings `--allow` named.
pub(crate) fn check_file(file: &Path, network: Option<&str>) -> Checked {
    let mut checked = netc_compiler::check_file(file, network);
    checked.allow(ALLOWED.get().map(Vec::as_slice).unwrap_or(&[]));
    let pin = CONV_ALGO.get().copied().unwrap_or_default();
    for g in &mut checked.graphs {
        g.conv_algo = pin;
    }
    checked
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Lowering recurses through blocks and bindings; a large stack keeps hostile inputs an
    // error rather than an overflow.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || run(cli));
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("netc: internal error (this is a bug in netc; please report it)");
            ExitCode::from(101)
        }
    }
}

fn run(cli: Cli) -> ExitCode {
    // clap took only the names these lists hold.
    let (skip, allow, conv_algo) = cli.command.options();
    let _ = CONV_ALGO.set(conv_algo.pin());
    let passes = netc_compiler::passes::names();
    let _ = SKIP_PASSES.set(
        passes
            .into_iter()
            .filter(|p| skip.iter().any(|s| s == p))
            .collect(),
    );
    let _ = ALLOWED.set(
        netc_compiler::WARNINGS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| allow.iter().any(|a| a == name))
            .collect(),
    );
    match cli.command {
        Command::Check {
            file,
            network,
            expand,
            format,
            plan,
            batch,
            steps,
            ..
        } => check::check(
            &file,
            network.as_deref(),
            expand,
            format,
            plan.then_some(batch as usize),
            steps,
        ),
        Command::Graph {
            file,
            network,
            format,
            after,
            output,
            ..
        } => graph::graph(
            &file,
            network.as_deref(),
            format,
            after.as_deref(),
            output.as_deref(),
        ),
        Command::Bench {
            kernel: Some(b), ..
        } => bench::bench(b),
        Command::Cache { action } => cache::command(action.is_some()),
        Command::Import {
            file,
            output,
            weights_out,
            name,
            force,
        } => import::import(
            &file,
            &output,
            weights_out.as_deref(),
            name.as_deref(),
            force,
        ),
        Command::Predict {
            file,
            network,
            weights,
            images,
            top,
            format,
            ..
        } => match one_network(&file, network.as_deref()) {
            Ok(g) => predict::predict(&g, &weights, &images, top, format),
            Err(code) => code,
        },
        Command::Train {
            file,
            network,
            help,
            ranks,
            args,
            ..
        } => {
            // `netc train --help` and `netc train FILE --help`: the trainer's flags are
            // netc-train's, known without building anything.
            let asked = help || args.iter().any(|a| a == "--help" || a == "-h");
            match file {
                Some(file) if !asked => trainer::train(&file, network.as_deref(), ranks, &args),
                _ if asked => {
                    println!("{}", trainer::trainer_help().trim_end());
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!(
                        "netc: `netc train` needs a .net file\n\n{}",
                        trainer::trainer_help()
                    );
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench {
            kernel: None,
            file,
            network,
            batch,
            threads,
            steps,
            format,
            ..
        } => match file {
            Some(file) => {
                bench::bench_network(&file, network.as_deref(), batch, threads, steps, format)
            }
            None => {
                eprintln!("netc: `netc bench` needs a .net file, or `gemm` or `conv`");
                ExitCode::from(2)
            }
        },
        Command::Emit {
            file,
            network,
            output,
            ..
        } => emit(&file, network.as_deref(), output.as_deref()),
        Command::Build {
            file,
            network,
            output,
            no_build,
            distributed,
            ..
        } => trainer::build(
            &file,
            network.as_deref(),
            output.as_deref(),
            no_build,
            distributed,
        ),
        Command::Export {
            file,
            network,
            weights,
            seed,
            output,
            ..
        } => {
            let g = &match one_network(&file, network.as_deref()) {
                Ok(g) => g,
                Err(code) => return code,
            };
            match export::export(g, &file, weights.as_deref(), seed, &output) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("netc: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run {
            file,
            network,
            weights,
            inputs,
            out,
            grads,
            dropout,
            interp,
            ..
        } => run_cmd(
            &file,
            network.as_deref(),
            &weights,
            &inputs,
            &out,
            match grads {
                true => run::Pass::Grads { dropout },
                false => run::Pass::Infer,
            },
            interp,
        ),
    }
}

/// Writes `bytes` to `output`, or to standard output; the exit code says how it went.
fn write_output(output: Option<&Path>, bytes: &[u8]) -> ExitCode {
    let written = match output {
        Some(path) => {
            std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => std::io::stdout()
            .lock()
            .write_all(bytes)
            .map_err(|e| format!("cannot write to standard output: {e}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("netc: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Checks `file` and returns its one network (or the one `--network` chose), after printing
/// the diagnostics; the exit code when there are errors, or no network or several.
fn one_network(file: &Path, network: Option<&str>) -> Result<netc_compiler::Graph, ExitCode> {
    let mut checked = check_file(file, network);
    if report_diagnostics(&checked) {
        return Err(ExitCode::from(1));
    }
    match checked.graphs.as_slice() {
        [_] => Ok(checked.graphs.remove(0)),
        [] => {
            eprintln!("netc: {} defines no network", file.display());
            Err(ExitCode::from(1))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|g| g.name.as_str()).collect();
            eprintln!(
                "netc: {} defines {} networks ({}); choose one with --network NAME",
                file.display(),
                many.len(),
                names.join(", ")
            );
            Err(ExitCode::from(2))
        }
    }
}

fn emit(file: &Path, network: Option<&str>, output: Option<&Path>) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let source =
        match netc_compiler::codegen::emit_with(g, &file.display().to_string(), skipped_passes()) {
            Ok(s) => s,
            Err(msg) => {
                eprintln!("netc: {msg}");
                return ExitCode::from(1);
            }
        };
    write_output(output, source.as_bytes())
}

/// Where netc-runtime's sources are: generated crates depend on them by path.
pub(crate) const RUNTIME_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime");
/// netc-train's sources, which trainers depend on, like [`RUNTIME_DIR`].
pub(crate) const TRAIN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/train");

#[allow(clippy::too_many_arguments)]
fn run_cmd(
    file: &Path,
    network: Option<&str>,
    weights: &Path,
    inputs: &Path,
    out: &Path,
    pass: run::Pass,
    interp: bool,
) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    // Images (PNG, JPEG, IDX) for a network of one image input: written as the safetensors
    // file of inputs the rest reads, so that no other tool is needed to make one.
    let converted = match predict::images_as_inputs(g, inputs) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("netc: {e}");
            return ExitCode::from(1);
        }
    };
    let inputs = converted.as_deref().unwrap_or(inputs);
    let result = run::check_out(out, &[weights, inputs])
        .and_then(|()| run::load_weights(g, weights))
        .and_then(|params| Ok((params, run::load_inputs(g, inputs, pass.grads())?)))
        .and_then(|(params, feed)| {
            if interp {
                run::run(g, params, &feed, pass).and_then(|tensors| run::write(out, &tensors))
            } else {
                run::check_grads(g, &feed, pass.grads())?;
                run::run_generated(
                    g,
                    &file.display().to_string(),
                    RUNTIME_DIR,
                    weights,
                    inputs,
                    out,
                    pass,
                )
            }
        });
    if let Some(path) = &converted {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("netc: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Prints diagnostics to stderr; returns whether there were errors.
fn report_diagnostics(checked: &Checked) -> bool {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text = netc_dsl::diag::render_all(&checked.diagnostics, &checked.sources, color);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let errors = checked.errors().count();
    if errors > 0 {
        let warnings = checked.warnings().count();
        let _ = writeln!(
            err,
            "netc: {errors} error{}{}",
            if errors == 1 { "" } else { "s" },
            if warnings > 0 {
                format!(
                    ", {warnings} warning{}",
                    if warnings == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        );
    }
    errors > 0
}
