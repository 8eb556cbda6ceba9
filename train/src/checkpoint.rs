//! Checkpoints: one safetensors file per saved epoch, `NAME-epochNNNN.safetensors` after
//! epoch N, and `NAME-epochNNNN-stepMMMMMM.safetensors` in epoch N after its step M (Ctrl-C),
//! written
//! atomically (a temporary file, then a rename), holding everything a run needs to continue
//! bit for bit: the parameters and batchnorm statistics under their PyTorch names (so that
//! PyTorch loads the weights by name), each parameter's optimizer state under
//! `optimizer.m.NAME` / `optimizer.v.NAME`, and in the metadata the epoch, the step, each
//! optimizer's step count, the shuffling generator's state, the run's settings and the
//! network's hash. Reading one validates every field and tensor: a tampered or truncated
//! checkpoint is refused with what is wrong, never half loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::settings::Settings;
use crate::{files, freeze, rt, MidEpoch, Network, Run};

/// Epochs and steps past these are no run's: a tampered checkpoint.
const MAX_EPOCH: u64 = 1 << 32;
const MAX_STEP: u64 = 1 << 48;

/// Writes `run`, started with `settings`, into `dir` (created if needed), atomically;
/// returns the file.
pub fn save<N: Network>(run: &Run<N>, settings: &Settings, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (name, shape) in N::SHAPES {
        let p = N::param(&run.params, name).expect("every listed parameter exists");
        tensors.push((name.to_string(), shape.to_vec(), bytes(p)));
    }
    for (name, shape) in N::STATE_SHAPES {
        let s = N::state_ref(&run.state, name).expect("every listed statistic exists");
        tensors.push((name.to_string(), shape.to_vec(), bytes(s)));
    }
    let mut meta = HashMap::new();
    for ((name, shape), st) in N::SHAPES.iter().zip(&run.opt) {
        for (kind, v) in [("m", &st.m), ("v", &st.v)] {
            if !v.is_empty() {
                tensors.push((format!("optimizer.{kind}.{name}"), shape.to_vec(), bytes(v)));
            }
        }
        meta.insert(format!("optimizer.step.{name}"), st.step.to_string());
    }
    meta.insert("network".into(), N::NAME.into());
    meta.insert("hash".into(), format!("{:016x}", N::HASH));
    meta.insert("epoch".into(), run.epoch.to_string());
    let mid = run.mid_epoch.unwrap_or_default();
    meta.insert("epoch_step".into(), mid.steps.to_string());
    if let Some(m) = run.mid_epoch {
        // What the steps were counted in: a resume must cut the epoch the same way.
        meta.insert("epoch_batch".into(), m.batch.to_string());
        meta.insert("epoch_images".into(), m.images.to_string());
        meta.insert("epoch_loss".into(), m.loss_sum.to_string());
        meta.insert("epoch_correct".into(), m.correct.to_string());
    }
    meta.insert("step".into(), run.step.to_string());
    let rng = run.rng.state().map(|w| w.to_string()).join(",");
    meta.insert("rng".into(), rng);
    settings.to_meta(&mut meta);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            let view = TensorView::new(Dtype::F32, s.clone(), b).expect("a well-sized buffer");
            (n.clone(), view)
        })
        .collect();
    let data = safetensors::serialize(views, Some(meta))
        .map_err(|e| format!("cannot encode a checkpoint: {e}"))?;
    // Mid-epoch (Ctrl-C): named after the epoch it was in (one more than those done) and
    // the steps of it done, as the trainer's messages count them.
    let path = match mid.steps {
        0 => dir.join(format!("{}-epoch{:04}.safetensors", N::NAME, run.epoch)),
        k => dir.join(format!(
            "{}-epoch{:04}-step{k:06}.safetensors",
            N::NAME,
            run.epoch + 1
        )),
    };
    files::write_atomic(&path, &data)?;
    Ok(path)
}

/// (epochs done, steps into the next) of a checkpoint's file name: `NAME-epochNNNN` after
/// epoch N is (N, 0), `NAME-epochNNNN-stepMMMMMM` in epoch N after step M is (N - 1, M).
/// Trainers before issue 13 named a mid-epoch file after the epochs done instead: their
/// `epoch0000-step…` reads as (0, M) all the same, and [`newest`] orders the other mid-epoch
/// files by what their headers record.
pub fn position(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_suffix(".safetensors")?;
    let at = rest.rsplit_once("-epoch")?.1;
    match at.split_once("-step") {
        Some((e, k)) => {
            let e: u64 = e.parse().ok()?;
            Some((e.saturating_sub(1), k.parse().ok()?))
        }
        None => Some((at.parse().ok()?, 0)),
    }
}

/// (epochs done, steps into the next) as the checkpoint at `path` records them in its
/// metadata, read from its header alone; `None` when the header cannot be read (the file is
/// then skipped, with the reason, when its turn comes).
fn recorded_position(path: &Path) -> Option<(u64, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    // safetensors' own bound on a header.
    let len = u64::from_le_bytes(len).min(100_000_000) as usize;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let number = |k: &str| -> Option<u64> { header["__metadata__"][k].as_str()?.parse().ok() };
    Some((number("epoch")?, number("epoch_step").unwrap_or(0)))
}

/// What a checkpoint's position says to a reader: `epoch 2 done`, or `in epoch 3 after step
/// 25` for one written in the middle of epoch 3 (`NAME-epoch0003-step000025`).
pub fn describe(epochs_done: usize, steps: usize) -> String {
    match (epochs_done, steps) {
        (0, 0) => "before epoch 1".into(),
        (e, 0) => format!("epoch {e} done"),
        (e, k) => format!("in epoch {} after step {k}", e + 1),
    }
}

/// The newest checkpoint of `N` in `dir` that loads: checkpoints by their names' position,
/// newest first, skipping another network's, corrupt ones and unrelated files. Returns the
/// run, its file and a line for every checkpoint skipped, with the reason.
pub fn newest<N: Network>(dir: &Path) -> Result<(Loaded<N>, PathBuf, Vec<String>), String> {
    let found = candidates(dir).map_err(|e| {
        format!(
            "{}: no checkpoints to resume from ({e})\n  help: --resume PATH names one",
            dir.display()
        )
    })?;
    let mut skipped = Vec::new();
    for path in found {
        match load::<N>(&path) {
            Ok(loaded) => return Ok((loaded, path, skipped)),
            Err(e) => skipped.push(format!("skipped {e}")),
        }
    }
    let why = if skipped.is_empty() {
        String::new()
    } else {
        format!(" valid for `{}`:\n  {}", N::NAME, skipped.join("\n  "))
    };
    Err(format!(
        "{}: no checkpoints to resume from{why}\n  help: --resume PATH names one",
        dir.display()
    ))
}

/// The files of `dir` named like checkpoints, newest first, by their names' position; a
/// mid-epoch file (`-step` in its name, whose numbering changed once) by the position its
/// header records when it can be read.
fn candidates(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let named = position(&name)?;
            let path = e.path();
            let recorded = match named.1 {
                0 => None,
                _ => recorded_position(&path),
            };
            Some((recorded.unwrap_or(named), path))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().rev().map(|(_, path)| path).collect())
}

/// A checkpoint read back: the run, and the settings it was started with (`None` from a
/// trainer that did not record them).
pub struct Loaded<N: Network> {
    pub run: Run<N>,
    pub settings: Option<Settings>,
}

/// Reads a checkpoint of `N`, refusing another network's and any corrupt or tampered file.
pub fn load<N: Network>(path: &Path) -> Result<Loaded<N>, String> {
    let at = |what: String| format!("{}: {what}", path.display());
    let bytes = std::fs::read(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let corrupt = |e: String| at(format!("not a valid netc checkpoint ({e})"));
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| corrupt(format!("no `{k}` in its metadata")))
    };
    let hash = get("hash")?;
    if *hash != format!("{:016x}", N::HASH) {
        let other = meta.get("network").map(String::as_str).unwrap_or("?");
        return Err(at(format!(
            "a checkpoint of network `{other}` (hash {hash}), not of `{}` (hash {:016x})\n  help: give a checkpoint that `{}`'s trainer wrote, or use the network that wrote this one",
            N::NAME,
            N::HASH,
            N::NAME
        )));
    }
    let number = |k: &str, max: u64| -> Result<u64, String> {
        let v: u64 = get(k)?
            .parse()
            .map_err(|_| corrupt(format!("`{k}` is not a number")))?;
        if v > max {
            return Err(corrupt(format!("`{k}` is {v}, past any run")));
        }
        Ok(v)
    };
    let settings = Settings::from_meta(&meta).map_err(corrupt)?;
    let read = |name: &str, shape: &[usize], into: &mut [f32]| -> Result<(), String> {
        let t = file
            .tensor(name)
            .map_err(|_| corrupt(format!("no tensor `{name}`")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(corrupt(format!(
                "`{name}` is {:?} {:?}, not F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        for (v, b) in into.iter_mut().zip(t.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if let Some(i) = into.iter().position(|v| !v.is_finite()) {
            return Err(corrupt(format!("`{name}` holds {} at index {i}", into[i])));
        }
        Ok(())
    };
    let mut expected: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut params = N::params();
    for (name, shape) in N::SHAPES {
        read(
            name,
            shape,
            N::param_mut(&mut params, name).expect("listed"),
        )?;
        expected.insert(name.to_string());
    }
    let mut state = N::state();
    for (name, shape) in N::STATE_SHAPES {
        read(name, shape, N::state_mut(&mut state, name).expect("listed"))?;
        expected.insert(name.to_string());
    }
    let step = number("step", MAX_STEP)?;
    // Which optimizer state every parameter has after its first step.
    let needs = &["m", "v"][..settings.as_ref().map_or(0, |s| s.optimizer.moments())];
    // The parameters the run keeps fixed (`--freeze`), which take no steps.
    let frozen = match &settings {
        Some(s) => freeze::frozen::<N>(&s.freeze).map_err(corrupt)?,
        None => vec![false; N::SHAPES.len()],
    };
    let mut opt = Vec::new();
    for ((name, shape), &fixed) in N::SHAPES.iter().zip(&frozen) {
        let len: usize = shape.iter().product();
        // Every optimizer step updates every parameter but the frozen ones.
        let key = format!("optimizer.step.{name}");
        let st_step = number(&key, step)?;
        let want = if fixed { 0 } else { step };
        if st_step != want {
            let why = if fixed {
                "it is frozen".to_string()
            } else {
                format!("the run has taken {step} steps")
            };
            return Err(corrupt(format!("`{key}` is {st_step}, but {why}")));
        }
        let mut st = rt::optim::OptState {
            step: st_step,
            ..Default::default()
        };
        for (kind, v) in [("m", &mut st.m), ("v", &mut st.v)] {
            let key = format!("optimizer.{kind}.{name}");
            if file.tensor(&key).is_ok() {
                if fixed {
                    return Err(corrupt(format!(
                        "`{key}` is the optimizer state of a frozen parameter"
                    )));
                }
                v.resize(len, 0.0);
                read(&key, shape, v)?;
                expected.insert(key);
            } else if st.step > 0 && needs.contains(&kind) {
                return Err(corrupt(format!(
                    "no tensor `{key}`, which the optimizer has after its first step"
                )));
            }
        }
        opt.push(st);
    }
    let mut extra: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !expected.contains(*n))
        .collect();
    extra.sort();
    if let Some(first) = extra.first() {
        return Err(corrupt(format!(
            "`{first}` is not a tensor of `{}`'s checkpoints",
            N::NAME
        )));
    }
    let words: Vec<u64> = get("rng")?
        .split(',')
        .map(|w| w.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| corrupt("a bad `rng`".into()))?;
    let rng = match words[..] {
        [a, b, c, d] if [a, b, c, d] != [0; 4] => rt::rng::Rng::from_state([a, b, c, d]),
        _ => return Err(corrupt("a bad `rng`".into())),
    };
    // The position inside an epoch: only in checkpoints written in the middle of one.
    let mid = MidEpoch {
        steps: optional(&meta, "epoch_step", &corrupt)?,
        batch: optional(&meta, "epoch_batch", &corrupt)?,
        images: optional(&meta, "epoch_images", &corrupt)?,
        loss_sum: optional(&meta, "epoch_loss", &corrupt)?,
        correct: optional(&meta, "epoch_correct", &corrupt)?,
    };
    if mid.batch > 0
        && mid
            .steps
            .checked_mul(mid.batch)
            .is_none_or(|n| n > mid.images)
    {
        return Err(corrupt(format!(
            "`epoch_step` {} is past the end of an epoch of {} images in batches of {}",
            mid.steps, mid.images, mid.batch
        )));
    }
    if !mid.loss_sum.is_finite() || mid.correct > mid.steps.saturating_mul(mid.batch.max(1)) {
        return Err(corrupt(
            "`epoch_loss` or `epoch_correct` is out of range".into(),
        ));
    }
    Ok(Loaded {
        run: Run {
            params,
            state,
            opt,
            epoch: number("epoch", MAX_EPOCH)? as usize,
            mid_epoch: Some(mid).filter(|m| m.steps > 0),
            step,
            rng,
        },
        settings,
    })
}

/// A metadata value that may be absent (then its default), but not malformed.
fn optional<T: std::str::FromStr + Default>(
    meta: &std::collections::HashMap<String, String>,
    k: &str,
    corrupt: &dyn Fn(String) -> String,
) -> Result<T, String> {
    meta.get(k).map_or(Ok(T::default()), |v| {
        v.parse()
            .map_err(|_| corrupt(format!("`{k}` is malformed")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Tiny;

    /// A run with frozen parameters saves no optimizer state for them and a step count of
    /// 0, and loads back as it was; the same file read as a run without them is refused.
    #[test]
    fn frozen_parameters_round_trip_without_optimizer_state() {
        let dir = std::env::temp_dir().join(format!("netc-ckpt-frozen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let flags = crate::config::tests::flags(&["--freeze", "c1", "--weight-decay", "0.1"]);
        let settings = Settings::new(&flags, &Tiny::DEFAULTS).unwrap();
        let frozen = freeze::frozen::<Tiny>(&settings.freeze).unwrap();
        let mut run = Run::<Tiny> {
            params: Tiny::start(),
            state: Tiny::state(),
            opt: vec![Default::default(); Tiny::SHAPES.len()],
            epoch: 1,
            mid_epoch: None,
            step: 2,
            rng: rt::rng::Rng::new(1),
        };
        let g = Tiny::start();
        for _ in 0..2 {
            freeze::step::<Tiny>(
                &settings.optimizer,
                &mut run.params,
                &g,
                &mut run.opt,
                &frozen,
            );
        }
        let path = save::<Tiny>(&run, &settings, &dir).unwrap();
        let loaded = load::<Tiny>(&path).unwrap();
        assert_eq!(loaded.run.params, run.params);
        assert_eq!(loaded.run.opt, run.opt);
        assert_eq!((loaded.run.opt[0].step, loaded.run.opt[4].step), (0, 2));
        assert_eq!(loaded.settings, Some(settings.clone()));
        // The same tensors under a run that froze nothing: the counts disagree.
        let unfrozen = Settings {
            freeze: Vec::new(),
            ..settings
        };
        let path = save::<Tiny>(&run, &unfrozen, &dir).unwrap();
        let e = load::<Tiny>(&path).err().unwrap();
        assert!(
            e.contains("`optimizer.step.c1.0.weight` is 0, but the run has taken 2 steps"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_count_the_epoch_a_checkpoint_was_written_in() {
        assert_eq!(position("lenet-epoch0003.safetensors"), Some((3, 0)));
        // In epoch 3 after step 25: two epochs done.
        assert_eq!(
            position("lenet-epoch0003-step000025.safetensors"),
            Some((2, 25))
        );
        // Only an earlier trainer wrote epoch 0 with steps (epochs done, then steps).
        assert_eq!(
            position("lenet-epoch0000-step000025.safetensors"),
            Some((0, 25))
        );
        assert_eq!(position("my-net-epoch0012.safetensors"), Some((12, 0)));
        assert_eq!(position("lenet-epoch3.json"), None);
        assert_eq!(position("lenet.safetensors"), None);
        assert_eq!(describe(0, 0), "before epoch 1");
        assert_eq!(describe(2, 0), "epoch 2 done");
        assert_eq!(describe(2, 25), "in epoch 3 after step 25");
    }

    /// `--resume` orders checkpoints by what they record, so that the mid-epoch files an
    /// earlier trainer named after the epochs done come where they belong.
    #[test]
    fn candidates_are_ordered_by_their_recorded_position() {
        let dir = std::env::temp_dir().join(format!("netc-ckpt-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, epoch: u64, step: u64| {
            let meta = HashMap::from([
                ("epoch".to_string(), epoch.to_string()),
                ("epoch_step".to_string(), step.to_string()),
            ]);
            let none: Vec<(String, TensorView)> = Vec::new();
            let bytes = safetensors::serialize(none, Some(meta)).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        write("lenet-epoch0002.safetensors", 2, 0);
        // An earlier trainer's: in epoch 3 after step 10, named after the 2 epochs done.
        write("lenet-epoch0002-step000010.safetensors", 2, 10);
        write("lenet-epoch0002-step000005.safetensors", 1, 5);
        write("lenet-epoch0000-step000003.safetensors", 0, 3);
        // Unreadable: ordered by its name, and skipped when loaded.
        std::fs::write(dir.join("lenet-epoch0009.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let names: Vec<String> = candidates(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "lenet-epoch0009.safetensors",
                "lenet-epoch0002-step000010.safetensors",
                "lenet-epoch0002.safetensors",
                "lenet-epoch0002-step000005.safetensors",
                "lenet-epoch0000-step000003.safetensors",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
