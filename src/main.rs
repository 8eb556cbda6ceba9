//! The `netc` command line: check a network (report its shapes, parameters and costs) and
//! draw its graph. Exit status 0 when the input is valid, 1 when it has errors, 2 for bad
//! usage.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use netc_compiler::{dot, Checked, Report};

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
mod predict;
mod run;

#[derive(Parser)]
#[command(name = "netc", version, about = "A compiler for convolutional networks", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--allow`, on every command that checks a network.
#[derive(Args)]
struct Allow {
    /// Do not print warnings of this kind (repeatable), named as they are shown after
    /// `netc::`.
    #[arg(long, value_name = "NAME", value_parser = warning_kinds())]
    allow: Vec<String>,
}

/// `--skip-pass`, on the commands that generate code.
#[derive(Args)]
struct SkipPass {
    /// Leave an optional compiler pass out of the generated code (repeatable).
    #[arg(long, value_name = "NAME", value_parser = pass_names())]
    skip_pass: Vec<String>,
}

/// The kinds of warning, for `--allow`, each with what it is about.
fn warning_kinds() -> PossibleValuesParser {
    PossibleValuesParser::new(
        netc_compiler::WARNINGS
            .iter()
            .map(|(name, what)| PossibleValue::new(name).help(what)),
    )
}

/// The optional passes, for `--skip-pass`.
fn pass_names() -> PossibleValuesParser {
    PossibleValuesParser::new(netc_compiler::passes::names())
}

/// The passes `--skip-pass` named, for every command that generates code.
static SKIP_PASSES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// The passes to skip (set once from the command line).
pub(crate) fn skipped_passes() -> &'static [&'static str] {
    SKIP_PASSES.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The kinds of warning `--allow` named.
static ALLOWED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// Checks `file` as [`netc_compiler::check_file`] does, less the warnings `--allow` named.
pub(crate) fn check_file(file: &Path, network: Option<&str>) -> Checked {
    let mut checked = netc_compiler::check_file(file, network);
    checked.allow(ALLOWED.get().map(Vec::as_slice).unwrap_or(&[]));
    checked
}

#[derive(Subcommand)]
enum Command {
    /// Check a network: every shape, parameter and multiply-accumulate, in a Table-1-style report.
    Check {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (default: all of them).
        #[arg(long)]
        network: Option<String>,
        /// One row per layer (by path) instead of one per top-level binding. A binding's depth
        /// counts the conv and linear layers within it; a layer's, those from the input to it.
        #[arg(long)]
        expand: bool,
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
        /// Also report what the passes fused and the memory the generated code takes.
        #[arg(long)]
        plan: bool,
        /// The batch size the memory plan is sized for.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Leave an optional compiler pass out of the plan (repeatable; with --plan).
        #[arg(long, value_name = "NAME", value_parser = pass_names(), requires = "plan")]
        skip_pass: Vec<String>,
        #[command(flatten)]
        allow: Allow,
    },
    /// Draw the graph of a network: block instances as clusters, edges labelled with shapes.
    Graph {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        allow: Allow,
    },
    /// Write the Rust module that runs a network: Params, Grads, State, Workspace, forward,
    /// forward_train and backward, one function per layer.
    Emit {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
    },
    /// Write a standalone cargo crate for a network and build it in release mode.
    ///
    /// The crate holds the generated module and the trainer of `netc train`, the binary
    /// NAME-train; for a network the trainer does not take, a main that runs forward and
    /// backward twice on a random batch and prints the loss and times (a network without a
    /// loss: one forward pass, timed).
    Build {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// The crate's folder (default: `target/netc-build/NETWORK`).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write the crate but do not build it.
        #[arg(long)]
        no_build: bool,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
    },
    /// Classify images with a trained network: its most likely classes, with probabilities.
    Predict {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// The weights: a checkpoint of `netc train` (runs/NAME/checkpoints/...), or a
        /// PyTorch `state_dict` saved with safetensors.
        #[arg(long, value_name = "W")]
        weights: PathBuf,
        /// PNG or JPEG files (resized to the network's input, as `folder:` data is), or IDX
        /// files of images (MNIST's `*-images-idx3-ubyte[.gz]`: every image in them).
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
        /// How many classes to show per image.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// `table` (a line per image) or `json`.
        #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
        format: BenchFormat,
        #[command(flatten)]
        allow: Allow,
    },
    /// Say where netc keeps the crates it generates and builds (`$NETC_CACHE`, else the
    /// platform's cache folder) and how big they are; `clean` deletes them.
    Cache {
        /// `clean`: delete the cache.
        #[arg(value_parser = ["clean"])]
        action: Option<String>,
    },
    /// Run a network on weights and inputs from safetensors files (names as docs/language.md,
    /// layouts as PyTorch), writing its outputs, and with --grads the loss and gradients.
    Run {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// Parameters and batchnorm state: `PATH.weight`, `PATH.bias`, `PATH.running_mean`, ...
        #[arg(long)]
        weights: PathBuf,
        /// Inputs by name, batch first (`image` f32 [N, C, H, W]; a label i64 or i32 [N]).
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write the outputs.
        #[arg(long)]
        out: PathBuf,
        /// Also write `loss` and `grad.PATH.weight`, ... (training mode, dropout off).
        #[arg(long)]
        grads: bool,
        /// Run the reference interpreter instead of the generated code.
        #[arg(long)]
        interp: bool,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
    },
    /// Measure a network's generated code (`netc bench FILE`): per-layer forward and backward
    /// times, images/s for inference and for a training step, peak memory; or the runtime's
    /// kernels (`netc bench gemm`, `netc bench conv`): GFLOP/s and the fraction of peak.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        kernel: Option<Bench>,
        /// The `.net` file.
        file: Option<PathBuf>,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// Images per batch (default: the network's `train { batch }`, else 8).
        #[arg(long)]
        batch: Option<usize>,
        /// Threads (default: every CPU).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Timed steps (the median is reported).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
        format: BenchFormat,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
    },
    /// Train a network: builds its trainer (cached; rebuilt only when the network or netc
    /// changed) and runs it. Flags after the file go to the trainer: `netc train FILE --help`
    /// lists them (--data, --epochs, --batch, --optimizer, --lr, ...); `netc help train`
    /// shows this.
    #[command(disable_help_flag = true)]
    #[command(disable_help_flag = true)]
    Train {
        /// The `.net` file.
        file: Option<PathBuf>,
        /// The trainer's flags (known without building it).
        #[arg(long, short = 'h')]
        help: bool,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
        /// The trainer's flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// C = A·B with A M×K and B K×N, row-major (the shape of a conv's im2col GEMM).
    Gemm {
        /// Rows of A and C.
        m: usize,
        /// Columns of B and C.
        n: usize,
        /// Columns of A and rows of B: the sum's length.
        k: usize,
        /// Threads (repeat for several); default: 1, then every CPU.
        #[arg(long)]
        threads: Vec<usize>,
        #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
        format: BenchFormat,
    },
    /// One conv layer on a batch, forward and forward+backward (data, weight, bias).
    Conv {
        /// Images per batch.
        batch: usize,
        /// Input channels.
        c: usize,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Output channels.
        out: usize,
        /// Kernel size (K×K).
        k: usize,
        /// Stride.
        s: usize,
        /// Zero padding on each side.
        p: usize,
        /// Threads (repeat for several); default: 1, then every CPU.
        #[arg(long)]
        threads: Vec<usize>,
        #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
        format: BenchFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Svg,
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

impl Command {
    /// The `--skip-pass` and `--allow` of the command, on those that take them.
    fn options(&self) -> (&[String], &[String]) {
        match self {
            Command::Check {
                skip_pass, allow, ..
            } => (skip_pass, &allow.allow),
            Command::Graph { allow, .. } | Command::Predict { allow, .. } => (&[], &allow.allow),
            Command::Cache { .. } => (&[], &[]),
            Command::Emit { skip, allow, .. }
            | Command::Build { skip, allow, .. }
            | Command::Run { skip, allow, .. }
            | Command::Bench { skip, allow, .. }
            | Command::Train { skip, allow, .. } => (&skip.skip_pass, &allow.allow),
        }
    }
}

fn run(cli: Cli) -> ExitCode {
    // clap took only the names these lists hold.
    let (skip, allow) = cli.command.options();
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
            ..
        } => check(
            &file,
            network.as_deref(),
            expand,
            format,
            plan.then_some(batch as usize),
        ),
        Command::Graph {
            file,
            network,
            format,
            output,
            ..
        } => graph(&file, network.as_deref(), format, output.as_deref()),
        Command::Bench {
            kernel: Some(b), ..
        } => bench::bench(b),
        Command::Cache { action } => cache::command(action.is_some()),
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
            args,
            ..
        } => {
            // `netc train --help` and `netc train FILE --help`: the trainer's flags are
            // netc-train's, known without building anything.
            let asked = help || args.iter().any(|a| a == "--help" || a == "-h");
            match file {
                Some(file) if !asked => train(&file, network.as_deref(), &args),
                _ if asked => {
                    println!("{}", trainer_help().trim_end());
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("netc: `netc train` needs a .net file\n\n{}", trainer_help());
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
            ..
        } => build(&file, network.as_deref(), output.as_deref(), no_build),
        Command::Run {
            file,
            network,
            weights,
            inputs,
            out,
            grads,
            interp,
            ..
        } => run_cmd(
            &file,
            network.as_deref(),
            &weights,
            &inputs,
            &out,
            grads,
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
const RUNTIME_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime");
/// netc-train's sources, which trainers depend on, like [`RUNTIME_DIR`].
const TRAIN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/train");

/// The trainer's flags as `netc train FILE --help` prints them.
fn trainer_help() -> String {
    use clap::CommandFactory;
    netc_train::Flags::command()
        .name("netc train")
        .bin_name("netc train")
        .override_usage("netc train FILE [--network NAME] [--allow W] [--skip-pass P] [FLAGS]")
        .about("Builds the network's trainer (cached) and trains it; every flag defaults to the network's `train { }` section.")
        .render_help()
        .to_string()
}

/// `netc train`: builds the network's trainer (cached) and runs it with `args`, passing on
/// its exit status.
fn train(file: &Path, network: Option<&str>, args: &[String]) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let main = match netc_compiler::codegen::emit_trainer(g) {
        Ok(main) => main,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let deps = format!("netc-train = {{ path = {TRAIN_DIR:?} }}\n");
    let exe = match cache::cached_crate(
        g,
        &file.display().to_string(),
        RUNTIME_DIR,
        "train",
        &main,
        &deps,
    ) {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C reaches the trainer too (the terminal signals the whole process group): it
    // writes a checkpoint and exits, and netc waits for that rather than dying first.
    let _ = ctrlc::set_handler(|| {});
    match std::process::Command::new(&exe).args(args).status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", exe.display());
            ExitCode::FAILURE
        }
    }
}

fn build(file: &Path, network: Option<&str>, output: Option<&Path>, no_build: bool) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let dir = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cache::cache_dir().join("build").join(&g.name));
    let written = (|| -> Result<(), String> {
        if !Path::new(RUNTIME_DIR).join("Cargo.toml").exists() {
            return Err(format!(
                "netc-runtime's sources are not at {RUNTIME_DIR}, where this netc was built; the generated crate depends on them"
            ));
        }
        let net =
            netc_compiler::codegen::emit_with(g, &file.display().to_string(), skipped_passes())?;
        // The trainer (binary NAME-train) when the network fits it, else a main that times it.
        let (main, extra) = match netc_compiler::codegen::emit_trainer(g) {
            Ok(main) => (
                main,
                format!(
                    "netc-train = {{ path = {TRAIN_DIR:?} }}\n\n[[bin]]\nname = \"{}-train\"\npath = \"src/main.rs\"\n",
                    g.name.replace('_', "-")
                ),
            ),
            Err(why) => {
                eprintln!("netc: {why}; writing a main that times the network on a random batch instead");
                (netc_compiler::codegen::emit_main(g)?, String::new())
            }
        };
        let manifest = format!(
            "# Generated by netc from {}.\n[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nnetc-runtime = {{ path = {:?} }}\n{extra}\n\
             # Not part of any enclosing workspace.\n[workspace]\n",
            file.display(),
            g.name.replace('_', "-"),
            RUNTIME_DIR
        );
        let src = dir.join("src");
        std::fs::create_dir_all(&src)
            .map_err(|e| format!("cannot create {}: {e}", src.display()))?;
        for (path, text) in [
            (dir.join("Cargo.toml"), manifest),
            (src.join("net.rs"), net),
            (src.join("main.rs"), main),
        ] {
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    })();
    if let Err(msg) = written {
        eprintln!("netc: {msg}");
        return ExitCode::from(1);
    }
    eprintln!(
        "netc: wrote the crate for `{}` to {}",
        g.name,
        dir.display()
    );
    if no_build {
        return ExitCode::SUCCESS;
    }
    let start = std::time::Instant::now();
    // In the cache's target folder, whose dependencies every generated crate shares (a
    // target folder of its own took 99 s against seconds); the binary is copied beside the
    // crate.
    if let Err(e) = cache::cargo_build(&dir, true) {
        eprintln!("netc: {e}");
        return ExitCode::from(1);
    }
    let bin = match netc_compiler::codegen::trainer_fit(g) {
        Ok(_) => format!("{}-train", g.name.replace('_', "-")),
        Err(_) => g.name.replace('_', "-"),
    };
    let bin = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
    let built = cache::target_dir().join("release").join(&bin);
    let copy = dir.join(&bin);
    if let Err(e) = std::fs::copy(&built, &copy) {
        eprintln!(
            "netc: cannot copy {} to {}: {e}",
            built.display(),
            copy.display()
        );
        return ExitCode::from(1);
    }
    eprintln!(
        "netc: built {} in {:.1} s",
        copy.display(),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)]
fn run_cmd(
    file: &Path,
    network: Option<&str>,
    weights: &Path,
    inputs: &Path,
    out: &Path,
    grads: bool,
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
        .and_then(|params| Ok((params, run::load_inputs(g, inputs, grads)?)))
        .and_then(|(params, feed)| {
            if interp {
                run::run(g, params, &feed, grads).and_then(|tensors| run::write(out, &tensors))
            } else {
                run::check_grads(g, &feed, grads)?;
                run::run_generated(
                    g,
                    &file.display().to_string(),
                    RUNTIME_DIR,
                    weights,
                    inputs,
                    out,
                    grads,
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

/// `plan`: the batch size to size the memory plan for, when one was asked for.
fn check(
    file: &Path,
    network: Option<&str>,
    expand: bool,
    format: CheckFormat,
    plan: Option<usize>,
) -> ExitCode {
    let checked = check_file(file, network);
    if report_diagnostics(&checked) {
        return ExitCode::from(1);
    }
    let mut summaries = Vec::new();
    if let Some(batch) = plan {
        for g in &checked.graphs {
            match netc_compiler::plan::summary(g, skipped_passes(), batch) {
                Ok(s) => summaries.push(s),
                Err(d) => {
                    eprintln!("netc: {}: {}", g.name, d.message);
                    if let Some(help) = &d.help {
                        eprintln!("  help: {help}");
                    }
                    return ExitCode::from(1);
                }
            }
        }
    }
    if checked.graphs.is_empty() {
        eprintln!(
            "netc: {} defines no network ({} block{} checked)",
            file.display(),
            checked.blocks,
            if checked.blocks == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    match format {
        CheckFormat::Table => {
            for (i, g) in checked.graphs.iter().enumerate() {
                if i > 0 {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "{}", Report::new(g).table(expand));
                if let Some(s) = summaries.get(i) {
                    let _ = write!(out, "{}", plan_table(s));
                }
            }
        }
        CheckFormat::Json => {
            let docs: Vec<serde_json::Value> = checked
                .graphs
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let mut doc = Report::new(g).to_json(g);
                    if let (Some(s), Some(obj)) = (summaries.get(i), doc.as_object_mut()) {
                        obj.insert("plan".into(), plan_json(s));
                    }
                    doc
                })
                .collect();
            // One network: one object. Several: an array of them.
            let doc = if docs.len() == 1 {
                docs.into_iter().next().unwrap()
            } else {
                serde_json::Value::Array(docs)
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
    }
    ExitCode::SUCCESS
}

/// MiB with one decimal, for memory figures.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The `--plan` section of the table report.
fn plan_table(s: &netc_compiler::plan::Summary) -> String {
    use netc_compiler::report::{count, thousands};
    let batch = s.batch;
    let (ws, bytes) = (&s.workspace, &s.bytes);
    let in_place = match s.in_place {
        0 => "no activation overwrites its input".to_string(),
        1 => "1 activation overwrites its input".to_string(),
        n => format!("{n} activations overwrite their input"),
    };
    let concats = match s.concats {
        0 => "0".to_string(),
        n => format!(
            "{n} (copying {} of their {} values per sample)",
            thousands(s.concat_copied as u64),
            thousands(s.concat_elems as u64)
        ),
    };
    format!(
        "\nplan (codegen passes, batch {batch}):\n\
         \x20 GEMM layers        {} (checked graph: {})\n\
         \x20 ReLUs fused        {} of {} (into the GEMM epilogue)\n\
         \x20 in place           {in_place}\n\
         \x20 concats            {concats}\n\
         \x20 workspace          {} ({} if no two buffers shared memory)\n\
         \x20   arena            {}: {} placed by liveness\n\
         \x20   own buffers      {}: max-pool argmaxes, batchnorm statistics\n\
         \x20   scratch          {}: im2col and gradients on their way to being summed\n\
         \x20 parameters         {} (and as much again for gradients)\n\
         \x20 training step      {} (optimizer state not included)\n\
         \x20 inference alone    {} of buffers, planned on its own (the code shares the arena)\n",
        s.gemm_layers,
        s.gemm_layers_before,
        s.relus_fused,
        s.relus,
        mib(bytes.workspace),
        mib(bytes.unshared),
        mib(bytes.arena),
        count(
            ws.arena.len(),
            "activation or gradient",
            "activations and gradients"
        ),
        mib(bytes.own),
        mib(bytes.scratch),
        mib(bytes.params),
        mib(bytes.training),
        mib(s.infer_plan.peak),
    )
}

/// The `--plan` object of the JSON report (bytes, not MiB).
fn plan_json(s: &netc_compiler::plan::Summary) -> serde_json::Value {
    serde_json::json!({
        "batch": s.batch,
        "gemm_layers": s.gemm_layers,
        "gemm_layers_before": s.gemm_layers_before,
        "relus": s.relus,
        "relus_fused": s.relus_fused,
        "activations_in_place": s.in_place,
        "concats": s.concats,
        "concat_elems_per_sample": s.concat_elems,
        "concat_copied_per_sample": s.concat_copied,
        "workspace_bytes": s.bytes.workspace,
        "arena_bytes": s.bytes.arena,
        "unshared_bytes": s.bytes.unshared,
        "workspace_buffers": s.workspace.buffers.len() + 2,
        "param_bytes": s.bytes.params,
        "training_bytes": s.bytes.training,
        "planned_training_bytes": s.train_plan.peak,
        "planned_inference_bytes": s.infer_plan.peak,
        "scratch_bytes": s.bytes.scratch,
    })
}

fn graph(
    file: &Path,
    network: Option<&str>,
    format: GraphFormat,
    output: Option<&Path>,
) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let text = dot::to_dot(g);
    let bytes = match format {
        GraphFormat::Dot => text.into_bytes(),
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
