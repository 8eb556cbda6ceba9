//! The buffers of a network's workspace: an activation and a gradient per value, what
//! backward keeps (max-pool argmaxes, batchnorm statistics, LRN denominators), and scratch.
//! `memplan` places buffers in one arena by liveness over the forward+backward schedule,
//! with a checker. The generated code allocates exactly what [`workspace`] says: the
//! per-sample `f32` buffers at their planned offsets in one arena (the plan at one sample,
//! scaled by the batch, which keeps it valid), the rest as buffers of their own.

use petgraph::stable_graph::NodeIndex;

use crate::graph::{shape_str, Graph};
use crate::ops::{InputKind, Op};

/// One buffer of the workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// The field name in generated code (`t5`, `d5`, `a7`, ...).
    pub name: String,
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
    /// The schedule step the buffer comes alive at (see [`memplan`]): a gradient is zeroed
    /// then, since until then its memory may hold another buffer.
    pub first: usize,
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
    /// Where the arena buffers are, by name, placed by `memplan` over the training schedule.
    pub arena: std::collections::BTreeMap<String, Placement>,
    /// Elements of the arena per sample.
    pub arena_elems: usize,
    /// im2col / col2im / LRN scratch, in elements (not per sample).
    pub col: usize,
    /// Gradient scratch, elements per sample.
    pub scratch: usize,
}

impl Workspace {
    /// Bytes the generated code allocates for a batch of `batch`: the arena, the buffers
    /// outside it, im2col and gradient scratch (all elements are 4 bytes).
    pub fn bytes(&self, batch: usize) -> u64 {
        let outside: u64 = self
            .buffers
            .iter()
            .filter(|b| !b.in_arena())
            .map(|b| b.len(batch) as u64)
            .sum();
        4 * ((batch * self.arena_elems) as u64 + outside + self.scratch_elems(batch))
    }

    /// Bytes of every buffer were each its own allocation (no reuse).
    pub fn unshared_bytes(&self, batch: usize) -> u64 {
        let all: u64 = self.buffers.iter().map(|b| b.len(batch) as u64).sum();
        4 * (all + self.scratch_elems(batch))
    }

    /// Elements of im2col and gradient scratch.
    fn scratch_elems(&self, batch: usize) -> u64 {
        self.col as u64 + (batch * self.scratch) as u64
    }
}

impl Buffer {
    /// Elements for a batch of `batch`.
    pub fn len(&self, batch: usize) -> usize {
        if self.fixed {
            self.elems
        } else {
            batch * self.elems
        }
    }
}

/// The workspace of `g` (after its codegen passes) for training, which inference shares.
pub fn workspace(g: &Graph) -> Workspace {
    let nodes = g.training_nodes();
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
            |name: String, elems: usize, fixed: bool, index: bool, doc: Option<String>| Buffer {
                name,
                node: i,
                elems,
                fixed,
                index,
                doc,
            };
        // A layer in a concat's slot lives in the concat's buffers, an activation run in
        // place in its input's; a network input takes no gradient.
        if !g.slots.contains_key(&n) && !g.aliases.contains_key(&n) {
            buffers.push(buf(format!("t{i}"), elems, false, false, Some(doc)));
            if !matches!(node.op, Op::Input(_)) {
                buffers.push(buf(format!("d{i}"), elems, false, false, None));
            }
        }
        let x = g
            .inputs_of(n)
            .first()
            .map(|&j| g.node(j).shape.clone())
            .unwrap_or_default();
        match &node.op {
            Op::Conv(c) => {
                col = col.max(crate::interp::conv_col_len(c, &x));
                if let Some(group) = g.group_of(n).filter(|m| m[0] == n) {
                    let total = group.iter().map(|&j| g.node(j).shape[0]).sum();
                    let plane = x[1..].iter().product();
                    col = col.max(netc_runtime::conv::merged_col_len(x[0], total, plane));
                }
            }
            Op::ConvT(c) => col = col.max(crate::interp::conv_t_col_len(c, &x)),
            Op::MaxPool(_) => buffers.push(buf(format!("a{i}"), elems, false, true, None)),
            Op::BatchNorm { .. } => {
                buffers.push(buf(format!("m{i}"), x[0], true, false, None));
                buffers.push(buf(format!("r{i}"), x[0], true, false, None));
            }
            Op::Lrn { .. } => {
                buffers.push(buf(format!("s{i}"), elems, false, false, None));
                col = col.max(x.iter().product());
            }
            _ => {}
        }
    }
    let max_elems = nodes
        .iter()
        .map(|&n| g.node(n).shape.iter().product::<usize>())
        .max()
        .unwrap_or(1);
    let mut ws = Workspace {
        buffers,
        arena: Default::default(),
        arena_elems: 0,
        col: col.max(1),
        scratch: 2 * max_elems,
    };
    // The arena: the training plan of its buffers at one sample (inference uses it too;
    // every activation lives at least as long there).
    let only_arena = Workspace {
        buffers: ws
            .buffers
            .iter()
            .filter(|b| b.in_arena())
            .cloned()
            .collect(),
        ..ws.clone()
    };
    let plan = memplan(g, &only_arena, 1, true);
    for p in &plan.placed {
        let place = Placement {
            offset: p.offset as usize / 4,
            elems: p.bytes as usize / 4,
            first: p.first,
        };
        ws.arena.insert(p.name.clone(), place);
    }
    ws.arena_elems = plan.peak as usize / 4;
    ws
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
}

impl Summary {
    /// Bytes of one training step at `batch`: the workspace, the parameters and their
    /// gradients (optimizer state, one or two more copies of the parameters, excluded).
    pub fn training_bytes(&self, batch: usize) -> u64 {
        self.workspace.bytes(batch) + 2 * 4 * self.params
    }

    /// Bytes the scratch that stays outside the plan takes (im2col, gradient scratch).
    pub fn scratch_bytes(&self, batch: usize) -> u64 {
        4 * (self.workspace.col + batch * self.workspace.scratch) as u64
    }
}

/// Runs the codegen passes (but those in `skip`) on a copy of `g` and sums up the result,
/// memory planned for `batch`.
pub fn summary(g: &Graph, skip: &[&str], batch: usize) -> Result<Summary, netc_dsl::Diagnostic> {
    // Training-graph nodes whose op passes `f`.
    let count = |g: &Graph, f: fn(&Op) -> bool| {
        g.training_nodes()
            .into_iter()
            .filter(|&n| f(&g.node(n).op))
            .count()
    };
    let gemm = |op: &Op| matches!(op, Op::Conv(_) | Op::ConvT(_) | Op::Linear { .. });
    let relu = |op: &Op| matches!(op, Op::Relu);
    let relus = count(g, relu);
    let mut planned = g.clone();
    crate::passes::run(&mut planned, crate::passes::CODEGEN, skip)?;
    let concats: Vec<_> = planned
        .training_nodes()
        .into_iter()
        .filter(|&n| matches!(planned.node(n).op, Op::Concat))
        .collect();
    let elems = |n: NodeIndex| planned.node(n).shape.iter().product::<usize>();
    let params = crate::report::Report::new(&planned).total;
    let ws = workspace(&planned);
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
        params: params.weights + params.biases,
        train_plan: memplan(&planned, &ws, batch, true),
        infer_plan: memplan(&planned, &ws, batch, false),
        workspace: ws,
    })
}

/// One buffer placed by `memplan`: live over the schedule steps `first..=last`, at byte
/// `offset` of a shared arena.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub name: String,
    pub bytes: u64,
    pub first: usize,
    pub last: usize,
    pub offset: u64,
}

/// Buffers sharing one arena by liveness: `peak` bytes hold them all.
#[derive(Clone, Debug, PartialEq)]
pub struct MemPlan {
    pub placed: Vec<Placed>,
    pub peak: u64,
}

/// Plans the workspace buffers of `ws` (from `workspace(g)`) into one arena at `batch`,
/// over the schedule the generated code runs: the forward of every training node in
/// order (steps `0..n`), then, for training, their backwards in reverse (step `2n-1-k` for
/// the node at position `k`). Liveness is conservative where the backward of an op may
/// read a buffer: an activation lives until its own node's backward (which comes after its
/// consumers'), a gradient from the backward of its last consumer (or the loss seed) until
/// its own. For inference only activations count, each until its last reader. The im2col
/// and gradient scratch are live throughout and are not part of the arena.
///
/// The generated code's arena is this plan at one sample over the arena buffers (see
/// [`workspace`]); gradients are zeroed at their `first` step.
pub fn memplan(g: &Graph, ws: &Workspace, batch: usize, training: bool) -> MemPlan {
    let nodes = if training {
        g.training_nodes()
    } else {
        // The first conv of a merged group writes every member, needed or not.
        let infer = g.inference_set();
        let needed = |n: NodeIndex| match g.group_of(n) {
            Some(group) => group.iter().any(|j| infer[j.index()]),
            None => infer[n.index()],
        };
        g.nodes().into_iter().filter(|&n| needed(n)).collect()
    };
    let n = nodes.len();
    use petgraph::visit::NodeIndexable;
    let mut pos = vec![usize::MAX; g.g.node_bound()];
    for (k, &v) in nodes.iter().enumerate() {
        pos[v.index()] = k;
    }
    let bwd = |k: usize| 2 * n - 1 - k;
    // The steps over which buffer kind `kind` (`t`, `d`, ...) of node `v` is live, if at all.
    let lifetime = |kind: u8, v: NodeIndex| -> Option<(usize, usize)> {
        let k = pos[v.index()];
        if k == usize::MAX {
            return None;
        }
        let readers: Vec<usize> = g
            .consumers_of(v)
            .into_iter()
            .map(|c| pos[c.index()])
            .filter(|&c| c != usize::MAX)
            .collect();
        let is_output = g.outputs.iter().any(|&(_, o)| o == v);
        let seeded = g.losses.iter().any(|l| l.inputs.contains(&v));
        let (mut first, mut last) = match (kind, training) {
            (b'd' | b'a' | b's' | b'm' | b'r', false) => return None,
            // Outputs are read after the step.
            (b't', true) if is_output => (k, 2 * n - 1),
            // A loss seeds its inputs' gradients when the forward ends.
            (b'd', true) if seeded => (n, bwd(k)),
            (b'd', true) => (readers.iter().map(|&c| bwd(c)).min().unwrap_or(n), bwd(k)),
            (_, true) => (k, bwd(k)),
            (_, false) if is_output => (k, n - 1),
            (_, false) => (k, readers.iter().copied().max().unwrap_or(k)),
        };
        // Inputs are copied in before the first layer runs.
        if kind == b't' && matches!(g.node(v).op, Op::Input(_)) {
            first = 0;
        }
        // A merged conv is written at its group's first forward step, and its gradient read
        // at the group's backward, which comes after its own.
        if let Some(group) = g.group_of(v) {
            let lead = pos[group[0].index()];
            match kind {
                b't' => first = first.min(lead),
                b'd' => last = last.max(bwd(lead)),
                _ => {}
            }
        }
        Some((first, last))
    };
    let mut placed = Vec::new();
    for b in &ws.buffers {
        let v = NodeIndex::new(b.node);
        let kind = b.name.as_bytes()[0];
        let Some(mut life) = lifetime(kind, v) else {
            continue;
        };
        // A buffer also holds the values that share it (layers written in place into a
        // concat, an activation run in place on its input), from the first one's forward to
        // the last one's backward.
        if kind == b't' || kind == b'd' {
            let slotted = g
                .slots
                .iter()
                .filter(|(_, s)| s.concat == v)
                .map(|(&l, _)| l);
            let aliased = g.aliases.iter().filter(|(_, &x)| x == v).map(|(&a, _)| a);
            for other in slotted.chain(aliased) {
                if let Some((first, last)) = lifetime(kind, other) {
                    life = (life.0.min(first), life.1.max(last));
                }
            }
        }
        let (first, last) = life;
        let elems = if b.fixed { b.elems } else { batch * b.elems };
        placed.push(Placed {
            name: b.name.clone(),
            bytes: 4 * elems as u64,
            first,
            last,
            offset: 0,
        });
    }
    // First fit, largest first: each buffer at the lowest offset clear of every buffer
    // already placed whose lifetime overlaps its own.
    let mut order: Vec<usize> = (0..placed.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(placed[i].bytes), i));
    let mut done: Vec<usize> = Vec::new();
    let mut peak = 0;
    for i in order {
        let mut taken: Vec<(u64, u64)> = done
            .iter()
            .map(|&j| &placed[j])
            .filter(|q| q.first <= placed[i].last && placed[i].first <= q.last)
            .map(|q| (q.offset, q.offset + q.bytes))
            .collect();
        taken.sort_unstable();
        let mut offset = 0;
        for (lo, hi) in taken {
            if offset + placed[i].bytes <= lo {
                break;
            }
            offset = offset.max(hi);
        }
        placed[i].offset = offset;
        peak = peak.max(offset + placed[i].bytes);
        done.push(i);
    }
    MemPlan { placed, peak }
}

impl MemPlan {
    /// Checks the plan: no two buffers live at the same step share a byte, and every
    /// buffer lies inside `peak`. Returns the first violation.
    pub fn check(&self) -> Result<(), String> {
        for (i, p) in self.placed.iter().enumerate() {
            if p.first > p.last {
                return Err(format!(
                    "`{}` dies (step {}) before it is made (step {})",
                    p.name, p.last, p.first
                ));
            }
            if p.offset + p.bytes > self.peak {
                return Err(format!(
                    "`{}` ends at byte {}, past the peak {}",
                    p.name,
                    p.offset + p.bytes,
                    self.peak
                ));
            }
            for q in &self.placed[i + 1..] {
                let live = p.first <= q.last && q.first <= p.last;
                let shared = p.offset < q.offset + q.bytes && q.offset < p.offset + p.bytes;
                if live && shared && p.bytes > 0 && q.bytes > 0 {
                    return Err(format!(
                        "`{}` and `{}` are live together and overlap",
                        p.name, q.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The most bytes live at any one step: no plan can need less.
    pub fn live_peak(&self) -> u64 {
        let steps = self.placed.iter().map(|p| p.last + 1).max().unwrap_or(0);
        (0..steps)
            .map(|t| {
                self.placed
                    .iter()
                    .filter(|p| p.first <= t && t <= p.last)
                    .map(|p| p.bytes)
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }
}
