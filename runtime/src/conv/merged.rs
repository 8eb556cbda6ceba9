//! Sibling pointwise convolutions of one input (`merge_1x1`) as one GEMM over their stacked
//! weights: forward, then the weight gradients and the input gradient with one GEMM each.
//! Each part's output (or gradient) lives in its own buffer or a concat's slot.

use super::{bias_backward_slot, Conv2d};
use crate::gemm::{sgemm, Act, Epilogue};
use crate::tensor::Slot;

/// Floats of `col` that [`conv1x1_merged_forward`] and [`conv1x1_merged_backward`] need for
/// `total` stacked output channels over `c` input channels and `plane` pixels: the stacked
/// weights and their gradient, the bias, and one image of stacked outputs.
pub fn merged_col_len(c: usize, total: usize, plane: usize) -> usize {
    2 * total * c + total * (plane + 1)
}

/// Copies `parts` one after another into the front of `dst`: the parts' weights (or biases)
/// stacked as one operand.
fn stack(parts: &[&[f32]], dst: &mut [f32]) {
    let mut at = 0;
    for part in parts {
        dst[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
}

/// Checks a merged call: `g` is a pointwise stride-1 unpadded conv whose `out` is the sum of
/// the parts' (each part's weights are `out_j × c`), every destination fits its buffer, and
/// `col` (`col_len` floats) has room. Returns the parts' output channels.
fn merged_parts(
    g: &Conv2d,
    n: usize,
    x: usize,
    w: &[&[f32]],
    bufs: &[usize],
    dests: &[(usize, Slot)],
    col_len: usize,
) -> Vec<usize> {
    g.check();
    assert!(
        col_len >= merged_col_len(g.c, g.out, g.h * g.w),
        "merged conv: col too short"
    );
    assert!(
        g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.groups == 1,
        "merged conv: not a pointwise conv: {g:?}"
    );
    assert_eq!(
        x,
        n * g.c * g.h * g.w,
        "merged conv: input length for {g:?}"
    );
    assert_eq!(
        w.len(),
        dests.len(),
        "merged conv: one destination per part"
    );
    let outs: Vec<usize> = w.iter().map(|w| w.len() / g.c).collect();
    assert!(
        w.iter().all(|w| w.len() % g.c == 0) && outs.iter().sum::<usize>() == g.out,
        "merged conv: the parts' weights do not stack to {g:?}"
    );
    let plane = g.h * g.w;
    for (&(b, slot), &o) in dests.iter().zip(&outs) {
        assert!(
            b < bufs.len(),
            "merged conv: destination buffer {b} of {}",
            bufs.len()
        );
        slot.check(n, o * plane, bufs[b], "merged conv: part");
    }
    outs
}

/// Sibling pointwise convs that read the same input, as one GEMM: `Y = [W_0; W_1; ...]·X +
/// [b_0; b_1; ...]` (then ReLU if `relu`), with the rows of part `j` (`w[j]`, `out_j × c`)
/// written to buffer `dests[j].0` of `ys` at slot `dests[j].1`. `g` is the merged geometry
/// (`out` the sum of the parts'). The stacked weights and one image of output live in `col`
/// (see [`merged_col_len`]); each image is one GEMM into it, then its rows are copied out.
/// [`conv1x1_merged_forward_act`] with [`Act::Relu`] or [`Act::None`].
#[allow(clippy::too_many_arguments)]
pub fn conv1x1_merged_forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[&[f32]],
    bias: Option<&[&[f32]]>,
    relu: bool,
    ys: &mut [&mut [f32]],
    dests: &[(usize, Slot)],
    col: &mut [f32],
) {
    conv1x1_merged_forward_act(g, n, x, w, bias, Act::relu_if(relu), ys, dests, col);
}

/// [`conv1x1_merged_forward`] with `act` (the same for every part) in the GEMM's epilogue:
/// `Y = act([W_0; W_1; ...]·X + [b_0; b_1; ...])`.
#[allow(clippy::too_many_arguments)]
pub fn conv1x1_merged_forward_act(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[&[f32]],
    bias: Option<&[&[f32]]>,
    act: Act,
    ys: &mut [&mut [f32]],
    dests: &[(usize, Slot)],
    col: &mut [f32],
) {
    let lens: Vec<usize> = ys.iter().map(|y| y.len()).collect();
    let outs = merged_parts(g, n, x.len(), w, &lens, dests, col.len());
    let (c, p, total) = (g.c, g.h * g.w, g.out);
    let (wm, rest) = col.split_at_mut(total * c);
    let (bm, rest) = rest.split_at_mut(total);
    let tmp = &mut rest[..total * p];
    stack(w, wm);
    if let Some(bias) = bias {
        for (j, b) in bias.iter().enumerate() {
            assert_eq!(b.len(), outs[j], "merged conv: bias length of part {j}");
        }
        stack(bias, bm);
    }
    let epi = match bias {
        Some(_) => Epilogue::bias_per_row(bm),
        None => Epilogue::NONE,
    }
    .act(act);
    for i in 0..n {
        let xi = &x[i * c * p..(i + 1) * c * p];
        sgemm(
            total, p, c, 1.0, wm, c as isize, 1, xi, p as isize, 1, 0.0, tmp, p as isize, 1, epi,
        );
        let mut row = 0;
        for (j, &(b, slot)) in dests.iter().enumerate() {
            let len = outs[j] * p;
            ys[b][slot.image(i, len)].copy_from_slice(&tmp[row * p..row * p + len]);
            row += outs[j];
        }
    }
}

/// The backward of [`conv1x1_merged_forward`]: each part's `dw[j]` (and `db[j]`) from its
/// gradient at `dests[j]` of `dys`, and, if asked, `dx = Σ_j W_jᵀ·dY_j` as one GEMM over the
/// stacked gradient (all overwritten). Per image, the parts' gradients are stacked in `col`,
/// then one GEMM adds to the stacked weight gradient and one writes `dx`.
#[allow(clippy::too_many_arguments)]
pub fn conv1x1_merged_backward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[&[f32]],
    dys: &[&[f32]],
    dests: &[(usize, Slot)],
    dw: &mut [&mut [f32]],
    db: Option<&mut [&mut [f32]]>,
    dx: Option<&mut [f32]>,
    col: &mut [f32],
) {
    merged_backward(g, n, x, w, dys, dests, dw, db, dx, 0.0, col);
}

/// [`conv1x1_merged_backward`] adding into `dx` (`dx += Σ_j W_jᵀ·dY_j`, the GEMM's beta = 1)
/// instead of overwriting it; `dw` and `db` are overwritten as there.
#[allow(clippy::too_many_arguments)]
pub fn conv1x1_merged_backward_acc(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[&[f32]],
    dys: &[&[f32]],
    dests: &[(usize, Slot)],
    dw: &mut [&mut [f32]],
    db: Option<&mut [&mut [f32]]>,
    dx: Option<&mut [f32]>,
    col: &mut [f32],
) {
    merged_backward(g, n, x, w, dys, dests, dw, db, dx, 1.0, col);
}

/// The backward of a merged conv with `dx = dx_beta·dx + Σ_j W_jᵀ·dY_j` (`dx_beta` 0: `dx`
/// only written).
#[allow(clippy::too_many_arguments)]
fn merged_backward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[&[f32]],
    dys: &[&[f32]],
    dests: &[(usize, Slot)],
    dw: &mut [&mut [f32]],
    db: Option<&mut [&mut [f32]]>,
    dx: Option<&mut [f32]>,
    dx_beta: f32,
    col: &mut [f32],
) {
    let lens: Vec<usize> = dys.iter().map(|y| y.len()).collect();
    let outs = merged_parts(g, n, x.len(), w, &lens, dests, col.len());
    let (c, p, total) = (g.c, g.h * g.w, g.out);
    assert!(
        dw.len() == w.len() && dw.iter().zip(w).all(|(d, w)| d.len() == w.len()),
        "merged conv: weight gradient lengths"
    );
    let (wm, rest) = col.split_at_mut(total * c);
    let (dwm, rest) = rest.split_at_mut(total * c);
    let dym = &mut rest[..total * p];
    stack(w, wm);
    if n == 0 {
        dwm.fill(0.0);
    }
    let mut dx = dx;
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), x.len(), "merged conv: dx length");
    }
    for i in 0..n {
        let mut row = 0;
        for (j, &(b, slot)) in dests.iter().enumerate() {
            let len = outs[j] * p;
            dym[row * p..row * p + len].copy_from_slice(&dys[b][slot.image(i, len)]);
            row += outs[j];
        }
        let xi = &x[i * c * p..(i + 1) * c * p];
        let beta = if i == 0 { 0.0 } else { 1.0 };
        // dW += dY·Xᵀ: Xᵀ's element (pixel q, channel r) is x[r·P + q].
        sgemm(
            total,
            c,
            p,
            1.0,
            dym,
            p as isize,
            1,
            xi,
            1,
            p as isize,
            beta,
            dwm,
            c as isize,
            1,
            Epilogue::NONE,
        );
        if let Some(dx) = dx.as_deref_mut() {
            // dX = dx_beta·dX + Wᵀ·dY: Wᵀ's element (channel r, output o) is w[o·C + r].
            let dxi = &mut dx[i * c * p..(i + 1) * c * p];
            sgemm(
                c,
                p,
                total,
                1.0,
                wm,
                1,
                c as isize,
                dym,
                p as isize,
                1,
                dx_beta,
                dxi,
                p as isize,
                1,
                Epilogue::NONE,
            );
        }
    }
    let mut row = 0;
    for (j, d) in dw.iter_mut().enumerate() {
        d.copy_from_slice(&dwm[row * c..(row + outs[j]) * c]);
        row += outs[j];
    }
    if let Some(db) = db {
        assert_eq!(db.len(), w.len(), "merged conv: one bias gradient per part");
        for (j, d) in db.iter_mut().enumerate() {
            let (b, slot) = dests[j];
            bias_backward_slot(n, outs[j], p, dys[b], slot, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{conv2d_backward_data_slot, conv2d_backward_weight_slot, conv2d_forward};

    /// Three pointwise convs merged into one GEMM give what three separate convs give, with
    /// one part written into a slot of a wider buffer and two sharing another buffer.
    #[test]
    fn merged_pointwise_convs_equal_separate_ones() {
        let (n, c, h, w) = (2, 5, 3, 4);
        let p = h * w;
        let outs = [3, 4, 2];
        let fill = |len: usize, m: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * m) % 19) as f32 / 4.0 - 2.0)
                .collect()
        };
        let x = fill(n * c * p, 7);
        let ws: Vec<Vec<f32>> = outs
            .iter()
            .enumerate()
            .map(|(j, &o)| fill(o * c, 3 + j))
            .collect();
        let bs: Vec<Vec<f32>> = outs
            .iter()
            .enumerate()
            .map(|(j, &o)| fill(o, 5 + j))
            .collect();
        let one = |o: usize| Conv2d::square(c, h, w, o, 1, 1, 0);
        let merged = Conv2d { h, w, ..one(9) };
        let wide = n * 10 * p;
        // Part 0 and 2 in buffer 0 (a 3 + 2 channel tensor), part 1 at channel 6 of buffer 1.
        let dests = [
            (0, Slot::channels(0, 5, p)),
            (1, Slot::channels(6, 10, p)),
            (0, Slot::channels(3, 5, p)),
        ];
        let mut col = vec![0.0; merged_col_len(c, 9, p)];
        let (mut y0, mut y1) = (vec![f32::NAN; n * 5 * p], vec![f32::NAN; wide]);
        let w_refs: Vec<&[f32]> = ws.iter().map(|v| &v[..]).collect();
        let b_refs: Vec<&[f32]> = bs.iter().map(|v| &v[..]).collect();
        conv1x1_merged_forward(
            &merged,
            n,
            &x,
            &w_refs,
            Some(&b_refs),
            true,
            &mut [&mut y0, &mut y1],
            &dests,
            &mut col,
        );
        let dy0 = fill(y0.len(), 11);
        let dy1 = fill(y1.len(), 13);
        let mut dw: Vec<Vec<f32>> = ws.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut db: Vec<Vec<f32>> = bs.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut dx = vec![0.0; x.len()];
        {
            let mut dw_refs: Vec<&mut [f32]> = dw.iter_mut().map(|v| &mut v[..]).collect();
            let mut db_refs: Vec<&mut [f32]> = db.iter_mut().map(|v| &mut v[..]).collect();
            conv1x1_merged_backward(
                &merged,
                n,
                &x,
                &w_refs,
                &[&dy0, &dy1],
                &dests,
                &mut dw_refs,
                Some(&mut db_refs),
                Some(&mut dx),
                &mut col,
            );
        }
        let mut want_dx = vec![0.0; x.len()];
        for (j, &o) in outs.iter().enumerate() {
            let g = one(o);
            let (b, slot) = dests[j];
            let (y, dyb) = if b == 0 { (&y0, &dy0) } else { (&y1, &dy1) };
            let mut want = vec![0.0; n * o * p];
            conv2d_forward(
                &g,
                n,
                &x,
                &ws[j],
                Some(&bs[j]),
                true,
                &mut want,
                &mut [0.0; 1],
            );
            for i in 0..n {
                let got = &y[slot.image(i, o * p)];
                let want = &want[i * o * p..(i + 1) * o * p];
                assert!(
                    got.iter().zip(want).all(|(a, b)| (a - b).abs() <= 1e-4),
                    "part {j} output"
                );
            }
            let (mut wdw, mut wdb, mut wdx) =
                (vec![0.0; ws[j].len()], vec![0.0; o], vec![0.0; x.len()]);
            conv2d_backward_weight_slot(
                &g,
                n,
                &x,
                dyb,
                slot,
                &mut wdw,
                Some(&mut wdb),
                &mut [0.0; 1],
            );
            conv2d_backward_data_slot(&g, n, &ws[j], dyb, slot, &mut wdx, &mut [0.0; 1]);
            let near = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .all(|(a, b)| (a - b).abs() <= 1e-3 * (1.0 + b.abs()))
            };
            assert!(near(&dw[j], &wdw), "part {j} dw");
            assert!(near(&db[j], &wdb), "part {j} db");
            for (a, b) in want_dx.iter_mut().zip(&wdx) {
                *a += b;
            }
        }
        assert!(
            dx.iter()
                .zip(&want_dx)
                .all(|(a, b)| (a - b).abs() <= 1e-3 * (1.0 + b.abs())),
            "dx"
        );
        // Channels 3..6 of buffer 1 belong to no part and were never written.
        assert!(y1
            .chunks(10 * p)
            .all(|img| img[..6 * p].iter().all(|v| v.is_nan())));
    }
}
