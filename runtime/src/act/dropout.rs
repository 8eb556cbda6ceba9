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

#[cfg(test)]
mod tests {
    use super::*;

    /// Over many draws, the kept fraction is `1 - p` and every kept value is scaled by
    /// `1/(1-p)`; the same seed gives the same mask.
    #[test]
    fn dropout_keeps_one_minus_p_scaled() {
        let len = 100_000;
        let x = vec![1.0f32; len];
        for p in [0.0, 0.1, 0.5, 0.9] {
            let (mut y, mut mask) = (vec![0.0; len], vec![0.0; len]);
            dropout_forward(p, &mut Rng::new(7), &x, &mut y, &mut mask);
            let scale = 1.0 / (1.0 - p);
            assert!(mask.iter().all(|&m| m == 0.0 || m == scale), "p = {p}");
            assert_eq!(y, mask, "p = {p}: y = x·mask with x = 1");
            let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64 / len as f64;
            // Four standard deviations of a binomial fraction.
            let sd = ((p * (1.0 - p)) as f64 / len as f64).sqrt();
            assert!(
                (kept - (1.0 - p) as f64).abs() <= 4.0 * sd + 1e-12,
                "p = {p}: kept {kept}"
            );
            let mean = y.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            assert!((mean - 1.0).abs() < 0.02, "p = {p}: E[y] = {mean}");
            let (mut y2, mut mask2) = (vec![0.0; len], vec![0.0; len]);
            dropout_forward(p, &mut Rng::new(7), &x, &mut y2, &mut mask2);
            assert_eq!(mask, mask2, "p = {p}: same seed, same mask");
        }
        let (mut y, mut mask) = (vec![0.0; 10], vec![0.0; 10]);
        dropout_forward(1.0, &mut Rng::new(7), &x[..10], &mut y, &mut mask);
        assert!(y.iter().chain(&mask).all(|&v| v == 0.0), "p = 1 drops all");
    }

    /// Per sample: each sample is kept or dropped whole, the kept fraction over many samples is
    /// `1 - p`, kept samples are scaled by `1/(1-p)`, `p = 1` drops all, `p = 0` keeps all;
    /// the same seed gives the same mask, and a sample's draw does not depend on its size.
    #[test]
    fn stochastic_depth_keeps_whole_samples() {
        let (n, len) = (20_000, 3);
        let x: Vec<f32> = (0..n * len).map(|i| 1.0 + (i % len) as f32).collect();
        for p in [0.0, 0.2, 0.5, 1.0] {
            let (mut y, mut mask) = (vec![0.0; x.len()], vec![0.0; n]);
            stochastic_depth_forward(p, &mut Rng::new(11), n, &x, &mut y, &mut mask);
            let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
            for (i, &m) in mask.iter().enumerate() {
                assert!(m == 0.0 || m == scale, "p = {p}: mask {m}");
                for k in 0..len {
                    assert_eq!(y[i * len + k], x[i * len + k] * m, "p = {p}: sample {i}");
                }
            }
            let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64 / n as f64;
            let sd = ((p * (1.0 - p)) as f64 / n as f64).sqrt();
            assert!(
                (kept - (1.0 - p) as f64).abs() <= 4.0 * sd + 1e-12,
                "p = {p}: kept {kept}"
            );
            let mut again = vec![0.0; n];
            stochastic_depth_forward(p, &mut Rng::new(11), n, &x, &mut y, &mut again);
            assert_eq!(mask, again, "p = {p}: same seed, same mask");
            // One draw per sample, in order: the same stream as dropout's over n elements.
            let (mut ones, mut per_element) = (vec![0.0; n], vec![0.0; n]);
            dropout_forward(
                p,
                &mut Rng::new(11),
                &vec![1.0; n],
                &mut ones,
                &mut per_element,
            );
            assert_eq!(mask, per_element, "p = {p}: one draw per sample");
        }
    }

    #[test]
    fn stochastic_depth_backward_scales_each_sample() {
        let mask = [0.0, 2.0];
        let dy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut dx = [9.0; 6];
        stochastic_depth_backward(2, &mask, &dy, &mut dx);
        assert_eq!(dx, [0.0, 0.0, 0.0, 8.0, 10.0, 12.0]);
    }
}
