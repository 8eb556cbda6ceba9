//! Convolution as im2col + GEMM, forward and backward, per image and per group.
//!
//! With `K = c/groups·kh·kw` and `P = ho·wo`, for image `i` and group `g`:
//! - forward:         `Y[i,g] (og×P) = W[g] (og×K) · col(X[i,g]) (K×P) + b`
//! - backward, data:  `dX[i,g] = col2im(W[g]ᵀ (K×og) · dY[i,g] (og×P))`
//! - backward, weight: `dW[g] = Σ_i dY[i,g] (og×P) · col(X[i,g])ᵀ (P×K)`, `db = Σ_i,p dY`
//!
//! A 1×1 stride-1 unpadded conv skips im2col: its input already is the `K×P` operand. Tensors
//! are NCHW, weights `[out, c/groups, kh, kw]` (PyTorch's layouts). Gradients are written,
//! except by the `_acc` forms of backward data, which add `dX` to the gradient buffer (where a
//! value fans out, each consumer adds its part): through the GEMM's `beta = 1` where the GEMM
//! writes `dX`, by skipping the zero fill where col2im adds into it. Work is split inside the
//! GEMMs over output rows and columns only, and images are summed in order, so results do not
//! depend on the thread count.

use crate::gemm::{sgemm, sgemm_source, Act, Epilogue};
pub use crate::im2col::Conv2d;
use crate::im2col::{col2im, im2col, pad_input, Im2colPlan};
use crate::tensor::Slot;
pub use merged::{
    conv1x1_merged_backward, conv1x1_merged_backward_acc, conv1x1_merged_forward,
    conv1x1_merged_forward_act, merged_col_len,
};

mod merged;

/// Checks the lengths of a call: `x` dense, `y` (or `dy`) at `ys`, or dense when `None`.
fn check_lens(g: &Conv2d, n: usize, x: usize, w: usize, y: usize, ys: Option<Slot>, col: usize) {
    g.check();
    assert_eq!(x, n * g.c * g.h * g.w, "conv: input length for {g:?}");
    assert_eq!(w, g.weight_len(), "conv: weight length for {g:?}");
    let len = g.out * g.ho() * g.wo();
    match ys {
        None => assert_eq!(y, n * len, "conv: output length for {g:?}"),
        Some(ys) => ys.check(n, len, y, "conv: output"),
    }
    assert!(col >= g.col_len(), "conv: col buffer too short for {g:?}");
}

/// The im2col operand of group `grp` of one image `xi`: the input itself for a pointwise
/// conv, else `col` after im2col.
fn operand<'a>(g: &Conv2d, xi: &'a [f32], grp: usize, col: &'a mut [f32]) -> &'a [f32] {
    let (k, p, cg) = (g.col_rows(), g.ho() * g.wo(), g.cg());
    if g.is_pointwise() {
        &xi[grp * cg * p..(grp + 1) * cg * p]
    } else {
        im2col(g, xi, grp * cg, col);
        &col[..k * p]
    }
}

/// The tables of the implicit im2col (the GEMM packs col straight from a padded copy of the
/// input, which lives in the `col` buffer), when it applies: not a pointwise conv, unit
/// stride along the width (where panels are runs of the input), and `col` has room.
fn implicit_plan(g: &Conv2d, col_len: usize) -> Option<Im2colPlan> {
    if g.is_pointwise() || g.sw != 1 {
        return None;
    }
    let plan = Im2colPlan::new(g);
    (plan.padded_len() <= col_len).then_some(plan)
}

/// `dW[g] = beta·dW[g] + dY[g]·col(X[g])ᵀ` for every group of one image.
fn weight_grad_image(
    g: &Conv2d,
    plan: Option<&Im2colPlan>,
    xi: &[f32],
    dyi: &[f32],
    dw: &mut [f32],
    beta: f32,
    col: &mut [f32],
) {
    let (k, p, og) = (g.col_rows(), g.ho() * g.wo(), g.og());
    for grp in 0..g.groups {
        if let Some(plan) = plan {
            let xp = &mut col[..plan.padded_len()];
            pad_input(g, xi, grp * g.cg(), xp);
            let dyg = &dyi[grp * og * p..(grp + 1) * og * p];
            let dwg = &mut dw[grp * og * k..(grp + 1) * og * k];
            let b = plan.source(xp, true);
            sgemm_source(
                og,
                k,
                p,
                1.0,
                dyg,
                p as isize,
                1,
                &b,
                beta,
                dwg,
                k as isize,
                Epilogue::NONE,
            );
            continue;
        }
        let b = operand(g, xi, grp, col);
        let dyg = &dyi[grp * og * p..(grp + 1) * og * p];
        let dwg = &mut dw[grp * og * k..(grp + 1) * og * k];
        // colᵀ: element (pixel q, row r) is col[r·P + q].
        sgemm(
            og,
            k,
            p,
            1.0,
            dyg,
            p as isize,
            1,
            b,
            1,
            p as isize,
            beta,
            dwg,
            k as isize,
            1,
            Epilogue::NONE,
        );
    }
}

/// Backward data of a stride-1 conv as a forward conv: `dX = conv(dY, W̃)` with padding
/// `d·(k-1) - p`, where `W̃[ci, o, i, j] = W[o, ci, kh-1-i, kw-1-j]` (per group). It replaces
/// a GEMM with a short reduction (k = out channels) followed by col2im with one implicit
/// im2col GEMM that writes dX directly. `W̃` lives at the end of the `col` buffer, the padded
/// dY (and, in the fused backward, the padded X) before it.
struct DataAsConv {
    /// The geometry of the forward conv that computes dX.
    gt: Conv2d,
    plan: Im2colPlan,
}

impl DataAsConv {
    /// The rewrite, when `g` is a stride-1 conv whose padding is at most its reach and
    /// `col_len` floats hold the flipped weights and the padded dY.
    fn new(g: &Conv2d, col_len: usize) -> Option<DataAsConv> {
        let (reach_h, reach_w) = (g.dh * (g.kh - 1), g.dw * (g.kw - 1));
        if g.is_pointwise() || g.sh != 1 || g.sw != 1 || g.ph > reach_h || g.pw > reach_w {
            return None;
        }
        let gt = Conv2d {
            c: g.out,
            h: g.ho(),
            w: g.wo(),
            out: g.c,
            ph: reach_h - g.ph,
            pw: reach_w - g.pw,
            ..*g
        };
        let plan = Im2colPlan::new(&gt);
        (plan.padded_len() + g.weight_len() <= col_len).then_some(DataAsConv { gt, plan })
    }

    /// Splits `col` into the room before the flipped weights and the flipped weights,
    /// written from `w`.
    fn flip<'c>(&self, g: &Conv2d, w: &[f32], col: &'c mut [f32]) -> (&'c mut [f32], &'c [f32]) {
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
    fn image(
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

/// `dX = beta·dX + col2im(Wᵀ·dY)` for every group of one image, `beta` 0 (overwrite) or 1
/// (add). A pointwise conv's GEMM writes `dX` itself and takes the beta; otherwise the GEMM
/// writes col and col2im adds it into `dX`, which beta 0 zeroes first.
fn data_grad_image(
    g: &Conv2d,
    w: &[f32],
    dyi: &[f32],
    dxi: &mut [f32],
    beta: f32,
    col: &mut [f32],
) {
    debug_assert!(beta == 0.0 || beta == 1.0, "backward data: beta {beta}");
    let (k, p, og, cg) = (g.col_rows(), g.ho() * g.wo(), g.og(), g.cg());
    if !g.is_pointwise() && beta == 0.0 {
        dxi.fill(0.0);
    }
    for grp in 0..g.groups {
        let dyg = &dyi[grp * og * p..(grp + 1) * og * p];
        let wg = &w[grp * og * k..(grp + 1) * og * k];
        // A pointwise conv's Wᵀ·dY already is its dX; otherwise it is a col matrix.
        let (dst, beta) = if g.is_pointwise() {
            (&mut dxi[grp * cg * p..(grp + 1) * cg * p], beta)
        } else {
            (&mut col[..k * p], 0.0)
        };
        // Wᵀ: element (row r of K, column o) is w[o·K + r].
        sgemm(
            k,
            p,
            og,
            1.0,
            wg,
            1,
            k as isize,
            dyg,
            p as isize,
            1,
            beta,
            dst,
            p as isize,
            1,
            Epilogue::NONE,
        );
        if !g.is_pointwise() {
            col2im(g, &col[..k * p], grp * cg, dxi);
        }
    }
}

/// `y = conv(x, w) + bias`, then ReLU if `relu` (the epilogue the compiler fuses):
/// [`conv2d_forward_act`] with [`Act::Relu`] or [`Act::None`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    col: &mut [f32],
) {
    conv2d_forward_act(g, n, x, w, bias, Act::relu_if(relu), y, col);
}

/// `y = act(conv(x, w) + bias)`: the activation fused into the GEMM's epilogue, bitwise what
/// [`conv2d_forward`] without it followed by the activation's `act::forward` gives.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_act(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    col: &mut [f32],
) {
    check_lens(g, n, x.len(), w.len(), y.len(), None, col.len());
    let ys = Slot::dense(g.out * g.ho() * g.wo());
    conv2d_forward_slot_act(g, n, x, w, bias, act, y, ys, col);
}

/// [`conv2d_forward`] writing image `i` at `ys` of `y`: straight into a channel slice of a
/// concat.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_slot(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    ys: Slot,
    col: &mut [f32],
) {
    conv2d_forward_slot_act(g, n, x, w, bias, Act::relu_if(relu), y, ys, col);
}

/// [`conv2d_forward_act`] writing image `i` at `ys` of `y`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_slot_act(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    col: &mut [f32],
) {
    forward(g, n, x, w, bias, act, y, ys, 0.0, col);
}

/// `y += conv(x, w)`: the backward data of a transposed convolution adding into its
/// gradient buffer.
pub(crate) fn conv2d_forward_acc(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    col: &mut [f32],
) {
    let ys = Slot::dense(g.out * g.ho() * g.wo());
    forward(g, n, x, w, None, Act::None, y, ys, 1.0, col);
}

/// `y = act(conv(x, w) + beta·y + bias)` at `ys` of `y`: the GEMM's beta, 0 (`y` only
/// written) or 1.
#[allow(clippy::too_many_arguments)]
fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
    col: &mut [f32],
) {
    check_lens(g, n, x.len(), w.len(), y.len(), Some(ys), col.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out, "conv: bias length");
    }
    let (k, p, og) = (g.col_rows(), g.ho() * g.wo(), g.og());
    let xs = g.c * g.h * g.w;
    let plan = implicit_plan(g, col.len());
    for i in 0..n {
        let yi = ys.image(i, g.out * p).start;
        for grp in 0..g.groups {
            let xi = &x[i * xs..(i + 1) * xs];
            let epi = match bias {
                Some(bias) => Epilogue::bias_per_row(&bias[grp * og..(grp + 1) * og]),
                None => Epilogue::NONE,
            }
            .act(act);
            let yg = &mut y[yi + grp * og * p..yi + (grp + 1) * og * p];
            let wg = &w[grp * og * k..(grp + 1) * og * k];
            if let Some(plan) = &plan {
                let xp = &mut col[..plan.padded_len()];
                pad_input(g, xi, grp * g.cg(), xp);
                let b = plan.source(xp, false);
                sgemm_source(
                    og, p, k, 1.0, wg, k as isize, 1, &b, beta, yg, p as isize, epi,
                );
            } else {
                let b = operand(g, xi, grp, col);
                sgemm(
                    og, p, k, 1.0, wg, k as isize, 1, b, p as isize, 1, beta, yg, p as isize, 1,
                    epi,
                );
            }
        }
    }
}

/// `dx = ∂L/∂x` given `dy = ∂L/∂y` (overwrites `dx`).
pub fn conv2d_backward_data(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    col: &mut [f32],
) {
    check_lens(g, n, dx.len(), w.len(), dy.len(), None, col.len());
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    backward_data(g, n, w, dy, dys, dx, 0.0, col);
}

/// `dx += ∂L/∂x` given `dy = ∂L/∂y`: [`conv2d_backward_data`] adding into `dx`, the
/// gradient of an input that other consumers add to as well.
pub fn conv2d_backward_data_acc(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    col: &mut [f32],
) {
    check_lens(g, n, dx.len(), w.len(), dy.len(), None, col.len());
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    backward_data(g, n, w, dy, dys, dx, 1.0, col);
}

/// [`conv2d_backward_data`] reading image `i` of `dy` at `dys`: in place from a concat's
/// gradient.
pub fn conv2d_backward_data_slot(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    col: &mut [f32],
) {
    backward_data(g, n, w, dy, dys, dx, 0.0, col);
}

/// [`conv2d_backward_data_acc`] reading image `i` of `dy` at `dys`.
pub fn conv2d_backward_data_slot_acc(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    col: &mut [f32],
) {
    backward_data(g, n, w, dy, dys, dx, 1.0, col);
}

/// `dx = beta·dx + ∂L/∂x` with image `i` of `dy` at `dys`, `beta` 0 (overwrite, `dx` not
/// read) or 1 (add).
#[allow(clippy::too_many_arguments)]
fn backward_data(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    beta: f32,
    col: &mut [f32],
) {
    check_lens(g, n, dx.len(), w.len(), dy.len(), Some(dys), col.len());
    let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
    if let Some(dc) = DataAsConv::new(g, col.len()) {
        let (room, wt) = dc.flip(g, w, col);
        for (i, dxi) in dx.chunks_exact_mut(xs).enumerate() {
            dc.image(g, wt, &dy[dys.image(i, ys)], dxi, beta, room);
        }
        return;
    }
    for (i, dxi) in dx.chunks_exact_mut(xs).enumerate() {
        data_grad_image(g, w, &dy[dys.image(i, ys)], dxi, beta, col);
    }
}

/// `dw = ∂L/∂w` and, if asked, `db = ∂L/∂b` (overwrites both).
pub fn conv2d_backward_weight(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    col: &mut [f32],
) {
    check_lens(g, n, x.len(), dw.len(), dy.len(), None, col.len());
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    conv2d_backward_weight_slot(g, n, x, dy, dys, dw, db, col);
}

/// [`conv2d_backward_weight`] reading image `i` of `dy` at `dys`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight_slot(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    col: &mut [f32],
) {
    check_lens(g, n, x.len(), dw.len(), dy.len(), Some(dys), col.len());
    let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
    if n == 0 {
        dw.fill(0.0);
    }
    let plan = implicit_plan(g, col.len());
    for i in 0..n {
        let beta = if i == 0 { 0.0 } else { 1.0 };
        weight_grad_image(
            g,
            plan.as_ref(),
            &x[i * xs..(i + 1) * xs],
            &dy[dys.image(i, ys)],
            dw,
            beta,
            col,
        );
    }
    if let Some(db) = db {
        bias_backward_slot(n, g.out, g.ho() * g.wo(), dy, dys, db);
    }
}

/// Both backward passes at once, image by image, so that each image's `dy` is still in
/// cache when the second GEMM reads it: `dw` and `db` as [`conv2d_backward_weight`], `dx` as
/// [`conv2d_backward_data`] (all overwritten). The results are bitwise those of the two
/// separate calls.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    col: &mut [f32],
) {
    check_lens(g, n, x.len(), w.len(), dy.len(), None, col.len());
    assert_eq!(dx.len(), x.len(), "conv: dx length");
    assert_eq!(dw.len(), w.len(), "conv: dw length");
    let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
    if n == 0 {
        dw.fill(0.0);
    }
    let data_as_conv = DataAsConv::new(g, col.len());
    let (col, wt) = match &data_as_conv {
        Some(dc) => {
            let (room, wt) = dc.flip(g, w, col);
            (room, Some(wt))
        }
        None => (col, None),
    };
    let plan = implicit_plan(g, col.len());
    for i in 0..n {
        let beta = if i == 0 { 0.0 } else { 1.0 };
        let dyi = &dy[i * ys..(i + 1) * ys];
        let dxi = &mut dx[i * xs..(i + 1) * xs];
        weight_grad_image(
            g,
            plan.as_ref(),
            &x[i * xs..(i + 1) * xs],
            dyi,
            dw,
            beta,
            col,
        );
        match (&data_as_conv, wt) {
            (Some(dc), Some(wt)) => dc.image(g, wt, dyi, dxi, 0.0, col),
            _ => data_grad_image(g, w, dyi, dxi, 0.0, col),
        }
    }
    if let Some(db) = db {
        bias_backward(n, g.out, g.ho() * g.wo(), dy, db);
    }
}

/// `db[c] = Σ_i Σ_q dy[i, c, q]` over `n` images of `channels × plane` (overwrites `db`).
pub fn bias_backward(n: usize, channels: usize, plane: usize, dy: &[f32], db: &mut [f32]) {
    assert_eq!(dy.len(), n * channels * plane, "bias gradient: dy length");
    bias_backward_slot(n, channels, plane, dy, Slot::dense(channels * plane), db);
}

/// [`bias_backward`] with image `i` of `dy` at `dys`.
pub fn bias_backward_slot(
    n: usize,
    channels: usize,
    plane: usize,
    dy: &[f32],
    dys: Slot,
    db: &mut [f32],
) {
    assert_eq!(db.len(), channels, "bias gradient length");
    dys.check(n, channels * plane, dy.len(), "bias gradient: dy");
    db.fill(0.0);
    for i in 0..n {
        let img = &dy[dys.image(i, channels * plane)];
        for (d, ch) in db.iter_mut().zip(img.chunks_exact(plane)) {
            *d += lane_sum(ch);
        }
    }
}

/// A sum in eight interleaved lanes, which the compiler vectorizes (a plain fold must keep
/// its one sequential order). The order is fixed, so the result is too.
pub(crate) fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for &v in rest {
        total += v;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conv that writes (and reads its gradient from) a channel slice of a wider buffer
    /// computes exactly what the dense calls do, and leaves the rest of the buffer alone.
    #[test]
    fn slots_equal_dense_calls() {
        let geometries = [
            Conv2d::square(3, 6, 5, 4, 3, 1, 1),
            Conv2d::square(5, 4, 7, 3, 1, 1, 0),
            Conv2d::square(2, 9, 4, 6, 3, 2, 1),
        ];
        for g in geometries {
            let (n, p) = (3, g.ho() * g.wo());
            let (c0, wide) = (2, g.out + 5);
            let ys = Slot::channels(c0, wide, p);
            let fill = |len: usize, m: usize| -> Vec<f32> {
                (0..len)
                    .map(|i| ((i * m) % 17) as f32 / 4.0 - 2.0)
                    .collect()
            };
            let x = fill(n * g.c * g.h * g.w, 7);
            let w = fill(g.weight_len(), 5);
            let b = fill(g.out, 3);
            let mut col = vec![0.0; g.col_len() + g.weight_len() + 4 * g.c * (g.h + 8) * (g.w + 8)];
            let mut dense = vec![0.0; n * g.out * p];
            conv2d_forward(&g, n, &x, &w, Some(&b), true, &mut dense, &mut col);
            let mut wide_y = vec![f32::NAN; n * wide * p];
            conv2d_forward_slot(&g, n, &x, &w, Some(&b), true, &mut wide_y, ys, &mut col);
            for i in 0..n {
                let got = &wide_y[ys.image(i, g.out * p)];
                assert_eq!(got, &dense[i * g.out * p..][..g.out * p], "{g:?}");
            }
            let outside = wide_y.iter().filter(|v| v.is_nan()).count();
            assert_eq!(
                outside,
                n * (wide - g.out) * p,
                "{g:?}: wrote outside the slot"
            );

            let dy = fill(n * g.out * p, 11);
            let mut wide_dy = vec![f32::NAN; n * wide * p];
            for i in 0..n {
                wide_dy[ys.image(i, g.out * p)].copy_from_slice(&dy[i * g.out * p..][..g.out * p]);
            }
            let (mut dw, mut db, mut dx) =
                (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
            conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut col);
            conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col);
            let (mut dw2, mut db2, mut dx2) =
                (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
            conv2d_backward_weight_slot(
                &g,
                n,
                &x,
                &wide_dy,
                ys,
                &mut dw2,
                Some(&mut db2),
                &mut col,
            );
            conv2d_backward_data_slot(&g, n, &w, &wide_dy, ys, &mut dx2, &mut col);
            assert_eq!((dw, db, dx), (dw2, db2, dx2), "{g:?}");
        }
    }

    /// The geometries of `tests/accumulate.rs` take the paths that test names: dX as a conv
    /// with the flipped kernel, col2im, or pointwise (`room` times the col the conv needs).
    #[test]
    fn accumulate_test_geometries_take_their_paths() {
        let sq = Conv2d::square;
        let flipped = |g: &Conv2d, room: usize| DataAsConv::new(g, room * g.col_len()).is_some();
        let as_conv = [
            sq(4, 7, 6, 5, 3, 1, 1),
            Conv2d {
                dh: 2,
                dw: 3,
                ..sq(3, 9, 11, 4, 3, 1, 2)
            },
            Conv2d {
                groups: 2,
                ..sq(4, 6, 7, 6, 3, 1, 1)
            },
        ];
        for g in as_conv {
            assert!(flipped(&g, 1), "{g:?} is not computed as a conv");
        }
        let by_col2im = [
            (sq(1, 5, 5, 16, 3, 1, 1), 1),
            (sq(2, 5, 6, 3, 3, 1, 3), 4),
            (sq(3, 9, 8, 4, 3, 2, 1), 1),
            (sq(5, 7, 7, 3, 1, 2, 0), 1),
            (
                Conv2d {
                    dh: 2,
                    dw: 2,
                    ..sq(3, 10, 9, 4, 3, 2, 1)
                },
                1,
            ),
            (
                Conv2d {
                    groups: 3,
                    ..sq(6, 8, 7, 9, 3, 2, 1)
                },
                1,
            ),
        ];
        for (g, room) in by_col2im {
            assert!(
                !g.is_pointwise() && !flipped(&g, room),
                "{g:?} does not go through col2im"
            );
        }
        let pointwise = [
            sq(6, 5, 7, 4, 1, 1, 0),
            sq(3, 4, 5, 300, 1, 1, 0),
            Conv2d {
                groups: 2,
                ..sq(6, 4, 5, 4, 1, 1, 0)
            },
        ];
        for g in pointwise {
            assert!(g.is_pointwise(), "{g:?} is not pointwise");
        }
    }

    /// Backward data as a forward conv agrees with GEMM + col2im (different summation
    /// order, so to rounding), with padding below, at and above half the kernel, dilation
    /// and groups.
    #[test]
    fn data_as_conv_matches_col2im() {
        let geometries = [
            Conv2d::square(3, 5, 6, 4, 3, 1, 1),
            Conv2d::square(2, 20, 18, 3, 3, 1, 0),
            Conv2d::square(2, 4, 17, 3, 5, 1, 4),
            Conv2d {
                dh: 2,
                dw: 3,
                groups: 2,
                ..Conv2d::square(4, 9, 19, 6, 3, 1, 2)
            },
        ];
        for g in geometries {
            let n = 2;
            let dy: Vec<f32> = (0..n * g.out * g.ho() * g.wo())
                .map(|i| ((i * 7) % 13) as f32 - 6.0)
                .collect();
            let w: Vec<f32> = (0..g.weight_len())
                .map(|i| ((i * 5) % 11) as f32 - 5.0)
                .collect();
            let mut col = vec![0.0; g.col_len()];
            let dc = DataAsConv::new(&g, col.len()).expect("the rewrite applies");
            let (room, wt) = dc.flip(&g, &w, &mut col);
            let xs = g.c * g.h * g.w;
            let mut got = vec![f32::NAN; n * xs];
            let mut want = vec![0.0; n * xs];
            let mut col2 = vec![0.0; g.col_len()];
            for i in 0..n {
                let dyi = &dy[i * g.out * g.ho() * g.wo()..][..g.out * g.ho() * g.wo()];
                dc.image(&g, wt, dyi, &mut got[i * xs..(i + 1) * xs], 0.0, room);
                data_grad_image(&g, &w, dyi, &mut want[i * xs..(i + 1) * xs], 0.0, &mut col2);
            }
            // Small integers: both orders are exact.
            assert_eq!(got, want, "{g:?}");
        }
    }
}
