//! Normalization layers with PyTorch's numerics: batch normalization (training on batch
//! statistics with running averages, and inference on the running ones), local response
//! normalization across channels, and the per-sample normalizations of the modern zoo, group
//! normalization and ConvNeXt's channel layer norm (in their own files).
//!
//! Tensors are `n × c × plane` (`plane = 1` for feature vectors). Statistics are accumulated
//! in f64 in a fixed order, so they do not depend on the thread count.

mod batchnorm;
mod fold;
mod groupnorm;
mod layernorm2d;

pub use batchnorm::{
    batchnorm_eval_forward, batchnorm_eval_forward_act, batchnorm_train_backward,
    batchnorm_train_backward_act, batchnorm_train_forward, batchnorm_train_forward_act,
};
pub use fold::fold_batchnorm;
pub use groupnorm::{groupnorm_backward, groupnorm_forward};
pub use layernorm2d::{layernorm2d_backward, layernorm2d_forward};

use crate::im2col::{for_chunks, for_chunks2};

/// `s^-β`; for β = 3/4 (LRN's usual exponent) as `1 / (√s · ⁴√s)`, several times cheaper
/// than `powf`.
#[inline]
fn pow_neg(s: f32, beta: f32) -> f32 {
    if beta == 0.75 {
        let r = s.sqrt();
        1.0 / (r * r.sqrt())
    } else {
        s.powf(-beta)
    }
}

/// Local response normalization across channels, as PyTorch computes it:
/// `y[c] = x[c] / (k + α/size · Σ_{c' ∈ W(c)} x[c']²)^β` with the window
/// `W(c) = [c - size/2, c + (size-1)/2]` clipped to the channels. `scale` receives the
/// denominators' bases `k + α/size·Σ x²` for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn lrn_forward(
    n: usize,
    c: usize,
    plane: usize,
    size: usize,
    alpha: f32,
    beta: f32,
    k: f32,
    x: &[f32],
    y: &mut [f32],
    scale: &mut [f32],
) {
    assert!(
        x.len() == n * c * plane && y.len() == x.len() && scale.len() == x.len(),
        "lrn: lengths"
    );
    let (before, after) = (size / 2, (size - 1) / 2);
    let a = alpha / size as f32;
    // Channel rows at a time (the plane is contiguous, so this vectorizes), summing the
    // window in the same order as one element at a time would, then the row's outputs
    // while its scale is in L1; rows are independent, so they go to the runtime's threads.
    for_chunks2(scale, plane, y, plane, |r, row, ys| {
        let (i, ch) = (r / c, r % c);
        let xs = &x[i * c * plane..(i + 1) * c * plane];
        let lo = ch.saturating_sub(before);
        let hi = (ch + after).min(c - 1);
        row.fill(0.0);
        for j in lo..=hi {
            for (r, &v) in row.iter_mut().zip(&xs[j * plane..(j + 1) * plane]) {
                *r += v * v;
            }
        }
        let xr = &xs[ch * plane..(ch + 1) * plane];
        for ((s, o), &v) in row.iter_mut().zip(ys.iter_mut()).zip(xr) {
            *s = k + a * *s;
            *o = v * pow_neg(*s, beta);
        }
    });
}

/// The gradient of LRN (overwrites `dx`; `scratch` holds `c·plane` values):
/// `dx[j] = dy[j]·s[j]^-β - 2αβ/size · x[j] · Σ_{c: j ∈ W(c)} dy[c]·x[c]·s[c]^(-β-1)`.
#[allow(clippy::too_many_arguments)]
pub fn lrn_backward(
    n: usize,
    c: usize,
    plane: usize,
    size: usize,
    alpha: f32,
    beta: f32,
    x: &[f32],
    scale: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    assert!(
        x.len() == n * c * plane
            && scale.len() == x.len()
            && dy.len() == x.len()
            && dx.len() == x.len()
    );
    // j ∈ W(c) ⇔ c ∈ [j - (size-1)/2, j + size/2].
    let (before, after) = ((size - 1) / 2, size / 2);
    let coef = 2.0 * alpha * beta / size as f32;
    assert_eq!(scratch.len(), c * plane, "lrn: scratch length");
    let t = scratch;
    for i in 0..n {
        let r = i * c * plane..(i + 1) * c * plane;
        let (xs, ss, gs) = (&x[r.clone()], &scale[r.clone()], &dy[r.clone()]);
        // Both steps go row by row on the runtime's threads: rows are independent in each.
        // The first also leaves `dy·s^-β` in `dx`, so that `s^-β` is computed once.
        for_chunks2(t, plane, &mut dx[r], plane, |ch, trow, drow| {
            let at = ch * plane..(ch + 1) * plane;
            let inputs = gs[at.clone()].iter().zip(&xs[at.clone()]).zip(&ss[at]);
            for ((tv, d), ((&g, &v), &s)) in trow.iter_mut().zip(drow.iter_mut()).zip(inputs) {
                let p = pow_neg(s, beta);
                // s^(-β-1) = s^-β / s
                *tv = g * v * (p / s);
                *d = g * p;
            }
        });
        let t = &*t;
        let dxi = &mut dx[i * c * plane..(i + 1) * c * plane];
        for_chunks(dxi, plane, |j, row| {
            let lo = j.saturating_sub(before);
            let hi = (j + after).min(c - 1);
            // The window's sum a block at a time, on the stack.
            for (b, rb) in row.chunks_mut(BLOCK).enumerate() {
                let (q0, len) = (b * BLOCK, rb.len());
                let mut sum = [0.0f32; BLOCK];
                let sum = &mut sum[..len];
                for ch in lo..=hi {
                    for (r, &tv) in sum.iter_mut().zip(&t[ch * plane + q0..][..len]) {
                        *r += tv;
                    }
                }
                let xr = &xs[j * plane + q0..][..len];
                for ((d, &s), &v) in rb.iter_mut().zip(sum.iter()).zip(xr) {
                    *d -= coef * v * s;
                }
            }
        });
    }
}

/// Floats of a row the backward pass sums at once.
const BLOCK: usize = 256;
