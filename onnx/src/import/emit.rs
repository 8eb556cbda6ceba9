//! The `.net` text: layers grouped by module path into scopes. A scope whose children are
//! numbered and feed one another (an `nn.Sequential`) is a chain, its positions the
//! children's numbers; any other scope is bindings, `as` names for the layers with weights
//! and block calls for the child modules. Every container module is a block instance; the
//! layer paths this gives are computed here, and name the weights.

use std::collections::HashSet;

use super::blocks::{Blocks, HoleVal, Stmt, Tok};
use super::lower::{Arg, Layer, Lowered};
use super::named::Stage;
use super::names::{is_ident, sanitize, write_ident};

/// The text's statements before printing, and what naming found.
pub(crate) struct Emitted {
    pub blocks: Blocks,
    pub top: Vec<(Stmt, Option<usize>)>,
    pub outputs: Vec<String>,
    pub inputs: Vec<(String, Vec<usize>)>,
    pub weights: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub notes: Vec<String>,
    /// How many `dropout(0.0)` the text has for layers the model does not.
    pub fillers: usize,
}

/// One unit of a scope: a layer, or a child module's layers.
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) seg: Option<String>,
    pub(super) layers: Vec<usize>,
    pub(super) container: bool,
    /// Tensor arguments in order (a layer's inputs as it reads them).
    pub(super) args: Vec<usize>,
    pub(super) output: usize,
}

pub(super) struct Em<'a> {
    pub(super) lo: &'a Lowered,
    /// The language's op and loss names, which a block may not take.
    pub(super) reserved: &'a [&'a str],
    /// Value id → the layers that read it.
    pub(super) readers: Vec<Vec<usize>>,
    pub(super) outputs: HashSet<usize>,
    pub(super) blocks: Blocks,
    pub(super) weights: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub(super) notes: Vec<String>,
    pub(super) fillers: usize,
}

/// Emits `lo` as statements and blocks, no block named as one of `reserved`.
pub(crate) fn emit<'a>(lo: &'a Lowered, reserved: &'a [&'a str]) -> Emitted {
    let mut readers = vec![Vec::new(); lo.shapes.len()];
    for (i, l) in lo.layers.iter().enumerate() {
        for &v in &l.inputs {
            if !readers[v].contains(&i) {
                readers[v].push(i);
            }
        }
    }
    let mut em = Em {
        lo,
        reserved,
        readers,
        outputs: lo.outputs.iter().map(|(_, v)| *v).collect(),
        blocks: Blocks::default(),
        weights: Vec::new(),
        notes: Vec::new(),
        fillers: 0,
    };
    let mut names = Names::default();
    let mut value_names: Vec<(usize, String)> = Vec::new();
    let mut inputs = Vec::new();
    for (name, v) in &lo.inputs {
        let id = names.fresh(&sanitize(name));
        if id != *name {
            em.notes
                .push(format!("graph input `{name}` is named `{id}`"));
        }
        value_names.push((*v, id.clone()));
        inputs.push((id, lo.shapes[*v].clone()));
    }
    let mut outs: Vec<(usize, String)> = Vec::new();
    for (name, v) in &lo.outputs {
        let id = sanitize(name);
        outs.push((*v, id));
    }
    let all: Vec<usize> = (0..lo.layers.len()).collect();
    let top = em.named(&[], "", &all, value_names, &outs, None, &mut names);
    let outputs = outs
        .iter()
        .map(|(v, _)| names.value(*v).unwrap_or_default())
        .collect();
    Emitted {
        blocks: em.blocks,
        top,
        outputs,
        inputs,
        weights: em.weights,
        notes: em.notes,
        fillers: em.fillers,
    }
}

/// Names of a scope: taken identifiers, and the name of each value defined in it.
#[derive(Default, Clone)]
pub(super) struct Names {
    pub(super) taken: HashSet<String>,
    pub(super) values: Vec<(usize, String)>,
}

impl Names {
    pub(super) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    pub(super) fn value(&self, v: usize) -> Option<String> {
        self.values
            .iter()
            .find(|(id, _)| *id == v)
            .map(|(_, n)| write_ident(n))
    }
}

pub(super) fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}.{seg}")
    }
}

/// The hole's parameter name for an argument.
fn hint(arg: &str) -> &'static str {
    match arg {
        "out" => "c",
        "k" => "k",
        "s" => "s",
        "p" => "p",
        "dil" => "dil",
        "groups" => "g",
        "op" => "op",
        "from" => "from",
        "to" => "to",
        "size" => "size",
        "scale" => "scale",
        _ => "n",
    }
}

/// The arguments of a layer of `op` in the op's order, with the integer arguments that have
/// a fixed default added where the layer leaves them out, and that default: block instances
/// that differ only in writing a stride or not then share one block (`s=s`).
fn with_defaults(
    op: &str,
    args: &[(&'static str, Arg)],
) -> Vec<(&'static str, Arg, Option<HoleVal>)> {
    let one = HoleVal::Pair(1, 1);
    let zero = HoleVal::Pair(0, 0);
    let order: Vec<(&'static str, Option<HoleVal>)> = match op {
        "conv" => vec![
            ("out", None),
            ("k", None),
            ("s", Some(one.clone())),
            ("p", Some(zero)),
            ("dil", Some(one)),
            ("groups", Some(HoleVal::Int(1))),
        ],
        "conv_t" => vec![
            ("out", None),
            ("k", None),
            ("s", Some(one.clone())),
            ("p", Some(zero.clone())),
            ("op", Some(zero)),
            ("dil", Some(one)),
            ("groups", Some(HoleVal::Int(1))),
        ],
        "maxpool" | "avgpool" => vec![("k", None), ("s", None), ("p", Some(zero))],
        _ => vec![],
    };
    let mut out = Vec::new();
    for (name, default) in &order {
        match args.iter().find(|(n, _)| n == name) {
            Some((_, a)) => out.push((*name, a.clone(), default.clone())),
            None => {
                if let Some(d) = default {
                    let a = match *d {
                        HoleVal::Int(v) => Arg::Int(v),
                        HoleVal::Pair(h, w) => Arg::Pair(h, w),
                    };
                    out.push((*name, a, Some(d.clone())));
                }
            }
        }
    }
    for (name, a) in args {
        if !order.iter().any(|(n, _)| n == name) {
            out.push((*name, a.clone(), None));
        }
    }
    out
}

/// Arguments written by position (the op's first parameters, as people write them).
fn positional(op: &str, arg: &str) -> bool {
    matches!(
        (op, arg),
        ("conv" | "conv_t" | "linear", "out")
            | ("dropout", "p")
            | ("slice", "from" | "to")
            | ("channel_shuffle" | "groupnorm", "groups")
            | ("adaptive_avgpool", "out")
    )
}

fn float_text(v: f64) -> String {
    let f = v as f32;
    let s = if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e6) {
        format!("{f:e}")
    } else {
        format!("{f}")
    };
    if s.contains(['.', 'e']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

impl<'a> Em<'a> {
    pub(super) fn layer(&self, i: usize) -> &'a Layer {
        &self.lo.layers[i]
    }

    /// Groups `layers` (all under module path `mpath`) into items, in topological order.
    pub(super) fn items(&mut self, mpath: &[String], layers: &[usize]) -> Vec<Item> {
        let depth = mpath.len();
        let mut items: Vec<Item> = Vec::new();
        for &i in layers {
            let l = self.layer(i);
            let seg = l
                .path
                .get(depth)
                .filter(|_| l.path[..depth] == *mpath)
                .cloned();
            match seg
                .as_ref()
                .and_then(|s| items.iter_mut().find(|it| it.seg.as_ref() == Some(s)))
            {
                Some(it) => it.layers.push(i),
                None => items.push(Item {
                    seg,
                    layers: vec![i],
                    container: false,
                    args: vec![],
                    output: 0,
                }),
            }
        }
        // A child module of one layer at its own path is that layer; others are containers.
        let mut out = Vec::new();
        for mut it in items {
            it.container = it.seg.is_some()
                && (it.layers.len() > 1 || self.layer(it.layers[0]).path.len() > depth + 1);
            if it.container && !self.wire(&mut it) {
                // A module whose layers cannot be one stage (several values leave it): its
                // layers join this scope, named by their remaining path.
                for &i in &it.layers {
                    let mut one = Item {
                        seg: None,
                        layers: vec![i],
                        container: false,
                        args: vec![],
                        output: 0,
                    };
                    self.wire(&mut one);
                    out.push(one);
                }
                continue;
            }
            if !it.container {
                self.wire(&mut it);
            }
            out.push(it);
        }
        out.sort_by_key(|it| it.layers[0]);
        out
    }

    /// Fills an item's arguments and output; false when more than one value leaves it.
    fn wire(&self, it: &mut Item) -> bool {
        let inside: HashSet<usize> = it.layers.iter().map(|&i| self.layer(i).output).collect();
        let mut args = Vec::new();
        if let [i] = it.layers[..] {
            args = self.layer(i).inputs.clone();
        } else {
            for &i in &it.layers {
                for &v in &self.layer(i).inputs {
                    if !inside.contains(&v) && !args.contains(&v) {
                        args.push(v);
                    }
                }
            }
        }
        let set: HashSet<usize> = it.layers.iter().copied().collect();
        let leaving: Vec<usize> = it
            .layers
            .iter()
            .map(|&i| self.layer(i).output)
            .filter(|&v| {
                self.outputs.contains(&v) || self.readers[v].iter().any(|r| !set.contains(r))
            })
            .collect();
        it.args = args;
        match leaving[..] {
            [v] => {
                it.output = v;
                true
            }
            [] => {
                it.output = self
                    .layer(*it.layers.last().expect("an item has a layer"))
                    .output;
                true
            }
            _ => false,
        }
    }

    /// Whether `items` are an `nn.Sequential` on `input`: numbered children, each reading
    /// the one before, only the last read outside. The first may read more tensors than
    /// `input` (a chain's head: `concat(c, d) -> ...`).
    pub(super) fn sequential(&self, items: &[Item], input: usize) -> Option<Vec<usize>> {
        let mut idx = Vec::new();
        let mut prev = input;
        for (k, it) in items.iter().enumerate() {
            let n: usize = it.seg.as_ref()?.parse().ok()?;
            let reads = if k == 0 {
                it.args.first() == Some(&prev) && !(it.container && it.args.len() > 1)
            } else {
                it.args == [prev]
            };
            if idx.last().is_some_and(|&l| n <= l) || !reads {
                return None;
            }
            if k > 0 {
                let set: HashSet<usize> = it.layers.iter().copied().collect();
                if self.outputs.contains(&prev)
                    || !self.readers[prev].iter().all(|r| set.contains(r))
                {
                    return None;
                }
            }
            idx.push(n);
            prev = it.output;
        }
        (!items.is_empty()).then_some(idx)
    }

    /// A layer as a stage: `op(args)`, its tensor arguments after the first (or all, for a
    /// head) written first.
    fn op_text(&mut self, i: usize, tensors: &[String]) -> Stmt {
        let l = self.layer(i);
        let mut toks = vec![Tok::Text(l.op.to_string())];
        let mut parts: Vec<Vec<Tok>> = tensors.iter().map(|t| vec![Tok::Text(t.clone())]).collect();
        // Optional integer arguments, written only where they differ from their default.
        let mut opts: Vec<Tok> = Vec::new();
        for (name, a, default) in with_defaults(l.op, &l.args) {
            let mut p = Vec::new();
            if let (Some(d), Some(h)) = (default, HoleVal::of(&a)) {
                opts.push(Tok::Opt {
                    sep: format!(", {name}="),
                    hint: hint(name),
                    val: h,
                    default: d,
                });
                continue;
            }
            if !positional(l.op, name) {
                p.push(Tok::Text(format!("{name}=")));
            }
            p.push(match (HoleVal::of(&a), &a) {
                (Some(h), _) => Tok::Hole(hint(name), h),
                (None, Arg::Float(f)) => Tok::Text(float_text(*f)),
                (None, Arg::Str(s)) => Tok::Text(format!("\"{s}\"")),
                (None, Arg::Bool(b)) => Tok::Text(b.to_string()),
                (None, _) => Tok::Text(String::new()),
            });
            // An optional argument after a required one keeps the order of the op's
            // parameters: `bias=false` after `groups`.
            if !opts.is_empty() {
                parts.push(std::mem::take(&mut opts));
            }
            parts.push(p);
        }
        if !parts.is_empty() || !opts.is_empty() {
            toks.push(Tok::Text("(".into()));
            for (k, p) in parts.into_iter().enumerate() {
                if k > 0 && !matches!(p.first(), Some(Tok::Opt { .. })) {
                    toks.push(Tok::Text(", ".into()));
                }
                toks.extend(p);
            }
            toks.extend(opts);
            toks.push(Tok::Text(")".into()));
        }
        toks
    }

    /// The weights of layer `i` at netc path `path`, and a note when PyTorch's differs.
    fn place(&mut self, i: usize, path: &str) {
        let l = self.layer(i);
        if l.params.is_empty() {
            return;
        }
        let torch = l.path.join(".");
        if torch != path && !torch.is_empty() {
            self.notes.push(format!(
                "`{torch}` (node `{}`) is the layer `{path}` here: its weights are `{path}.*`",
                l.node
            ));
        }
        for (suffix, dims, data) in &l.params {
            self.weights
                .push((format!("{path}.{suffix}"), dims.clone(), data.clone()));
        }
    }

    /// An item as one stage at netc path `path`, its tensor arguments (beyond the piped
    /// one, or all for a head) in `tensors`.
    pub(super) fn stage(
        &mut self,
        it: &Item,
        mpath: &[String],
        path: &str,
        tensors: Vec<String>,
    ) -> Stmt {
        if !it.container {
            let i = it.layers[0];
            self.place(i, path);
            return self.op_text(i, &tensors);
        }
        let seg = it.seg.clone().expect("a container has a segment");
        let mut sub = mpath.to_vec();
        sub.push(seg.clone());
        let mut names = Names::default();
        let params: Vec<(usize, String)> = it
            .args
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                (
                    v,
                    if k == 0 {
                        "x".into()
                    } else {
                        format!("x{}", k + 1)
                    },
                )
            })
            .collect();
        for (_, n) in &params {
            names.taken.insert(n.clone());
        }
        let inner = self.items(&sub, &it.layers);
        let hint = self.block_name(&sub, &inner);
        let body: Vec<Stmt> = match self.sequential(&inner, it.args[0]) {
            Some(idx) => {
                let stages: Vec<Stage> = inner
                    .iter()
                    .zip(&idx)
                    .map(|(it, &pos)| Stage {
                        item: it.clone(),
                        pos,
                        mpath: sub.clone(),
                        as_name: None,
                    })
                    .collect();
                let head: Vec<String> = inner[0]
                    .args
                    .iter()
                    .map(|v| {
                        params
                            .iter()
                            .find(|(p, _)| p == v)
                            .map(|(_, n)| n.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                let chain = self.seq_chain(&stages, path, path, &head);
                let mut s = vec![Tok::Text("return ".into())];
                s.extend(chain);
                s.push(Tok::Text(";".into()));
                vec![s]
            }
            _ => self
                .named(
                    &sub,
                    path,
                    &it.layers,
                    params.clone(),
                    &[(it.output, String::new())],
                    Some(inner),
                    &mut names,
                )
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
        };
        let inputs: Vec<String> = params.iter().map(|(_, n)| n.clone()).collect();
        let call = self
            .blocks
            .instance(hint, inputs, tensors, body, names.taken);
        vec![call]
    }

    /// A block's name: its module's name when that is a word, else its parent's without
    /// the digits; for a plain chain of up to three ops, the ops.
    fn block_name(&self, sub: &[String], inner: &[Item]) -> String {
        let content = (inner.len() <= 3 && inner.iter().all(|it| !it.container)).then(|| {
            inner
                .iter()
                .map(|it| self.layer(it.layers[0]).op)
                .collect::<Vec<_>>()
                .join("_")
        });
        let own = sub
            .last()
            .filter(|s| is_ident(s) && !s.chars().all(|c| c.is_ascii_digit()));
        let parent = sub.iter().rev().find(|s| is_ident(s)).map(|s| {
            s.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_')
                .to_string()
        });
        let base = content
            .or(own.cloned())
            .or(parent)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unit".into());
        if self.reserved.contains(&base.as_str()) || super::names::write_ident(&base) != base {
            format!("{base}_block")
        } else {
            base
        }
    }
}
