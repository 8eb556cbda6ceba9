//! Max pooling over 2×2 windows with stride 2 (LeNet's, VGG's): each output is the largest
//! of two pairs from two rows. The general separable kernel spends its time on setting up
//! each plane's windows when planes are small (LeNet's 28×28 took 3 ns per input); this is
//! one pass over the outputs.

use super::Pool2d;

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

#[inline(always)]
fn plane_body<const ARG: bool>(p: &Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    let (w, wo) = (p.w, p.wo());
    for (oy, yr) in yp.chunks_exact_mut(wo).enumerate() {
        let (r0, r1) = (
            &xp[2 * oy * w..][..2 * wo],
            &xp[(2 * oy + 1) * w..][..2 * wo],
        );
        let base = (2 * oy * w) as u32;
        for (ox, y) in yr.iter_mut().enumerate() {
            let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            let (mut best, mut at) = (a, 0u32);
            if takes(b, best) {
                (best, at) = (b, 1);
            }
            if takes(c, best) {
                (best, at) = (c, w as u32);
            }
            if takes(d, best) {
                (best, at) = (d, w as u32 + 1);
            }
            *y = best;
            if ARG {
                ap[oy * wo + ox] = base + 2 * ox as u32 + at;
            }
        }
    }
}
