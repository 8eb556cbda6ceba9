//! The lane kernels: each transforms eight tiles at once, as arrays of eight `f32` that the
//! compiler turns into one AVX2 register each where the CPU has AVX2 (the `*_fast` wrappers,
//! compiled with `#[target_feature]`, chosen at run time) and into SSE pairs otherwise. Both
//! are the same source and the same arithmetic (no fused multiply-adds), so results do not
//! depend on the CPU.
//!
//! Loads are contiguous because each input row is first dealt into `m` column phases,
//! `P[s][q] = xpad[q·m + s]`: tap `j` of the tiles `tx..tx+8` is `P[j mod m][tx + j div m..]`.

use std::ops::Range;

use super::plan::Plan;
use super::transform::{two_d, Transform, L, LANES, ZERO};
use crate::im2col::Conv2d;
use crate::tensor::Slot;

/// Calls `$body::<T>(args)` compiled for AVX2 + FMA when the CPU has both, else as is.
macro_rules! dispatch {
    ($body:ident, $fast:ident, $t:ident, ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $fast<T: Transform>($($arg: $ty),*) {
            $body::<T>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above, cached by std); the
            // function is safe code otherwise.
            return unsafe { $fast::<$t>($($arg),*) };
        }
        $body::<$t>($($arg),*)
    }};
}

/// Eight floats from `src`, or the first `cnt` and zeros.
#[inline(always)]
fn load(src: &[f32], cnt: usize) -> L {
    if cnt == LANES {
        return src[..LANES].try_into().expect("eight lanes");
    }
    let mut l = ZERO;
    l[..cnt].copy_from_slice(&src[..cnt]);
    l
}

/// `min(max(v, 0), hi)` with NaN passed through, the identity without `hi` (the GEMM
/// epilogue's activation).
#[inline(always)]
fn clamp(v: f32, hi: Option<f32>) -> f32 {
    match hi {
        Some(_) if v < 0.0 => 0.0,
        Some(hi) if v > hi => hi,
        _ => v,
    }
}

/// Floats of the phase buffer the input kernel needs.
pub(super) fn input_buf_len(p: &Plan) -> usize {
    p.alpha * p.m * (p.tw_lanes() + 1)
}

/// Floats of the phase buffer the gradient kernel needs.
pub(super) fn grad_buf_len(p: &Plan) -> usize {
    p.m * p.m * p.tw_lanes()
}

/// `V[ξ][t] = (Bᵀ·d_t·B)[ξ]` for channel `ch` of `x` (images at `xs`, geometry `g`) and
/// every tile `t` of the tile rows `rows`; `v` is the channel's `α² × tb`.
#[allow(clippy::too_many_arguments)]
pub(super) fn input<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    xs: Slot,
    ch: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    v: &mut [f32],
) {
    dispatch!(input_body, input_fast, T, (g: &Conv2d, p: &Plan, x: &[f32], xs: Slot, ch: usize, rows: Range<usize>, buf: &mut [f32], v: &mut [f32]))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    xs: Slot,
    ch: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    v: &mut [f32],
) {
    let (m, a, tb) = (T::M, T::A, p.tb());
    let lw = p.tw_lanes() + 1;
    let plane = g.h * g.w;
    for r in rows.clone() {
        let (i, ty) = (r / p.th, r % p.th);
        let xp = &x[xs.image(i, g.c * plane)][ch * plane..][..plane];
        for ri in 0..a {
            let dst = &mut buf[ri * m * lw..][..m * lw];
            let iy = (ty * m + ri).wrapping_sub(g.ph);
            if iy >= g.h {
                dst.fill(0.0);
                continue;
            }
            let row = &xp[iy * g.w..][..g.w];
            for (s, phase) in dst.chunks_exact_mut(lw).enumerate() {
                for (q, d) in phase.iter_mut().enumerate() {
                    let ix = (q * m + s).wrapping_sub(g.pw);
                    *d = if ix < g.w { row[ix] } else { 0.0 };
                }
            }
        }
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            let d: [[L; 6]; 6] = std::array::from_fn(|ri| {
                std::array::from_fn(|j| {
                    if ri < a && j < a {
                        load(&buf[(ri * m + j % m) * lw + tx + j / m..], LANES)
                    } else {
                        ZERO
                    }
                })
            });
            let vv = two_d(&d, a, a, T::input);
            let cnt = LANES.min(p.tw - tx);
            for (ai, vr) in vv.iter().enumerate().take(a) {
                for (bj, l) in vr.iter().enumerate().take(a) {
                    let at = (ai * a + bj) * tb + t0 + tx;
                    v[at..at + cnt].copy_from_slice(&l[..cnt]);
                }
            }
        }
    }
}

/// Output plane `plane` (channel `o`'s `ho × wo` of image `i`, geometry `g`) from `mo`,
/// channel `o`'s `α² × tb` of the block `rows`: `y = act(Aᵀ·M·A + beta·y + bias)` on the
/// tiles of image `i`.
#[allow(clippy::too_many_arguments)]
pub(super) fn output<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    mo: &[f32],
    rows: Range<usize>,
    i: usize,
    plane: &mut [f32],
    bias: f32,
    hi: Option<f32>,
    beta: f32,
) {
    dispatch!(output_body, output_fast, T, (g: &Conv2d, p: &Plan, mo: &[f32], rows: Range<usize>, i: usize, plane: &mut [f32], bias: f32, hi: Option<f32>, beta: f32))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    mo: &[f32],
    rows: Range<usize>,
    i: usize,
    plane: &mut [f32],
    bias: f32,
    hi: Option<f32>,
    beta: f32,
) {
    let (m, a, tb) = (T::M, T::A, p.tb());
    let (ho, wo) = (g.ho(), g.wo());
    for r in rows.clone().filter(|r| r / p.th == i) {
        let ty = r % p.th;
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            let cnt = LANES.min(p.tw - tx);
            let mm: [[L; 6]; 6] = std::array::from_fn(|ai| {
                std::array::from_fn(|bj| {
                    if ai < a && bj < a {
                        load(&mo[(ai * a + bj) * tb + t0 + tx..], cnt)
                    } else {
                        ZERO
                    }
                })
            });
            let yy = two_d(&mm, a, m, T::output);
            for (ii, yr) in yy.iter().enumerate().take(m) {
                let oy = ty * m + ii;
                if oy >= ho {
                    break;
                }
                let row = &mut plane[oy * wo..][..wo];
                for k in 0..cnt {
                    for (j, l) in yr.iter().enumerate().take(m) {
                        let ox = (tx + k) * m + j;
                        if ox < wo {
                            // As the GEMM's epilogue orders it: the product, plus y, plus
                            // the bias, then the clamp.
                            let s = if beta != 0.0 { l[k] + row[ox] } else { l[k] };
                            row[ox] = clamp(s + bias, hi);
                        }
                    }
                }
            }
        }
    }
}

/// `dM[ξ][t] = (A·dY_t·Aᵀ)[ξ]` for output channel `o` of `dy` (images at `dys`) and every
/// tile `t` of the tile rows `rows`; `dm` is the channel's `α² × tb`. Outputs past the map
/// are zeros.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    dy: &[f32],
    dys: Slot,
    o: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dm: &mut [f32],
) {
    dispatch!(grad_body, grad_fast, T, (g: &Conv2d, p: &Plan, dy: &[f32], dys: Slot, o: usize, rows: Range<usize>, buf: &mut [f32], dm: &mut [f32]))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    dy: &[f32],
    dys: Slot,
    o: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dm: &mut [f32],
) {
    let (m, a, tb) = (T::M, T::A, p.tb());
    let (ho, wo) = (g.ho(), g.wo());
    let lw = p.tw_lanes();
    for r in rows.clone() {
        let (i, ty) = (r / p.th, r % p.th);
        let dyp = &dy[dys.image(i, g.out * ho * wo)][o * ho * wo..][..ho * wo];
        for ii in 0..m {
            let dst = &mut buf[ii * m * lw..][..m * lw];
            let oy = ty * m + ii;
            if oy >= ho {
                dst.fill(0.0);
                continue;
            }
            let row = &dyp[oy * wo..][..wo];
            for (j, phase) in dst.chunks_exact_mut(lw).enumerate() {
                for (q, d) in phase.iter_mut().enumerate() {
                    let ox = q * m + j;
                    *d = if ox < wo { row[ox] } else { 0.0 };
                }
            }
        }
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            let d: [[L; 6]; 6] = std::array::from_fn(|ii| {
                std::array::from_fn(|j| {
                    if ii < m && j < m {
                        load(&buf[(ii * m + j) * lw + tx..], LANES)
                    } else {
                        ZERO
                    }
                })
            });
            let zz = two_d(&d, m, a, T::grad);
            let cnt = LANES.min(p.tw - tx);
            for (ai, zr) in zz.iter().enumerate().take(a) {
                for (bj, l) in zr.iter().enumerate().take(a) {
                    let at = (ai * a + bj) * tb + t0 + tx;
                    dm[at..at + cnt].copy_from_slice(&l[..cnt]);
                }
            }
        }
    }
}

/// Row `r` of the transformed weights, `u[ξ][col] = (G·g·Gᵀ)[ξ]` for the `rows × cols`
/// kernels `g`: `w[r, col]`, or with `flip` the kernel of the data gradient, `w[col, r]`
/// turned by 180° (`w` is then `cols × rows` kernels of 3×3).
pub(super) fn weights<T: Transform>(
    w: &[f32],
    flip: bool,
    rows: usize,
    cols: usize,
    r: usize,
    u: &mut [f32],
) {
    dispatch!(weights_body, weights_fast, T, (w: &[f32], flip: bool, rows: usize, cols: usize, r: usize, u: &mut [f32]))
}

#[inline(always)]
fn weights_body<T: Transform>(
    w: &[f32],
    flip: bool,
    rows: usize,
    cols: usize,
    r: usize,
    u: &mut [f32],
) {
    let a = T::A;
    for c0 in (0..cols).step_by(LANES) {
        let cnt = LANES.min(cols - c0);
        let tap = |k: usize, l: usize| -> f32 {
            if l >= cnt {
                return 0.0;
            }
            let col = c0 + l;
            if flip {
                w[(col * rows + r) * 9 + 8 - k]
            } else {
                w[(r * cols + col) * 9 + k]
            }
        };
        let gg: [[L; 6]; 6] = std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                if i < 3 && j < 3 {
                    std::array::from_fn(|l| tap(i * 3 + j, l))
                } else {
                    ZERO
                }
            })
        });
        let uu = two_d(&gg, 3, a, T::kernel);
        for (ai, ur) in uu.iter().enumerate().take(a) {
            for (bj, l) in ur.iter().enumerate().take(a) {
                let at = (ai * a + bj) * cols + c0;
                u[at..at + cnt].copy_from_slice(&l[..cnt]);
            }
        }
    }
}

/// `dw[col] = Gᵀ·dU[·][col]·G` for the `cols` kernels of one output channel: `du` is its
/// `α² × cols`, `dw` its `cols × 9`.
pub(super) fn weight_grad<T: Transform>(du: &[f32], cols: usize, dw: &mut [f32]) {
    dispatch!(weight_grad_body, weight_grad_fast, T, (du: &[f32], cols: usize, dw: &mut [f32]))
}

#[inline(always)]
fn weight_grad_body<T: Transform>(du: &[f32], cols: usize, dw: &mut [f32]) {
    let a = T::A;
    for c0 in (0..cols).step_by(LANES) {
        let cnt = LANES.min(cols - c0);
        let dd: [[L; 6]; 6] = std::array::from_fn(|ai| {
            std::array::from_fn(|bj| {
                if ai < a && bj < a {
                    load(&du[(ai * a + bj) * cols + c0..], cnt)
                } else {
                    ZERO
                }
            })
        });
        let gg = two_d(&dd, a, 3, T::kernel_grad);
        for l in 0..cnt {
            let k = &mut dw[(c0 + l) * 9..][..9];
            for i in 0..3 {
                for j in 0..3 {
                    k[i * 3 + j] = gg[i][j][l];
                }
            }
        }
    }
}
