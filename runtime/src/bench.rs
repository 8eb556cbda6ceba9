//! Timing kernels: the loops behind `netc bench gemm` and `netc bench conv`. A warm-up (fills
//! caches, wakes the thread pool, lets the clock settle), then the median of repeated runs.

use std::time::{Duration, Instant};

use crate::conv::{conv2d_backward, conv2d_forward, Conv2d};
use crate::gemm::{self, PEAK_GFLOPS_PER_CORE};

/// Warm-up before timing.
const WARM_UP: Duration = Duration::from_millis(200);
/// Time spent in timed runs, spread over at least `MIN_RUNS` runs.
const TIMED: Duration = Duration::from_millis(1000);
const MIN_RUNS: usize = 5;
const MAX_RUNS: usize = 1000;

/// Runs `run` through a warm-up, then times it repeatedly; returns the number of timed runs
/// and the median time of one, in seconds.
pub fn median_seconds(mut run: impl FnMut()) -> (usize, f64) {
    let mut once = || {
        let start = Instant::now();
        run();
        start.elapsed()
    };
    let warm_up = Instant::now();
    let mut fastest = once();
    while warm_up.elapsed() < WARM_UP {
        fastest = fastest.min(once());
    }
    let runs = (TIMED.as_secs_f64() / fastest.as_secs_f64().max(1e-9)) as usize;
    let runs = runs.clamp(MIN_RUNS, MAX_RUNS);
    let mut times: Vec<f64> = (0..runs).map(|_| once().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    (runs, times[runs / 2])
}

/// What [`conv()`] measured for one convolution layer.
#[derive(Clone, Debug)]
pub struct ConvBench {
    /// The layer.
    pub geometry: Conv2d,
    /// Images per batch.
    pub batch: usize,
    /// Threads the GEMMs were allowed to use.
    pub threads: usize,
    /// Multiply-accumulates of one forward pass over the batch.
    pub macs: u64,
    /// Median seconds of a forward pass (bias included).
    pub forward: f64,
    /// Median seconds of a forward pass, then backward data, weight and bias.
    pub forward_backward: f64,
}

impl ConvBench {
    /// GFLOP/s of the forward pass (2 flops per MAC).
    pub fn forward_gflops(&self) -> f64 {
        2.0 * self.macs as f64 / self.forward / 1e9
    }

    /// GFLOP/s of forward + backward, which do three times the forward's MACs.
    pub fn forward_backward_gflops(&self) -> f64 {
        6.0 * self.macs as f64 / self.forward_backward / 1e9
    }

    /// A rate as a fraction of this machine's FP32 peak on `threads` cores.
    pub fn peak_fraction(&self, gflops: f64) -> f64 {
        gflops / (PEAK_GFLOPS_PER_CORE * self.threads as f64)
    }
}

/// Times one conv layer, forward and forward + backward, on a batch of `batch` images with
/// `threads` threads (this sets the runtime's global thread count).
pub fn conv(g: Conv2d, batch: usize, threads: usize) -> ConvBench {
    g.check();
    gemm::set_num_threads(threads);
    let x = pseudo_random(batch * g.c * g.h * g.w, 1);
    let w: Vec<f32> = pseudo_random(g.weight_len(), 2)
        .iter()
        .map(|v| v * 0.05)
        .collect();
    let b = pseudo_random(g.out, 3);
    let ylen = batch * g.out * g.ho() * g.wo();
    let dy = pseudo_random(ylen, 4);
    let mut y = vec![0.0; ylen];
    let mut col = vec![0.0; g.col_len()];
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.out]);
    let (_, forward) = median_seconds(|| {
        conv2d_forward(&g, batch, &x, &w, Some(&b), false, &mut y, &mut col);
    });
    let (_, forward_backward) = median_seconds(|| {
        conv2d_forward(&g, batch, &x, &w, Some(&b), false, &mut y, &mut col);
        conv2d_backward(
            &g,
            batch,
            &x,
            &w,
            &dy,
            &mut dx,
            &mut dw,
            Some(&mut db),
            &mut col,
        );
    });
    ConvBench {
        geometry: g,
        batch,
        threads: gemm::num_threads(),
        macs: (batch * g.weight_len() * g.ho() * g.wo()) as u64,
        forward,
        forward_backward,
    }
}

/// `len` values in [-1, 1) from a 32-bit LCG: deterministic, no dependency.
pub fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}
