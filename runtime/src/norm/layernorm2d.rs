//! ConvNeXt's `LayerNorm2d`: layer normalization over the channels at each position of each
//! sample (torchvision permutes to NHWC and calls `F.layer_norm` over C; here the channels
//! of a position are `plane` apart in NCHW). The statistics of `BLOCK` neighbouring positions
//! are summed together, one channel row at a time, so the reads stay contiguous and the sums
//! (in f64) vectorize.

/// Positions whose statistics are summed together.
const BLOCK: usize = 64;

/// `y = (x - μ)·rstd · weight[c] + bias[c]` with `μ` and `rstd = 1/sqrt(σ² + eps)` (biased
/// variance) over the `c` channels at each position; `mean` and `rstd` receive them
/// (`n·plane` values, sample-major) for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn layernorm2d_forward(
    n: usize,
    c: usize,
    plane: usize,
    eps: f32,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    check(n, c, plane, x.len(), weight.len(), mean.len());
    assert!(
        y.len() == x.len() && bias.len() == c && rstd.len() == mean.len(),
        "layernorm2d: lengths"
    );
    let m = c as f64;
    for i in 0..n {
        let xs = &x[i * c * plane..(i + 1) * c * plane];
        let ys = &mut y[i * c * plane..(i + 1) * c * plane];
        for q0 in (0..plane).step_by(BLOCK) {
            let q1 = (q0 + BLOCK).min(plane);
            let rows = |ch: usize| ch * plane + q0..ch * plane + q1;
            let mut mu = [0.0f64; BLOCK];
            for ch in 0..c {
                for (s, &v) in mu.iter_mut().zip(&xs[rows(ch)]) {
                    *s += v as f64;
                }
            }
            mu.iter_mut().for_each(|s| *s /= m);
            let mut rs = [0.0f64; BLOCK];
            for ch in 0..c {
                for ((s, &v), &u) in rs.iter_mut().zip(&xs[rows(ch)]).zip(&mu) {
                    *s += (v as f64 - u).powi(2);
                }
            }
            rs.iter_mut()
                .for_each(|s| *s = 1.0 / (*s / m + eps as f64).sqrt());
            let at = i * plane + q0..i * plane + q1;
            for ((o, r), (&u, &s)) in mean[at.clone()]
                .iter_mut()
                .zip(&mut rstd[at])
                .zip(mu.iter().zip(&rs))
            {
                *o = u as f32;
                *r = s as f32;
            }
            for ch in 0..c {
                let (w, b) = (weight[ch] as f64, bias[ch] as f64);
                let row = rows(ch);
                let values = xs[row.clone()].iter().zip(mu.iter().zip(&rs));
                for (o, (&v, (&u, &s))) in ys[row].iter_mut().zip(values) {
                    *o = ((v as f64 - u) * s * w + b) as f32;
                }
            }
        }
    }
}

/// The gradient of [`layernorm2d_forward`] (overwrites `dx`, `dweight`, `dbias`): with
/// `x̂ = (x - μ)·rstd` and `g = dy·weight[c]`, over the `c` channels of a position,
/// `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))`; `dweight[c] = Σ dy·x̂` and `dbias[c] = Σ dy`
/// over the batch and the plane.
#[allow(clippy::too_many_arguments)]
pub fn layernorm2d_backward(
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) {
    check(n, c, plane, x.len(), weight.len(), mean.len());
    assert!(
        dy.len() == x.len()
            && dx.len() == x.len()
            && rstd.len() == mean.len()
            && dweight.len() == c
            && dbias.len() == c,
        "layernorm2d: lengths"
    );
    // The parameters' gradients, channel by channel: a channel's row of one sample is
    // contiguous, and so are the statistics of its positions.
    for ch in 0..c {
        let (mut dw, mut db) = (0.0f64, 0.0f64);
        for i in 0..n {
            let at = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            let stats = &mean[i * plane..(i + 1) * plane];
            let rstds = &rstd[i * plane..(i + 1) * plane];
            let values = dy[at.clone()].iter().zip(&x[at]);
            for ((&g, &v), (&u, &s)) in values.zip(stats.iter().zip(rstds)) {
                dw += g as f64 * (v as f64 - u as f64) * s as f64;
                db += g as f64;
            }
        }
        dweight[ch] = dw as f32;
        dbias[ch] = db as f32;
    }
    let m = c as f64;
    for i in 0..n {
        let r = i * c * plane..(i + 1) * c * plane;
        let (xs, gs, ds) = (&x[r.clone()], &dy[r.clone()], &mut dx[r]);
        for q0 in (0..plane).step_by(BLOCK) {
            let q1 = (q0 + BLOCK).min(plane);
            let rows = |ch: usize| ch * plane + q0..ch * plane + q1;
            let (mut mu, mut rs) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
            let at = i * plane + q0..i * plane + q1;
            for ((u, s), (&a, &b)) in mu
                .iter_mut()
                .zip(&mut rs)
                .zip(mean[at.clone()].iter().zip(&rstd[at]))
            {
                *u = a as f64;
                *s = b as f64;
            }
            // mean(g) and mean(g·x̂) at each position of the block.
            let (mut sg, mut sgx) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
            for (ch, &w) in weight.iter().enumerate() {
                let w = w as f64;
                let values = xs[rows(ch)].iter().zip(&gs[rows(ch)]);
                let stats = mu.iter().zip(&rs);
                for ((a, b), ((&v, &g), (&u, &s))) in
                    sg.iter_mut().zip(&mut sgx).zip(values.zip(stats))
                {
                    let g = g as f64 * w;
                    *a += g;
                    *b += g * (v as f64 - u) * s;
                }
            }
            for (ch, &w) in weight.iter().enumerate() {
                let (w, row) = (w as f64, rows(ch));
                let values = xs[row.clone()].iter().zip(&gs[row.clone()]);
                let stats = mu.iter().zip(&rs).zip(sg.iter().zip(&sgx));
                for (d, ((&v, &g), ((&u, &s), (&a, &b)))) in
                    ds[row].iter_mut().zip(values.zip(stats))
                {
                    let xhat = (v as f64 - u) * s;
                    *d = (s * (g as f64 * w - a / m - xhat * b / m)) as f32;
                }
            }
        }
    }
}

/// Checks the shapes shared by both passes.
fn check(n: usize, c: usize, plane: usize, x: usize, weight: usize, stats: usize) {
    assert!(c > 0, "layernorm2d: no channels");
    assert!(
        x == n * c * plane && weight == c && stats == n * plane,
        "layernorm2d: lengths"
    );
}
