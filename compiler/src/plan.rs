//! The buffers of a network's workspaces. A network is two programs, each over its own graph
//! and its own buffers ([`Plan`]): the training step (`forward_train` then `backward`) over
//! the codegen graph, with an activation and a gradient per value, what backward keeps
//! (max-pool argmaxes, batchnorm statistics, LRN denominators) and scratch; and inference
//! (`forward`) over the inference graph (pruned, batchnorms folded into convs), with an
//! activation per value and nothing for backward. `memplan` places each program's buffers
//! in one arena by liveness over its own schedule, with a checker. The generated code
//! allocates exactly what [`Allocation`] says: the per-sample `f32` buffers at their planned
//! offsets in one arena (the plan at one sample, scaled by the batch, which keeps it valid),
//! the rest as buffers of their own. Byte counts at a batch are checked: a batch that
//! overflows them is an error, not a wrapped number. Each program also records every layer's
//! crossover batches, below which its code runs on the calling thread alone (`threads`).

mod first_fit;
mod memplan;
pub mod run;
pub mod schedule;
pub mod shards;
mod summary;
pub mod threads;

pub use memplan::{memplan, MemPlan, Placed};
pub use schedule::Schedule;
pub use summary::{summary, Bytes, ConvChoice, Summary, ThreadCounts};
pub use threads::Crossover;

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::NodeIndex;

use netc_dsl::Diagnostic;

use crate::graph::{shape_str, Graph, Shape};
use crate::ops::{InputKind, Op};

/// One buffer of the workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// The field name in generated code: its kind's letter and its node's stem (`t_conv1`,
    /// `d_conv1`, `a_pool1`; see [`stems`]).
    pub name: String,
    /// `t` an activation, `d` its gradient, else what a training forward keeps for backward
    /// (`SavedDecl::letter`).
    pub kind: char,
    /// The node it belongs to.
    pub node: usize,
    /// Elements per sample (the buffer holds `batch ×` this), or, with `fixed`, in all.
    pub elems: usize,
    /// Whether the size does not grow with the batch.
    pub fixed: bool,
    /// Whether the elements are `u32` (argmaxes) rather than `f32`.
    pub index: bool,
    /// A doc comment for public buffers (activations); private ones have none.
    pub doc: Option<String>,
}

/// One buffer's place in the arena, per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub offset: usize,
    pub elems: usize,
}

impl Buffer {
    /// Whether the buffer lives in the arena: `f32` and growing with the batch.
    pub fn in_arena(&self) -> bool {
        !self.fixed && !self.index
    }
}

/// Every buffer of one program's workspace, and where the arena holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    pub buffers: Vec<Buffer>,
    /// The steps of the program over these buffers: `forward_train` and `backward` for
    /// training, `forward` for inference.
    pub schedule: Schedule,
    /// The stem of every node's names in generated code (see [`stems`]); inference uses
    /// the training graph's, so that a layer's names are the same in both programs.
    pub stems: BTreeMap<NodeIndex, String>,
    /// Where the arena buffers are, by name, placed by `memplan` over the schedule.
    pub arena: BTreeMap<String, Placement>,
    /// Elements of the arena per sample.
    pub arena_elems: usize,
    /// im2col / col2im / LRN scratch, in elements (not per sample).
    pub col: usize,
    /// Gradient scratch, elements per sample (none at inference).
    pub scratch: usize,
    /// Scratch for the largest folded conv's weight and bias (`ops::fold`), in elements
    /// (not per sample; none in training).
    pub fold: usize,
    /// Each layer's batches from which it runs on all threads (`plan::threads`).
    pub crossovers: BTreeMap<NodeIndex, Crossover>,
}

impl Workspace {
    /// Bytes of this program's buffers alone at `batch`: the arena, the buffers outside it,
    /// and the scratch (all elements are 4 bytes). `None` when that does not fit in a
    /// `u64`.
    pub fn bytes(&self, batch: usize) -> Option<u64> {
        self.allocation().bytes(batch)
    }

    /// Bytes of every buffer were each its own allocation (no reuse); `None` on overflow.
    pub fn unshared_bytes(&self, batch: usize) -> Option<u64> {
        sum(self.buffers.iter(), batch)?
            .checked_add(self.allocation().scratch_elems(batch)?)?
            .checked_mul(4)
    }

    /// What a workspace for this program alone allocates.
    fn allocation(&self) -> Allocation {
        Allocation {
            arena: self.arena_elems,
            own: self
                .buffers
                .iter()
                .filter(|b| !b.in_arena())
                .cloned()
                .collect(),
            col: self.col,
            scratch: self.scratch,
            fold: self.fold,
        }
    }
}

/// What a generated workspace allocates, in elements: `Workspace::new` (training, which
/// inference can run in too) or `Workspace::for_inference` (see [`Plan`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// The arena, per sample.
    pub arena: usize,
    /// The buffers of their own (outside the arena), in order.
    pub own: Vec<Buffer>,
    /// im2col and LRN scratch, in all.
    pub col: usize,
    /// Gradient scratch, per sample.
    pub scratch: usize,
    /// Folded conv weights, in all.
    pub fold: usize,
}

impl Allocation {
    /// Elements per sample and in all: the allocation at batch `b` is `b × per_sample +
    /// fixed`. `None` when either overflows a `usize`.
    pub fn elems(&self) -> Option<(usize, usize)> {
        let mut per_sample = self.arena.checked_add(self.scratch)?;
        let mut fixed = self.col.checked_add(self.fold)?;
        for b in &self.own {
            let sum = if b.fixed { &mut fixed } else { &mut per_sample };
            *sum = sum.checked_add(b.elems)?;
        }
        Some((per_sample, fixed))
    }

    /// Bytes at `batch`, `None` when they overflow a `u64`.
    pub fn bytes(&self, batch: usize) -> Option<u64> {
        let own = sum(self.own.iter(), batch)?;
        mul(batch, self.arena)?
            .checked_add(own)?
            .checked_add(self.scratch_elems(batch)?)?
            .checked_mul(4)
    }

    /// Bytes of the arena at `batch`; `None` on overflow.
    pub fn arena_bytes(&self, batch: usize) -> Option<u64> {
        mul(batch, self.arena)?.checked_mul(4)
    }

    /// Bytes of the scratch (im2col, gradients, folded weights) at `batch`; `None` on
    /// overflow.
    pub fn scratch_bytes(&self, batch: usize) -> Option<u64> {
        self.scratch_elems(batch)?.checked_mul(4)
    }

    fn scratch_elems(&self, batch: usize) -> Option<u64> {
        mul(batch, self.scratch)?
            .checked_add(self.col as u64)?
            .checked_add(self.fold as u64)
    }
}

/// `batch × elems` as a `u64`, `None` on overflow.
fn mul(batch: usize, elems: usize) -> Option<u64> {
    (batch as u64).checked_mul(elems as u64)
}

/// Elements of `buffers` at `batch`, `None` on overflow.
fn sum<'b>(mut buffers: impl Iterator<Item = &'b Buffer>, batch: usize) -> Option<u64> {
    buffers.try_fold(0u64, |all, b| all.checked_add(b.len(batch)?))
}

impl Buffer {
    /// Elements for a batch of `batch`, `None` when that overflows a `u64`.
    pub fn len(&self, batch: usize) -> Option<u64> {
        if self.fixed {
            Some(self.elems as u64)
        } else {
            mul(batch, self.elems)
        }
    }
}

/// The stem of each node's buffer and function names in generated code: its path as an
/// identifier (`i3a.b2.0` gives `i3a_b2_0`), with the node's index appended (`_7`) to every
/// node whose stem another node shares (paths that differ only in `.` against `_`, or in
/// case).
pub fn stems(g: &Graph) -> BTreeMap<NodeIndex, String> {
    let stem = |n: NodeIndex| {
        g.node(n)
            .path
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let mut count: HashMap<String, usize> = HashMap::new();
    for n in g.nodes() {
        *count.entry(stem(n)).or_default() += 1;
    }
    g.nodes()
        .into_iter()
        .map(|n| {
            let s = stem(n);
            let s = if count[&s] > 1 {
                format!("{s}_{}", n.index())
            } else {
                s
            };
            (n, s)
        })
        .collect()
}

/// The name of buffer kind `kind` of node `n`: `t_i3a_b2_0`.
pub fn buffer_name(stems: &BTreeMap<NodeIndex, String>, kind: char, n: NodeIndex) -> String {
    format!("{kind}_{}", stems[&n])
}

/// The training step's workspace of `g` (the graph after its codegen passes); `None` when
/// one sample's buffers alone take more than 2^64 bytes.
pub fn workspace(g: &Graph) -> Option<Workspace> {
    build(g, stems(g), true)
}

/// Inference's workspace of `g` (the inference graph after its codegen passes), naming
/// buffers by `stems` (the training graph's); `None` as for [`workspace`].
pub fn inference_workspace(g: &Graph, stems: &BTreeMap<NodeIndex, String>) -> Option<Workspace> {
    build(g, stems.clone(), false)
}

/// The workspace of one program over `g`: the training step's (`training`), or
/// inference's, which has no gradients, keeps only what an op's inference form writes and
/// scratch for folded weights.
fn build(g: &Graph, stems: BTreeMap<NodeIndex, String>, training: bool) -> Option<Workspace> {
    let nodes = if training {
        g.training_nodes()
    } else {
        let infer = g.inference_set();
        g.nodes().into_iter().filter(|n| infer[n.index()]).collect()
    };
    let mut buffers = Vec::new();
    let (mut col, mut fold) = (0usize, 0usize);
    for &n in &nodes {
        let node = g.node(n);
        if let Op::Input(InputKind::Class(_)) = node.op {
            continue;
        }
        let i = n.index();
        let elems: usize = node.shape.iter().product::<usize>().max(1);
        let doc = format!(
            " `{}`: {} {}",
            node.path,
            node.op.name(),
            shape_str(&node.shape)
        );
        let buf =
            |kind: char, elems: usize, fixed: bool, index: bool, doc: Option<String>| Buffer {
                name: buffer_name(&stems, kind, n),
                kind,
                node: i,
                elems,
                fixed,
                index,
                doc,
            };
        // A layer in a concat's slot lives in the concat's buffers, an activation run in
        // place in its input's; a network input takes no gradient, nor does anything at
        // inference.
        if !g.slots.contains_key(&n) && !g.aliases.contains_key(&n) {
            buffers.push(buf('t', elems, false, false, Some(doc)));
            if training && !matches!(node.op, Op::Input(_)) {
                buffers.push(buf('d', elems, false, false, None));
            }
        }
        let x = g
            .inputs_of(n)
            .first()
            .map(|&j| g.node(j).shape.clone())
            .unwrap_or_default();
        let ins: Vec<&Shape> = g.inputs_of(n).iter().map(|&j| &g.node(j).shape).collect();
        if ins.is_empty() {
            continue;
        }
        let kind = node.op.kind();
        col = col.max(kind.col(&ins, &node.shape));
        // The first conv of a merged group computes the group's GEMM.
        if let Some(group) = g.group_of(n).filter(|m| m[0] == n) {
            let total = group.iter().map(|&j| g.node(j).shape[0]).sum();
            let plane = x[1..].iter().product();
            col = col.max(netc_runtime::conv::merged_col_len(x[0], total, plane));
        }
        if let Op::Conv(c) = &node.op {
            fold = fold.max(c.fold_len(&x));
        }
        if training || kind.keeps_at_inference() {
            for s in kind.saved(&ins, &node.shape) {
                buffers.push(buf(s.letter, s.elems, s.fixed, s.index, None));
            }
        }
    }
    let max_elems = nodes
        .iter()
        .map(|&n| g.node(n).shape.iter().product::<usize>())
        .max()
        .unwrap_or(1);
    let schedule = {
        let b = schedule::Buffers::new(g, &buffers, &stems);
        if training {
            schedule::lower_training(g, &b)
        } else {
            schedule::lower_inference(g, &b)
        }
    };
    let mut ws = Workspace {
        buffers,
        stems,
        schedule,
        arena: Default::default(),
        arena_elems: 0,
        col: col.max(1),
        scratch: if training { 2 * max_elems } else { 0 },
        fold,
        crossovers: threads::crossovers(g, &nodes),
    };
    // The arena: the plan of its buffers at one sample, over the program's own schedule.
    let plan = memplan(&ws, 1, training, Buffer::in_arena)?;
    for p in &plan.placed {
        let place = Placement {
            offset: p.offset as usize / 4,
            elems: p.bytes as usize / 4,
        };
        ws.arena.insert(p.name.clone(), place);
    }
    ws.arena_elems = plan.peak as usize / 4;
    Some(ws)
}

/// One program of a network: the graph its code is generated from, and its workspace.
#[derive(Clone, Debug)]
pub struct Program {
    pub graph: Graph,
    pub ws: Workspace,
}

/// A network's two programs: the training step, over the checked graph after the codegen
/// passes, and inference, over the inference graph after them (`passes::inference`). Each
/// has its own buffers and arena layout; they share buffer names (a layer's activation is
/// `t_conv1` in both), and nothing else.
#[derive(Clone, Debug)]
pub struct Plan {
    pub train: Program,
    pub infer: Program,
    /// How batches are cut into shards run each on a thread.
    pub shards: shards::Shards,
}

/// The plan of `g` (a checked graph) with the passes in `skip` left out.
pub fn plan(g: &Graph, skip: &[&str]) -> Result<Plan, Diagnostic> {
    let too_large = || {
        Diagnostic::error(
            "too-large",
            format!(
                "one sample's buffers of network `{}` take more than 2^64 bytes",
                g.name
            ),
        )
        .help("make the network smaller")
    };
    let train = crate::passes::training(g, skip)?;
    let infer = crate::passes::inference(g, skip)?;
    let train_ws = workspace(&train).ok_or_else(too_large)?;
    let infer_ws = inference_workspace(&infer, &train_ws.stems).ok_or_else(too_large)?;
    Ok(Plan {
        train: Program {
            graph: train,
            ws: train_ws,
        },
        infer: Program {
            graph: infer,
            ws: infer_ws,
        },
        shards: shards::shards(g),
    })
}

impl Plan {
    /// What `Workspace::new` allocates: everything the training step needs, and whatever
    /// more inference needs, since `forward` can run in it too: the larger arena, every
    /// buffer of its own either program has, the larger im2col scratch and the folded
    /// weights' scratch.
    pub fn training_allocation(&self) -> Allocation {
        let (t, i) = (&self.train.ws, &self.infer.ws);
        let mut own = t.allocation().own;
        for b in i.allocation().own {
            if !own.iter().any(|o| o.name == b.name) {
                own.push(b);
            }
        }
        Allocation {
            arena: t.arena_elems.max(i.arena_elems),
            own,
            col: t.col.max(i.col),
            scratch: t.scratch,
            fold: i.fold,
        }
    }

    /// What `Workspace::for_inference` allocates: inference's buffers alone.
    pub fn inference_allocation(&self) -> Allocation {
        self.infer.ws.allocation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples' plans (training and inference, every schedule of passes, two batches)
    /// place every buffer where the quadratic first fit placed it, and pass the checker.
    #[test]
    fn the_examples_plan_as_under_the_quadratic_rule() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for example in [
            "googlenet.net",
            "lenet.net",
            "autoencoder.net",
            "vanishing.net",
        ] {
            let checked = crate::check_file(&dir.join(example), None);
            assert!(!checked.has_errors(), "{}", checked.render());
            for g in &checked.graphs {
                let passes: Vec<&str> = crate::passes::CODEGEN.iter().map(|p| p.name).collect();
                for skip in [&[][..], &passes[..]] {
                    for batch in [1, 8] {
                        let s = summary(g, skip, batch).unwrap();
                        for plan in [&s.train_plan, &s.infer_plan] {
                            let live: Vec<_> = plan
                                .placed
                                .iter()
                                .map(|p| (p.first, p.last, p.bytes))
                                .collect();
                            let offsets: Vec<u64> = plan.placed.iter().map(|p| p.offset).collect();
                            assert_eq!((offsets, plan.peak), first_fit::naive(&live), "{example}");
                            plan.check().unwrap();
                            assert!(plan.live_peak() <= plan.peak);
                        }
                    }
                }
            }
        }
    }

    /// The checker and the live peak, on a plan made by hand.
    #[test]
    fn the_checker_finds_overlap_and_the_live_peak_counts_steps() {
        let p = |name: &str, bytes, first, last, offset| Placed {
            name: name.into(),
            bytes,
            first,
            last,
            offset,
        };
        let mut plan = MemPlan {
            placed: vec![p("a", 8, 0, 3, 0), p("b", 8, 4, 5, 0), p("c", 4, 2, 4, 8)],
            peak: 12,
        };
        plan.check().unwrap();
        assert_eq!(plan.live_peak(), 12);
        plan.placed[1].first = 3;
        assert_eq!(
            plan.check(),
            Err("`a` and `b` are live together and overlap".into())
        );
        plan.placed[1].first = 4;
        plan.peak = 11;
        assert_eq!(
            plan.check(),
            Err("`c` ends at byte 8 + 4, past the peak 11".into())
        );
    }
}
