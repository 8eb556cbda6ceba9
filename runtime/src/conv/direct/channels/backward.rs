//! The depthwise gradients with eight channels in each vector: the data gradient as the
//! forward conv of the output gradients with the kernels turned around (stride 1), or
//! scattered onto padded pixels (strides); the weight gradient as one vector per tap
//! summed over the pixels.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::super::{for_each, with_scratch, Conv2d};
use super::{aligned, applies, by_tap, forward, Layout, L};
#[cfg(target_arch = "x86_64")]
use super::{load, pad_pixels, store, to_pixels, transpose};
use crate::gemm::Act;
use crate::tensor::Slot;

/// `dx = beta·dx + ∂L/∂x` given `dy` at `dys`, as `direct::backward_data`. With stride 1
/// and padding within the kernel's reach (`p ≤ d·(k-1)`, as usual), `dx` is the forward
/// conv of `dy` with each channel's kernel turned around, padded by `d·(k-1) - p`; else
/// each output pixel's gradient is scattered onto the padded input pixels its taps read.
#[allow(clippy::too_many_arguments)]
pub(in crate::conv::direct) fn backward_data(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    beta: f32,
) {
    let (rh, rw) = (g.dh * (g.kh - 1), g.dw * (g.kw - 1));
    let taps = g.kh * g.kw;
    if (g.sh, g.sw) == (1, 1) && g.ph <= rh && g.pw <= rw {
        let t = Conv2d {
            h: g.ho(),
            w: g.wo(),
            ph: rh - g.ph,
            pw: rw - g.pw,
            ..*g
        };
        if applies(&t) && (t.ho(), t.wo()) == (g.h, g.w) {
            let flipped: Vec<f32> = w
                .chunks_exact(taps)
                .flat_map(|wc| wc.iter().rev().copied())
                .collect();
            let dxs = Slot::dense(g.c * g.h * g.w);
            return forward(&t, n, dy, dys, &flipped, None, Act::None, dx, dxs, beta);
        }
    }
    let (plane, p) = (g.h * g.w, g.ho() * g.wo());
    let lay = Layout::new(g);
    let wt = by_tap(w, g.c, taps);
    let macs = g.out * p * taps;
    for i in 0..n {
        let dyi = &dy[dys.image(i, g.out * p)];
        let dxi = &mut dx[i * g.c * plane..(i + 1) * g.c * plane];
        for_each(dxi, L * plane, macs, |blk, dxb| {
            let c0 = blk * L;
            let dyb = &dyi[c0 * p..(c0 + L) * p];
            let wb = &wt[c0 * taps..(c0 + L) * taps];
            with_scratch(lay.len() + L * (p + 1), |s| {
                let (tp, dyt) = s.split_at_mut(lay.len());
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `applies` checked that this CPU has AVX2 and FMA, which is all
                // `scatter_block` needs beyond its slices.
                unsafe {
                    scatter_block(g, &lay, dyb, wb, beta, dxb, tp, dyt)
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (dyb, wb, dxb, tp, dyt);
                    unreachable!("channels::applies is false off x86_64");
                }
            })
        });
    }
}

/// `dw = ∂L/∂w` given `dy` at `dys` (overwritten), as `direct::backward_weight`: for each
/// block of eight channels, each tap's sum over an image's output pixels in one vector,
/// the images' sums added in order (so the result does not depend on the thread count).
#[allow(clippy::too_many_arguments)]
pub(in crate::conv::direct) fn backward_weight(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
) {
    let (plane, p, taps) = (g.h * g.w, g.ho() * g.wo(), g.kh * g.kw);
    let lay = Layout::new(g);
    let macs = n * g.out * p * taps;
    // Each block's sums as one vector per tap, then into `dw`'s channel-major order.
    let mut sums = vec![0.0f32; g.c * taps];
    for_each(&mut sums, L * taps, macs, |blk, sb| {
        let c0 = blk * L;
        with_scratch(lay.len() + L * (p + 1), |s| {
            let (tp, dyt) = s.split_at_mut(lay.len());
            for i in 0..n {
                let xb = &x[i * g.c * plane..][c0 * plane..(c0 + L) * plane];
                let dyb = &dy[dys.image(i, g.out * p)][c0 * p..(c0 + L) * p];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `applies` checked that this CPU has AVX2 and FMA, which is all
                // `weight_block` needs beyond its slices.
                unsafe {
                    weight_block(g, &lay, xb, dyb, sb, tp, dyt)
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (xb, dyb, sb, tp, dyt);
                    unreachable!("channels::applies is false off x86_64");
                }
            }
        })
    });
    for (blk, sb) in sums.chunks_exact(L * taps).enumerate() {
        for k in 0..taps {
            for l in 0..L {
                dw[(blk * L + l) * taps + k] = sb[L * k + l];
            }
        }
    }
}

/// Adds one image's weight gradient of channels `c0..c0 + 8` into `sums` (one vector per
/// tap): planes `xb` (8 × h × w) and output gradients `dyb` (8 × ho × wo), through
/// scratch `tp` (the padded pixels) and `dyt` (the gradients as 8-channel pixels).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
fn weight_block(
    g: &Conv2d,
    lay: &Layout,
    xb: &[f32],
    dyb: &[f32],
    sums: &mut [f32],
    tp: &mut [f32],
    dyt: &mut [f32],
) {
    let (ho, wo, wp) = (g.ho(), g.wo(), lay.wp);
    let p = ho * wo;
    let tp = pad_pixels(g, lay, xb, tp);
    let dyt = aligned(dyt, L * p);
    to_pixels(dyb, p, |q| q, dyt);
    // Taps nine at a time (a 3×3 kernel's, all in registers: a fixed count, so that the
    // compiler unrolls them), each summed over the image's pixels in order, then added to
    // the total. A last group of fewer than nine repeats tap 0 and drops those sums.
    let taps: Vec<usize> = (0..g.kh)
        .flat_map(|ki| (0..g.kw).map(move |kj| ki * g.dh * wp + kj * g.dw))
        .collect();
    // The last float any tap of any pixel reads.
    let last = L * ((ho - 1) * g.sh * wp + (wo - 1) * g.sw + taps.iter().max().unwrap_or(&0)) + L;
    assert!(last <= tp.len() && dyt.len() == L * p);
    let (tp, dyt) = (tp.as_ptr(), dyt.as_ptr());
    for (t0, chunk) in taps.chunks(9).enumerate() {
        let offs: [usize; 9] = std::array::from_fn(|k| L * chunk.get(k).copied().unwrap_or(0));
        let mut acc = [_mm256_setzero_ps(); 9];
        for oy in 0..ho {
            for ox in 0..wo {
                let at = L * (oy * g.sh * wp + ox * g.sw);
                // SAFETY: pixel `(oy, ox)` of `dyt` is within it, and its taps read `tp` up
                // to `last` (both asserted above).
                unsafe {
                    let d = _mm256_loadu_ps(dyt.add(L * (oy * wo + ox)));
                    let src = tp.add(at);
                    for (a, &o) in acc.iter_mut().zip(&offs) {
                        *a = _mm256_fmadd_ps(d, _mm256_loadu_ps(src.add(o)), *a);
                    }
                }
            }
        }
        for (k, a) in acc.iter().take(chunk.len()).enumerate() {
            let at = L * (9 * t0 + k);
            store(sums, at, _mm256_add_ps(load(sums, at), *a));
        }
    }
}

/// One image's data gradient of channels `c0..c0 + 8`: output gradients `dyb` (8 × ho ×
/// wo) scattered through weights `wt` (taps × 8) onto zero-padded pixels `tp`, whose
/// interior then goes into planes `dxb` (8 × h × w) as `dx = beta·dx + ∂L/∂x`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
fn scatter_block(
    g: &Conv2d,
    lay: &Layout,
    dyb: &[f32],
    wt: &[f32],
    beta: f32,
    dxb: &mut [f32],
    tp: &mut [f32],
    dyt: &mut [f32],
) {
    let (ho, wo, wp, taps) = (g.ho(), g.wo(), lay.wp, g.kh * g.kw);
    let (plane, p) = (g.h * g.w, ho * wo);
    let dyt = aligned(dyt, L * p);
    to_pixels(dyb, p, |q| q, dyt);
    let tp = aligned(tp, L * lay.padded);
    let zero = _mm256_setzero_ps();
    for q in 0..lay.padded {
        store(tp, L * q, zero);
    }
    let offs: Vec<usize> = (0..g.kh)
        .flat_map(|ki| (0..g.kw).map(move |kj| L * (ki * g.dh * wp + kj * g.dw)))
        .collect();
    // The last float any tap of any pixel writes.
    let last = L * ((ho - 1) * g.sh * wp + (wo - 1) * g.sw) + offs.iter().max().unwrap_or(&0) + L;
    assert!(last <= tp.len() && dyt.len() == L * p && wt.len() == L * taps);
    let (dst, wt) = (tp.as_mut_ptr(), wt.as_ptr());
    for oy in 0..ho {
        for ox in 0..wo {
            let d = load(dyt, L * (oy * wo + ox));
            let at = L * (oy * g.sh * wp + ox * g.sw);
            for (k, &o) in offs.iter().enumerate() {
                // SAFETY: tap `k` of pixel `(oy, ox)` writes below `last` of `tp`, and its
                // weights are the `L` floats of tap `k` of `wt` (both asserted above).
                unsafe {
                    let t = dst.add(at + o);
                    let v = _mm256_fmadd_ps(_mm256_loadu_ps(wt.add(L * k)), d, _mm256_loadu_ps(t));
                    _mm256_storeu_ps(t, v);
                }
            }
        }
    }
    // The interior back into planes, eight pixels at a time.
    let full = plane / L * L;
    for q in (0..full).step_by(L) {
        let px = std::array::from_fn(|j| load(tp, L * lay.pos[q + j]));
        for (l, v) in transpose(px).into_iter().enumerate() {
            let at = l * plane + q;
            let v = if beta != 0.0 {
                _mm256_add_ps(load(dxb, at), v)
            } else {
                v
            };
            store(dxb, at, v);
        }
    }
    for q in full..plane {
        for l in 0..L {
            let at = l * plane + q;
            let v = tp[L * lay.pos[q] + l];
            dxb[at] = if beta != 0.0 { dxb[at] + v } else { v };
        }
    }
}
