//! The command line's shape: the subcommands, their flags and their help texts (clap). What
//! each command does is in `main.rs` and the modules beside it.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "netc", version, about = "A compiler for convolutional networks", long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--allow`, on every command that checks a network.
#[derive(Args)]
pub(crate) struct Allow {
    /// Do not print warnings of this kind (repeatable), named as they are shown after
    /// `netc::`.
    #[arg(long, value_name = "NAME", value_parser = warning_kinds())]
    pub(crate) allow: Vec<String>,
}

/// `--skip-pass` and `--conv-algo`, on the commands that generate code.
#[derive(Args)]
pub(crate) struct SkipPass {
    /// Leave an optional compiler pass out of the generated code (repeatable).
    #[arg(long, value_name = "NAME", value_parser = pass_names())]
    pub(crate) skip_pass: Vec<String>,
    #[arg(long, value_enum, default_value_t = ConvAlgo::Auto)]
    pub(crate) conv_algo: ConvAlgo,
}

/// The convolution algorithm of 3×3 stride-1 convs (`--conv-algo`; the `conv_algo` pass).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConvAlgo {
    /// A cost model chooses per layer (Winograd on large maps, im2col on small ones).
    Auto,
    /// im2col + GEMM for every conv.
    Im2col,
    /// Winograd F(4×4, 3×3) for every 3×3 stride-1 conv without dilation or groups.
    Winograd,
}

impl ConvAlgo {
    /// The compiler's pin for it.
    pub(crate) fn pin(self) -> netc_compiler::passes::conv_algo::Pin {
        use netc_compiler::passes::conv_algo::Pin;
        match self {
            ConvAlgo::Auto => Pin::Auto,
            ConvAlgo::Im2col => Pin::Im2col,
            ConvAlgo::Winograd => Pin::Winograd,
        }
    }
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

/// Every pass, for `netc graph --after`.
fn all_pass_names() -> PossibleValuesParser {
    PossibleValuesParser::new(netc_compiler::passes::all_names())
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// The convolution algorithm of 3×3 stride-1 convs in the plan (with --plan).
        #[arg(long, value_enum, default_value_t = ConvAlgo::Auto)]
        conv_algo: ConvAlgo,
        /// With --plan, also print the schedules: every step of inference, of a training
        /// forward and of backward, with the buffers it reads and writes.
        #[arg(long, requires = "plan")]
        steps: bool,
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
        /// DOT, SVG (needs Graphviz), or text: a line per node with what the passes recorded.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// The graph after this pass and those before it (`prune`: the inference graph;
        /// the codegen passes: the graph code is generated from).
        #[arg(long, value_name = "PASS", value_parser = all_pass_names())]
        after: Option<String>,
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
        /// Build the trainer with MPI, for `mpirun -np N NAME-train --distributed` (needs
        /// OpenMPI and libclang: Debian's openmpi-bin, libopenmpi-dev, libclang-dev).
        #[arg(long)]
        distributed: bool,
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
        /// Also write `loss` and `grad.PATH.weight`, ... of one training step: batchnorm on
        /// the batch's statistics, dropout and stochastic depth keeping every value (the
        /// deterministic gradients of PyTorch's eval-mode dropout) unless --dropout is given.
        #[arg(long)]
        grads: bool,
        /// With --grads: dropout and stochastic depth drop, their masks drawn in layer order
        /// from a generator seeded by SEED (the same masks with or without --interp).
        #[arg(long, value_name = "SEED", requires = "grads")]
        dropout: Option<u64>,
        /// Run the reference interpreter instead of the generated code.
        #[arg(long)]
        interp: bool,
        #[command(flatten)]
        skip: SkipPass,
        #[command(flatten)]
        allow: Allow,
    },
    /// Write a network's inference graph as an ONNX model (opset 17, a dynamic batch
    /// dimension `N`): outputs only, batchnorm over its running statistics, no dropout. Layers
    /// and parameters keep their paths as node and tensor names.
    Export {
        /// The `.net` file.
        file: PathBuf,
        /// Which network of the file (required when it has more than one).
        #[arg(long)]
        network: Option<String>,
        /// The weights: a checkpoint of `netc train`, or a PyTorch `state_dict` saved with
        /// safetensors. Without it, the parameters are initialized as the trainer would.
        #[arg(long, value_name = "W")]
        weights: Option<PathBuf>,
        /// The seed of that initialization (default: the network's `train { seed }`, else 1).
        #[arg(long, conflicts_with = "weights")]
        seed: Option<u64>,
        /// The ONNX file to write (replaced atomically if it exists).
        #[arg(short, long, value_name = "MODEL.onnx")]
        output: PathBuf,
        #[command(flatten)]
        allow: Allow,
    },
    /// Turn an ONNX model into a `.net` file and its weights (safetensors, under the paths the
    /// new file gives its layers), checked by compiling the text before anything is written.
    Import {
        /// The `.onnx` file.
        file: PathBuf,
        /// The `.net` file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// The weights to write (default: the output's name with `.safetensors`).
        #[arg(long, value_name = "FILE")]
        weights_out: Option<PathBuf>,
        /// The network's name (default: the ONNX file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Replace output files that exist.
        #[arg(long)]
        force: bool,
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
        /// Data-parallel training on this machine: N ranks under `mpirun`, each computing
        /// its share of every batch (a trainer built with MPI; --threads is per rank).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        ranks: Option<u32>,
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
pub(crate) enum Bench {
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
        /// Channels split into this many groups (C and OUT both divisible; C = OUT = G is a
        /// depthwise conv).
        #[arg(long, default_value_t = 1)]
        groups: usize,
        /// Threads (repeat for several); default: 1, then every CPU.
        #[arg(long)]
        threads: Vec<usize>,
        #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
        format: BenchFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum CheckFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Dot,
    Svg,
    Text,
}

impl Command {
    /// The `--skip-pass`, `--allow` and `--conv-algo` of the command, on those that take
    /// them.
    pub(crate) fn options(&self) -> (&[String], &[String], ConvAlgo) {
        match self {
            Command::Check {
                skip_pass,
                allow,
                conv_algo,
                ..
            } => (skip_pass, &allow.allow, *conv_algo),
            Command::Graph { allow, .. }
            | Command::Predict { allow, .. }
            | Command::Export { allow, .. } => (&[], &allow.allow, ConvAlgo::Auto),
            Command::Cache { .. } | Command::Import { .. } => (&[], &[], ConvAlgo::Auto),
            Command::Emit { skip, allow, .. }
            | Command::Build { skip, allow, .. }
            | Command::Run { skip, allow, .. }
            | Command::Bench { skip, allow, .. }
            | Command::Train { skip, allow, .. } => (&skip.skip_pass, &allow.allow, skip.conv_algo),
        }
    }
}
