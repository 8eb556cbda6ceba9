//! What the training loop does differently over several ranks, each a no-op (or the plain
//! single-process step) for one: scoring a set by shards, the mean of the batchnorm
//! statistics, Ctrl-C agreed on, checkpoints by rank 0 alone, and the fingerprints the
//! ranks compare at the start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{fingerprint, Comm};
use crate::eval::{evaluate, Scores};
use crate::rt::data::Dataset;
use crate::settings::Settings;
use crate::{checkpoint, Flags, Network, Run};

/// This rank's contiguous share of `set` (all of it for one process).
pub(crate) fn shard(set: &Dataset, comm: &Comm) -> Dataset {
    if comm.size() == 1 {
        return set.clone();
    }
    let r = comm.share(set.len());
    let len = set.image_len();
    Dataset {
        shape: set.shape,
        classes: set.classes,
        images: set.images[r.start * len..r.end * len].to_vec(),
        labels: set.labels[r].to_vec(),
    }
}

/// The scores of the whole set whose share this rank holds: each rank scores its shard in
/// batches of `batch`, and the sums are added up.
pub(crate) fn score<N: Network>(
    comm: &Comm,
    p: &N::Params,
    s: &N::State,
    shard: &Dataset,
    batch: usize,
    ws: &mut N::Workspace,
) -> Scores {
    let mine = evaluate::<N>(p, s, shard, batch, ws);
    if comm.size() == 1 {
        return mine;
    }
    let n = shard.len() as f64;
    let part = |v: f64| if n > 0.0 { v * n } else { 0.0 };
    let mut sums = [part(mine.loss), part(mine.top1), part(mine.top5), n];
    comm.sum(&mut sums);
    let total = sums[3];
    let mean = |v: f64| if total > 0.0 { v / total } else { f64::NAN };
    Scores {
        loss: mean(sums[0]),
        top1: mean(sums[1]),
        top5: mean(sums[2]),
    }
}

/// Makes every rank's batchnorm running statistics their mean over the ranks.
pub(crate) fn mean_state<N: Network>(comm: &Comm, state: &mut N::State) {
    if comm.size() == 1 {
        return;
    }
    for (name, _) in N::STATE_SHAPES {
        let t = N::state_mut(state, name).expect("every listed statistic exists");
        comm.mean_f32(t);
    }
}

/// Whether the run stops here: Ctrl-C on any rank stops all of them at the same step.
pub(crate) fn stop_all(comm: &Comm, pressed: bool) -> bool {
    if comm.size() == 1 {
        return pressed;
    }
    let mut v = [pressed as u8 as f64];
    comm.sum(&mut v);
    v[0] > 0.0
}

/// A checkpoint, written by rank 0 (every rank holds the same run).
pub(crate) fn save<N: Network>(
    comm: &Comm,
    run: &Run<N>,
    settings: &Settings,
    dir: &Path,
) -> Result<PathBuf, String> {
    if comm.is_root() {
        checkpoint::save::<N>(run, settings, dir)
    } else {
        Ok(dir.join("(rank 0's checkpoint)"))
    }
}

/// The settings that decide what a step computes, as the checkpoint records them, and the
/// flags that decide the run's shape.
pub(crate) fn settings_fingerprint(settings: &Settings, flags: &Flags) -> u64 {
    let mut meta = HashMap::new();
    settings.to_meta(&mut meta);
    let mut pairs: Vec<String> = meta.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.push(format!(
        "epochs={:?} every={:?}",
        flags.epochs, flags.checkpoint_every
    ));
    let joined = pairs.join("\n");
    fingerprint(&[joined.as_bytes()])
}

/// The training and validation sets' images and labels.
pub(crate) fn data_fingerprint(train: &Dataset, val: &Dataset) -> u64 {
    let bytes = |set: &Dataset| -> Vec<u8> {
        set.images
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain(set.labels.iter().flat_map(|l| l.to_le_bytes()))
            .collect()
    };
    fingerprint(&[&bytes(train), &bytes(val)])
}

/// Every parameter and statistic, bit for bit.
pub(crate) fn params_fingerprint<N: Network>(p: &N::Params, s: &N::State) -> u64 {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (name, _) in N::SHAPES {
        let t = N::param(p, name).expect("listed");
        parts.push(t.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    for (name, _) in N::STATE_SHAPES {
        let t = N::state_ref(s, name).expect("listed");
        parts.push(t.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    fingerprint(&refs)
}

/// A fault to inject, for the tests of a rank that dies or hangs: `NETC_FAULT=RANK:STEP:die`
/// makes rank RANK abort before global step STEP, `...:hang` makes it stop answering. Read
/// only over several ranks; anything else in the variable is an error, not ignored.
pub(crate) struct Fault {
    step: u64,
    hang: bool,
}

impl Fault {
    pub(crate) fn from_env(comm: &Comm) -> Result<Option<Fault>, String> {
        if comm.size() == 1 {
            return Ok(None);
        }
        let Ok(v) = std::env::var("NETC_FAULT") else {
            return Ok(None);
        };
        let bad = || format!("NETC_FAULT={v}: expected RANK:STEP:die or RANK:STEP:hang");
        let parts: Vec<&str> = v.split(':').collect();
        let [rank, step, what] = parts[..] else {
            return Err(bad());
        };
        let rank: usize = rank.parse().map_err(|_| bad())?;
        let step: u64 = step.parse().map_err(|_| bad())?;
        let hang = match what {
            "die" => false,
            "hang" => true,
            _ => return Err(bad()),
        };
        Ok((rank == comm.rank()).then_some(Fault { step, hang }))
    }

    /// Before global step `step` (counted from 1): the fault, if it is this one's.
    pub(crate) fn at(&self, step: u64) {
        if step + 1 != self.step {
            return;
        }
        if self.hang {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        std::process::abort();
    }
}
