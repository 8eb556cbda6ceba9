//! `netc run`: one network on weights and inputs from safetensors files, outputs (and, with
//! `--grads`, the loss and every parameter's gradient, dropping only with `--dropout SEED`)
//! to a safetensors file. Every mistake in
//! the files (a missing, extra or mis-shaped tensor, a wrong dtype, a label out of range, a
//! file that is not safetensors) is an error that names it.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_compiler::ops::{InputKind, Op};
use netc_compiler::Graph;

/// Reads a safetensors file; the error says which file and why.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, String> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))
}

fn f32s(view: &TensorView) -> Vec<f32> {
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// The network's parameters and batchnorm state from `path`: exactly the names of
/// docs/language.md, in PyTorch layouts, as f32. Two kinds of extra tensor are ignored: a
/// batchnorm's `num_batches_tracked` (an integer scalar in every PyTorch `state_dict`), and
/// the optimizer state of a netc trainer's checkpoint (`optimizer.m.NAME`, `optimizer.v.NAME`),
/// which is said once on stderr.
pub fn load_weights(g: &Graph, path: &Path) -> Result<Params, String> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let want = interp::param_shapes(g);
    let mut params = Params::new();
    let mut errors = Vec::new();
    for (name, shape) in &want {
        match file.tensor(name) {
            Err(_) => errors.push(format!(
                "`{name}` is missing (expected f32 {})",
                shape_str(shape)
            )),
            Ok(view) if view.dtype() != Dtype::F32 => {
                errors.push(format!("`{name}` is {:?}, expected F32", view.dtype()))
            }
            Ok(view) if view.shape() != &shape[..] => errors.push(format!(
                "`{name}` has shape {}, expected {}",
                shape_str(view.shape()),
                shape_str(shape)
            )),
            Ok(view) => {
                params.insert(
                    name.clone(),
                    Tensor {
                        shape: shape.clone(),
                        data: f32s(&view),
                    },
                );
            }
        }
    }
    let known: std::collections::HashSet<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(String::from)
        .collect();
    extra.sort();
    let mut optimizer_state = 0;
    for name in extra {
        // PyTorch's batchnorm counter, beside the layer's running statistics.
        if let Some(layer) = name.strip_suffix(".num_batches_tracked") {
            if known.contains(format!("{layer}.running_mean").as_str()) {
                let view = file.tensor(&name).expect("listed by the file");
                let scalar = view.shape().iter().product::<usize>() == 1;
                if !(scalar && matches!(view.dtype(), Dtype::I64 | Dtype::I32)) {
                    errors.push(format!(
                        "`{name}` is {:?} {}, expected an integer scalar (PyTorch's count of batches)",
                        view.dtype(),
                        shape_str(view.shape())
                    ));
                }
                continue;
            }
        }
        // A trainer checkpoint's optimizer state, for a parameter of this network.
        let of_param = name
            .strip_prefix("optimizer.m.")
            .or_else(|| name.strip_prefix("optimizer.v."))
            .is_some_and(|p| known.contains(p));
        if of_param {
            optimizer_state += 1;
            continue;
        }
        errors.push(format!(
            "`{name}` is not a parameter of network `{}`",
            g.name
        ));
    }
    if optimizer_state > 0 && errors.is_empty() {
        eprintln!(
            "netc: {} is a training checkpoint: its parameters and batchnorm statistics are used, its optimizer state ({optimizer_state} tensors) is ignored",
            path.display()
        );
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(format!("{}:\n  {}", path.display(), errors.join("\n  ")))
    }
}

/// The network's inputs from `path`, batch first: f32 `[N, ...shape]` for tensors, i64 (or
/// i32) `[N]` in `0..classes` for `class(classes)` labels. Inference (`grads` false) needs
/// only the inputs that reach an output; the others (labels, a loss's targets) may be
/// absent, and are checked when present.
pub fn load_inputs(g: &Graph, path: &Path, grads: bool) -> Result<Feed, String> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut feed = Feed::default();
    let mut errors = Vec::new();
    let mut batch: Option<(usize, String)> = None;
    let needed = if grads {
        g.training_set()
    } else {
        g.inference_set()
    };
    for (name, n) in &g.inputs {
        let node = g.node(*n);
        let Ok(view) = file.tensor(name) else {
            if needed[n.index()] {
                errors.push(format!("input `{name}` is missing"));
            }
            continue;
        };
        // A tensor without a batch dimension is its own mistake, not the batch of the
        // inputs after it.
        let Some(&b) = view.shape().first() else {
            errors.push(format!(
                "input `{name}` is a scalar, expected a batch first ([N, ...])"
            ));
            continue;
        };
        match &batch {
            Some((first, by)) if *first != b => {
                errors.push(format!(
                    "input `{name}` has a batch of {b}, but `{by}` has {first}"
                ));
                continue;
            }
            None => batch = Some((b, name.clone())),
            _ => {}
        }
        match node.op {
            Op::Input(InputKind::Class(classes)) => {
                if view.shape().len() != 1 {
                    errors.push(format!(
                        "label `{name}` has shape {}, expected [N]",
                        shape_str(view.shape())
                    ));
                    continue;
                }
                let labels: Vec<i64> = match view.dtype() {
                    Dtype::I64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                    Dtype::I32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                        .collect(),
                    other => {
                        errors.push(format!("label `{name}` is {other:?}, expected I64 or I32"));
                        continue;
                    }
                };
                if let Some((i, bad)) = labels
                    .iter()
                    .enumerate()
                    .find(|(_, &l)| l < 0 || l >= classes as i64)
                {
                    errors.push(format!(
                        "label `{name}`[{i}] is {bad}, outside 0..{classes}"
                    ));
                    continue;
                }
                feed.labels.insert(name.clone(), labels);
            }
            _ => {
                let mut want = vec![b];
                want.extend(&node.shape);
                if view.dtype() != Dtype::F32 {
                    errors.push(format!(
                        "input `{name}` is {:?}, expected F32",
                        view.dtype()
                    ));
                } else if view.shape() != &want[..] || b == 0 {
                    errors.push(format!(
                        "input `{name}` has shape {}, expected [N, {}] with N ≥ 1",
                        shape_str(view.shape()),
                        node.shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                } else {
                    feed.tensors.insert(
                        name.clone(),
                        Tensor {
                            shape: want,
                            data: f32s(&view),
                        },
                    );
                }
            }
        }
    }
    let inputs: Vec<&str> = g.inputs.iter().map(|(n, _)| n.as_str()).collect();
    for name in file.names() {
        if !inputs.contains(&name) {
            errors.push(format!("`{name}` is not an input of network `{}`", g.name));
        }
    }
    if errors.is_empty() {
        Ok(feed)
    } else {
        Err(format!("{}:\n  {}", path.display(), errors.join("\n  ")))
    }
}

/// What `netc run` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Inference: the outputs.
    Infer,
    /// One training step (`--grads`): the outputs, the loss and every gradient, with
    /// batchnorm on the batch's statistics. Dropout and stochastic depth keep every value
    /// (deterministic gradients, as PyTorch's in eval-mode dropout), unless `dropout` gives a
    /// seed: then their masks are drawn, in layer order, from `Rng::new(seed)`.
    Grads { dropout: Option<u64> },
}

impl Pass {
    pub fn grads(self) -> bool {
        matches!(self, Pass::Grads { .. })
    }
}

/// Runs `g` with the reference interpreter, as `pass` says.
pub fn run(
    g: &Graph,
    mut params: Params,
    feed: &Feed,
    pass: Pass,
) -> Result<BTreeMap<String, Tensor>, String> {
    check_grads(g, feed, pass.grads())?;
    let mut out = BTreeMap::new();
    if let Pass::Grads { dropout } = pass {
        let before = params.clone();
        let mut rng = dropout.map(netc_runtime::rng::Rng::new);
        let f = interp::forward_dropping(g, &mut params, feed, Mode::Train, rng.as_mut());
        out.extend(f.outputs(g));
        out.insert(
            "loss".into(),
            Tensor {
                shape: vec![],
                data: vec![f.loss],
            },
        );
        for (name, t) in interp::backward(g, &before, &f) {
            out.insert(format!("grad.{name}"), t);
        }
    } else {
        let f = interp::forward(g, &mut params, feed, Mode::Infer);
        out.extend(f.outputs(g));
    }
    Ok(out)
}

/// What `--grads` needs: a loss, and every label it reads.
pub fn check_grads(g: &Graph, feed: &Feed, grads: bool) -> Result<(), String> {
    if !grads {
        return Ok(());
    }
    if g.losses.is_empty() {
        return Err(format!(
            "`--grads` needs a loss, and network `{}` has none",
            g.name
        ));
    }
    let missing: Vec<&str> = g
        .losses
        .iter()
        .flat_map(|l| l.inputs)
        .filter_map(|n| match g.node(n).op {
            Op::Input(InputKind::Class(_)) if !feed.labels.contains_key(&g.node(n).path) => {
                Some(g.node(n).path.as_str())
            }
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("`--grads` needs the labels {}", missing.join(", ")))
    }
}

/// Runs the generated code (see [`crate::cache::cached_crate`]) on files that `load_weights` and
/// `load_inputs` already checked. Writes `out` atomically.
#[allow(clippy::too_many_arguments)]
pub fn run_generated(
    g: &Graph,
    source: &str,
    runtime_dir: &str,
    weights: &Path,
    inputs: &Path,
    out: &Path,
    pass: Pass,
) -> Result<(), String> {
    let main = netc_compiler::codegen::emit_runner(g)?;
    let exe = crate::cache::cached_crate(
        g,
        source,
        runtime_dir,
        "run",
        &main,
        "safetensors = \"0.8\"\n",
    )?;
    let tmp = netc_train::files::tmp_path(out);
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg(weights).arg(inputs).arg(&tmp);
    if let Pass::Grads { dropout } = pass {
        cmd.arg("--grads");
        if let Some(seed) = dropout {
            cmd.arg("--dropout").arg(seed.to_string());
        }
    }
    let ran = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !ran.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "the generated code failed:\n{}",
            String::from_utf8_lossy(&ran.stderr)
        ));
    }
    netc_train::files::commit(&tmp, out)
}

/// Writes tensors as f32 safetensors, atomically (a temporary file, then a rename).
pub fn write(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<(), String> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("a view of a well-sized buffer"),
            )
        })
        .collect();
    let data = safetensors::serialize(views, None)
        .map_err(|e| format!("cannot encode the outputs: {e}"))?;
    netc_train::files::write_atomic(path, &data)
}

/// Checks, before anything runs, that `out` can be written: its folder exists and takes a
/// file, and it is not one of the files the run reads.
pub fn check_out(out: &Path, reads: &[&Path]) -> Result<(), String> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: the folder {} does not exist\n  help: create it, or pass another --out",
            out.display(),
            dir.display()
        ));
    }
    if out.is_dir() {
        return Err(format!(
            "cannot write {}: it is a folder\n  help: --out takes a file name (y.safetensors)",
            out.display()
        ));
    }
    let full = |p: &Path| -> Option<std::path::PathBuf> {
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
    };
    for r in reads {
        if full(out).is_some() && full(out) == full(r) {
            return Err(format!(
                "--out {} is the file the run reads as {}\n  help: write the outputs to a file of their own",
                out.display(),
                r.display()
            ));
        }
    }
    // A name of its own: the run's temporary file, or a user's, is not touched.
    let probe = dir.join(format!(".netc-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "cannot write {}: {e}\n  help: pass an --out in a folder you can write",
            out.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
