//! Weight initialization, PyTorch's uniform variants, from the portable [`Rng`]:
//! He (`kaiming_uniform_` with ReLU gain): `U(-b, b)`, `b = sqrt(6 / fan_in)`;
//! Xavier (`xavier_uniform_`): `b = sqrt(6 / (fan_in + fan_out))`. Biases start at zero,
//! batchnorm at γ = 1, β = 0.
//!
//! Fans follow PyTorch's rule for a weight of shape `[a, b, kh, kw]`: `fan_in = b·kh·kw`,
//! `fan_out = a·kh·kw` (for a conv_t, whose weight is `[in, out/groups, ..]`, that makes
//! `fan_in` count output channels, as in PyTorch).

use crate::rng::Rng;

/// How weights start: which of PyTorch's uniform initializations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// He (Kaiming) uniform, for ReLU networks.
    He,
    /// Xavier (Glorot) uniform.
    Xavier,
}

/// `fan_in` and `fan_out` of a weight with shape `shape` (`[out, in]` or `[a, b, kh, kw]`).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    assert!(
        shape.len() >= 2,
        "init: a weight has at least two dimensions"
    );
    let receptive: usize = shape[2..].iter().product();
    (shape[1] * receptive, shape[0] * receptive)
}

/// The bound `b` of `U(-b, b)` for a weight of shape `shape`.
pub fn bound(init: Init, shape: &[usize]) -> f32 {
    let (fan_in, fan_out) = fans(shape);
    match init {
        Init::He => (6.0 / fan_in as f64).sqrt() as f32,
        Init::Xavier => (6.0 / (fan_in + fan_out) as f64).sqrt() as f32,
    }
}

/// Fills `w` (of shape `shape`) from `U(-b, b)`.
pub fn init_weight(init: Init, shape: &[usize], rng: &mut Rng, w: &mut [f32]) {
    assert_eq!(w.len(), shape.iter().product::<usize>(), "init: length");
    let b = bound(init, shape);
    for v in w.iter_mut() {
        *v = rng.uniform(-b, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_and_bounds_follow_pytorch() {
        // conv 192 → 128, 3×3: fan_in 1728, fan_out 1152.
        assert_eq!(fans(&[128, 192, 3, 3]), (1728, 1152));
        assert_eq!(fans(&[10, 84]), (84, 10));
        assert!((bound(Init::He, &[10, 84]) - (6.0f32 / 84.0).sqrt()).abs() < 1e-7);
        assert!((bound(Init::Xavier, &[10, 84]) - (6.0f32 / 94.0).sqrt()).abs() < 1e-7);
    }

    #[test]
    fn samples_fill_the_interval() {
        let shape = [64, 32, 3, 3];
        let mut w = vec![0.0; 64 * 32 * 9];
        init_weight(Init::He, &shape, &mut Rng::new(3), &mut w);
        let b = bound(Init::He, &shape);
        assert!(w.iter().all(|v| v.abs() <= b));
        // U(-b, b) has variance b²/3.
        let var = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            (var / (b as f64 * b as f64 / 3.0) - 1.0).abs() < 0.05,
            "{var}"
        );
    }
}
