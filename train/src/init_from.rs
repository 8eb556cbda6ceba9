//! `--init-from W.safetensors`: a new run's first parameters and batchnorm statistics from a
//! file of weights, matched by name after the `--rename` rules: a PyTorch `state_dict`
//! (whose integer `num_batches_tracked` counters are ignored), a netc checkpoint (whose
//! optimizer state and metadata are ignored), or plain weights. What the file lacks keeps
//! its fresh, seeded initialization; what the network lacks is ignored; both are said.
//!
//! A tensor whose shape differs from the network's is refused, with one exception: a
//! classifier head for another number of classes (see [`other_classes`]), which is then
//! initialized afresh, with a note. That is fine-tuning's common case, a network trained for
//! 1000 classes given a `linear(10)` head (and its auxiliary heads, if it has any), and any
//! other difference is more likely a mistake than a wish.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

use crate::{Network, Rename};

/// The layer of the tensor `name`: its path without the last part (`c1.0` of
/// `c1.0.weight`).
fn layer(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(l, _)| l)
}

/// The classes of the file's layer when a tensor of shape `theirs` in the file and `ours`
/// in the network belong to a classifier head for another number of classes: `ours` is
/// `[classes, ...]`, `theirs` is `[k, ...]` with the same rest and `k` another number (a
/// linear layer's weight `[classes, in]` and bias `[classes]`, or a 1×1 convolution's
/// `[classes, in, 1, 1]` before a global pool).
fn other_classes(ours: &[usize], theirs: &[usize], classes: usize) -> Option<usize> {
    match (ours.split_first(), theirs.split_first()) {
        (Some((&c, rest)), Some((&k, file_rest)))
            if classes > 0 && c == classes && k != c && rest == file_rest =>
        {
            Some(k)
        }
        _ => None,
    }
}

/// Names in a line, a layer at a time: `` `c1.0` (weight, bias), `fc` (weight) ``, the
/// first few layers and how many more.
fn by_layer(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for n in names {
        let (l, last) = n.rsplit_once('.').unwrap_or(("", n));
        match groups.last_mut() {
            Some((g, parts)) if *g == l => parts.push(last),
            _ => groups.push((l, vec![last])),
        }
    }
    let mut text: Vec<String> = groups
        .iter()
        .take(SHOWN)
        .map(|(l, parts)| match l {
            &"" => format!("`{}`", parts.join("`, `")),
            l => format!("`{l}` ({})", parts.join(", ")),
        })
        .collect();
    if groups.len() > SHOWN {
        text.push(format!("and {} more layers", groups.len() - SHOWN));
    }
    text.join(", ")
}

/// Reads `path` into `params` and `state` by name, as the module's comment says; returns
/// the lines of its summary (what was loaded, what was not and why), or the error.
pub(crate) fn load<N: Network>(
    path: &Path,
    rules: &[Rename],
    params: &mut N::Params,
    state: &mut N::State,
) -> Result<Vec<String>, String> {
    let at = |what: String| format!("--init-from {}: {what}", path.display());
    // A FIFO or a device would block or never end: only a file is read.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(at("not a file".into())),
        Err(e) => return Err(at(format!("cannot read it: {e}"))),
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).map_err(|e| at(format!("cannot read it: {e}")))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| {
        at(format!(
            "not a safetensors file ({e})\n  help: save the weights with safetensors (in PyTorch, `safetensors.torch.save_file(model.state_dict(), PATH)`), or give a checkpoint of netc's trainer"
        ))
    })?;
    // The network's tensors by name, and whether each is a parameter (or a statistic).
    let ours: HashMap<&str, bool> = N::SHAPES
        .iter()
        .map(|(n, _)| (*n, true))
        .chain(N::STATE_SHAPES.iter().map(|(n, _)| (*n, false)))
        .collect();
    // The file's tensors by the network's name they match after the rules.
    let mut matched: HashMap<&str, &str> = HashMap::new();
    let (mut ignored, mut optimizer) = (Vec::new(), 0);
    let mut names = file.names();
    names.sort();
    for raw in names {
        let name = Rename::apply(rules, raw);
        if let Some((ours_name, _)) = ours.get_key_value(name.as_str()) {
            if let Some(other) = matched.insert(ours_name, raw) {
                return Err(at(format!(
                    "`{other}` and `{raw}` both become `{name}` after --rename\n  help: change the --rename rules so that one tensor of the file becomes `{name}`"
                )));
            }
        } else if raw.starts_with("optimizer.m.") || raw.starts_with("optimizer.v.") {
            // A netc checkpoint's optimizer state: a new run starts its own.
            optimizer += 1;
        } else if !name.ends_with(".num_batches_tracked") {
            // (PyTorch's batchnorm counter, which netc does not keep, goes unsaid.)
            ignored.push(raw.to_string());
        }
    }
    // Every mistake of the file at once: dtypes, then shapes, but for classifier heads.
    let mut errors = Vec::new();
    // Tensors whose shapes differ: name, the words for it, and the file's classes when it
    // is a classifier head's.
    let mut differs = Vec::new();
    for (name, shape) in N::SHAPES.iter().chain(N::STATE_SHAPES) {
        let Some(raw) = matched.get(name) else {
            continue;
        };
        let t = file.tensor(raw).expect("a name the file listed");
        if t.dtype() != Dtype::F32 {
            errors.push(format!(
                "{} is {:?}, and the network's tensors are F32",
                shown(raw, name),
                t.dtype()
            ));
        } else if t.shape() != *shape {
            let what = format!(
                "{} is {:?} in the file and {shape:?} in the network",
                shown(raw, name),
                t.shape()
            );
            differs.push((*name, what, other_classes(shape, t.shape(), N::CLASSES)));
        }
    }
    // A head is a layer whose every difference is in the number of classes.
    let not_heads: Vec<&str> = differs
        .iter()
        .filter(|d| d.2.is_none())
        .map(|d| layer(d.0))
        .collect();
    let mut heads: Vec<(&str, usize)> = Vec::new();
    for (name, what, classes) in differs {
        match classes {
            Some(k) if !not_heads.contains(&layer(name)) => {
                if !heads.iter().any(|(l, _)| *l == layer(name)) {
                    heads.push((layer(name), k));
                }
            }
            _ => errors.push(what),
        }
    }
    if !errors.is_empty() {
        let dtype = errors.iter().any(|e| e.contains(" F32"));
        let help = if dtype {
            "save the weights as float32 (in PyTorch, `model.float()` before saving)"
        } else {
            "only a classifier head may differ, in its number of classes (it is then initialized afresh); a layer whose shape changed otherwise must start afresh under a name the file does not have: rename it in the network, or set the file's tensors aside with --rename 'PATH.=old.PATH.'"
        };
        return Err(at(format!("{}\n  help: {help}", errors.join("; "))));
    }
    let in_head = |n: &str| heads.iter().any(|(l, _)| *l == layer(n));
    matched.retain(|n, _| !in_head(n));
    let mut lines = Vec::new();
    for (head, k) in &heads {
        lines.push(format!(
            "`{head}` scores {k} classes in the file and {} in the network: initialized afresh, as a new classifier head",
            N::CLASSES
        ));
    }
    if matched.is_empty() {
        let sample = |names: Vec<&str>| {
            let more = if names.len() > 3 { ", ..." } else { "" };
            format!("`{}`{more}", names[..names.len().min(3)].join("`, `"))
        };
        let mut theirs = file.names();
        theirs.sort();
        return Err(at(format!(
            "no tensor of the file is a parameter of `{}` (the file has {}, the network {})\n  help: --rename FROM=TO rewrites the file's names before they are matched: 'model.=' strips a prefix, 'fc.=logits.' renames a layer",
            N::NAME,
            if theirs.is_empty() { "none".into() } else { sample(theirs) },
            sample(N::SHAPES.iter().map(|(n, _)| *n).collect()),
        )));
    }
    // Everything is checked: copy.
    let mut missing = Vec::new();
    let (mut loaded_params, mut loaded_state) = (0, 0);
    for (name, _) in N::SHAPES.iter().chain(N::STATE_SHAPES) {
        let is_param = ours[name];
        let Some(raw) = matched.get(name) else {
            if !in_head(name) {
                missing.push(name.to_string());
            }
            continue;
        };
        let into = if is_param {
            N::param_mut(params, name).expect("a listed parameter")
        } else {
            N::state_mut(state, name).expect("a listed statistic")
        };
        let t = file.tensor(raw).expect("a name the file listed");
        for (v, b) in into.iter_mut().zip(t.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if let Some(i) = into.iter().position(|v| !v.is_finite()) {
            return Err(at(format!(
                "{} holds {} at index {i}\n  help: these weights come from a run that diverged",
                shown(raw, name),
                into[i]
            )));
        }
        if is_param {
            loaded_params += 1;
        } else {
            loaded_state += 1;
        }
    }
    let stats = match N::STATE_SHAPES.len() {
        0 => String::new(),
        n => format!(" and {loaded_state} of {n} batchnorm statistics"),
    };
    lines.insert(
        0,
        format!(
            "loaded {} tensors from {}: {loaded_params} of {} parameters{stats}",
            loaded_params + loaded_state,
            path.display(),
            N::SHAPES.len()
        ),
    );
    if !missing.is_empty() {
        lines.push(format!(
            "not in the file, so freshly initialized: {}",
            by_layer(&missing)
        ));
    }
    if !ignored.is_empty() {
        lines.push(format!(
            "ignored, not tensors of `{}`: {}",
            N::NAME,
            by_layer(&ignored)
        ));
    }
    if optimizer > 0 {
        lines.push(format!(
            "ignored: the checkpoint's optimizer state ({optimizer} tensors); this run starts its own"
        ));
    }
    Ok(lines)
}

/// A tensor of the file as the user knows it: `` `fc.weight` ``, or
/// `` `model.fc.weight` (`fc.weight` after --rename) ``.
fn shown(raw: &str, name: &str) -> String {
    if raw == name {
        format!("`{raw}`")
    } else {
        format!("`{raw}` (`{name}` after --rename)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{Tensors, Tiny};
    use safetensors::tensor::TensorView;

    /// A tensor of a file: name, dtype, shape, bytes.
    type Entry = (&'static str, Dtype, Vec<usize>, Vec<u8>);

    /// An f32 tensor of `shape` whose values are `base`, `base + 1`, ...
    fn f32s(name: &'static str, shape: &[usize], base: f32) -> Entry {
        let n: usize = shape.iter().product();
        let bytes = (0..n)
            .flat_map(|i| (base + i as f32).to_le_bytes())
            .collect();
        (name, Dtype::F32, shape.to_vec(), bytes)
    }

    /// The file `name` in a temporary folder, of `entries` and `meta`.
    fn file(name: &str, entries: &[Entry], meta: &[(&str, &str)]) -> std::path::PathBuf {
        let views: Vec<(&str, TensorView)> = entries
            .iter()
            .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let meta: HashMap<String, String> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path =
            std::env::temp_dir().join(format!("netc-init-from-{}-{name}", std::process::id()));
        std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        path
    }

    /// `Tiny`'s tensors under `prefix`, the head `fc` of `classes` outputs.
    fn tiny(prefix: &'static str, classes: usize) -> Vec<Entry> {
        let name = |n: &str| -> &'static str { format!("{prefix}{n}").leak() };
        vec![
            f32s(name("c1.0.weight"), &[2, 1, 3, 3], 10.0),
            f32s(name("c1.0.bias"), &[2], 20.0),
            f32s(name("bn.weight"), &[2], 30.0),
            f32s(name("bn.bias"), &[2], 40.0),
            f32s(name("bn.running_mean"), &[2], 50.0),
            f32s(name("bn.running_var"), &[2], 60.0),
            f32s(name("fc.weight"), &[classes, 8], 70.0),
            f32s(name("fc.bias"), &[classes], 80.0),
        ]
    }

    fn run(path: &Path, rules: &[Rename]) -> Result<(Vec<String>, Tensors, Tensors), String> {
        let (mut p, mut s) = (Tiny::start(), Tiny::state());
        let lines = load::<Tiny>(path, rules, &mut p, &mut s)?;
        Ok((lines, p, s))
    }

    fn rule(r: &str) -> Rename {
        r.parse().unwrap()
    }

    /// A PyTorch `state_dict` with a prefix, its batch counter and a layer the network does
    /// not have: loaded by name after --rename, the counter unsaid, the extra layer ignored.
    #[test]
    fn a_pytorch_state_dict_loads_by_name_after_rename() {
        let mut entries = tiny("model.", 3);
        entries.retain(|e| e.0 != "model.bn.running_var");
        entries.push((
            "model.bn.num_batches_tracked",
            Dtype::I64,
            vec![],
            7i64.to_le_bytes().to_vec(),
        ));
        entries.push(f32s("model.aux.weight", &[4], 0.0));
        let path = file("state_dict.safetensors", &entries, &[]);
        let (lines, p, s) = run(&path, &[rule("other.=x."), rule("model.=")]).unwrap();
        assert_eq!(
            lines,
            [
                format!(
                    "loaded 7 tensors from {}: 6 of 6 parameters and 1 of 2 batchnorm statistics",
                    path.display()
                ),
                "not in the file, so freshly initialized: `bn` (running_var)".into(),
                "ignored, not tensors of `tiny`: `model.aux` (weight)".into(),
            ]
        );
        assert_eq!(p.0[0][..2], [10.0, 11.0]);
        assert_eq!(p.0[5], [80.0, 81.0, 82.0]);
        assert_eq!(s.0[0], [50.0, 51.0]);
        // Fresh: the network's own running variance.
        assert_eq!(s.0[1], Tiny::state().0[1]);
        // Without the rule nothing matches, and the hint says how to rename.
        let e = run(&path, &[]).unwrap_err();
        assert!(
            e.contains("no tensor of the file is a parameter of `tiny` (the file has `model.aux.weight`, `model.bn.bias`, `model.bn.num_batches_tracked`, ..., the network `c1.0.weight`, `c1.0.bias`, `bn.weight`, ...)")
                && e.contains("help: --rename FROM=TO"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// Rules apply once, the first whose prefix begins the name, in the order given.
    #[test]
    fn the_first_matching_rule_wins() {
        let rules = [rule("fc.=head."), rule("f=g"), rule("=pre.")];
        assert_eq!(Rename::apply(&rules, "fc.weight"), "head.weight");
        assert_eq!(Rename::apply(&rules, "f5.bias"), "g5.bias");
        assert_eq!(Rename::apply(&rules, "c1.0.weight"), "pre.c1.0.weight");
        assert_eq!(Rename::apply(&[], "c1.0.weight"), "c1.0.weight");
        // `=` may appear in TO: the first one splits.
        assert_eq!(
            rule("a=b=c"),
            Rename {
                from: "a".into(),
                to: "b=c".into()
            }
        );
        let e = "model.".parse::<Rename>().unwrap_err();
        assert!(
            e.starts_with("`model.` has no `=`\n  help: --rename takes FROM=TO"),
            "{e}"
        );
        // Two of the file's tensors becoming one name is ambiguous.
        let path = file(
            "twice.safetensors",
            &[f32s("a.fc.bias", &[3], 0.0), f32s("b.fc.bias", &[3], 0.0)],
            &[],
        );
        let e = run(&path, &[rule("a.="), rule("b.=")]).unwrap_err();
        assert!(
            e.contains("`a.fc.bias` and `b.fc.bias` both become `fc.bias` after --rename"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// A netc checkpoint: its optimizer state and metadata are ignored, with a note.
    #[test]
    fn a_checkpoints_optimizer_state_is_ignored() {
        let mut entries = tiny("", 3);
        entries.push(f32s("optimizer.m.fc.weight", &[3, 8], 0.0));
        entries.push(f32s("optimizer.v.fc.weight", &[3, 8], 0.0));
        let path = file(
            "checkpoint.safetensors",
            &entries,
            &[("epoch", "3"), ("hash", "0123")],
        );
        let (lines, p, _) = run(&path, &[]).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("8 tensors"), "{lines:?}");
        assert_eq!(
            lines[1],
            "ignored: the checkpoint's optimizer state (2 tensors); this run starts its own"
        );
        assert_eq!(p.0[4][0], 70.0);
        std::fs::remove_file(&path).unwrap();
    }

    /// A head for another number of classes (weights of a 5-class network) is initialized
    /// afresh with a note; any other shape that differs is refused with both shapes.
    #[test]
    fn only_a_classifier_head_may_change_shape() {
        let path = file("five.safetensors", &tiny("", 5), &[]);
        let (lines, p, _) = run(&path, &[]).unwrap();
        assert_eq!(
            lines[1],
            "`fc` scores 5 classes in the file and 3 in the network: initialized afresh, as a new classifier head"
        );
        assert!(lines[0].contains(": 4 of 6 parameters"), "{lines:?}");
        assert_eq!(lines.len(), 2, "the head is not listed again: {lines:?}");
        assert_eq!(p.0[4], Tiny::start().0[4]);
        assert_eq!(p.0[5], Tiny::start().0[5]);
        assert_eq!(p.0[0][0], 10.0);

        let mut entries = tiny("", 5);
        entries[1] = f32s("c1.0.bias", &[4], 0.0);
        entries[2] = f32s("bn.weight", &[1, 2], 0.0);
        // A head over other features is not a new head over the same trunk.
        entries[6] = f32s("fc.weight", &[5, 9], 0.0);
        std::fs::remove_file(&path).unwrap();
        let path = file("wide.safetensors", &entries, &[]);
        let e = run(&path, &[]).unwrap_err();
        assert!(
            e.contains(": `c1.0.bias` is [4] in the file and [2] in the network; `bn.weight` is [1, 2] in the file and [2] in the network; `fc.weight` is [5, 9] in the file and [3, 8] in the network; `fc.bias` is [5] in the file and [3] in the network\n  help: only a classifier head may differ, in its number of classes"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn wrong_dtypes_bad_values_and_unreadable_files_are_refused() {
        let mut entries = tiny("", 3);
        entries[1] = ("c1.0.bias", Dtype::F16, vec![2], vec![0; 4]);
        let path = file("half.safetensors", &entries, &[]);
        let e = run(&path, &[]).unwrap_err();
        assert!(
            e.contains("`c1.0.bias` is F16, and the network's tensors are F32\n  help: save the weights as float32"),
            "{e}"
        );
        let mut entries = tiny("", 3);
        entries[3].3[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::remove_file(&path).unwrap();
        let path = file("nan.safetensors", &entries, &[]);
        let e = run(&path, &[]).unwrap_err();
        assert!(e.contains("`bn.bias` holds NaN at index 1"), "{e}");

        let bad = std::env::temp_dir().join(format!("netc-init-from-{}.txt", std::process::id()));
        std::fs::write(&bad, b"not weights").unwrap();
        let e = run(&bad, &[]).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "--init-from {}: not a safetensors file (",
                bad.display()
            )) && e.contains("help: save the weights with safetensors"),
            "{e}"
        );
        std::fs::remove_file(&bad).unwrap();
        let e = run(&std::env::temp_dir(), &[]).unwrap_err();
        assert!(e.ends_with(": not a file"), "{e}");
        let e = run(Path::new("/no/such/w.safetensors"), &[]).unwrap_err();
        assert!(
            e.starts_with("--init-from /no/such/w.safetensors: cannot read it: "),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
