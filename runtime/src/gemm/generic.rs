//! The portable micro-kernel: plain Rust over fixed-size arrays, which the compiler unrolls
//! and vectorizes for whatever the target's baseline is (SSE2 on x86_64, NEON on aarch64).
//! It always exists, so the runtime works everywhere and the AVX2 kernel has a reference.

use super::kernel::{Kernel, TileBias, TileEpilogue};

/// The portable kernel: 4×8 tiles, 8 SSE registers of accumulators.
pub(crate) struct Generic;

const MR: usize = 4;
const NR: usize = 8;

impl Kernel for Generic {
    const MR: usize = MR;
    const NR: usize = NR;
    const MC: usize = 128;
    const KC: usize = 256;
    const NC: usize = 1024;

    unsafe fn kernel(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        epi: TileEpilogue,
    ) {
        // SAFETY: the caller guarantees k*MR floats at `a` and k*NR floats at `b`.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, k * MR),
                std::slice::from_raw_parts(b, k * NR),
            )
        };
        // The clamp's bounds, decided once: ReLU (hi = ∞) skips the upper bound.
        let (lo, hi) = match epi.clamp {
            Some(hi) => (true, (hi < f32::INFINITY).then_some(hi)),
            None => (false, None),
        };
        let mut ab = [[0.0f32; NR]; MR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for i in 0..MR {
                for j in 0..NR {
                    ab[i][j] += ap[i] * bp[j];
                }
            }
        }
        for (i, row) in ab.iter_mut().enumerate() {
            // SAFETY: the caller guarantees an MR×NR tile at `c` with row stride `rsc` and
            // unit column stride, readable when beta != 0.
            let c_row = unsafe { c.offset(i as isize * rsc) };
            for (j, x) in row.iter_mut().enumerate() {
                let mut v = alpha * *x;
                if beta != 0.0 {
                    // SAFETY: see above; beta != 0 so C may be read.
                    v += beta * unsafe { *c_row.add(j) };
                }
                match epi.bias {
                    TileBias::None => {}
                    // SAFETY: the caller guarantees MR floats at a Row bias, i < MR.
                    TileBias::Row(bias) => v += unsafe { *bias.add(i) },
                    // SAFETY: the caller guarantees NR floats at a Col bias, j < NR.
                    TileBias::Col(bias) => v += unsafe { *bias.add(j) },
                }
                if lo {
                    v = relu(v);
                }
                if let Some(hi) = hi {
                    v = below(v, hi);
                }
                *x = v;
            }
            for (j, x) in row.iter().enumerate() {
                // SAFETY: see above.
                unsafe { *c_row.add(j) = *x };
            }
        }
    }
}

/// `max(x, 0)`, NaN kept (as PyTorch's ReLU, and `_mm256_max_ps(0, x)`), so that a
/// diverging network shows NaN rather than zeros.
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `min(x, hi)`, NaN kept (as PyTorch's ReLU6, and `_mm256_min_ps(hi, x)`).
#[inline(always)]
fn below(x: f32, hi: f32) -> f32 {
    if x > hi {
        hi
    } else {
        x
    }
}

/// `min(max(x, 0), hi)`, NaN kept: the epilogue's clamp on one element.
#[inline(always)]
pub(crate) fn clamp(x: f32, hi: f32) -> f32 {
    below(relu(x), hi)
}
