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

/// Parameters and MACs of `op` with input shape `x` and output shape `y` (docs/language.md
/// "Meaning": a conv costs `weights·Ho·Wo`, a conv_t `weights·H·W`, a linear `F·out`).
pub fn cost(op: &Op, x: &Shape, y: &Shape) -> Cost {
    let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    match op {
        Op::Conv(c) => {
            let w = product(&[c.out, x[0] / c.groups, c.k[0], c.k[1]]);
            Cost {
                weights: sat(w),
                biases: if c.bias { c.out as u64 } else { 0 },
                macs: sat(w.saturating_mul(product(&[y[1], y[2]]))),
            }
        }
        Op::ConvT(c) => {
            let w = product(&[x[0], c.out / c.groups, c.k[0], c.k[1]]);
            Cost {
                weights: sat(w),
                biases: if c.bias { c.out as u64 } else { 0 },
                macs: sat(w.saturating_mul(product(&[x[1], x[2]]))),
            }
        }
        Op::Linear { out, bias, .. } => {
            let w = product(&[x[0], *out]);
            Cost {
                weights: sat(w),
                biases: if *bias { *out as u64 } else { 0 },
                macs: sat(w),
            }
        }
        Op::BatchNorm { .. } => Cost {
            weights: x[0] as u64,
            biases: x[0] as u64,
            macs: 0,
        },
        _ => Cost::default(),
    }
}
