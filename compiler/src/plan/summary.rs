//! What the passes made of one network and the memory its generated code takes, at a
//! batch: `netc check --plan`.

use petgraph::stable_graph::NodeIndex;

use netc_dsl::Diagnostic;

use super::{memplan, plan, schedule, Allocation, MemPlan, Workspace};
use crate::graph::Graph;
use crate::ops::Op;

/// What the passes made of one network, and the memory its generated code takes.
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
    /// Batchnorms inference computes, and how many of them `fold_bn` folded into the conv
    /// before them.
    pub batchnorms: usize,
    pub batchnorms_folded: usize,
    /// Adds inference computes, and how many of them `residual` computes in the epilogue
    /// of the conv before them.
    pub adds: usize,
    pub adds_fused: usize,
    /// Trainable parameters (weights and biases) of the training graph.
    pub params: u64,
    /// The training step's workspace, and inference's.
    pub workspace: Workspace,
    pub inference: Workspace,
    /// The workspace buffers planned by liveness (`memplan`) at the batch asked for, for a
    /// training step and for inference.
    pub train_plan: MemPlan,
    pub infer_plan: MemPlan,
    /// The schedules as text, a step per line (`netc check --plan --steps`).
    pub steps: String,
    /// The batch asked for, and the memory at that batch.
    pub batch: usize,
    pub bytes: Bytes,
    /// Every conv of the training step with the algorithm `conv_algo` chose for it, in node
    /// order, and the batch its cost model assumed.
    pub convs: Vec<ConvChoice>,
    pub model_batch: usize,
    /// What `--conv-algo` asked for.
    pub pin: crate::passes::conv_algo::Pin,
    /// The layers on the calling thread alone at the batch asked for (`plan::threads`).
    pub threads: ThreadCounts,
    /// How batches are cut into shards (`plan::shards`), and the training step's shards at
    /// the batch asked for.
    pub shards: super::shards::Shards,
    pub train_shards: usize,
}

/// Layer steps that run on the calling thread alone at a batch (below their crossover,
/// `plan::threads`), and all layer steps: `(alone, all)` for the training step's forward,
/// its backward, and inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCounts {
    pub forward: (usize, usize),
    pub backward: (usize, usize),
    pub inference: (usize, usize),
}

impl ThreadCounts {
    /// Alone, and all, over the three.
    pub fn total(&self) -> (usize, usize) {
        let all = [self.forward, self.backward, self.inference];
        (all.iter().map(|c| c.0).sum(), all.iter().map(|c| c.1).sum())
    }
}

/// One conv layer's algorithm in the generated code.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvChoice {
    pub path: String,
    /// `3×3/1 96→128 @28×28`: the kernel, stride, channels and output map.
    pub geometry: String,
    /// Whether Winograd could compute it (3×3, stride 1, no dilation, one group): the
    /// layers the choice is about.
    pub candidate: bool,
    pub algo: crate::ops::Algo,
}

/// Memory at one batch, in bytes; [`summary`] refuses a batch at which any of them
/// overflows a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    /// What the generated `Workspace::new` allocates: the arena, the buffers of their own
    /// and the scratch (enough for inference too).
    pub workspace: u64,
    pub arena: u64,
    pub own: u64,
    /// im2col, gradient and folded-weight scratch, outside the plan.
    pub scratch: u64,
    /// The training step's buffers were every one its own allocation.
    pub unshared: u64,
    /// What `Workspace::for_inference` allocates, its arena and its scratch.
    pub inference: u64,
    pub inference_arena: u64,
    pub inference_scratch: u64,
    /// Trainable parameters.
    pub params: u64,
    /// One training step: the workspace, the parameters and their gradients (optimizer
    /// state, one or two more copies of the parameters, excluded).
    pub training: u64,
}

impl Bytes {
    /// The figures of the two allocations, the training step's buffers `ws` and `params`
    /// parameters at `batch`, `None` on overflow.
    fn new(
        train: &Allocation,
        infer: &Allocation,
        ws: &Workspace,
        params: u64,
        batch: usize,
    ) -> Option<Bytes> {
        let workspace = train.bytes(batch)?;
        let arena = train.arena_bytes(batch)?;
        let scratch = train.scratch_bytes(batch)?;
        let params = params.checked_mul(4)?;
        Some(Bytes {
            workspace,
            arena,
            own: workspace - arena - scratch,
            scratch,
            unshared: ws.unshared_bytes(batch)?,
            inference: infer.bytes(batch)?,
            inference_arena: infer.arena_bytes(batch)?,
            inference_scratch: infer.scratch_bytes(batch)?,
            params,
            training: workspace.checked_add(params.checked_mul(2)?)?,
        })
    }
}

/// Runs the passes (but those in `skip`) on copies of `g` and sums up the result, memory
/// planned for `batch`.
pub fn summary(g: &Graph, skip: &[&str], batch: usize) -> Result<Summary, Diagnostic> {
    // Nodes of `set` in `g` whose op passes `f`.
    let count = |g: &Graph, set: &[bool], f: fn(&Op) -> bool| {
        g.nodes()
            .into_iter()
            .filter(|&n| set[n.index()] && f(&g.node(n).op))
            .count()
    };
    let gemm = |op: &Op| matches!(op, Op::Conv(_) | Op::ConvT(_) | Op::Linear(_));
    let relu = |op: &Op| op.act() == Some(crate::ops::ActFn::Relu);
    let batchnorm = |op: &Op| matches!(op, Op::BatchNorm(_));
    let folded = |op: &Op| matches!(op, Op::Conv(c) if c.fold.is_some());
    let add = |op: &Op| matches!(op, Op::Add(_));
    let residual = |op: &Op| matches!(op, Op::Conv(c) if c.residual);
    let relus = count(g, &g.training_set(), relu);
    let plan = plan(g, skip)?;
    let planned = &plan.train.graph;
    let train_set = planned.training_set();
    let concats: Vec<_> = planned
        .training_nodes()
        .into_iter()
        .filter(|&n| matches!(planned.node(n).op, Op::Concat(_)))
        .collect();
    let elems = |n: NodeIndex| planned.node(n).shape.iter().product::<usize>();
    let params = crate::report::Report::new(planned).total;
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
    let (train, infer) = (plan.training_allocation(), plan.inference_allocation());
    let bytes = Bytes::new(&train, &infer, &plan.train.ws, params, batch).ok_or_else(too_large)?;
    let train_plan = memplan(&plan.train.ws, batch, true, |_| true).ok_or_else(too_large)?;
    let infer_plan = memplan(&plan.infer.ws, batch, false, |_| true).ok_or_else(too_large)?;
    let inferred = &plan.infer.graph;
    let infer_set = inferred.inference_set();
    let steps = schedule::describe(&plan.infer.ws.schedule, inferred, &plan.infer.ws.buffers)
        + &schedule::describe(&plan.train.ws.schedule, planned, &plan.train.ws.buffers);
    let convs = planned
        .training_nodes()
        .into_iter()
        .filter_map(|n| {
            let Op::Conv(c) = &planned.node(n).op else {
                return None;
            };
            let x = &planned.node(*planned.inputs_of(n).first()?).shape;
            let geo = c.geometry(x);
            Some(ConvChoice {
                path: planned.node(n).path.clone(),
                geometry: format!(
                    "{}×{}/{} {}→{} @{}×{}",
                    geo.kh,
                    geo.kw,
                    geo.sh,
                    geo.c,
                    geo.out,
                    geo.ho(),
                    geo.wo()
                ),
                candidate: netc_runtime::conv::winograd::applies(&geo),
                algo: c.algo,
            })
        })
        .collect();
    let model_batch = g
        .train
        .batch
        .map_or(crate::passes::conv_algo::DEFAULT_BATCH, |b| b as usize);
    let (t, i) = (&plan.train.ws, &plan.infer.ws);
    let threads = ThreadCounts {
        forward: t.one_thread_count(&t.schedule.forward_train, batch),
        backward: t.one_thread_count(&t.schedule.backward, batch),
        inference: i.one_thread_count(&i.schedule.forward, batch),
    };
    Ok(Summary {
        gemm_layers_before: count(g, &g.training_set(), gemm),
        gemm_layers: count(planned, &train_set, gemm)
            - planned.merged.iter().map(|m| m.len() - 1).sum::<usize>(),
        relus,
        relus_fused: relus - count(planned, &train_set, relu),
        in_place: planned.aliases.len(),
        concats: concats.len(),
        concat_elems: concats.iter().map(|&n| elems(n)).sum(),
        concat_copied: concats
            .iter()
            .flat_map(|&n| planned.inputs_of(n))
            .filter(|j| !planned.slots.contains_key(j))
            .map(elems)
            .sum(),
        batchnorms: count(g, &g.inference_set(), batchnorm),
        batchnorms_folded: count(inferred, &infer_set, folded),
        adds: count(g, &g.inference_set(), add),
        adds_fused: count(inferred, &infer_set, residual),
        params,
        steps,
        train_plan,
        infer_plan,
        workspace: plan.train.ws,
        inference: plan.infer.ws,
        batch,
        bytes,
        convs,
        model_batch,
        pin: g.conv_algo,
        threads,
        train_shards: netc_runtime::shard::train_shards(
            batch,
            plan.shards.train_images,
            plan.shards.together,
        ),
        shards: plan.shards,
    })
}
