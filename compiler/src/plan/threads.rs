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
//! kernel and direction (the constants below). The direct (depthwise) kernels split each
//! image's call on its own, so one whose image is worth splitting runs on all threads at any
//! batch.
//!
//! The crossovers were measured on the development machine (2 cores of an AMD EPYC Zen 4
//! under KVM) by `cargo run --release -p netc-runtime --example thread_crossover -- 2 3`:
//! layers of several shapes at batches 1 to 128, the best of 3 rounds on one thread and on
//! two, and the least work from which two threads were never slower (beyond 3%) at any
//! larger size. Most kernels already stay on one thread where a second would not pay (the
//! GEMM below 2 MFLOP per thread, the pools, batchnorm and activations below their element
//! counts); the backward of small convs and the direct kernels on small images did not, and
//! lost up to 41%. The measurements are in `bench/results/thread_crossover.txt`. They are
//! two-thread figures; with more threads the same layers are the ones too small to split.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::graph::Graph;
use crate::ops::Op;

use super::schedule::What;

/// A conv through im2col (or batched) + GEMM, a transposed conv or a linear layer, forward:
/// the multiply-adds from which two threads are never slower. Measured: none of these layers
/// ran slower on two threads at any size (the GEMM keeps to one thread below 2 MFLOP per
/// thread), and two won from 2.4 M (3×3 32→32 on 8×8 at batch 4, ×1.15; a 1×1 128→64 on
/// 14×14 at batch 2, 3.2 M, ×1.24); below 2 M nothing split. So layers under 2 M run alone:
/// no loss, and no pool checks.
pub const GEMM_FORWARD_MACS: u64 = 2_000_000;

/// A conv's (or transposed conv's) backward, weight and data gradients, in the forward's
/// multiply-adds: the 1×1 128→64 on 14×14 at batch 2 (3.2 M) was 21–31% slower on two
/// threads in each of three runs, 3×3 32→32 on 8×8 at batch 4 (2.4 M) up to 41%; no conv was
/// slower from 3.8 M (LeNet's 6→16 5×5 at batch 16).
pub const CONV_BACKWARD_MACS: u64 = 3_800_000;

/// A linear layer's backward: never slower on two threads (400→120 to 4096→4096, batches 1 to
/// 256; its GEMMs stay on one thread below 2 MFLOP per thread), and faster from where they
/// split: as the forward. (GoogLeNet's 2048→1024 heads at batch 1, 2.1 M, ran their backward
/// in 1.2–1.5 ms on two threads, 1.8 ms alone.)
pub const LINEAR_BACKWARD_MACS: u64 = 2_000_000;

/// The direct kernels (depthwise convs, and others with at most 4 channels per group) run
/// one parallel call per image, so what decides is an image's time on one thread, estimated
/// as [`DIRECT_ELEM_S`] per element read or written plus [`DIRECT_PLANE_S`] per channel
/// plane (in and out), a fit to the five shapes measured (within 15%). From this much an
/// image's call pays for its wake-ups on any batch: MobileNetV2's 960 channels on 7×7 (an
/// estimated 144 µs) ran 1.6× faster on two threads at batch 1, 384 on 14×14 (105 µs) 1.4×;
/// 32 channels on 28×28 (25 µs) lost up to 27% at batch 1 to 4 (in two runs of four), 144 on
/// 14×14 (39 µs) up to 7%.
pub const DIRECT_IMAGE_S: f64 = 50e-6;

/// Seconds per element read or written by a direct kernel (one image, one thread).
pub const DIRECT_ELEM_S: f64 = 0.42e-9;

/// Seconds per channel plane read or written by a direct kernel (its phases, its wide rows).
pub const DIRECT_PLANE_S: f64 = 54e-9;

/// A direct conv whose images are each too small to split, forward: the multiply-adds of
/// the batch from which two threads are never slower (the data outgrows one core's caches):
/// 32 channels on 28×28 from batch 8 (1.8 M) on, 144 on 14×14 from batch 4 (1.0 M).
pub const DIRECT_FORWARD_MACS: u64 = 1_000_000;

/// The same convs' backward: 32 channels on 28×28 at batch 1 (0.23 M) were 14–16% slower on
/// two threads in two runs of three (10% faster in the third); none was slower from 0.25 M.
pub const DIRECT_BACKWARD_MACS: u64 = 250_000;

/// Any other layer, forward, in elements read and written. None measured slower on two
/// threads (max pooling, batchnorm, ReLU: each kernel splits only above its own threshold);
/// batchnorm, the one that splits small tensors, tied at 100 K (64 channels of 28×28 at
/// batch 1, ×0.98) and won from 200 K (×1.29).
pub const MEMORY_FORWARD_ELEMS: u64 = 200_000;

/// Any other layer's backward, in the forward's elements read and written: batchnorm's won
/// from 100 K (×1.10, and ×1.42 for 16 channels of 10×10 at batch 32).
pub const MEMORY_BACKWARD_ELEMS: u64 = 100_000;

/// The batches from which a layer runs on all threads: its forward (training and inference)
/// and its backward. Below, it runs on the calling thread alone; 1 means always on all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crossover {
    pub forward: usize,
    pub backward: usize,
}

/// What a layer does per sample, in the unit of its kernels' crossover.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Work {
    /// A conv's or transposed conv's multiply-adds through a GEMM (a Winograd conv counts
    /// its im2col form's).
    Conv(u64),
    /// A linear layer's multiply-adds.
    Linear(u64),
    /// A conv on the direct kernels: its multiply-adds, and one image's estimated seconds.
    Direct(u64, f64),
    /// Elements read and written.
    Memory(u64),
    /// A layer whose kernel never splits over threads: an ungrouped conv on the direct
    /// kernels, which split over groups (LeNet's 1→6 first conv). On one thread at every
    /// batch: a crossover of `usize::MAX`.
    Serial,
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
        Work::Conv(w) => (w, GEMM_FORWARD_MACS, CONV_BACKWARD_MACS),
        Work::Linear(w) => (w, GEMM_FORWARD_MACS, LINEAR_BACKWARD_MACS),
        Work::Direct(_, image_s) if image_s >= DIRECT_IMAGE_S => {
            return Crossover {
                forward: 1,
                backward: 1,
            }
        }
        Work::Direct(w, _) => (w, DIRECT_FORWARD_MACS, DIRECT_BACKWARD_MACS),
        Work::Memory(w) => (w, MEMORY_FORWARD_ELEMS, MEMORY_BACKWARD_ELEMS),
        Work::Serial => {
            return Crossover {
                forward: usize::MAX,
                backward: usize::MAX,
            }
        }
    };
    let batch = |crossover: u64| {
        usize::try_from(crossover.div_ceil(work.max(1)))
            .unwrap_or(usize::MAX)
            .max(1)
    };
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
    let read = shapes.iter().map(|s| elems(s));
    let written = members.iter().map(|&m| elems(&g.node(m).shape));
    let moved = read.chain(written).fold(0, u64::saturating_add);
    match &g.node(n).op {
        _ if macs == 0 => Work::Memory(moved),
        Op::Linear(_) => Work::Linear(macs),
        Op::Conv(c) if netc_runtime::conv::is_direct(&c.geometry(shapes[0])) && c.groups == 1 => {
            Work::Serial
        }
        Op::Conv(c) if netc_runtime::conv::is_direct(&c.geometry(shapes[0])) => {
            let planes = (shapes[0][0] + c.out) as f64;
            Work::Direct(macs, moved as f64 * DIRECT_ELEM_S + planes * DIRECT_PLANE_S)
        }
        _ => Work::Conv(macs),
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
    pub fn one_thread_count(
        &self,
        steps: &[super::schedule::Step],
        batch: usize,
    ) -> (usize, usize) {
        let layers: Vec<What> = steps
            .iter()
            .map(|s| s.what)
            .filter(|w| matches!(w, What::Forward(_) | What::Infer(_) | What::Backward(_)))
            .collect();
        let alone = layers
            .iter()
            .filter(|&&w| batch < self.crossover(w))
            .count();
        (alone, layers.len())
    }
}
