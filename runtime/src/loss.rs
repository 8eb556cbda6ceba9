//! Losses, each fused with its gradient: softmax cross-entropy (mean over the batch, stable
//! for large logits: it subtracts the maximum and works with log-sum-exp) and mean squared
//! error (mean over all elements). Both return the loss and write `d loss / d input` scaled
//! by `weight`, the term's factor in the objective.

/// `loss = -1/n Σ_i log softmax(x_i)[label_i]`; `dx = weight/n · (softmax(x_i) - onehot)`.
/// Returns the unweighted loss. Panics on a label outside `0..classes` (the data loader
/// checks labels before they get here).
pub fn softmax_ce(classes: usize, x: &[f32], labels: &[i64], weight: f32, dx: &mut [f32]) -> f32 {
    let n = labels.len();
    assert!(x.len() == n * classes && dx.len() == x.len(), "ce: lengths");
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
        total += lse - row[l] as f64;
        let scale = weight as f64 / n as f64;
        for (j, (d, &v)) in drow.iter_mut().zip(row).enumerate() {
            let p = ((v as f64) - lse).exp();
            *d = (scale * (p - f64::from(u8::from(j == l)))) as f32;
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
