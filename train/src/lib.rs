//! netc-train: the training loop of the binaries `netc build` writes and `netc train` runs.
//! A generated network plugs in through [`Network`] (its `main.rs` implements it over the
//! generated module); [`main`] parses the trainer's flags, with the network's `train { }`
//! section as defaults, loads and checks the data, and trains: seeded initialization (or,
//! fine-tuning, a file's weights by name, some layers frozen), shuffled minibatches, dropout
//! masks seeded per step, SGD with momentum, and a validation pass (which never drops) after
//! every epoch, with a progress line now and then and a summary per epoch.

mod checkpoint;
mod config;
mod ctrl_c;
mod dist;
mod eval;
pub mod files;
mod fit;
mod freeze;
mod init_from;
mod metrics;
#[cfg(test)]
mod mock;
mod plot;
mod prepare;
mod rundir;
mod settings;
mod step;
mod trainer;

pub use config::{Defaults, Flags, Optimizer, Rename, Schedule};
pub use eval::{evaluate, Scores};
pub use trainer::Trainer;

use fit::run_training;

/// The runtime, for the generated code and the optimizers' settings.
pub use netc_runtime as rt;

/// What the trainer needs of a generated network with one image input and either one class
/// label (a classifier) or none (a network whose loss compares images, such as an
/// autoencoder).
pub trait Network {
    /// Trainable parameters (and, in the same type, their gradients).
    type Params;
    /// Batchnorm running statistics.
    type State;
    /// The buffers of one batch size.
    type Workspace;
    /// The network's name.
    const NAME: &'static str;
    /// `[C, H, W]` of the image input.
    const INPUT: [usize; 3];
    /// Classes of the label input; 0 for a network without one, which the trainer scores by
    /// its loss alone.
    const CLASSES: usize;
    /// Every parameter, by PyTorch name, with its shape.
    const SHAPES: &'static [(&'static str, &'static [usize])];
    /// Whether the initialization scheme draws the parameter `name`; [`Network::params`]
    /// gives the others their op's constant.
    fn drawn(name: &str) -> bool;
    /// The network's `train { }` section: defaults for the flags.
    const DEFAULTS: Defaults;

    /// Parameters (or gradients) of zeros.
    fn params() -> Self::Params;
    /// Fresh batchnorm statistics.
    fn state() -> Self::State;
    /// Buffers for training on batches of `batch` images (inference runs in them too).
    fn workspace(batch: usize) -> Self::Workspace;
    /// Buffers for inference alone ([`Network::forward`]) on batches of `batch` images: a
    /// fraction of [`Network::workspace`]'s.
    fn inference_workspace(batch: usize) -> Self::Workspace;
    /// The parameter `name`.
    fn param_mut<'p>(p: &'p mut Self::Params, name: &str) -> Option<&'p mut [f32]>;
    /// The parameter `name`.
    fn param<'p>(p: &'p Self::Params, name: &str) -> Option<&'p [f32]>;
    /// Sets the generator dropout and stochastic depth draw their masks from in
    /// [`Network::forward_train`], in layer order (`None`: every value is kept). The trainer
    /// sets one before every training step, seeded by the run's seed and the step.
    fn set_dropout(ws: &mut Self::Workspace, rng: Option<rt::rng::Rng>);
    /// A training forward pass on a batch: the weighted loss. Dropout and stochastic depth
    /// draw from the generator [`Network::set_dropout`] left in `ws`, if any.
    fn forward_train(
        p: &Self::Params,
        s: &mut Self::State,
        ws: &mut Self::Workspace,
        images: &[f32],
        labels: &[i64],
    ) -> f32;
    /// The gradients of the last `forward_train`, written into `g`.
    fn backward(p: &Self::Params, g: &mut Self::Params, ws: &mut Self::Workspace);
    /// Every layer's path, as [`Network::backward_observed`] numbers them.
    const LAYERS: &'static [&'static str] = &[];
    /// [`Network::backward`], calling `after(k, g)` as soon as the gradients of layer
    /// `LAYERS[k]`'s parameters are final (last layers first), so that data-parallel training
    /// can reduce them while earlier layers still compute. By default: after all of them.
    fn backward_observed(
        p: &Self::Params,
        g: &mut Self::Params,
        ws: &mut Self::Workspace,
        after: &mut dyn FnMut(usize, &Self::Params),
    ) {
        Self::backward(p, g, ws);
        for k in (0..Self::LAYERS.len()).rev() {
            after(k, g);
        }
    }
    /// An inference pass on a batch.
    fn forward(p: &Self::Params, s: &Self::State, ws: &mut Self::Workspace, images: &[f32]);
    /// The network's objective on a batch, leaving everything training keeps (batchnorm
    /// statistics, the workspace's dropout generator) as it was: how the validation set is
    /// scored without labels. It is a training-mode pass (batchnorm normalizes with the
    /// batch's statistics) that never drops: dropout and stochastic depth keep every value.
    fn loss(
        p: &Self::Params,
        s: &Self::State,
        ws: &mut Self::Workspace,
        images: &[f32],
        labels: &[i64],
    ) -> f32;
    /// The class scores the last pass left, batch first (for a network without labels, its
    /// first output).
    fn logits(ws: &Self::Workspace) -> &[f32];
    /// Batchnorm statistics by name, with their shapes.
    const STATE_SHAPES: &'static [(&'static str, &'static [usize])];
    /// A batchnorm statistic.
    fn state_mut<'s>(s: &'s mut Self::State, name: &str) -> Option<&'s mut [f32]>;
    /// A batchnorm statistic.
    fn state_ref<'s>(s: &'s Self::State, name: &str) -> Option<&'s [f32]>;
    /// After a forward pass whose loss is not finite: the first layer, in forward order,
    /// whose parameters or output hold a non-finite value (or the input, if it does), in
    /// words (`` `h4.0` (its parameter `h4.0.weight`) ``).
    fn first_non_finite(p: &Self::Params, ws: &Self::Workspace) -> Option<String>;
    /// The bytes [`Network::workspace`] allocates for batches of `batch` images (`None`:
    /// more than a `usize` counts), so that a batch too large is refused before it is
    /// allocated.
    fn workspace_bytes(batch: usize) -> Option<usize>;
    /// The bytes [`Network::inference_workspace`] allocates (`None` as for
    /// [`Network::workspace_bytes`]).
    fn inference_workspace_bytes(batch: usize) -> Option<usize>;
    /// A hash of the network's parameters (names and shapes) and layers, which checkpoints
    /// carry so that another network's are refused.
    const HASH: u64;
}

/// The bundled MNIST digits (see `data/README.md` in netc's repository).
pub const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    /// Its number, from 1.
    pub epoch: usize,
    /// The mean objective over its steps (NaN when it ran none: resumed at its last step).
    pub train_loss: f64,
    /// The fraction of its training images classified right (NaN without labels).
    pub train_accuracy: f64,
    /// The validation set's mean cross-entropy, or without labels its mean objective (NaN
    /// without a validation set).
    pub val_loss: f64,
    /// The validation set's top-1 (NaN without labels or a validation set).
    pub val_accuracy: f64,
    pub images_per_second: f64,
}

/// The trainer's entry point for a generated `main`: parses the flags and trains. Exits with
/// status 2 on bad flags, bad data or a failed run (with the reason), and 130 after Ctrl-C
/// (with the checkpoint it wrote).
pub fn main<N: Network>() -> std::process::ExitCode {
    let flags = Flags::parse_for(&format!("{}-train", N::NAME));
    match train::<N>(&flags) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        // Ctrl-C: the checkpoint is written; exit with SIGINT's status.
        Err(Error::Interrupted(e)) => {
            files::say(&format!("{}: {e}", N::NAME));
            std::process::ExitCode::from(130)
        }
        Err(Error::Failed(e)) => {
            files::say(&format!("{}: error: {e}", N::NAME));
            std::process::ExitCode::from(2)
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Ctrl-C: the run wrote a checkpoint, which the message names, and stopped.
    Interrupted(String),
    /// Bad settings, data or checkpoints, a diverged run, or a file that could not be
    /// written; the message says which and how to fix it.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Interrupted(m) | Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A run stopped inside an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MidEpoch {
    /// Steps done.
    pub steps: usize,
    /// The batch size and training-set size the steps were counted in (0 in checkpoints
    /// of earlier trainers, which did not record them).
    pub batch: usize,
    pub images: usize,
    /// The sum of those steps' losses and their images classified right, so that the
    /// epoch's figures cover all of its steps.
    pub loss_sum: f64,
    pub correct: usize,
}

/// Everything a run carries from step to step, which a checkpoint saves.
pub struct Run<N: Network> {
    pub params: N::Params,
    pub state: N::State,
    /// One optimizer state per parameter, in [`Network::SHAPES`] order.
    pub opt: Vec<rt::optim::OptState>,
    /// Epochs finished.
    pub epoch: usize,
    /// How far into the next epoch the run is (a checkpoint written on Ctrl-C); `rng` is
    /// then the generator as it was before that epoch's shuffle, so that the order comes
    /// back.
    pub mid_epoch: Option<MidEpoch>,
    /// Optimizer steps taken; with the seed, it seeds the next step's dropout masks.
    pub step: u64,
    /// The generator of the shuffles (and, before the first epoch, of the initialization).
    pub rng: rt::rng::Rng,
}

/// What a run leaves: the trained parameters and batchnorm statistics, and every epoch's
/// figures (none for `--eval`, which returns the checkpoint's).
pub struct Trained<N: Network> {
    pub params: N::Params,
    pub state: N::State,
    pub epochs: Vec<Epoch>,
}

/// Trains `N` as `flags` say.
pub fn train<N: Network>(flags: &Flags) -> Result<Trained<N>, Error> {
    // A run stops early on Ctrl-C only by the flag the handler sets.
    run_training::<N>(flags).map_err(|e| {
        if ctrl_c::pressed() {
            Error::Interrupted(e)
        } else {
            Error::Failed(e)
        }
    })
}
