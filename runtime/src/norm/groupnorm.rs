//! Group normalization (`F.group_norm`): the channels of each sample fall into `groups`
//! consecutive groups, and each group (its `c/groups` channels over the whole plane, which are
//! contiguous in NCHW) is normalized by its own mean and biased variance, then scaled and
//! shifted per channel. Unlike batchnorm it does not look across the batch, so it behaves the
//! same at any batch size and has no running statistics.

/// `y = (x - μ)·rstd · weight[c] + bias[c]` with `μ` and `rstd = 1/sqrt(σ² + eps)` (biased
/// variance) of each sample's group; `mean` and `rstd` receive them (`n·groups` values,
/// sample-major) for the backward pass. Statistics are summed in f64.
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_forward(
    n: usize,
    c: usize,
    plane: usize,
    groups: usize,
    eps: f32,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let cg = check(n, c, plane, groups, x.len(), weight.len(), mean.len());
    assert!(
        y.len() == x.len() && bias.len() == c && rstd.len() == mean.len(),
        "groupnorm: lengths"
    );
    let m = (cg * plane) as f64;
    for (r, (xs, ys)) in x
        .chunks_exact(cg * plane)
        .zip(y.chunks_exact_mut(cg * plane))
        .enumerate()
    {
        let mu = xs.iter().map(|&v| v as f64).sum::<f64>() / m;
        let var = xs.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / m;
        let rs = 1.0 / (var + eps as f64).sqrt();
        mean[r] = mu as f32;
        rstd[r] = rs as f32;
        let c0 = (r % groups) * cg;
        for (k, (yc, xc)) in ys
            .chunks_exact_mut(plane)
            .zip(xs.chunks_exact(plane))
            .enumerate()
        {
            let scale = weight[c0 + k] as f64 * rs;
            let shift = bias[c0 + k] as f64 - scale * mu;
            for (o, &v) in yc.iter_mut().zip(xc) {
                *o = (scale * v as f64 + shift) as f32;
            }
        }
    }
}

/// The gradient of group normalization (overwrites `dx`, `dweight`, `dbias`): with
/// `x̂ = (x - μ)·rstd` and `g = dy·weight[c]`, over the `m = c/groups·plane` values of a
/// group, `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))`; `dweight[c] = Σ dy·x̂` and
/// `dbias[c] = Σ dy` over the batch and the plane.
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_backward(
    n: usize,
    c: usize,
    plane: usize,
    groups: usize,
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) {
    let cg = check(n, c, plane, groups, x.len(), weight.len(), mean.len());
    assert!(
        dy.len() == x.len()
            && dx.len() == x.len()
            && rstd.len() == mean.len()
            && dweight.len() == c
            && dbias.len() == c,
        "groupnorm: lengths"
    );
    // The parameters' gradients, channel by channel: each row of the plane is contiguous.
    for ch in 0..c {
        let (mut dw, mut db) = (0.0f64, 0.0f64);
        for i in 0..n {
            let r = i * groups + ch / cg;
            let (mu, rs) = (mean[r] as f64, rstd[r] as f64);
            let at = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            for (&g, &v) in dy[at.clone()].iter().zip(&x[at]) {
                dw += g as f64 * (v as f64 - mu) * rs;
                db += g as f64;
            }
        }
        dweight[ch] = dw as f32;
        dbias[ch] = db as f32;
    }
    let m = (cg * plane) as f64;
    let len = cg * plane;
    for (r, ((xs, gs), ds)) in x
        .chunks_exact(len)
        .zip(dy.chunks_exact(len))
        .zip(dx.chunks_exact_mut(len))
        .enumerate()
    {
        let (mu, rs) = (mean[r] as f64, rstd[r] as f64);
        let c0 = (r % groups) * cg;
        let (mut sg, mut sgx) = (0.0f64, 0.0f64);
        for (k, (xc, gc)) in xs
            .chunks_exact(plane)
            .zip(gs.chunks_exact(plane))
            .enumerate()
        {
            let wk = weight[c0 + k] as f64;
            for (&v, &g) in xc.iter().zip(gc) {
                let g = g as f64 * wk;
                sg += g;
                sgx += g * (v as f64 - mu) * rs;
            }
        }
        let (sg, sgx) = (sg / m, sgx / m);
        for (k, ((dc, xc), gc)) in ds
            .chunks_exact_mut(plane)
            .zip(xs.chunks_exact(plane))
            .zip(gs.chunks_exact(plane))
            .enumerate()
        {
            let wk = weight[c0 + k] as f64;
            for ((d, &v), &g) in dc.iter_mut().zip(xc).zip(gc) {
                let xhat = (v as f64 - mu) * rs;
                *d = (rs * (g as f64 * wk - sg - xhat * sgx)) as f32;
            }
        }
    }
}

/// Checks the shapes shared by both passes; returns the channels per group.
fn check(
    n: usize,
    c: usize,
    plane: usize,
    groups: usize,
    x: usize,
    weight: usize,
    stats: usize,
) -> usize {
    assert!(
        c > 0 && groups > 0 && c.is_multiple_of(groups),
        "groupnorm: {c} channels in {groups} groups"
    );
    assert!(plane > 0, "groupnorm: an empty plane");
    assert!(
        x == n * c * plane && weight == c && stats == n * groups,
        "groupnorm: lengths"
    );
    c / groups
}
