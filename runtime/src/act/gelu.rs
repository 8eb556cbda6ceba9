//! GELU, exact (`x·Φ(x)` with the normal CDF Φ) and with PyTorch's tanh approximation, and
//! the complementary error function that the exact one needs: Rust's standard library has no
//! erf, and the runtime takes no dependency for one function.

use std::f64::consts::FRAC_1_SQRT_2;

use super::Pointwise;

/// `R(t)` of [`erfc`] in powers of `t`, lowest first: a degree-14 fit made by `erfc_fit.py`
/// beside this file (largest relative error of erfc on `[0, 12]`: 3.1e-10).
const R: [f64; 15] = [
    -1.265512123798723,
    1.000000145555732,
    0.37498880663515083,
    0.08367277074926448,
    -0.09131572413264803,
    -0.09266236117598703,
    -0.4059991161047639,
    1.3364802552779045,
    -3.6190153793559414,
    7.549810053729275,
    -9.89990183975509,
    8.020690067483397,
    -3.959351031287229,
    1.1011741560221584,
    -0.1330586797082144,
];

/// `erfc(z) = 2/√π ∫_z^∞ e^(-s²) ds`, to 3.1e-10 relative for `z >= 0` and to 1e-15
/// absolute below (where it is near 2), NaN for NaN. For `z >= 0`,
/// `erfc(z) = t·e^(-z² + R(t))` with `t = 1/(1 + z/2)`; `erfc(-z) = 2 - erfc(z)`. Relative
/// accuracy in the tail is what GELU needs: `Φ(x) = erfc(-x/√2)/2` is tiny for negative `x`,
/// where `1 + erf` would cancel.
#[inline]
fn erfc(z: f64) -> f64 {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    let r = R.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let tail = t * (r - a * a).exp();
    if z < 0.0 {
        2.0 - tail
    } else {
        tail
    }
}

/// `1/√(2π)`, the normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// GELU, PyTorch's default (`approximate="none"`): `x·Φ(x)` with `Φ(x) = erfc(-x/√2)/2`,
/// and `df = Φ(x) + x·φ(x)` with `φ(x) = e^(-x²/2)/√(2π)`. Computed in f64 and rounded
/// once, so within an ulp of the exact value (PyTorch's vectorized erf is within 1.5e-7).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gelu;

impl Pointwise for Gelu {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        let x = x as f64;
        (x * 0.5 * erfc(-x * FRAC_1_SQRT_2)) as f32
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        let x = x as f64;
        let cdf = 0.5 * erfc(-x * FRAC_1_SQRT_2);
        let pdf = (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI;
        (cdf + x * pdf) as f32
    }
}

/// `√(2/π)`, in f32 as PyTorch's kernel holds it.
const BETA: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const KAPPA: f32 = 0.044715;

/// GELU with `approximate="tanh"`: `x/2 · (1 + tanh(u))`, `u = √(2/π)(x + 0.044715x³)`;
/// `df = (1 + tanh u)/2 + x/2 · (1 - tanh²u) · √(2/π)(1 + 3·0.044715x²)`. In f32, in
/// PyTorch's order of operations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GeluTanh;

impl Pointwise for GeluTanh {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        let inner = BETA * (x + KAPPA * (x * x * x));
        0.5 * x * (1.0 + inner.tanh())
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        let x2 = x * x;
        let tanh = (BETA * (x + KAPPA * (x2 * x))).tanh();
        let left = 0.5 * (1.0 + tanh);
        let right = 0.5 * x * (1.0 - tanh * tanh) * (BETA * (1.0 + 3.0 * KAPPA * x2));
        left + right
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;

    /// Against mpmath at 30 digits.
    #[test]
    fn erfc_matches_reference_values() {
        let cases = [
            (0.0, 1.0),
            (1e-3, 0.9988716212090307),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (2.5, 0.0004069520174449589),
            (3.0, 2.209049699858544e-05),
            (5.0, 1.537459794428035e-12),
            (10.0, 2.088487583762545e-45),
            (26.0, 5.663192408856143e-296),
            (-1.0, 1.8427007929497148),
            (-3.0, 1.9999779095030015),
        ];
        for (z, want) in cases {
            let got = erfc(z);
            assert!(
                ((got - want) / want).abs() < 4e-10,
                "erfc({z}) = {got}, want {want}"
            );
        }
        assert_eq!(erfc(f64::INFINITY), 0.0);
        assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
        assert!(erfc(f64::NAN).is_nan());
    }

    #[test]
    fn constants_are_what_they_say() {
        assert!((FRAC_1_SQRT_2PI - 1.0 / (2.0 * PI).sqrt()).abs() < 1e-16);
        assert_eq!(BETA, (2.0 / PI).sqrt() as f32);
    }
}
