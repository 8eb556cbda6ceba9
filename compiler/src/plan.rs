//! The buffers of a network's workspace: an activation and a gradient per value, what
//! backward keeps (max-pool argmaxes, batchnorm statistics, LRN denominators), and scratch.
//! `memplan` places buffers in one arena by liveness over the forward+backward schedule,
//! with a checker. The generated code allocates exactly what [`workspace`] says: the
//! per-sample `f32` buffers at their planned offsets in one arena (the plan at one sample,
//! scaled by the batch, which keeps it valid), the rest as buffers of their own. Byte counts
//! at a batch are checked: a batch that overflows them is an error, not a wrapped number.

mod first_fit;
mod memplan;
pub mod run;
pub mod schedule;

pub use memplan::{memplan, MemPlan, Placed};
pub use schedule::Schedule;

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

/// Every buffer of one network's workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    pub buffers: Vec<Buffer>,
    /// The steps of each pass over these buffers.
    pub schedule: Schedule,
    /// The stem of every node's names in generated code (see [`stems`]).
    pub stems: BTreeMap<NodeIndex, String>,
    /// Where the arena buffers are, by name, placed by `memplan` over the training schedule.
    pub arena: BTreeMap<String, Placement>,
    /// Elements of the arena per sample.
    pub arena_elems: usize,
    /// im2col / col2im / LRN scratch, in elements (not per sample).
    pub col: usize,
    /// Gradient scratch, elements per sample.
    pub scratch: usize,
}

impl Workspace {
    /// Bytes the generated code allocates for a batch of `batch`: the arena, the buffers
    /// outside it, im2col and gradient scratch (all elements are 4 bytes). `None` when
    /// that does not fit in a `u64`.
    pub fn bytes(&self, batch: usize) -> Option<u64> {
        let outside = sum(self.buffers.iter().filter(|b| !b.in_arena()), batch)?;
        mul(batch, self.arena_elems)?
            .checked_add(outside)?
            .checked_add(self.scratch_elems(batch)?)?
            .checked_mul(4)
    }

    /// Bytes of every buffer were each its own allocation (no reuse); `None` on overflow.
    pub fn unshared_bytes(&self, batch: usize) -> Option<u64> {
        sum(self.buffers.iter(), batch)?
            .checked_add(self.scratch_elems(batch)?)?
            .checked_mul(4)
    }

    /// Bytes of the arena at `batch`; `None` on overflow.
    pub fn arena_bytes(&self, batch: usize) -> Option<u64> {
        mul(batch, self.arena_elems)?.checked_mul(4)
    }

    /// Bytes of im2col and gradient scratch; `None` on overflow.
    pub fn scratch_bytes(&self, batch: usize) -> Option<u64> {
        self.scratch_elems(batch)?.checked_mul(4)
    }

    /// Elements of im2col and gradient scratch.
    fn scratch_elems(&self, batch: usize) -> Option<u64> {
        mul(batch, self.scratch)?.checked_add(self.col as u64)
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

/// The workspace of `g` (after its codegen passes) for training, which inference shares;
/// `None` when one sample's buffers alone take more than 2^64 bytes.
pub fn workspace(g: &Graph) -> Option<Workspace> {
    let nodes = g.training_nodes();
    let stems = stems(g);
    let mut buffers = Vec::new();
    let mut col = 0usize;
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
        // place in its input's; a network input takes no gradient.
        if !g.slots.contains_key(&n) && !g.aliases.contains_key(&n) {
            buffers.push(buf('t', elems, false, false, Some(doc)));
            if !matches!(node.op, Op::Input(_)) {
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
        for s in kind.saved(&ins, &node.shape) {
            buffers.push(buf(s.letter, s.elems, s.fixed, s.index, None));
        }
    }
    let max_elems = nodes
        .iter()
        .map(|&n| g.node(n).shape.iter().product::<usize>())
        .max()
        .unwrap_or(1);
    let schedule = {
        let b = schedule::Buffers::new(g, &buffers, &stems);
        schedule::lower(g, &b)
    };
    let mut ws = Workspace {
        buffers,
        stems,
        schedule,
        arena: Default::default(),
        arena_elems: 0,
        col: col.max(1),
        scratch: 2 * max_elems,
    };
    // The arena: the training plan of its buffers at one sample. Inference uses it too:
    // whatever inference keeps alive across a layer, training keeps alive across it too.
    let plan = memplan(&ws, 1, true, Buffer::in_arena)?;
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

/// What the codegen passes made of one network, and the memory its generated code takes:
/// `netc check --plan`.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Layers that run as a GEMM (conv, transposed conv, linear) before and after the
    /// passes.
    pub gemm_layers_before: usize,
    pub gemm_layers: usize,
    /// ReLUs in the checked graph, and how many of them the `epilogue` pass folded into
    /// the GEMM before them.
    pub relus: usize,
    pub relus_fused: usize,
    /// Activations that overwrite their input's buffers (`inplace`).
    pub in_place: usize,
    /// Concats, the elements per sample they hold, and how many of those they still copy
    /// (the rest are written in place by `concat_in_place`).
    pub concats: usize,
    pub concat_elems: usize,
    pub concat_copied: usize,
    /// Trainable parameters (weights and biases) of the training graph.
    pub params: u64,
    pub workspace: Workspace,
    /// The workspace buffers planned by liveness (`memplan`) at the batch asked for, for a
    /// training step and for inference.
    pub train_plan: MemPlan,
    pub infer_plan: MemPlan,
    /// The schedules as text, a step per line (`netc check --plan --steps`).
    pub steps: String,
    /// The batch asked for, and the memory at that batch.
    pub batch: usize,
    pub bytes: Bytes,
}

/// Memory at one batch, in bytes; [`summary`] refuses a batch at which any of them
/// overflows a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    /// What the generated `Workspace` allocates: the arena, the buffers of their own and
    /// the scratch.
    pub workspace: u64,
    pub arena: u64,
    pub own: u64,
    /// im2col and gradient scratch, outside the plan.
    pub scratch: u64,
    /// The workspace were every buffer its own allocation.
    pub unshared: u64,
    /// Trainable parameters.
    pub params: u64,
    /// One training step: the workspace, the parameters and their gradients (optimizer
    /// state, one or two more copies of the parameters, excluded).
    pub training: u64,
}

impl Bytes {
    /// The figures of `ws` and `params` parameters at `batch`, `None` on overflow.
    fn new(ws: &Workspace, params: u64, batch: usize) -> Option<Bytes> {
        let workspace = ws.bytes(batch)?;
        let arena = ws.arena_bytes(batch)?;
        let scratch = ws.scratch_bytes(batch)?;
        let params = params.checked_mul(4)?;
        Some(Bytes {
            workspace,
            arena,
            own: workspace - arena - scratch,
            scratch,
            unshared: ws.unshared_bytes(batch)?,
            params,
            training: workspace.checked_add(params.checked_mul(2)?)?,
        })
    }
}

/// Runs the codegen passes (but those in `skip`) on a copy of `g` and sums up the result,
/// memory planned for `batch`.
pub fn summary(g: &Graph, skip: &[&str], batch: usize) -> Result<Summary, Diagnostic> {
    // Training-graph nodes whose op passes `f`.
    let count = |g: &Graph, f: fn(&Op) -> bool| {
        g.training_nodes()
            .into_iter()
            .filter(|&n| f(&g.node(n).op))
            .count()
    };
    let gemm = |op: &Op| matches!(op, Op::Conv(_) | Op::ConvT(_) | Op::Linear(_));
    let relu = |op: &Op| op.act() == Some(crate::ops::ActFn::Relu);
    let relus = count(g, relu);
    let mut planned = g.clone();
    crate::passes::run(&mut planned, crate::passes::CODEGEN, skip)?;
    let concats: Vec<_> = planned
        .training_nodes()
        .into_iter()
        .filter(|&n| matches!(planned.node(n).op, Op::Concat(_)))
        .collect();
    let elems = |n: NodeIndex| planned.node(n).shape.iter().product::<usize>();
    let params = crate::report::Report::new(&planned).total;
    let params = params.weights + params.biases;
    let too_large = || {
        Diagnostic::error(
            "too-large",
            format!(
                "at a batch of {batch}, the memory of network `{}` does not fit in 2^64 bytes",
                g.name
            ),
        )
        .help("use a smaller batch")
    };
    let ws = workspace(&planned).ok_or_else(too_large)?;
    let bytes = Bytes::new(&ws, params, batch).ok_or_else(too_large)?;
    let train_plan = memplan(&ws, batch, true, |_| true).ok_or_else(too_large)?;
    let infer_plan = memplan(&ws, batch, false, |_| true).ok_or_else(too_large)?;
    Ok(Summary {
        gemm_layers_before: count(g, gemm),
        gemm_layers: count(&planned, gemm)
            - planned.merged.iter().map(|m| m.len() - 1).sum::<usize>(),
        relus,
        relus_fused: relus - count(&planned, relu),
        in_place: planned.aliases.len(),
        concats: concats.len(),
        concat_elems: concats.iter().map(|&n| elems(n)).sum(),
        concat_copied: concats
            .iter()
            .flat_map(|&n| planned.inputs_of(n))
            .filter(|j| !planned.slots.contains_key(j))
            .map(elems)
            .sum(),
        params,
        steps: schedule::describe(&ws.schedule, &planned, &ws.buffers),
        train_plan,
        infer_plan,
        workspace: ws,
        batch,
        bytes,
    })
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
