//! Max pooling over 2×2 windows with stride 2 (LeNet's, VGG's): each output is the largest
//! of two pairs from two rows. The general separable kernel spends its time on setting up
//! each plane's windows when planes are small (LeNet's 28×28 took 3 ns per input); this is
//! one pass over the outputs.

use super::{blend, replaces, Pool2d};

/// Whether every window of `p` is a whole 2×2 block of the input.
pub(super) fn applies(p: &Pool2d) -> bool {
    (p.kh, p.kw, p.sh, p.sw, p.ph, p.pw) == (2, 2, 2, 2, 0, 0)
        && 2 * p.ho() <= p.h
        && 2 * p.wo() <= p.w
}

/// One plane `xp` (`h × w`) into `yp` (`ho × wo`) and, if `ARG`, the index in the plane of
/// each maximum into `ap`: the first maximum in row-major order, a NaN winning (the last),
/// as `max_window` decides.
pub(super) fn plane<const ARG: bool>(p: &Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the function is safe code otherwise.
        return unsafe { plane_avx2::<ARG>(p, xp, yp, ap) };
    }
    plane_body::<ARG>(p, xp, yp, ap);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn plane_avx2<const ARG: bool>(p: &Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    plane_body::<ARG>(p, xp, yp, ap);
}

/// Whether `v` replaces `best`: greater, or NaN.
#[inline(always)]
fn takes(v: f32, best: f32) -> bool {
    v > best || v.is_nan()
}

/// The values alone (inference): without the offsets the compiler vectorizes the plain rule
/// (0.05 ms on LeNet's first pool at batch 64, against 0.19 through the blocks below).
#[inline(always)]
fn values(p: &Pool2d, xp: &[f32], yp: &mut [f32]) {
    let (w, wo) = (p.w, p.wo());
    for (oy, yr) in yp.chunks_exact_mut(wo).enumerate() {
        let (r0, r1) = (
            &xp[2 * oy * w..][..2 * wo],
            &xp[(2 * oy + 1) * w..][..2 * wo],
        );
        for (ox, y) in yr.iter_mut().enumerate() {
            let mut best = r0[2 * ox];
            for v in [r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]] {
                if takes(v, best) {
                    best = v;
                }
            }
            *y = best;
        }
    }
}

/// Outputs per block.
const L: usize = 8;

/// Which element of a window wins is data, fresh every step in a network, so the choices are
/// made eight outputs at a time with masks and blends in vector registers: scalar code, even
/// written with selects, compiled to branches, which ran LeNet's second pool (2×2 on
/// 16×10×10, batch 64) at 290 µs inside the network, while a benchmark repeating one input
/// trained the branch predictor down to 85 µs. Each block gathers its windows (any row
/// length, so 5-wide rows too), then compares lane by lane in the scalar rule's order.
#[inline(always)]
fn plane_body<const ARG: bool>(p: &Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    if !ARG {
        return values(p, xp, yp);
    }
    let (w, wo) = (p.w, p.wo());
    let outs = yp.len();
    let (mut oy, mut ox) = (0, 0);
    let mut k = 0;
    while k < outs {
        let cnt = L.min(outs - k);
        let mut win = [[f32::NEG_INFINITY; L]; 4];
        let mut base = [0u32; L];
        for l in 0..cnt {
            let o = 2 * oy * w + 2 * ox;
            let (r0, r1) = (&xp[o..o + 2], &xp[o + w..o + w + 2]);
            (win[0][l], win[1][l], win[2][l], win[3][l]) = (r0[0], r0[1], r1[0], r1[1]);
            base[l] = o as u32;
            ox += 1;
            if ox == wo {
                (oy, ox) = (oy + 1, 0);
            }
        }
        // The window's elements in order, each replacing the best so far when greater or
        // NaN; `off` its offset from the window's first element (0, 1, w, w + 1).
        let offs = [0u32, 1, w as u32, w as u32 + 1];
        let (mut best, mut at) = (win[0], [0u32; L]);
        for (e, &off) in offs.iter().enumerate().skip(1) {
            let v = &win[e];
            for l in 0..L {
                let m = replaces(v[l], best[l]);
                best[l] = blend(m, v[l], best[l]);
                at[l] = off & m | at[l] & !m;
            }
        }
        yp[k..k + cnt].copy_from_slice(&best[..cnt]);
        for (a, (&b, &o)) in ap[k..k + cnt].iter_mut().zip(base.iter().zip(&at)) {
            *a = b + o;
        }
        k += cnt;
    }
}
