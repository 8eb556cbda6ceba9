//! The data gradient of a stride-1 convolution computed as a forward convolution with the
//! flipped kernel (one implicit-im2col GEMM instead of a short GEMM and col2im).

use super::*;

/// Backward data of a stride-1 conv as a forward conv: `dX = conv(dY, W̃)` with padding
/// `d·(k-1) - p`, where `W̃[ci, o, i, j] = W[o, ci, kh-1-i, kw-1-j]` (per group). It replaces
/// a GEMM with a short reduction (k = out channels) followed by col2im with one implicit
/// im2col GEMM that writes dX directly. `W̃` lives at the end of the `col` buffer, the padded
/// dY (and, in the fused backward, the padded X) before it.
pub(super) struct DataAsConv {
    /// The geometry of the forward conv that computes dX.
    pub(super) gt: Conv2d,
    plan: Im2colPlan,
}

/// The forward conv that computes `g`'s data gradient, when the rewrite applies: `g` has
/// stride 1 and padding at most its reach.
pub(crate) fn transposed(g: &Conv2d) -> Option<Conv2d> {
    let (reach_h, reach_w) = (g.dh * (g.kh - 1), g.dw * (g.kw - 1));
    if g.is_pointwise() || g.sh != 1 || g.sw != 1 || g.ph > reach_h || g.pw > reach_w {
        return None;
    }
    Some(Conv2d {
        c: g.out,
        h: g.ho(),
        w: g.wo(),
        out: g.c,
        ph: reach_h - g.ph,
        pw: reach_w - g.pw,
        ..*g
    })
}

impl DataAsConv {
    /// The rewrite, when `g` is a stride-1 conv whose padding is at most its reach and
    /// `col_len` floats hold the flipped weights and the padded dY.
    pub(super) fn new(g: &Conv2d, col_len: usize) -> Option<DataAsConv> {
        let gt = transposed(g)?;
        let plan = Im2colPlan::new(&gt);
        (plan.padded_len() + g.weight_len() <= col_len).then_some(DataAsConv { gt, plan })
    }

    /// Splits `col` into the room before the flipped weights and the flipped weights,
    /// written from `w`.
    pub(super) fn flip<'c>(
        &self,
        g: &Conv2d,
        w: &[f32],
        col: &'c mut [f32],
    ) -> (&'c mut [f32], &'c [f32]) {
        let at = col.len() - g.weight_len();
        let (front, wt) = col.split_at_mut(at);
        let (og, cg, taps) = (g.og(), g.cg(), g.kh * g.kw);
        for grp in 0..g.groups {
            for o in 0..og {
                for ci in 0..cg {
                    let from = &w[((grp * og + o) * cg + ci) * taps..][..taps];
                    let to = &mut wt[((grp * cg + ci) * og + o) * taps..][..taps];
                    for (t, v) in to.iter_mut().rev().zip(from) {
                        *t = *v;
                    }
                }
            }
        }
        (front, wt)
    }

    /// `dX = beta·dX + conv(dY, W̃)` for every group of one image: the GEMM's beta, so 0
    /// overwrites `dxi` (without reading it) and 1 adds to it.
    pub(super) fn image(
        &self,
        g: &Conv2d,
        wt: &[f32],
        dyi: &[f32],
        dxi: &mut [f32],
        beta: f32,
        room: &mut [f32],
    ) {
        let (kt, p, cg) = (self.gt.col_rows(), g.h * g.w, g.cg());
        for grp in 0..g.groups {
            let xp = &mut room[..self.plan.padded_len()];
            pad_input(&self.gt, dyi, grp * g.og(), xp);
            let b = self.plan.source(xp, false);
            let wg = &wt[grp * cg * kt..(grp + 1) * cg * kt];
            let dxg = &mut dxi[grp * cg * p..(grp + 1) * cg * p];
            let epi = Epilogue::NONE;
            sgemm_source(
                cg,
                p,
                kt,
                1.0,
                wg,
                kt as isize,
                1,
                &b,
                beta,
                dxg,
                p as isize,
                epi,
            );
        }
    }
}
