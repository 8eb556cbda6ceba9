//! Activations, forward and backward: every elementwise one through one generic kernel over a
//! [`Pointwise`] op (its function and derivative, with PyTorch's numerics at the kinks and at
//! NaN); softmax over channels; and the random masks of training (dropout, stochastic depth).
//! Backward passes take what the forward kept (the output for ops whose derivative the output
//! decides, else the input; the mask for dropout) and overwrite `dx` unless they say "in
//! place".

mod dropout;
mod gelu;
mod ops;
mod pointwise;
mod softmax;

pub use dropout::{
    dropout_backward, dropout_forward, stochastic_depth_backward, stochastic_depth_forward,
};
pub use gelu::{Gelu, GeluTanh};
pub use ops::{
    Elu, Hardsigmoid, Hardswish, Hardtanh, LeakyRelu, Mish, Relu, Relu6, Sigmoid, Silu, Tanh,
};
pub use pointwise::{
    backward, backward_inplace, backward_inplace_slot, forward, forward_inplace, Pointwise,
};
pub use softmax::{softmax_backward, softmax_forward};
