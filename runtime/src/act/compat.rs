//! The per-activation functions that generated code calls today, each a thin wrapper over the
//! generic kernel in `pointwise.rs`. They are kept for the generated code until the compiler
//! moves to [`forward`] and [`backward`] with an op value; new code should call those.

use super::{backward, backward_inplace, backward_inplace_slot, forward, forward_inplace};
use super::{LeakyRelu, Relu, Sigmoid, Tanh};
use crate::tensor::Slot;

/// `y = max(x, 0)`, NaN passed through. Kept for the generated code until the compiler moves
/// to `act::forward`.
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    forward(Relu, x, y);
}

/// `dx = dy` where `y > 0` (or NaN, as PyTorch), else 0: the output decides, so the input
/// need not be kept. Kept for the generated code until the compiler moves to `act::backward`.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward(Relu, y, y, dy, dx);
}

/// `dy ← dy · [y > 0]` in place: the backward of a ReLU fused into the layer before it,
/// whose output `y` is the ReLU's. Kept for the generated code until the compiler moves to
/// `act::backward_inplace`.
pub fn relu_backward_inplace(y: &[f32], dy: &mut [f32]) {
    backward_inplace(Relu, y, dy);
}

/// [`relu_backward_inplace`] on `n` images of `len` elements at `slot` of `y` and `dy` (a
/// layer that writes its slice of a concat in place).
pub fn relu_backward_inplace_slot(n: usize, len: usize, slot: Slot, y: &[f32], dy: &mut [f32]) {
    backward_inplace_slot(Relu, n, len, slot, y, dy);
}

/// `x ← max(x, 0)`: a ReLU that shares its input's buffer (the `inplace` pass); its
/// backward is [`relu_backward_inplace`]. Kept for the generated code until the compiler
/// moves to `act::forward_inplace`.
pub fn relu_inplace(x: &mut [f32]) {
    forward_inplace(Relu, x);
}

/// `x ← 1 / (1 + e^-x)` in place; backward [`sigmoid_backward_inplace`]. Kept for the
/// generated code until the compiler moves to `act::forward_inplace`.
pub fn sigmoid_inplace(x: &mut [f32]) {
    forward_inplace(Sigmoid, x);
}

/// `dy ← dy · y(1 - y)` in place. Kept for the generated code until the compiler moves to
/// `act::backward_inplace`.
pub fn sigmoid_backward_inplace(y: &[f32], dy: &mut [f32]) {
    backward_inplace(Sigmoid, y, dy);
}

/// `x ← tanh x` in place; backward [`tanh_backward_inplace`]. Kept for the generated code
/// until the compiler moves to `act::forward_inplace`.
pub fn tanh_inplace(x: &mut [f32]) {
    forward_inplace(Tanh, x);
}

/// `dy ← dy · (1 - y²)` in place. Kept for the generated code until the compiler moves to
/// `act::backward_inplace`.
pub fn tanh_backward_inplace(y: &[f32], dy: &mut [f32]) {
    backward_inplace(Tanh, y, dy);
}

/// `y = x` for `x > 0`, else `slope·x`. Kept for the generated code until the compiler
/// moves to `act::forward`.
pub fn leaky_relu_forward(slope: f32, x: &[f32], y: &mut [f32]) {
    forward(LeakyRelu { slope }, x, y);
}

/// `dx = dy` where `x > 0`, else `slope·dy`. Kept for the generated code until the compiler
/// moves to `act::backward`.
pub fn leaky_relu_backward(slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    // The output is not read; `x` stands in for it.
    backward(LeakyRelu { slope }, x, x, dy, dx);
}

/// `y = 1 / (1 + e^-x)`. Kept for the generated code until the compiler moves to
/// `act::forward`.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    forward(Sigmoid, x, y);
}

/// `dx = dy · y(1 - y)`. Kept for the generated code until the compiler moves to
/// `act::backward`.
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward(Sigmoid, y, y, dy, dx);
}

/// `y = tanh x`. Kept for the generated code until the compiler moves to `act::forward`.
pub fn tanh_forward(x: &[f32], y: &mut [f32]) {
    forward(Tanh, x, y);
}

/// `dx = dy · (1 - y²)`. Kept for the generated code until the compiler moves to
/// `act::backward`.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward(Tanh, y, y, dy, dx);
}
