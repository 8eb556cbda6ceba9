//! Depthwise convolutions with eight channels in each vector.
//!
//! The row kernels (`rows.rs`) vectorize along an output row and pay per plane: padding the
//! plane into phases, then rows of 7 or 14 outputs in vectors of 8 or 16. On MobileNetV2's
//! 7×7 and 14×14 maps that cost ~120 ns a plane, 4–8× onnxruntime's layers, whose kernels
//! keep eight channels in each vector (NCHWc). Here each block of eight channels is turned
//! into one zero-padded plane of 8-channel pixels (an 8×8 transpose per eight pixels), every
//! output pixel sums its taps as one vector each, and the sums are turned back into planes
//! with the epilogue. The work per tap is one load and one FMA whatever the map's width or
//! stride, and borders need no care.
//!
//! Each output sums its taps in the row kernels' order (row by row of the kernel, from
//! zero, padding taps included), and the epilogue is theirs, so the results are bitwise
//! those of `rows.rs`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
pub(super) use crate::gemm::avx2::transpose8 as transpose;

use super::{for_each, with_scratch, Conv2d};
use crate::gemm::Act;
use crate::tensor::Slot;

/// Channels in a vector.
const L: usize = 8;
/// Output pixels of one row summed together: eight chains of FMAs in flight.
const P: usize = 8;
/// The largest input plane taken: eight channels of it, padded, are the scratch of each
/// thread (MobileNetV2's 112×112 maps take 416 KB). Against the row kernels, one thread, a
/// batch of 8: 2.2–2.6× on 7×7 maps, 1.2–1.4× on 14×14, level to 1.4× on 28×28 to 112×112
/// (5×5 kernels gain most), 1.4–2.9× at stride 2; forward and backward, 1.2–2.0× (`netc
/// bench conv 8 C H W C 3 S 1 --groups C --threads 1`).
const MAX_PLANE: usize = 128 * 128;

/// Whether `g` is computed here: a depthwise conv (one input and one output per group) of
/// whole blocks of eight channels on a map of at most [`MAX_PLANE`] pixels, on a CPU with
/// AVX2 and FMA.
pub(super) fn applies(g: &Conv2d) -> bool {
    g.groups == g.c
        && g.out == g.c
        && g.c.is_multiple_of(L)
        && g.h * g.w <= MAX_PLANE
        && crate::gemm::avx2::is_available()
}

/// Where things lie in a block's scratch, in floats, and the padded place of every input
/// pixel: the same for every block of a call.
struct Layout {
    /// Padded width in pixels.
    wp: usize,
    /// Padded pixels, then room for the last block of a row to read past the map.
    padded: usize,
    /// The padded pixel of input pixel `q` (row-major in the plane).
    pos: Vec<usize>,
}

impl Layout {
    fn new(g: &Conv2d) -> Layout {
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let pos = (0..g.h * g.w)
            .map(|q| (q / g.w + g.ph) * wp + q % g.w + g.pw)
            .collect();
        Layout {
            wp,
            padded: hp * wp + P * g.sw + g.kw * g.dw,
            pos,
        }
    }

    /// Floats of scratch: the padded pixels, and room to align them.
    fn len(&self) -> usize {
        L * self.padded + 16
    }
}

/// `y = act(conv(x, w) + bias + beta·y)` at `ys` of `y`, `beta` 0 or 1, as
/// `direct::forward` (the caller checked [`applies`]); image `i` of `x` at `xs`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    xs: Slot,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
) {
    let (plane, p) = (g.h * g.w, g.ho() * g.wo());
    let taps = g.kh * g.kw;
    let lay = Layout::new(g);
    let macs = g.out * p * taps;
    // The weights of each block of eight channels as one vector per tap, once per call.
    let wt = by_tap(w, g.c, taps);
    let hi = act.clamp_hi();
    for i in 0..n {
        let xi = &x[xs.image(i, g.c * plane)];
        let yi = &mut y[ys.image(i, g.out * p)];
        for_each(yi, L * p, macs, |blk, yb| {
            let c0 = blk * L;
            let b = bias.map(|b| &b[c0..c0 + L]);
            let xb = &xi[c0 * plane..(c0 + L) * plane];
            let wb = &wt[c0 * taps..(c0 + L) * taps];
            with_scratch(lay.len(), |s| {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `applies` checked that this CPU has AVX2 and FMA, which is all
                // `block` needs beyond its slices.
                unsafe {
                    block(g, &lay, xb, wb, b, hi, beta, yb, s)
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (xb, wb, b, hi, yb, s);
                    unreachable!("channels::applies is false off x86_64");
                }
            })
        });
    }
}

/// The weights `w` (`c × taps`) of each block of eight channels as one vector per tap.
fn by_tap(w: &[f32], c: usize, taps: usize) -> Vec<f32> {
    let mut wt = vec![0.0f32; c * taps];
    for (blk, wt) in wt.chunks_exact_mut(L * taps).enumerate() {
        for k in 0..taps {
            for l in 0..L {
                wt[L * k + l] = w[(blk * L + l) * taps + k];
            }
        }
    }
    wt
}

/// A vector of eight floats from `s[at..]`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load(s: &[f32], at: usize) -> __m256 {
    let s = &s[at..at + L];
    // SAFETY: `s` holds the eight floats read (checked by the slicing above).
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Stores `v` into `s[at..at + 8]`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store(s: &mut [f32], at: usize, v: __m256) {
    let s = &mut s[at..at + L];
    // SAFETY: `s` holds the eight floats written (checked by the slicing above).
    unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
}

/// `len` floats of `s` from a 32-byte boundary: a vector across two cache lines costs two
/// loads. (Scratch has `L` floats of room for it.)
fn aligned(s: &mut [f32], len: usize) -> &mut [f32] {
    let skip = s.as_ptr().align_offset(32).min(L);
    &mut s[skip..skip + len]
}

/// Pixel `q` of eight planes `src` (each `plane` long) as one 8-channel pixel at `L·at(q)`
/// of `dst`, eight pixels at a time through a transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn to_pixels(src: &[f32], plane: usize, at: impl Fn(usize) -> usize, dst: &mut [f32]) {
    let full = plane / L * L;
    for q in (0..full).step_by(L) {
        let rows = std::array::from_fn(|l| load(src, l * plane + q));
        for (j, v) in transpose(rows).into_iter().enumerate() {
            store(dst, L * at(q + j), v);
        }
    }
    for q in full..plane {
        for l in 0..L {
            dst[L * at(q) + l] = src[l * plane + q];
        }
    }
}

/// Planes `xb` (8 × h × w) as one zero-padded plane of 8-channel pixels, `Layout::padded`
/// of them, aligned in `s`; returns them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pad_pixels<'s>(g: &Conv2d, lay: &Layout, xb: &[f32], s: &'s mut [f32]) -> &'s mut [f32] {
    let (wp, hp) = (lay.wp, g.h + 2 * g.ph);
    let tp = aligned(s, L * lay.padded);
    // The padding: every padded pixel the interior does not overwrite, and the room after.
    let zero = _mm256_setzero_ps();
    for r in 0..hp {
        let inside = r >= g.ph && r < g.ph + g.h;
        let (a, b) = if inside { (g.pw, g.pw + g.w) } else { (wp, wp) };
        for c in (0..a).chain(b..wp) {
            store(tp, L * (r * wp + c), zero);
        }
    }
    for q in hp * wp..lay.padded {
        store(tp, L * q, zero);
    }
    to_pixels(xb, g.h * g.w, |q| lay.pos[q], tp);
    tp
}

/// Channels `c0..c0 + 8` of one image: planes `xb` (8 × h × w) and weights `wt` (taps × 8)
/// into output planes `yb` (8 × ho × wo), through scratch `s`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
fn block(
    g: &Conv2d,
    lay: &Layout,
    xb: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    hi: Option<f32>,
    beta: f32,
    yb: &mut [f32],
    s: &mut [f32],
) {
    let (taps, wp, hp) = (g.kh * g.kw, lay.wp, g.h + 2 * g.ph);
    let tp = pad_pixels(g, lay, xb, s);
    let zero = _mm256_setzero_ps();
    // Sums, P = 8 pixels of a row at a time, turned back into eight channels' rows and
    // stored with the epilogue; a row's last block stores only the pixels it has.
    let (ho, wo) = (g.ho(), g.wo());
    let p = ho * wo;
    // The last float any block reads, as `Layout` made room for: row `(ho-1)·sh +
    // (kh-1)·dh < hp`, column `(wo-1)·sw + (kw-1)·dw < wp`, then `P - 1` pixels on.
    let last = L * ((hp - 1) * wp + wp - 1 + (P - 1) * g.sw) + L;
    assert!(last <= tp.len() && L * taps <= wt.len() && yb.len() == L * p);
    let (step, tp, wt) = (L * g.sw, tp.as_ptr(), wt.as_ptr());
    let b: [f32; L] = bias.map_or([0.0; L], |b| b.try_into().expect("eight biases"));
    let b = b.map(|v| _mm256_set1_ps(v));
    let hi = hi.map(|v| _mm256_set1_ps(v));
    for oy in 0..ho {
        for ox0 in (0..wo).step_by(P) {
            let mut acc = [zero; P];
            for ki in 0..g.kh {
                let row = (oy * g.sh + ki * g.dh) * wp + ox0 * g.sw;
                for kj in 0..g.kw {
                    let at = L * (row + kj * g.dw);
                    // SAFETY: tap `(ki, kj)` of pixels `ox0..ox0 + P` of row `oy` reads
                    // floats up to `last` of `tp` (asserted above), its weights the `L`
                    // floats of tap `ki·kw + kj` of `wt`.
                    unsafe {
                        let wv = _mm256_loadu_ps(wt.add(L * (ki * g.kw + kj)));
                        let src = tp.add(at);
                        for (j, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src.add(j * step)), *a);
                        }
                    }
                }
            }
            // Pixels `ox0..ox0 + k` of the row are the block's. A short block is stored
            // whole where its extra lanes land on later rows of its plane, which those rows
            // then overwrite; else (at the plane's end, or when the lanes would be read as
            // `y`) through a copy. (Masked stores are slow on AMD's cores: they made this
            // 1.5× slower.)
            let k = (wo - ox0).min(P);
            let whole = k == P || (beta == 0.0 && oy * wo + ox0 + P <= p);
            for (l, v) in transpose(acc).into_iter().enumerate() {
                let at = l * p + oy * wo + ox0;
                let mut tmp = [0.0f32; P];
                if !whole && beta != 0.0 {
                    for (t, &y) in tmp.iter_mut().zip(&yb[at..at + k]) {
                        *t = y;
                    }
                }
                let out: &mut [f32] = if whole { &mut yb[at..at + P] } else { &mut tmp };
                let mut v = v;
                if beta != 0.0 {
                    v = _mm256_add_ps(load(out, 0), v);
                }
                v = _mm256_add_ps(v, b[l]);
                if let Some(hi) = hi {
                    // `max(0, v)` and `min(hi, v)` return `v` when it is NaN, as the
                    // selects of `rows::finish` do.
                    v = _mm256_min_ps(hi, _mm256_max_ps(zero, v));
                }
                store(out, 0, v);
                if !whole {
                    for (y, &t) in yb[at..at + k].iter_mut().zip(&tmp) {
                        *y = t;
                    }
                }
            }
        }
    }
}

mod backward;

pub(super) use backward::{backward_data, backward_weight};

#[cfg(test)]
mod tests;
