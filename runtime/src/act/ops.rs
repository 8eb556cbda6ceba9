//! The elementwise activations as [`Pointwise`] ops, each with PyTorch's formula, its
//! behaviour at the kinks (which side of a breakpoint gets which slope) and at NaN: clamps
//! propagate NaN (Rust's `f32::max` would not, so none is used here), and a backward that is
//! a select in PyTorch passes or blocks `dy` exactly as PyTorch's comparison does for NaN.
//! GELU is in `gelu.rs`, with the erfc it needs.

use super::Pointwise;

/// `clamp(x, lo, hi)` with NaN passed through, as `torch.clamp`.
#[inline]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `1 / (1 + e^-x)`
#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `max(x, 0)`; the gradient passes where `y > 0` and where `y` is NaN (PyTorch's
/// `threshold_backward(dy, y, 0)` zeroes exactly where `y <= 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Relu;

impl Pointwise for Relu {
    const FROM_OUTPUT: bool = true;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        // NaN passes through, and -0 stays -0, as in PyTorch.
        if x < 0.0 {
            0.0
        } else {
            x
        }
    }

    #[inline]
    fn df(&self, _x: f32, y: f32) -> f32 {
        if y > 0.0 || y.is_nan() {
            1.0
        } else {
            0.0
        }
    }

    #[inline]
    fn grad(&self, _x: f32, y: f32, dy: f32) -> f32 {
        // A mask rather than a branch: every element is stored, so this vectorizes.
        let keep = u32::from(y > 0.0 || y.is_nan()).wrapping_neg();
        f32::from_bits(dy.to_bits() & keep)
    }
}

/// `1 / (1 + e^-x)`; `dy · y(1 - y)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sigmoid;

impl Pointwise for Sigmoid {
    const FROM_OUTPUT: bool = true;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        sigmoid(x)
    }

    #[inline]
    fn df(&self, _x: f32, y: f32) -> f32 {
        y * (1.0 - y)
    }

    #[inline]
    fn grad(&self, _x: f32, y: f32, dy: f32) -> f32 {
        // In the order the kernel had before it was generic, so results stay bitwise.
        dy * y * (1.0 - y)
    }
}

/// `tanh x`; `dy · (1 - y²)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tanh;

impl Pointwise for Tanh {
    const FROM_OUTPUT: bool = true;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        x.tanh()
    }

    #[inline]
    fn df(&self, _x: f32, y: f32) -> f32 {
        1.0 - y * y
    }
}

/// `x` for `x > 0`, else `slope·x`; the slope at 0 is `slope` (PyTorch: `x > 0 ? dy :
/// dy·slope`). It needs the input: with a negative slope the output's sign says nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu {
    /// The slope for `x <= 0` (PyTorch's `negative_slope`).
    pub slope: f32,
}

impl Pointwise for LeakyRelu {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        if x > 0.0 {
            x
        } else {
            self.slope * x
        }
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        if x > 0.0 {
            1.0
        } else {
            self.slope
        }
    }
}

/// `clamp(x, min, max)`; the gradient passes only for `min < x < max` strictly (PyTorch's
/// `hardtanh_backward`), and at NaN. Inside the range `y = x` and outside `y` is `min` or
/// `max`, so the output decides (for `min < max`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardtanh {
    /// The lower bound (PyTorch's `min_val`, default -1).
    pub min: f32,
    /// The upper bound (PyTorch's `max_val`, default 1).
    pub max: f32,
}

impl Pointwise for Hardtanh {
    const FROM_OUTPUT: bool = true;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        clamp(x, self.min, self.max)
    }

    #[inline]
    fn df(&self, _x: f32, y: f32) -> f32 {
        if y <= self.min || y >= self.max {
            0.0
        } else {
            1.0
        }
    }

    #[inline]
    fn grad(&self, _x: f32, y: f32, dy: f32) -> f32 {
        if y <= self.min || y >= self.max {
            0.0
        } else {
            dy
        }
    }
}

/// `clamp(x, 0, 6)`: PyTorch's `relu6` is `hardtanh(x, 0, 6)`, so no gradient at 0 or 6.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Relu6;

impl Relu6 {
    const AS_HARDTANH: Hardtanh = Hardtanh { min: 0.0, max: 6.0 };
}

impl Pointwise for Relu6 {
    const FROM_OUTPUT: bool = true;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        Self::AS_HARDTANH.f(x)
    }

    #[inline]
    fn df(&self, x: f32, y: f32) -> f32 {
        Self::AS_HARDTANH.df(x, y)
    }

    #[inline]
    fn grad(&self, x: f32, y: f32, dy: f32) -> f32 {
        Self::AS_HARDTANH.grad(x, y, dy)
    }
}

/// `x · clamp(x + 3, 0, 6) / 6`; PyTorch's derivative is 0 for `x <= -3`, `x/3 + 1/2` for
/// `-3 < x < 3` and 1 for `x >= 3` (and NaN), its select blocking `dy` below -3.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Hardswish;

impl Pointwise for Hardswish {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        x * clamp(x + 3.0, 0.0, 6.0) / 6.0
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        self.grad(x, 0.0, 1.0)
    }

    #[inline]
    fn grad(&self, x: f32, _y: f32, dy: f32) -> f32 {
        if x <= -3.0 {
            0.0
        } else if x < 3.0 {
            dy * (x / 3.0 + 0.5)
        } else {
            dy
        }
    }
}

/// `clamp(x + 3, 0, 6) / 6`; PyTorch's gradient is `dy/6` for `-3 < x < 3` strictly, else 0
/// (NaN included). Not from the output: `x` just below 3 can round to `y = 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Hardsigmoid;

impl Pointwise for Hardsigmoid {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        clamp(x + 3.0, 0.0, 6.0) / 6.0
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        self.grad(x, 0.0, 1.0)
    }

    #[inline]
    fn grad(&self, x: f32, _y: f32, dy: f32) -> f32 {
        if x > -3.0 && x < 3.0 {
            dy / 6.0
        } else {
            0.0
        }
    }
}

/// SiLU (swish): `x·σ(x)`, computed as PyTorch does, `x / (1 + e^-x)`;
/// `dy · σ(x)(1 + x(1 - σ(x)))`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Silu;

impl Pointwise for Silu {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        x / (1.0 + (-x).exp())
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        let s = sigmoid(x);
        s * (1.0 + x * (1.0 - s))
    }
}

/// Mish: `x · tanh(softplus(x))` with `softplus(x) = ln(1 + e^x)` (unthresholded, as
/// PyTorch's kernel); with `t = tanh(softplus(x))`, `df = t + x·σ(x)(1 - t²)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mish;

impl Pointwise for Mish {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        x * x.exp().ln_1p().tanh()
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        let t = x.exp().ln_1p().tanh();
        t + x * sigmoid(x) * (1.0 - t * t)
    }
}

/// ELU: `x` for `x > 0`, else `alpha·(e^x - 1)`; the derivative at 0 is `alpha` (PyTorch's
/// `x <= 0` branch). From the input, as PyTorch's out-of-place `elu` (its output decides
/// only for `alpha >= 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elu {
    /// The scale of the negative branch (default 1).
    pub alpha: f32,
}

impl Pointwise for Elu {
    const FROM_OUTPUT: bool = false;

    #[inline]
    fn f(&self, x: f32) -> f32 {
        if x <= 0.0 {
            self.alpha * x.exp_m1()
        } else {
            x
        }
    }

    #[inline]
    fn df(&self, x: f32, _y: f32) -> f32 {
        if x <= 0.0 {
            self.alpha * x.exp()
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    /// `(y, dx)` of `op` at `x` for `dy = 1`, both bitwise.
    fn at<F: Pointwise>(op: F, x: f32, dy: f32) -> (f32, f32) {
        let mut y = [0.0];
        forward(op, &[x], &mut y);
        let mut dx = [0.0];
        backward(op, &[x], &y, &[dy], &mut dx);
        (y[0], dx[0])
    }

    fn same(got: (f32, f32), want: (f32, f32), what: &str) {
        let eq = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
        assert!(
            eq(got.0, want.0) && eq(got.1, want.1),
            "{what}: got {got:?}, want {want:?}"
        );
    }

    /// What PyTorch 2.x gives (CPU, float32) at NaN and ±∞, where the fixtures cannot go
    /// (JSON has no NaN): clamps propagate NaN, and NaN takes the side of a select whose
    /// comparison is false.
    #[test]
    fn nan_and_infinities_as_pytorch() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        same(at(Relu, nan, 1.0), (nan, 1.0), "relu NaN");
        same(at(Relu, -inf, 1.0), (0.0, 0.0), "relu -inf");
        same(at(Relu, 2.0, inf), (2.0, inf), "relu inf dy");
        same(at(Relu, -2.0, inf), (0.0, 0.0), "relu blocks inf dy");
        same(at(Relu6, nan, 1.0), (nan, 1.0), "relu6 NaN");
        same(at(Relu6, inf, 1.0), (6.0, 0.0), "relu6 inf");
        same(at(Hardswish, nan, 1.0), (nan, 1.0), "hardswish NaN");
        same(at(Hardswish, -inf, 1.0), (nan, 0.0), "hardswish -inf");
        same(at(Hardswish, inf, 1.0), (inf, 1.0), "hardswish inf");
        same(
            at(Hardswish, -6.0, nan),
            (-0.0, 0.0),
            "hardswish blocks NaN dy",
        );
        same(at(Hardsigmoid, nan, 1.0), (nan, 0.0), "hardsigmoid NaN");
        same(at(Hardsigmoid, inf, 1.0), (1.0, 0.0), "hardsigmoid inf");
        same(
            at(LeakyRelu { slope: 0.2 }, nan, 1.0),
            (nan, 0.2),
            "leaky NaN",
        );
        same(
            at(LeakyRelu { slope: 0.2 }, -inf, 1.0),
            (-inf, 0.2),
            "leaky -inf",
        );
        same(at(Elu { alpha: 1.0 }, nan, 1.0), (nan, 1.0), "elu NaN");
        same(at(Elu { alpha: 1.0 }, -inf, 1.0), (-1.0, 0.0), "elu -inf");
        same(at(Silu, inf, 1.0), (inf, nan), "silu inf");
        same(at(Silu, -inf, 1.0), (nan, nan), "silu -inf");
        same(at(Mish, inf, 1.0), (inf, nan), "mish inf");
        same(at(GeluTanh, inf, 1.0), (inf, nan), "gelu tanh inf");
        same(at(GeluTanh, -inf, 1.0), (nan, nan), "gelu tanh -inf");
        same(at(Gelu, -inf, 1.0), (nan, nan), "gelu -inf");
        same(at(Sigmoid, nan, 1.0), (nan, nan), "sigmoid NaN");
        same(at(Tanh, -inf, 1.0), (-1.0, 0.0), "tanh -inf");
    }

    /// The kinks, bitwise, as PyTorch: which side of each breakpoint gets which slope.
    #[test]
    fn kinks_as_pytorch() {
        same(at(Relu, 0.0, 1.0), (0.0, 0.0), "relu 0");
        same(at(Relu, -0.0, 1.0), (-0.0, 0.0), "relu -0");
        same(at(Relu6, 6.0, 1.0), (6.0, 0.0), "relu6 6");
        let ht = Hardtanh {
            min: -1.0,
            max: 1.0,
        };
        same(at(ht, -1.0, 1.0), (-1.0, 0.0), "hardtanh -1");
        same(at(ht, 1.0, 1.0), (1.0, 0.0), "hardtanh 1");
        same(at(ht, -0.0, 1.0), (-0.0, 1.0), "hardtanh -0");
        same(at(Hardswish, -3.0, 1.0), (-0.0, 0.0), "hardswish -3");
        same(at(Hardswish, 3.0, 1.0), (3.0, 1.0), "hardswish 3");
        same(at(Hardswish, 0.0, 1.0), (0.0, 0.5), "hardswish 0");
        same(at(Hardsigmoid, -3.0, 1.0), (0.0, 0.0), "hardsigmoid -3");
        same(at(Hardsigmoid, 3.0, 1.0), (1.0, 0.0), "hardsigmoid 3");
        same(
            at(LeakyRelu { slope: 0.2 }, 0.0, 1.0),
            (0.0, 0.2),
            "leaky 0",
        );
        same(at(Elu { alpha: 0.5 }, 0.0, 1.0), (0.0, 0.5), "elu 0");
    }

    /// For every FROM_OUTPUT op, the in-place forms give bitwise what the out-of-place ones
    /// give.
    #[test]
    fn in_place_forms_agree() {
        fn check<F: Pointwise>(op: F) {
            let x: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.075).collect();
            let dy: Vec<f32> = (0..200).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let mut y = vec![0.0; x.len()];
            forward(op, &x, &mut y);
            let mut inplace = x.clone();
            forward_inplace(op, &mut inplace);
            assert_eq!(inplace, y);
            let mut dx = vec![0.0; x.len()];
            backward(op, &x, &y, &dy, &mut dx);
            let mut d = dy.clone();
            backward_inplace(op, &y, &mut d);
            assert_eq!(d, dx);
        }
        check(Relu);
        check(Relu6);
        check(Sigmoid);
        check(Tanh);
        check(Hardtanh {
            min: -2.0,
            max: 0.5,
        });
    }

    #[test]
    #[should_panic(expected = "Silu: its derivative needs the input")]
    fn no_in_place_backward_from_the_input() {
        backward_inplace(Silu, &[1.0], &mut [1.0]);
    }
}
