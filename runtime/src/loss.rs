//! Losses, each fused with its gradient: softmax cross-entropy (mean over the batch, with
//! optional label smoothing; stable for large logits: it subtracts the maximum and works with
//! log-sum-exp), mean squared and mean absolute error, and binary cross-entropy on logits
//! (stable: it never takes the log of a sigmoid). Each returns the unweighted loss and writes
//! `d loss / d input` scaled by `weight`, the term's factor in the objective; sums are in f64.

/// `loss = -1/n Σ_i log softmax(x_i)[label_i]`; `dx = weight/n · (softmax(x_i) - onehot)`.
/// Returns the unweighted loss. Panics on a label outside `0..classes` (the data loader
/// checks labels before they get here). [`softmax_ce_smooth`] with no smoothing.
pub fn softmax_ce(classes: usize, x: &[f32], labels: &[i64], weight: f32, dx: &mut [f32]) -> f32 {
    softmax_ce_smooth(classes, x, labels, 0.0, weight, dx)
}

/// Softmax cross-entropy with label smoothing `ε` (PyTorch's `label_smoothing`): the target
/// is `(1-ε)·onehot + ε/K` over the `K = classes`, so with `p = softmax(x_i)`,
/// `loss = 1/n Σ_i [(1-ε)·(-log p[label_i]) + ε·mean_j(-log p_j)]` and
/// `dx = weight/n · (p - (1-ε)·onehot - ε/K)`. Returns the unweighted loss; panics on a label
/// outside `0..classes`.
pub fn softmax_ce_smooth(
    classes: usize,
    x: &[f32],
    labels: &[i64],
    smoothing: f32,
    weight: f32,
    dx: &mut [f32],
) -> f32 {
    let n = labels.len();
    assert!(x.len() == n * classes && dx.len() == x.len(), "ce: lengths");
    assert!(
        (0.0..=1.0).contains(&smoothing),
        "ce: label smoothing {smoothing} outside [0, 1]"
    );
    let eps = smoothing as f64;
    let uniform = eps / classes as f64;
    let mut total = 0.0f64;
    for ((row, drow), &label) in x
        .chunks_exact(classes)
        .zip(dx.chunks_exact_mut(classes))
        .zip(labels)
    {
        let l = usize::try_from(label).ok().filter(|&l| l < classes);
        let l = l.unwrap_or_else(|| panic!("ce: label {label} outside 0..{classes}"));
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        // -mean_j log p_j = lse - mean_j x_j; skipped without smoothing, so that the plain
        // loss does not depend on logits other than the label's beyond the log-sum-exp.
        let smooth = if eps > 0.0 {
            eps * (lse - row.iter().map(|&v| v as f64).sum::<f64>() / classes as f64)
        } else {
            0.0
        };
        total += (1.0 - eps) * (lse - row[l] as f64) + smooth;
        let scale = weight as f64 / n as f64;
        for (j, (d, &v)) in drow.iter_mut().zip(row).enumerate() {
            let p = ((v as f64) - lse).exp();
            let target = (1.0 - eps) * f64::from(u8::from(j == l)) + uniform;
            *d = (scale * (p - target)) as f32;
        }
    }
    (total / n as f64) as f32
}

/// `loss = mean((a - b)²)`; `da = weight · 2(a - b)/len`, `db = -da`. Returns the
/// unweighted loss. Either gradient may be skipped (an input that needs none).
pub fn mse(
    a: &[f32],
    b: &[f32],
    weight: f32,
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> f32 {
    assert_eq!(a.len(), b.len(), "mse: lengths");
    let len = a.len() as f64;
    let total: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum();
    let scale = (2.0 * weight as f64 / len) as f32;
    if let Some(da) = da {
        assert_eq!(da.len(), a.len(), "mse: gradient length");
        for ((d, &x), &y) in da.iter_mut().zip(a).zip(b) {
            *d = scale * (x - y);
        }
    }
    if let Some(db) = db {
        assert_eq!(db.len(), a.len(), "mse: gradient length");
        for ((d, &x), &y) in db.iter_mut().zip(a).zip(b) {
            *d = -scale * (x - y);
        }
    }
    (total / len) as f32
}

/// `loss = mean|a - b|`; `da = weight · sign(a - b)/len` (0 where `a == b`, as PyTorch's
/// `sign`), `db = -da`. Returns the unweighted loss. Either gradient may be skipped.
pub fn l1(
    a: &[f32],
    b: &[f32],
    weight: f32,
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> f32 {
    assert_eq!(a.len(), b.len(), "l1: lengths");
    let len = a.len() as f64;
    let total: f64 = a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).abs()).sum();
    let scale = (weight as f64 / len) as f32;
    // sign(a - b), NaN kept (PyTorch's `sign` of NaN is NaN).
    let sign = |x: f32, y: f32| {
        let d = x - y;
        if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            d * 0.0
        }
    };
    if let Some(da) = da {
        assert_eq!(da.len(), a.len(), "l1: gradient length");
        for ((d, &x), &y) in da.iter_mut().zip(a).zip(b) {
            *d = scale * sign(x, y);
        }
    }
    if let Some(db) = db {
        assert_eq!(db.len(), a.len(), "l1: gradient length");
        for ((d, &x), &y) in db.iter_mut().zip(a).zip(b) {
            *d = -scale * sign(x, y);
        }
    }
    (total / len) as f32
}

/// Binary cross-entropy on logits (`F.binary_cross_entropy_with_logits`, mean over all
/// elements): per element `(1 - t)·x + softplus(-x)`, which is `-t·log σ(x) - (1-t)·log(1 -
/// σ(x))` without the logarithm of a sigmoid that rounds to 0 or 1
/// (`softplus(z) = max(z, 0) + log(1 + e^-|z|)`). `dx = weight·(σ(x) - t)/len`;
/// `dt = -weight·x/len` (a target may be computed, too). Returns the unweighted loss. Either
/// gradient may be skipped.
pub fn bce_logits(
    x: &[f32],
    t: &[f32],
    weight: f32,
    dx: Option<&mut [f32]>,
    dt: Option<&mut [f32]>,
) -> f32 {
    assert_eq!(x.len(), t.len(), "bce: lengths");
    let len = x.len() as f64;
    let total: f64 = x
        .iter()
        .zip(t)
        .map(|(&x, &t)| {
            let (x, t) = (x as f64, t as f64);
            (1.0 - t) * x + (-x).max(0.0) + (-x.abs()).exp().ln_1p()
        })
        .sum();
    let scale = weight as f64 / len;
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "bce: gradient length");
        for ((d, &x), &t) in dx.iter_mut().zip(x).zip(t) {
            let sigmoid = 1.0 / (1.0 + (-x as f64).exp());
            *d = (scale * (sigmoid - t as f64)) as f32;
        }
    }
    if let Some(dt) = dt {
        assert_eq!(dt.len(), x.len(), "bce: gradient length");
        for (d, &x) in dt.iter_mut().zip(x) {
            *d = (-scale * x as f64) as f32;
        }
    }
    (total / len) as f32
}
