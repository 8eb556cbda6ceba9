//! Timing one GEMM shape: the loop behind `examples/gemm_bench.rs` and `netc bench gemm`.

use std::time::{Duration, Instant};

use super::{Context, Epilogue, KernelKind};

/// FP32 peak of one core of the reference machine (AMD EPYC, Zen 4, ~3.1 GHz): two 256-bit
/// FMA pipes × 8 lanes × 2 flops × 3.1 GHz ≈ 99 GFLOP/s.
pub const PEAK_GFLOPS_PER_CORE: f64 = 99.0;

/// Warm-up before timing (fills caches, wakes the pool, lets the clock settle).
const WARM_UP: Duration = Duration::from_millis(200);
/// Time spent in timed runs, spread over at least `MIN_RUNS` runs.
const TIMED: Duration = Duration::from_millis(1000);
const MIN_RUNS: usize = 5;
const MAX_RUNS: usize = 1000;

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
    let mut run = || {
        let start = Instant::now();
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
        start.elapsed()
    };

    let warm_up = Instant::now();
    let mut fastest = run();
    while warm_up.elapsed() < WARM_UP {
        fastest = fastest.min(run());
    }
    let runs = (TIMED.as_secs_f64() / fastest.as_secs_f64().max(1e-9)) as usize;
    let runs = runs.clamp(MIN_RUNS, MAX_RUNS);
    let mut times: Vec<f64> = (0..runs).map(|_| run().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let seconds = times[runs / 2];
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

/// `len` values in [-1, 1) from a 32-bit LCG: deterministic, no dependency.
fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}
