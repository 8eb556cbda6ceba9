//! threads: which layers run on the calling thread alone. Each parallel kernel of the runtime
//! decides by itself whether to wake the thread pool, and a layer is several kernel calls
//! (im2col, a GEMM per image or per group of images, the bias, the activation): a small layer
//! pays the pool's wake-ups in each, and measured slower on two threads than on one. So the
//! plan gives each layer a crossover batch per direction: below it the layer's generated
//! function runs on the calling thread alone (`rt::gemm::one_thread_if(ws.batch < B)`), from
//! it on all threads. The batch is compared when the code runs, so the choice holds for
//! every batch, not only the one planned for; the guard only ever lowers the thread count (a
//! kernel still stays on one thread below its own threshold).
//!
//! The model: a layer's work per sample is its multiply-adds when it has any (conv,
//! transposed conv, linear; the first conv of a merged group counts the group's), else the
//! elements it reads and writes (its inputs' and its output's); the crossover batch is the
//! least at which that work times the batch reaches the crossover measured for its kind of
//! kernel and direction (the constants below). They were measured on the development machine
//! (2 cores, AMD EPYC Zen 4 under KVM, shared) by
//! `cargo run --release -p netc-runtime --example thread_crossover -- 2`: the least work
//! from which two threads ran faster than one at every larger size of every shape measured.
//! With more cores a layer's second thread pays off no earlier, so they hold as a floor.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::graph::Graph;
use crate::ops::Op;

use super::schedule::What;

/// A conv through im2col (or batched) + GEMM, a transposed conv or a linear layer, forward:
/// multiply-adds from which two threads are faster. Measured: LeNet's 6→16 5×5 conv won
/// from batch 32 (7.7 M), a 1×1 128→64 on 14×14 from batch 4 (6.4 M), a 3×3 32→32 on 8×8
/// from 2.4 M, a 400→120 linear from 6.1 M; below, 2 threads were up to 25% slower.
pub const GEMM_FORWARD_MACS: u64 = 6_000_000;

/// The same layers' backward (weight and data gradients), in the forward's multiply-adds:
/// LeNet's conv won from batch 8 (1.9 M), 32→32 on 8×8 from 4.7 M, the linear layers from
/// 3–4 M.
pub const GEMM_BACKWARD_MACS: u64 = 4_000_000;

/// A conv on the direct kernels (depthwise and others with at most 4 channels per group),
/// forward: 32 channels on 28×28 and 144 on 14×14 were 10–15% slower on two threads at
/// batch 1–2 (under 0.6 M), faster from 1 M.
pub const DIRECT_FORWARD_MACS: u64 = 1_000_000;

/// The direct kernels' backward: two threads won from 0.5 M (32 channels on 28×28, batch 2).
pub const DIRECT_BACKWARD_MACS: u64 = 500_000;

/// Any other layer, forward, in elements read and written: batchnorm (the one such kernel
/// that splits small tensors) won from 100 K; the pools, activations and the rest split
/// only above their own thresholds (max pooling 2^19 input elements, activations 2^20).
pub const MEMORY_FORWARD_ELEMS: u64 = 100_000;

/// Any other layer's backward, in the forward's elements read and written.
pub const MEMORY_BACKWARD_ELEMS: u64 = 100_000;

/// The batches from which a layer runs on all threads: its forward (training and inference)
/// and its backward. Below, it runs on the calling thread alone; 1 means always on all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crossover {
    pub forward: usize,
    pub backward: usize,
}

/// What a layer does per sample, in the unit of its kernels' crossover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Multiply-adds through a GEMM.
    Gemm(u64),
    /// Multiply-adds of the direct convolution kernels.
    Direct(u64),
    /// Elements read and written.
    Memory(u64),
}

/// Every layer's crossover among `nodes` of `g` (a graph after its codegen passes).
pub fn crossovers(g: &Graph, nodes: &[NodeIndex]) -> BTreeMap<NodeIndex, Crossover> {
    nodes
        .iter()
        .filter(|&&n| !matches!(g.node(n).op, Op::Input(_)))
        .map(|&n| (n, crossover(g, n)))
        .collect()
}

/// Layer `n`'s crossover: the least batch at which its work reaches each direction's.
pub fn crossover(g: &Graph, n: NodeIndex) -> Crossover {
    let (work, forward, backward) = match work(g, n) {
        Work::Gemm(w) => (w, GEMM_FORWARD_MACS, GEMM_BACKWARD_MACS),
        Work::Direct(w) => (w, DIRECT_FORWARD_MACS, DIRECT_BACKWARD_MACS),
        Work::Memory(w) => (w, MEMORY_FORWARD_ELEMS, MEMORY_BACKWARD_ELEMS),
    };
    let batch = |crossover: u64| usize::try_from(crossover.div_ceil(work.max(1))).unwrap_or(usize::MAX).max(1);
    Crossover {
        forward: batch(forward),
        backward: batch(backward),
    }
}

/// Layer `n`'s work per sample (with the members of its merged group, which it computes).
fn work(g: &Graph, n: NodeIndex) -> Work {
    let members = g.members(n);
    let ins = g.inputs_of(n);
    let shapes: Vec<&Vec<usize>> = ins.iter().map(|&x| &g.node(x).shape).collect();
    let elems = |s: &[usize]| s.iter().product::<usize>() as u64;
    let macs: u64 = members
        .iter()
        .map(|&m| g.node(m).op.kind().macs(&shapes, &g.node(m).shape))
        .fold(0, u64::saturating_add);
    if macs == 0 {
        let read: u64 = shapes.iter().map(|s| elems(s)).sum();
        let written: u64 = members.iter().map(|&m| elems(&g.node(m).shape)).sum();
        return Work::Memory(read.saturating_add(written));
    }
    match &g.node(n).op {
        Op::Conv(c) if netc_runtime::conv::is_direct(&c.geometry(shapes[0])) => Work::Direct(macs),
        _ => Work::Gemm(macs),
    }
}

impl super::Workspace {
    /// The batch from which step `what` runs on all threads (below it, on the calling
    /// thread alone): its layer's [`Crossover`] in its direction; 1 for a step that is no
    /// layer's.
    pub fn crossover(&self, what: What) -> usize {
        match what {
            What::Forward(n) | What::Infer(n) => self.crossovers.get(&n).map_or(1, |c| c.forward),
            What::Backward(n) => self.crossovers.get(&n).map_or(1, |c| c.backward),
            _ => 1,
        }
    }

    /// Layer steps of `steps`, and how many of them run on the calling thread alone at
    /// `batch`.
    pub fn one_thread_count(&self, steps: &[super::schedule::Step], batch: usize) -> (usize, usize) {
        let layers: Vec<What> = steps
            .iter()
            .map(|s| s.what)
            .filter(|w| matches!(w, What::Forward(_) | What::Infer(_) | What::Backward(_)))
            .collect();
        let alone = layers.iter().filter(|&&w| batch < self.crossover(w)).count();
        (alone, layers.len())
    }
}
