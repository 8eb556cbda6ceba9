//! Checkpoints: one safetensors file per saved epoch, `NAME-epochNNNN.safetensors`, written
//! atomically (a temporary file, then a rename), holding everything a run needs to continue
//! bit for bit: the parameters and batchnorm statistics under their PyTorch names (so that
//! PyTorch loads the weights by name), each parameter's optimizer state under
//! `optimizer.m.NAME` / `optimizer.v.NAME`, and in the metadata the epoch, the step, each
//! optimizer's step count, the shuffling generator's state and the network's hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{rt, MidEpoch, Network, Run};

/// Writes `run` into `dir` (created if needed); returns the file.
pub fn save<N: Network>(run: &Run<N>, dir: &Path) -> Result<PathBuf, String> {
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
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            let view = TensorView::new(Dtype::F32, s.clone(), b).expect("a well-sized buffer");
            (n.clone(), view)
        })
        .collect();
    let data = safetensors::serialize(views, Some(meta))
        .map_err(|e| format!("cannot encode a checkpoint: {e}"))?;
    // Mid-epoch (Ctrl-C): named after the epochs done and the steps into the next.
    let path = match mid.steps {
        0 => dir.join(format!("{}-epoch{:04}.safetensors", N::NAME, run.epoch)),
        k => dir.join(format!(
            "{}-epoch{:04}-step{k:06}.safetensors",
            N::NAME,
            run.epoch
        )),
    };
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, data).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(path)
}

/// The checkpoint of the latest epoch in `dir`.
pub fn newest(dir: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: no checkpoints to resume from ({e})", dir.display()))?;
    // (epochs done, steps into the next): `-epochNNNN` or `-epochNNNN-stepMMMMMM`.
    let epoch_of = |name: &str| -> Option<(u64, u64)> {
        let rest = name.strip_suffix(".safetensors")?;
        let at = rest.rsplit_once("-epoch")?.1;
        match at.split_once("-step") {
            Some((e, k)) => Some((e.parse().ok()?, k.parse().ok()?)),
            None => Some((at.parse().ok()?, 0)),
        }
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            epoch_of(&name).map(|k| (k, e.path()))
        })
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| {
            format!(
                "{}: no checkpoints to resume from\n  help: --resume PATH names one",
                dir.display()
            )
        })
}

/// Reads a checkpoint of `N`, refusing another network's and any corrupt file.
pub fn load<N: Network>(path: &Path) -> Result<Run<N>, String> {
    let at = |what: String| format!("{}: {what}", path.display());
    let bytes = std::fs::read(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let corrupt = |e: String| at(format!("not a netc checkpoint ({e})"));
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
            "a checkpoint of network `{other}` (hash {hash}), not of `{}` (hash {:016x})\n  help: resume with the network that wrote it, or start afresh without --resume",
            N::NAME,
            N::HASH
        )));
    }
    let number = |k: &str| -> Result<u64, String> {
        get(k)?
            .parse()
            .map_err(|_| corrupt(format!("`{k}` is not a number")))
    };
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
        Ok(())
    };
    let mut params = N::params();
    for (name, shape) in N::SHAPES {
        read(
            name,
            shape,
            N::param_mut(&mut params, name).expect("listed"),
        )?;
    }
    let mut state = N::state();
    for (name, shape) in N::STATE_SHAPES {
        read(name, shape, N::state_mut(&mut state, name).expect("listed"))?;
    }
    let mut opt = Vec::new();
    for (name, shape) in N::SHAPES {
        let len: usize = shape.iter().product();
        let mut st = rt::optim::OptState {
            step: number(&format!("optimizer.step.{name}"))?,
            ..Default::default()
        };
        for (kind, v) in [("m", &mut st.m), ("v", &mut st.v)] {
            let key = format!("optimizer.{kind}.{name}");
            if file.tensor(&key).is_ok() {
                v.resize(len, 0.0);
                read(&key, shape, v)?;
            }
        }
        opt.push(st);
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
    Ok(Run {
        params,
        state,
        opt,
        epoch: number("epoch")? as usize,
        // The position inside an epoch: only in checkpoints written in the middle of one.
        mid_epoch: Some(MidEpoch {
            steps: optional(&meta, "epoch_step", &corrupt)?,
            batch: optional(&meta, "epoch_batch", &corrupt)?,
            images: optional(&meta, "epoch_images", &corrupt)?,
            loss_sum: optional(&meta, "epoch_loss", &corrupt)?,
            correct: optional(&meta, "epoch_correct", &corrupt)?,
        })
        .filter(|m| m.steps > 0),
        step: number("step")?,
        rng,
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
