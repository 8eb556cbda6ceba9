//! Cost: trainable parameters and multiply-accumulates per sample, counted as docs/language.md
//! "Meaning" and Table 1 of the GoogLeNet paper count them.

use super::{product, Op};
use crate::graph::Shape;

/// What a layer costs per sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Trainable weights, biases excluded (batchnorm: γ).
    pub weights: u64,
    /// Trainable biases (batchnorm: β).
    pub biases: u64,
    /// Multiply-accumulates per sample.
    pub macs: u64,
}

impl Cost {
    pub fn params(&self) -> u64 {
        self.weights + self.biases
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.weights = self.weights.saturating_add(o.weights);
        self.biases = self.biases.saturating_add(o.biases);
        self.macs = self.macs.saturating_add(o.macs);
    }
}

/// Parameters and MACs of `op` with input shapes `ins` and output shape `y`: weights are
/// the trained tensors initialized at random (and a norm's γ, a layer scale's factor),
/// biases the rest (a norm's β); state is no parameter.
pub fn cost(op: &Op, ins: &[&Shape], y: &Shape) -> Cost {
    let k = op.kind();
    let mut c = Cost {
        macs: k.macs(ins, y),
        ..Cost::default()
    };
    for p in k.params(ins).iter().filter(|p| !p.state) {
        let n = u64::try_from(product(&p.shape)).unwrap_or(u64::MAX);
        if p.suffix == "bias" {
            c.biases = c.biases.saturating_add(n);
        } else {
            c.weights = c.weights.saturating_add(n);
        }
    }
    c
}
