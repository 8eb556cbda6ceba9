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

pub(crate) mod batched;
mod data_as_conv;
mod direct;
mod merged;
pub mod winograd;

use data_as_conv::DataAsConv;

/// Whether the direct kernels compute `g` (a grouped conv with few channels per group, such
/// as a depthwise one) rather than im2col + GEMM: their work differs in kind, and so does
/// where a second thread pays off.
pub fn is_direct(g: &Conv2d) -> bool {
    direct::applies(g)
}

/// Floats of `col` that batching small maps uses for `g`, forward, weight gradient and data
/// gradient (a forward conv with the flipped weights at the end of `col`).
pub(crate) fn batched_col_len(g: &Conv2d) -> usize {
    let data = data_as_conv::transposed(g).map_or(0, |gt| {
        let room = batched::col_len(&gt);
        if room > 0 {
            room + g.weight_len()
        } else {
            0
        }
    });
    batched::col_len(g).max(data)
}

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
    assert!(
        col >= g.col_len_one(),
        "conv: col buffer too short for {g:?}"
    );
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
/// input, which lives in the `col` buffer), when it pays ([`Im2colPlan::pays`]) and `col`
/// has room.
fn implicit_plan(g: &Conv2d, col_len: usize) -> Option<Im2colPlan> {
    if !Im2colPlan::pays(g) {
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

/// `y = act(conv(x, w) + bias + y)` at `ys` of `y`: a residual connection (`y` holding the
/// value added) summed and activated in the convolution's epilogue, with no pass of its own.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_slot_act_acc(
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
    forward(g, n, x, w, bias, act, y, ys, 1.0, col);
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
    if direct::applies(g) {
        return direct::forward(g, n, x, w, bias, act, y, ys, beta);
    }
    let xs = Slot::dense(g.c * g.h * g.w);
    if batched::forward(g, n, x, xs, w, bias, act, y, ys, beta, col) {
        return;
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
    if direct::applies(g) {
        return direct::backward_data(g, n, w, dy, dys, dx, beta);
    }
    let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
    if let Some(dc) = DataAsConv::new(g, col.len()) {
        let (room, wt) = dc.flip(g, w, col);
        let dxs = Slot::dense(xs);
        if batched::forward(&dc.gt, n, dy, dys, wt, None, Act::None, dx, dxs, beta, room) {
            return;
        }
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
    if direct::applies(g) {
        direct::backward_weight(g, n, x, dy, dys, dw);
    } else if !batched::weight(g, n, x, dy, dys, dw, col) {
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
    if batched::applies(g) && n >= 2 {
        // Small maps batch images: the two passes separately, each as it batches.
        conv2d_backward_weight(g, n, x, dy, dw, db, col);
        return conv2d_backward_data(g, n, w, dy, dx, col);
    }
    if direct::applies(g) {
        let dys = Slot::dense(ys);
        direct::backward_weight(g, n, x, dy, dys, dw);
        direct::backward_data(g, n, w, dy, dys, dx, 0.0);
        if let Some(db) = db {
            bias_backward(n, g.out, g.ho() * g.wo(), dy, db);
        }
        return;
    }
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
mod tests;
