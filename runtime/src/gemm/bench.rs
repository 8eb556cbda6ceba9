//! Timing one GEMM shape: the loop behind `examples/gemm_bench.rs` and `netc bench gemm`.

use super::{Context, Epilogue, KernelKind};
use crate::bench::{median_seconds, pseudo_random};

/// FP32 peak of one core of the reference machine (AMD EPYC, Zen 4, ~3.1 GHz): two 256-bit
/// FMA pipes × 8 lanes × 2 flops × 3.1 GHz ≈ 99 GFLOP/s.
pub const PEAK_GFLOPS_PER_CORE: f64 = 99.0;

/// What [`bench()`] measured.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The reduction: columns of A, rows of B.
    pub k: usize,
    /// Threads the GEMM was allowed to use.
    pub threads: usize,
    /// The micro-kernel that ran.
    pub kernel: KernelKind,
    /// Number of timed runs.
    pub runs: usize,
    /// Median time of one GEMM, in seconds.
    pub seconds: f64,
    /// `2·m·n·k / seconds / 1e9`.
    pub gflops: f64,
    /// `gflops / (PEAK_GFLOPS_PER_CORE · threads)`.
    pub peak_fraction: f64,
}

/// Times `C = A·B` (row-major, beta = 0, no epilogue) for an m×k A and a k×n B on `threads`
/// threads with the detected kernel: a warm-up, then the median of repeated runs.
pub fn bench(m: usize, n: usize, k: usize, threads: usize) -> BenchResult {
    let context = Context::new(threads);
    let a = pseudo_random(m * k, 1);
    let b = pseudo_random(k * n, 2);
    let mut c = vec![0.0f32; m * n];
    let (runs, seconds) = median_seconds(|| {
        context.sgemm(
            m,
            n,
            k,
            1.0,
            &a,
            k as isize,
            1,
            &b,
            n as isize,
            1,
            0.0,
            &mut c,
            n as isize,
            1,
            Epilogue::NONE,
        );
    });
    let gflops = 2.0 * m as f64 * n as f64 * k as f64 / seconds / 1e9;
    BenchResult {
        m,
        n,
        k,
        threads: context.threads(),
        kernel: context.kernel(),
        runs,
        seconds,
        gflops,
        peak_fraction: gflops / (PEAK_GFLOPS_PER_CORE * context.threads() as f64),
    }
}
