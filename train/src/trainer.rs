//! [`Trainer`]: the standalone trainer's loop as a library, for networks written inline with
//! `network!` or `include_net!`. It takes the same settings as the binary's flags, set by
//! method or parsed from the command line, and runs with the same progress bars,
//! checkpoints, metrics and charts.

use std::marker::PhantomData;
use std::path::PathBuf;

use clap::Parser;

use crate::{train, Error, Flags, Network, Trained};

/// Trains a network `N`; every setting defaults to the network's `train { }` section, as the
/// trainer binary's flags do.
///
/// ```no_run
/// # fn demo<N: netc_train::Network>() -> Result<(), netc_train::Error> {
/// let trained = netc_train::Trainer::<N>::new()
///     .epochs(3)
///     .data("idx:data")
///     .out("runs/mine")
///     .run()?;
/// if let Some(last) = trained.epochs.last() {
///     println!("validation loss {:.4}", last.val_loss);
/// }
/// # Ok(()) }
/// ```
pub struct Trainer<N: Network> {
    /// The builder's settings: the defaults of a program.
    flags: Flags,
    /// Flags given on the command line ([`Trainer::from_args`]), which win over them.
    command_line: Option<Flags>,
    network: PhantomData<N>,
}

impl<N: Network> Default for Trainer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Network> Trainer<N> {
    /// Every setting at its default.
    pub fn new() -> Self {
        Self::with_flags(Flags::parse_from([N::NAME]))
    }

    /// The settings of the process's command line (the trainer binary's flags); `--help`
    /// prints them, and a bad flag exits with status 2 and the reason, as the binary does.
    /// A flag given on the command line wins over the builder's methods, which set the
    /// program's defaults: `from_args().epochs(3)` trains 3 epochs, and 1 with `--epochs 1`.
    pub fn from_args() -> Self {
        Self::with_command_line(Flags::parse_for(&format!("{}-train", N::NAME)))
    }

    /// The settings of `args` (the first being the program's name), which win over the
    /// builder's methods as in [`Trainer::from_args`]; a bad flag is an error whose text
    /// says why.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Flags::try_parse_from(args)
            .map(Self::with_command_line)
            .map_err(|e| e.to_string())
    }

    /// These settings (which the builder's methods then change).
    pub fn with_flags(flags: Flags) -> Self {
        Trainer {
            flags,
            command_line: None,
            network: PhantomData,
        }
    }

    /// Settings from a command line, which win over the builder's methods.
    fn with_command_line(flags: Flags) -> Self {
        Trainer {
            flags: Flags::parse_from([N::NAME]),
            command_line: Some(flags),
            network: PhantomData,
        }
    }

    /// The builder's settings, for anything without a method of its own (flags given on the
    /// command line still win over them).
    pub fn flags_mut(&mut self) -> &mut Flags {
        &mut self.flags
    }

    /// Where the images come from (`--data`): `idx:DIR`, `cifar10:DIR`, `csv:FILE[.gz]`,
    /// `folder:DIR` or `synthetic[:N]`.
    pub fn data(mut self, spec: impl Into<String>) -> Self {
        self.flags.data = Some(spec.into());
        self
    }

    /// Passes over the training set.
    pub fn epochs(mut self, n: usize) -> Self {
        self.flags.epochs = Some(n);
        self
    }

    /// Images per step.
    pub fn batch(mut self, n: usize) -> Self {
        self.flags.batch = Some(n);
        self
    }

    /// `sgd`, `adam` or `adamw`.
    pub fn optimizer(mut self, name: impl Into<String>) -> Self {
        self.flags.optimizer = Some(name.into());
        self
    }

    /// The learning rate.
    pub fn lr(mut self, lr: f32) -> Self {
        self.flags.lr = Some(lr);
        self
    }

    /// SGD's momentum.
    pub fn momentum(mut self, m: f32) -> Self {
        self.flags.momentum = Some(m);
        self
    }

    /// L2 weight decay (decoupled for `adamw`).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.flags.weight_decay = Some(wd);
        self
    }

    /// The learning-rate schedule: `constant`, `cosine` or `step:EVERY:GAMMA`.
    pub fn schedule(mut self, schedule: impl Into<String>) -> Self {
        self.flags.schedule = Some(schedule.into());
        self
    }

    /// The seed of initialization, shuffling and the validation split.
    pub fn seed(mut self, seed: u64) -> Self {
        self.flags.seed = Some(seed);
        self
    }

    /// Threads for the kernels.
    pub fn threads(mut self, n: usize) -> Self {
        self.flags.threads = Some(n);
        self
    }

    /// The fraction of the training images held out for validation.
    pub fn val_split(mut self, fraction: f64) -> Self {
        self.flags.val_split = Some(fraction);
        self
    }

    /// Where the run's files go: `checkpoints/`, `metrics.csv` and `plots/`.
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.flags.out = Some(dir.into());
        self
    }

    /// A checkpoint every `n` epochs (0: only at the end).
    pub fn checkpoint_every(mut self, n: usize) -> Self {
        self.flags.checkpoint_every = Some(n);
        self
    }

    /// Continue from a checkpoint: `Some(path)`, or `None` for the newest of the run.
    pub fn resume(mut self, from: Option<PathBuf>) -> Self {
        self.flags.resume = Some(from);
        self
    }

    /// Start afresh where an earlier run left checkpoints, deleting them (`--overwrite`).
    pub fn overwrite(mut self, on: bool) -> Self {
        self.flags.overwrite = on;
        self
    }

    /// Record every layer's weight-gradient norm at every step.
    pub fn grad_norms(mut self, on: bool) -> Self {
        self.flags.grad_norms = on;
        self
    }

    /// Fine-tuning: the first parameters and batchnorm statistics from a safetensors file,
    /// by name (`--init-from`).
    pub fn init_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.flags.init_from = Some(path.into());
        self
    }

    /// A rule of `--rename`: the names of the `init_from` file that start with `from` start
    /// with `to` instead. Rules apply in the order added; the first that matches wins.
    pub fn rename(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.flags.rename.push(crate::Rename {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Keep the parameters under the layer path `path` fixed (`--freeze`).
    pub fn freeze(mut self, path: impl Into<String>) -> Self {
        self.flags.freeze.push(path.into());
        self
    }

    /// Print nothing but errors.
    pub fn quiet(mut self, on: bool) -> Self {
        self.flags.quiet = on;
        self
    }

    /// Trains, and returns the parameters, batchnorm statistics and every epoch's figures.
    /// The error says what went wrong: Ctrl-C ([`Error::Interrupted`], with the checkpoint it
    /// wrote), or bad settings or data, or a diverged run ([`Error::Failed`]).
    pub fn run(&self) -> Result<Trained<N>, Error> {
        train::<N>(&self.settings())
    }

    /// The settings a run takes: the command line's over the builder's.
    pub fn settings(&self) -> Flags {
        match &self.command_line {
            Some(cli) => cli.clone().over(&self.flags),
            None => self.flags.clone(),
        }
    }
}
