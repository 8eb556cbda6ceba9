//! Normalization layers with PyTorch's numerics: batch normalization (training on batch
//! statistics with running averages, and inference on the running ones), local response
//! normalization across channels, and the per-sample normalizations of the modern zoo, group
//! normalization and ConvNeXt's channel layer norm (in their own files).
//!
//! Tensors are `n × c × plane` (`plane = 1` for feature vectors). Statistics are accumulated
//! in f64 in a fixed order, so they do not depend on the thread count.

mod groupnorm;
mod layernorm2d;

pub use groupnorm::{groupnorm_backward, groupnorm_forward};
pub use layernorm2d::{layernorm2d_backward, layernorm2d_forward};

use crate::im2col::for_chunks;

/// Batch normalization in training mode:
/// `y = γ (x - μ_B) / sqrt(σ²_B + eps) + β` with the batch mean and biased variance, and
/// `running ← (1 - momentum)·running + momentum·batch` (the variance unbiased, as PyTorch).
/// `mean` and `rstd` receive `μ_B` and `1/sqrt(σ²_B + eps)` for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward(
    n: usize,
    c: usize,
    plane: usize,
    eps: f32,
    momentum: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    check(n, c, plane, x.len(), y.len(), gamma.len(), beta.len());
    assert!(
        running_mean.len() == c && running_var.len() == c && mean.len() == c && rstd.len() == c
    );
    if n * plane == 0 {
        return; // nothing to normalize; the running statistics stay as they are (PyTorch)
    }
    assert!(
        n * plane > 1,
        "batchnorm: training needs more than one value per channel (PyTorch refuses it too)"
    );
    let m = (n * plane) as f64;
    for ch in 0..c {
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            for &v in &x[(i * c + ch) * plane..(i * c + ch + 1) * plane] {
                s += v as f64;
            }
        }
        let mu = s / m;
        for i in 0..n {
            for &v in &x[(i * c + ch) * plane..(i * c + ch + 1) * plane] {
                s2 += (v as f64 - mu) * (v as f64 - mu);
            }
        }
        let var = s2 / m;
        let r = 1.0 / (var + eps as f64).sqrt();
        mean[ch] = mu as f32;
        rstd[ch] = r as f32;
        let unbiased = s2 / (m - 1.0);
        let mom = momentum as f64;
        running_mean[ch] = ((1.0 - mom) * running_mean[ch] as f64 + mom * mu) as f32;
        running_var[ch] = ((1.0 - mom) * running_var[ch] as f64 + mom * unbiased) as f32;
        let (scale, shift) = (
            gamma[ch] as f64 * r,
            beta[ch] as f64 - gamma[ch] as f64 * r * mu,
        );
        for i in 0..n {
            let range = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            for (o, &v) in y[range.clone()].iter_mut().zip(&x[range]) {
                *o = (scale * v as f64 + shift) as f32;
            }
        }
    }
}

/// The gradient of training-mode batch normalization (overwrites `dx`, `dgamma`, `dbeta`):
/// with `x̂ = (x - μ)·rstd`, `dβ = Σ dy`, `dγ = Σ dy·x̂`, and
/// `dx = γ·rstd/m · (m·dy - dβ - x̂·dγ)`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_backward(
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    check(n, c, plane, x.len(), dy.len(), gamma.len(), dgamma.len());
    assert!(dx.len() == x.len() && dbeta.len() == c && mean.len() == c && rstd.len() == c);
    let m = (n * plane) as f64;
    for ch in 0..c {
        let (mu, r) = (mean[ch] as f64, rstd[ch] as f64);
        let (mut db, mut dg) = (0.0f64, 0.0f64);
        for i in 0..n {
            let range = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            for (&g, &v) in dy[range.clone()].iter().zip(&x[range]) {
                db += g as f64;
                dg += g as f64 * (v as f64 - mu) * r;
            }
        }
        dbeta[ch] = db as f32;
        dgamma[ch] = dg as f32;
        let k = gamma[ch] as f64 * r / m;
        for i in 0..n {
            let range = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            for ((d, &g), &v) in dx[range.clone()]
                .iter_mut()
                .zip(&dy[range.clone()])
                .zip(&x[range])
            {
                let xhat = (v as f64 - mu) * r;
                *d = (k * (m * g as f64 - db - xhat * dg)) as f32;
            }
        }
    }
}

/// Batch normalization at inference: `y = γ (x - running_mean) / sqrt(running_var + eps) + β`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_forward(
    n: usize,
    c: usize,
    plane: usize,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    check(n, c, plane, x.len(), y.len(), gamma.len(), beta.len());
    for ch in 0..c {
        let r = 1.0 / (running_var[ch] + eps).sqrt();
        let (scale, shift) = (gamma[ch] * r, beta[ch] - gamma[ch] * r * running_mean[ch]);
        for i in 0..n {
            let range = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            for (o, &v) in y[range.clone()].iter_mut().zip(&x[range]) {
                *o = scale * v + shift;
            }
        }
    }
}

fn check(n: usize, c: usize, plane: usize, x: usize, y: usize, gamma: usize, beta: usize) {
    assert_eq!(x, n * c * plane, "batchnorm: input length");
    assert_eq!(y, x, "batchnorm: output length");
    assert!(gamma == c && beta == c, "batchnorm: parameter lengths");
}

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
    // window in the same order as one element at a time would; rows are independent, so
    // they go to the runtime's threads.
    for_chunks(scale, plane, |r, row| {
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
        row.iter_mut().for_each(|r| *r = k + a * *r);
    });
    let scale = &*scale;
    for_chunks(y, plane, |r, ys| {
        let at = r * plane..(r + 1) * plane;
        for ((o, &v), &s) in ys.iter_mut().zip(&x[at.clone()]).zip(&scale[at]) {
            *o = v * pow_neg(s, beta);
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
        for_chunks(t, plane, |ch, trow| {
            let at = ch * plane..(ch + 1) * plane;
            let inputs = gs[at.clone()].iter().zip(&xs[at.clone()]).zip(&ss[at]);
            for (tv, ((&g, &v), &s)) in trow.iter_mut().zip(inputs) {
                // s^(-β-1) = s^-β / s
                *tv = g * v * (pow_neg(s, beta) / s);
            }
        });
        let t = &*t;
        for_chunks(&mut dx[r], plane, |j, row| {
            let lo = j.saturating_sub(before);
            let hi = (j + after).min(c - 1);
            row.fill(0.0);
            for ch in lo..=hi {
                for (r, &tv) in row.iter_mut().zip(&t[ch * plane..(ch + 1) * plane]) {
                    *r += tv;
                }
            }
            for (q, r) in row.iter_mut().enumerate() {
                let at = j * plane + q;
                *r = gs[at] * pow_neg(ss[at], beta) - coef * xs[at] * *r;
            }
        });
    }
}
