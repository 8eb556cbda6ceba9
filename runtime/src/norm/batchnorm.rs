//! Batch normalization, training and inference, with the activation that follows it (ReLU,
//! ReLU6) applied in the same pass over memory.
//!
//! Training forward reads `x` twice and writes `y` once, the least the math allows (the
//! statistics must be complete before any output): one pass for the sum and sum of squares,
//! each shifted by the channel's first value so that the f64 variance does not cancel, then
//! one pass `y = act(scale·x + shift)`. Backward likewise: one pass for `dβ = Σ dy'` and
//! `dγ = Σ dy'·x̂`, where `dy'` is `dy` through the activation's mask (read from the output,
//! as PyTorch's ReLU does), then one for `dx`. Outputs are `γ·x̂ + β` evaluated in f64 and
//! rounded once, and `dx` likewise (see [`Affine`]).
//!
//! Statistics run over channels in parallel, each channel summed by one thread in a fixed
//! order; the elementwise passes run over planes. Results do not depend on the thread count.

use rayon::prelude::*;

use crate::gemm::{Act, Context};
use crate::shard::Peers;

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
        None,
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

/// [`batchnorm_train_forward`] followed by `act` in the same pass, on the whole batch
/// (`peers` `None`) or on one shard of it (`x` holds the shard's `n` images) whose
/// statistics are the whole batch's: the shards exchange their partial sums through
/// `peers` and each combines them in shard order, so every shard normalizes by the same
/// mean and deviation and updates the running statistics alike.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward_act(
    peers: Option<&Peers>,
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
        // An empty shard would leave the others waiting at the exchange: its panic stops
        // them (`shard::Group::run`). (`Sharded` never makes one.)
        assert!(peers.is_none(), "batchnorm: a shard without values");
        return; // nothing to normalize; the running statistics stay as they are (PyTorch)
    }
    // Each channel's `(k, Σ(x-k), Σ(x-k)²)` in one pass, `k` its first value: in f64 the
    // shifted sums keep the variance exact to rounding even when the mean is far from zero.
    let sums = per_channel(c, x.len(), |ch| {
        let k = x[ch * plane] as f64;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for p in planes(x, c, plane, ch) {
            for &v in p {
                let d = v as f64 - k;
                s += d;
                s2 += d * d;
            }
        }
        [k, s, s2]
    });
    let local = (n * plane) as f64;
    // (mean, biased variance) of each channel, and the values they are over.
    let (stats, m) = match peers {
        None => {
            let stats = sums
                .iter()
                .map(|&[k, s, s2]| {
                    let d = s / local;
                    (k + d, (s2 / local - d * d).max(0.0))
                })
                .collect::<Vec<_>>();
            (stats, local)
        }
        Some(peers) => whole_batch_stats(peers, &sums, local),
    };
    assert!(
        m > 1.0,
        "batchnorm: training needs more than one value per channel (PyTorch refuses it too)"
    );
    let mut coef = Vec::with_capacity(c);
    for (ch, &(mu, var)) in stats.iter().enumerate() {
        let r = 1.0 / (var + eps as f64).sqrt();
        mean[ch] = mu as f32;
        rstd[ch] = r as f32;
        let unbiased = var * m / (m - 1.0);
        let mom = momentum as f64;
        running_mean[ch] = ((1.0 - mom) * running_mean[ch] as f64 + mom * mu) as f32;
        running_var[ch] = ((1.0 - mom) * running_var[ch] as f64 + mom * unbiased) as f32;
        coef.push(affine(mu, r, gamma[ch], beta[ch]));
    }
    normalize(x, &coef, act, c, plane, y);
}

/// Each channel's mean and biased variance over every shard of the batch, from each
/// shard's `(k, Σ(x-k), Σ(x-k)²)` over its `local` values per channel, combined in shard
/// order (so alike in every shard): with `μ` the batch's mean and `d = μ - k`,
/// `Σ(x-μ)² = Σ(x-k)² - 2d·Σ(x-k) + count·d²` per shard. Returns them and the batch's
/// values per channel.
fn whole_batch_stats(peers: &Peers, sums: &[[f64; 3]], local: f64) -> (Vec<(f64, f64)>, f64) {
    let mut mine: Vec<f64> = sums.iter().flatten().copied().collect();
    mine.push(local);
    let all = peers.all_gather(&mine);
    let count = |shard: &[f64]| shard[shard.len() - 1];
    let m: f64 = all.iter().map(|a| count(a)).sum();
    let stats = (0..sums.len())
        .map(|ch| {
            let total: f64 = all
                .iter()
                .map(|a| count(a) * a[3 * ch] + a[3 * ch + 1])
                .sum();
            let mu = total / m;
            let sq: f64 = all
                .iter()
                .map(|a| {
                    let (k, s, s2) = (a[3 * ch], a[3 * ch + 1], a[3 * ch + 2]);
                    let d = mu - k;
                    s2 - 2.0 * d * s + count(a) * d * d
                })
                .sum();
            (mu, (sq / m).max(0.0))
        })
        .collect();
    (stats, m)
}

/// `y = act(scale·x + shift)` per channel.
fn normalize(x: &[f32], coef: &[Affine], act: Act, c: usize, plane: usize, y: &mut [f32]) {
    let hi = act.clamp_hi();
    per_plane(y, c, plane, |ch, at, yp| {
        let f = coef[ch];
        let xp = &x[at..at + yp.len()];
        for (o, &v) in yp.iter_mut().zip(xp) {
            *o = clamp(f.apply(v), hi);
        }
    });
}

/// A channel's map `x ↦ scale·x + shift`, evaluated in f64 and rounded once: the output is
/// `γ·x̂ + β` correctly rounded. That matters where a channel's values are nearly equal (a
/// small map at batch 2): an f32 evaluation leaves rounding noise of either sign there,
/// which the next batchnorm's statistics turn into signal.
#[derive(Clone, Copy)]
struct Affine {
    scale: f64,
    shift: f64,
}

/// The map of a channel of mean `mu`, reciprocal deviation `r`, weight `gamma` and bias
/// `beta`.
fn affine(mu: f64, r: f64, gamma: f32, beta: f32) -> Affine {
    let scale = gamma as f64 * r;
    Affine {
        scale,
        shift: beta as f64 - scale * mu,
    }
}

impl Affine {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        (self.scale * v as f64 + self.shift) as f32
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
    batchnorm_train_backward_act(
        None,
        n,
        c,
        plane,
        x,
        &[],
        Act::None,
        gamma,
        mean,
        rstd,
        dy,
        dx,
        dgamma,
        dbeta,
    );
}

/// The gradient of [`batchnorm_train_forward_act`]: `dy` is taken through the activation's
/// mask, read from the forward's output `y` (PyTorch's ReLU: where `y > 0`; ReLU6: where
/// `0 < y < 6`); without an activation `y` is not read and may be empty. On one shard
/// (`peers`), `dy` is this shard's gradient, scaled as its own loss (the shards'
/// gradients are summed weighted by their share `w` of the batch, `shard::combine`).
/// `dgamma` and `dbeta` are this shard's, so scaled too; `dx` needs the whole batch's
/// `Σ dy'` and `Σ dy'·x̂`, which the shards exchange: `dx = γr/M·(M·dy' - (Σ_k w_k·dβ_k + x̂·Σ_k w_k·dγ_k) / w)`, `M` the batch's
/// values per channel. With one shard (`w = 1`) it is the formula of a whole batch.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_backward_act(
    peers: Option<&Peers>,
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    y: &[f32],
    act: Act,
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
    let hi = act.clamp_hi();
    if hi.is_some() {
        assert_eq!(y.len(), x.len(), "batchnorm: output length");
    }
    let m = (n * plane) as f64;
    // The plane of `y` at `at` (for the mask; none without an activation).
    let y_at = |at: usize, len: usize| {
        if hi.is_some() {
            &y[at..at + len]
        } else {
            &[][..]
        }
    };
    // (Σ dy', Σ dy'·(x - μ)) per channel, in LANES f64 lanes so that the sums vectorize and
    // do not wait on one another's rounding (the thread count cannot change them).
    let sums = per_channel(c, x.len(), |ch| {
        let mu = mean[ch] as f64;
        let (mut db, mut dxs) = ([0.0f64; LANES], [0.0f64; LANES]);
        for i in 0..n {
            let at = (i * c + ch) * plane;
            let xs = &x[at..at + plane];
            masked_blocks(y_at(at, plane), &dy[at..at + plane], hi, |from, g| {
                let xb = &xs[from..from + g.len()];
                let (gq, xq) = (g.chunks_exact(LANES), xb.chunks_exact(LANES));
                let rest = gq.remainder().iter().zip(xq.remainder());
                for (gq, xq) in gq.zip(xq) {
                    for l in 0..LANES {
                        let gv = gq[l] as f64;
                        db[l] += gv;
                        dxs[l] += gv * (xq[l] as f64 - mu);
                    }
                }
                for (&gv, &xv) in rest {
                    db[0] += gv as f64;
                    dxs[0] += gv as f64 * (xv as f64 - mu);
                }
            });
        }
        (db.iter().sum::<f64>(), dxs.iter().sum::<f64>())
    });
    // This shard's dβ and dγ.
    for (ch, &(db, dxs)) in sums.iter().enumerate() {
        dbeta[ch] = db as f32;
        dgamma[ch] = (dxs * rstd[ch] as f64) as f32;
    }
    // The whole batch's sums, in this shard's scale, and its values per channel.
    let (sums, m) = match peers {
        None => (sums, m),
        Some(peers) => {
            let mut mine: Vec<f64> = sums.iter().flat_map(|&(db, dxs)| [db, dxs]).collect();
            mine.push(m);
            let all = peers.all_gather(&mine);
            let own = peers.weight(peers.index());
            let whole = (0..c)
                .map(|ch| {
                    let sum = |at: usize| {
                        all.iter()
                            .enumerate()
                            .map(|(k, a)| peers.weight(k) * a[2 * ch + at])
                            .sum::<f64>()
                            / own
                    };
                    (sum(0), sum(1))
                })
                .collect();
            (whole, all.iter().map(|a| a[2 * c]).sum())
        }
    };
    // dx = γr/m·(m·dy' - dβ - x̂·dγ) in f64: where a channel has few values (a 1×1 map at
    // batch 2) its dx is all cancellation, and f32 would leave only rounding noise.
    let mut k = Vec::with_capacity(c);
    for (ch, &(db, dxs)) in sums.iter().enumerate() {
        let (r, gm) = (rstd[ch] as f64, gamma[ch] as f64);
        k.push((db, dxs * r, gm * r / m));
    }
    per_plane(dx, c, plane, |ch, at, dp| {
        let (db, dg, kk) = k[ch];
        let (mu, r) = (mean[ch] as f64, rstd[ch] as f64);
        let xs = &x[at..at + dp.len()];
        masked_blocks(y_at(at, dp.len()), &dy[at..at + dp.len()], hi, |from, g| {
            let out = &mut dp[from..from + g.len()];
            for ((d, &gv), &xv) in out.iter_mut().zip(g).zip(&xs[from..]) {
                let xhat = (xv as f64 - mu) * r;
                *d = (kk * (m * gv as f64 - db - xhat * dg)) as f32;
            }
        });
    });
}

/// Accumulator lanes of the backward statistics.
const LANES: usize = 4;

/// Elements of `dy'` made at a time, on the stack.
const BLOCK: usize = 512;

/// Calls `f(offset, dy'[offset..])` for blocks of `dy' = dy` where the activation passed
/// its input (`0 < y < hi`, read from the output `y`, as PyTorch's ReLU and ReLU6), else 0; without an activation (`hi`
/// `None`, `y` empty), `dy' = dy`. The mask is a select, not a branch: a ReLU's is as good as
/// random, and a branch per element would mispredict half the time.
#[inline(always)]
fn masked_blocks(y: &[f32], dy: &[f32], hi: Option<f32>, mut f: impl FnMut(usize, &[f32])) {
    let Some(hi) = hi else {
        f(0, dy);
        return;
    };
    let mut g = [0.0f32; BLOCK];
    for (b, (yb, db)) in y.chunks(BLOCK).zip(dy.chunks(BLOCK)).enumerate() {
        let g = &mut g[..db.len()];
        for ((o, &v), &d) in g.iter_mut().zip(yb).zip(db) {
            *o = if v > 0.0 && v < hi { d } else { 0.0 };
        }
        f(b * BLOCK, g);
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
    let coef: Vec<Affine> = (0..c)
        .map(|ch| {
            let r = 1.0 / (running_var[ch] as f64 + eps as f64).sqrt();
            affine(running_mean[ch] as f64, r, gamma[ch], beta[ch])
        })
        .collect();
    normalize(x, &coef, act, c, plane, y);
}

fn check(n: usize, c: usize, plane: usize, x: usize, y: usize, gamma: usize, beta: usize) {
    assert_eq!(x, n * c * plane, "batchnorm: input length");
    assert_eq!(y, x, "batchnorm: output length");
    assert!(gamma == c && beta == c, "batchnorm: parameter lengths");
}
