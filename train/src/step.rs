//! The small pieces of a training step's loop: its progress bar, the messages of a run
//! gone non-finite, the dropout generator of a step, and seeded initialization.

use std::path::Path;

use crate::dist::Comm;
use crate::{rt, Network};

pub(crate) fn progress_bar(steps: usize, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(bar_style(false));
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

/// The bar's look: before the epoch's first step there is no loss to show, nor a rate to
/// estimate the time left from.
pub(crate) fn bar_style(running: bool) -> indicatif::ProgressStyle {
    let template = if running {
        "{prefix} [{bar:30}] {pos}/{len} steps, {msg}, ETA {eta}"
    } else {
        "{prefix} [{bar:30}] {pos}/{len} steps"
    };
    indicatif::ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

/// `1 epoch`, `5 epochs`.
pub(crate) fn count_epochs(n: usize) -> String {
    match n {
        1 => "1 epoch".into(),
        n => format!("{n} epochs"),
    }
}

/// The first parameter (or gradient) of `p` holding a non-finite value, by name.
pub(crate) fn non_finite_param<N: Network>(p: &N::Params) -> Option<&'static str> {
    N::SHAPES.iter().map(|(name, _)| *name).find(|name| {
        !N::param(p, name)
            .expect("listed")
            .iter()
            .all(|v| v.is_finite())
    })
}

/// The message for a non-finite loss or gradient, pointing at the last good checkpoint.
pub(crate) fn non_finite(
    epoch: usize,
    step: usize,
    what: &str,
    last_good: Option<&Path>,
) -> String {
    let kept = match last_good {
        Some(p) => format!("; the last good checkpoint is {}", p.display()),
        None => "; this run wrote no checkpoint before it".into(),
    };
    format!(
        "epoch {epoch}, step {}: {what}{kept}\n  help: lower --lr (training diverged)",
        step + 1
    )
}

/// The generator of the dropout and stochastic-depth masks of the run's step `step` (its
/// optimizer steps before this one): a function of the run's seed and the step alone, so
/// that a resumed run draws the masks an uninterrupted one does, with no generator in its
/// checkpoint. SplitMix64's finalizer spreads the seed over 64 bits before the step is
/// mixed in, so that runs of nearby seeds do not share masks a few steps apart, and the
/// streams differ from the shuffle's and the initialization's (`Rng::new(seed)`). Over
/// several ranks, each rank's stream is its own (the same masks on every rank would tie
/// their samples' dropping together).
pub(crate) fn dropout_rng(seed: u64, step: u64, comm: &Comm) -> rt::rng::Rng {
    let seed = match comm.size() {
        1 => seed,
        _ => seed ^ (comm.rank() as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    };
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    rt::rng::Rng::new((z ^ (z >> 31)) ^ step)
}

/// Seeded initialization of fresh parameters (their ops' constants): He or Xavier for the
/// tensors the network says are drawn (the weights of convolutions and linear layers).
pub(crate) fn init<N: Network>(p: &mut N::Params, he: bool, rng: &mut rt::rng::Rng) {
    let kind = if he {
        rt::init::Init::He
    } else {
        rt::init::Init::Xavier
    };
    for (name, shape) in N::SHAPES.iter().filter(|(name, _)| N::drawn(name)) {
        let t = N::param_mut(p, name).expect("every listed parameter exists");
        rt::init::init_weight(kind, shape, rng, t);
    }
}
