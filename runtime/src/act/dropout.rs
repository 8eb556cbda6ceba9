//! Inverted dropout (per element) and stochastic depth (per sample), the two random masks
//! of training. Each draws from the runtime's seeded [`Rng`] in a fixed order, so a seed
//! fixes the mask, and keeps the mask (the scale of each element or sample) for the
//! backward pass; both are the identity at inference, which the compiler arranges.

use crate::rng::Rng;

/// Inverted dropout: each element is kept with probability `1 - p` and scaled by
/// `1 / (1 - p)`, so inference is the identity. `mask` receives the scale of each element
/// (0 or `1/(1-p)`) for the backward pass. The draw comes from `rng`, so a seed fixes it.
pub fn dropout_forward(p: f32, rng: &mut Rng, x: &[f32], y: &mut [f32], mask: &mut [f32]) {
    assert!(
        x.len() == y.len() && y.len() == mask.len(),
        "dropout: lengths"
    );
    assert!((0.0..=1.0).contains(&p), "dropout: p = {p}");
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    for ((o, m), &v) in y.iter_mut().zip(mask.iter_mut()).zip(x) {
        *m = if rng.next_f32() >= p { scale } else { 0.0 };
        *o = v * *m;
    }
}

/// `dx = dy · mask`
pub fn dropout_backward(mask: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        mask.len() == dy.len() && dy.len() == dx.len(),
        "dropout: lengths"
    );
    for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(mask) {
        *d = g * m;
    }
}

/// Stochastic depth (torchvision's `stochastic_depth`, `mode="row"`): sample `i` of the `n`
/// in `x` is kept whole with probability `1 - p` and scaled by `1/(1 - p)`, else zeroed
/// (`p = 1` drops every sample). `mask` receives one scale per sample, 0 or `1/(1-p)`; the
/// draws are one [`Rng::next_f32`] per sample, in sample order, kept when `>= p` (as
/// [`dropout_forward`] draws per element).
pub fn stochastic_depth_forward(
    p: f32,
    rng: &mut Rng,
    n: usize,
    x: &[f32],
    y: &mut [f32],
    mask: &mut [f32],
) {
    assert!(
        x.len() == y.len() && mask.len() == n && x.len().is_multiple_of(n),
        "stochastic_depth: lengths"
    );
    assert!((0.0..=1.0).contains(&p), "stochastic_depth: p = {p}");
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    let len = x.len().checked_div(n).unwrap_or(0);
    for (i, m) in mask.iter_mut().enumerate() {
        *m = if rng.next_f32() >= p { scale } else { 0.0 };
        let at = i * len..(i + 1) * len;
        for (o, &v) in y[at.clone()].iter_mut().zip(&x[at]) {
            *o = v * *m;
        }
    }
}

/// `dx = dy · mask[i]` over each sample `i` (overwrites `dx`).
pub fn stochastic_depth_backward(n: usize, mask: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        dy.len() == dx.len() && mask.len() == n && dy.len().is_multiple_of(n),
        "stochastic_depth: lengths"
    );
    let len = dy.len().checked_div(n).unwrap_or(0);
    for (i, &m) in mask.iter().enumerate() {
        let at = i * len..(i + 1) * len;
        for (d, &g) in dx[at.clone()].iter_mut().zip(&dy[at]) {
            *d = g * m;
        }
    }
}
