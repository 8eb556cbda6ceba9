//! Batch normalization, training and inference, with the activation that follows it (ReLU,
//! ReLU6) applied in the same pass over memory.
//!
//! Training forward reads `x` twice and writes `y` once, the least the math allows (the
//! statistics must be complete before any output): one pass for the sum and sum of squares,
//! each shifted by the channel's first value so that the f64 variance does not cancel, then
//! one pass `y = act(scale·x + shift)`. Backward likewise: one pass for `dβ = Σ dy'` and
//! `dγ = Σ dy'·x̂`, where `dy'` is `dy` through the activation's mask (recomputed from `x`,
//! so backward reads no output), then one for `dx`.
//!
//! Statistics run over channels in parallel, each channel summed by one thread in a fixed
//! order; the elementwise passes run over planes. Results do not depend on the thread count.

use rayon::prelude::*;

use crate::gemm::{Act, Context};

/// Below this many elements a call stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Runs `f(channel)` for every channel, collecting results in channel order.
fn per_channel<T: Send>(c: usize, elems: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let ctx = Context::global();
    if ctx.threads() > 1 && elems >= PARALLEL_MIN && c > 1 {
        ctx.install(|| (0..c).into_par_iter().map(&f).collect())
    } else {
        (0..c).map(f).collect()
    }
}

/// Runs `f(channel, offset, plane)` over the `n·c` planes of `buf`, `offset` the plane's
/// first element in `buf`.
fn per_plane(buf: &mut [f32], c: usize, plane: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    if plane == 0 {
        return;
    }
    let ctx = Context::global();
    if ctx.threads() > 1 && buf.len() >= PARALLEL_MIN {
        ctx.install(|| {
            buf.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(i, p)| f(i % c, i * plane, p))
        });
    } else {
        buf.chunks_mut(plane)
            .enumerate()
            .for_each(|(i, p)| f(i % c, i * plane, p));
    }
}

/// The planes of channel `ch`.
fn planes(x: &[f32], c: usize, plane: usize, ch: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks_exact(plane.max(1)).skip(ch).step_by(c)
}

/// `act(v)`: the clamp to `[0, hi]`, NaN passed through (as the GEMM epilogue).
#[inline(always)]
fn clamp(v: f32, hi: Option<f32>) -> f32 {
    match hi {
        Some(_) if v < 0.0 => 0.0,
        Some(hi) if v > hi => hi,
        _ => v,
    }
}

/// Whether the activation passes the gradient at pre-activation `v` (PyTorch: ReLU's where
/// `y > 0`, ReLU6's where `0 < y < 6`).
#[inline(always)]
fn passes(v: f32, hi: Option<f32>) -> bool {
    match hi {
        None => true,
        Some(hi) => v > 0.0 && v < hi,
    }
}

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
    batchnorm_train_forward_act(
        n,
        c,
        plane,
        eps,
        momentum,
        x,
        gamma,
        beta,
        Act::None,
        running_mean,
        running_var,
        y,
        mean,
        rstd,
    );
}

/// [`batchnorm_train_forward`] followed by `act` in the same pass.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward_act(
    n: usize,
    c: usize,
    plane: usize,
    eps: f32,
    momentum: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    act: Act,
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
    // (mean, biased variance) of each channel, in one pass: with `k` the channel's first
    // value, `Σ(x-k)` and `Σ(x-k)²` in f64 keep the variance exact to rounding even when the
    // mean is far from zero.
    let stats = per_channel(c, x.len(), |ch| {
        let k = x[ch * plane] as f64;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for p in planes(x, c, plane, ch) {
            for &v in p {
                let d = v as f64 - k;
                s += d;
                s2 += d * d;
            }
        }
        let d = s / m;
        (k + d, (s2 / m - d * d).max(0.0))
    });
    let mut coef = Vec::with_capacity(c);
    for (ch, &(mu, var)) in stats.iter().enumerate() {
        let r = 1.0 / (var + eps as f64).sqrt();
        mean[ch] = mu as f32;
        rstd[ch] = r as f32;
        let unbiased = var * m / (m - 1.0);
        let mom = momentum as f64;
        running_mean[ch] = ((1.0 - mom) * running_mean[ch] as f64 + mom * mu) as f32;
        running_var[ch] = ((1.0 - mom) * running_var[ch] as f64 + mom * unbiased) as f32;
        let scale = gamma[ch] as f64 * r;
        coef.push((scale as f32, (beta[ch] as f64 - scale * mu) as f32));
    }
    normalize(x, &coef, act, c, plane, y);
}

/// `y = act(scale·x + shift)` per channel.
fn normalize(x: &[f32], coef: &[(f32, f32)], act: Act, c: usize, plane: usize, y: &mut [f32]) {
    let hi = act.clamp_hi();
    per_plane(y, c, plane, |ch, at, yp| {
        let (scale, shift) = coef[ch];
        let xp = &x[at..at + yp.len()];
        for (o, &v) in yp.iter_mut().zip(xp) {
            *o = clamp(scale * v + shift, hi);
        }
    });
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
    let zeros = vec![0.0; c];
    batchnorm_train_backward_act(
        n,
        c,
        plane,
        x,
        gamma,
        &zeros,
        Act::None,
        mean,
        rstd,
        dy,
        dx,
        dgamma,
        dbeta,
    );
}

/// The gradient of [`batchnorm_train_forward_act`]: `dy` is taken through the activation's
/// mask, recomputed from `x`, `γ`, `β` and the saved statistics exactly as forward computed
/// the output.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_backward_act(
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    act: Act,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    check(n, c, plane, x.len(), dy.len(), gamma.len(), dgamma.len());
    assert!(dx.len() == x.len() && dbeta.len() == c && mean.len() == c && rstd.len() == c);
    assert_eq!(beta.len(), c, "batchnorm: beta length");
    let hi = act.clamp_hi();
    let m = (n * plane) as f64;
    // The forward's per-channel affine map, to recompute the activation's mask.
    let coef: Vec<(f32, f32)> = (0..c)
        .map(|ch| {
            let scale = gamma[ch] as f64 * rstd[ch] as f64;
            (
                scale as f32,
                (beta[ch] as f64 - scale * mean[ch] as f64) as f32,
            )
        })
        .collect();
    // (Σ dy', Σ dy'·x) per channel.
    let sums = per_channel(c, x.len(), |ch| {
        let (scale, shift) = coef[ch];
        let (mut db, mut dxs) = (0.0f64, 0.0f64);
        for (gp, xp) in planes(dy, c, plane, ch).zip(planes(x, c, plane, ch)) {
            for (&g, &v) in gp.iter().zip(xp) {
                if passes(scale * v + shift, hi) {
                    db += g as f64;
                    dxs += g as f64 * v as f64;
                }
            }
        }
        (db, dxs)
    });
    // dx = a·dy' + b·x + c0 with a = γr, b = -γr²·dγ/m, c0 = γr/m·(r·μ·dγ - dβ).
    let mut abc = Vec::with_capacity(c);
    for (ch, &(db, dxs)) in sums.iter().enumerate() {
        let (mu, r, gm) = (mean[ch] as f64, rstd[ch] as f64, gamma[ch] as f64);
        let dg = (dxs - mu * db) * r;
        dbeta[ch] = db as f32;
        dgamma[ch] = dg as f32;
        let a = gm * r;
        abc.push((
            a as f32,
            (-a * r * dg / m) as f32,
            (a / m * (r * mu * dg - db)) as f32,
        ));
    }
    per_plane(dx, c, plane, |ch, at, dp| {
        let ((a, b, c0), (scale, shift)) = (abc[ch], coef[ch]);
        let (gp, xp) = (&dy[at..at + dp.len()], &x[at..at + dp.len()]);
        for ((d, &g), &v) in dp.iter_mut().zip(gp).zip(xp) {
            let g = if passes(scale * v + shift, hi) {
                g
            } else {
                0.0
            };
            *d = a * g + (b * v + c0);
        }
    });
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
    batchnorm_eval_forward_act(
        n,
        c,
        plane,
        eps,
        x,
        gamma,
        beta,
        Act::None,
        running_mean,
        running_var,
        y,
    );
}

/// [`batchnorm_eval_forward`] followed by `act` in the same pass.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_forward_act(
    n: usize,
    c: usize,
    plane: usize,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    act: Act,
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    check(n, c, plane, x.len(), y.len(), gamma.len(), beta.len());
    let coef: Vec<(f32, f32)> = (0..c)
        .map(|ch| {
            let r = 1.0 / (running_var[ch] + eps).sqrt();
            (gamma[ch] * r, beta[ch] - gamma[ch] * r * running_mean[ch])
        })
        .collect();
    normalize(x, &coef, act, c, plane, y);
}

fn check(n: usize, c: usize, plane: usize, x: usize, y: usize, gamma: usize, beta: usize) {
    assert_eq!(x, n * c * plane, "batchnorm: input length");
    assert_eq!(y, x, "batchnorm: output length");
    assert!(gamma == c && beta == c, "batchnorm: parameter lengths");
}
