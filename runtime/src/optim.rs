//! Optimizers with PyTorch's update rules, one step over one parameter tensor and its
//! gradient. The state (momentum buffers, Adam's moments, the step count) lives in the
//! struct so that checkpoints can save it and a resumed run continues bit for bit.

/// SGD with momentum, Nesterov momentum and L2 weight decay (`torch.optim.SGD`):
/// `g ← g + wd·p`; `b ← μ·b + g` (`b ← g` on the first step); `g ← g + μ·b` with Nesterov,
/// else `g ← b`; `p ← p - lr·g`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ (0: plain SGD).
    pub momentum: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Adam (`torch.optim.Adam`, L2 weight decay added to the gradient) or, with `decoupled`,
/// AdamW (`torch.optim.AdamW`, `p ← p·(1 - lr·wd)` before the step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// AdamW: weight decay applied to the weights, not the gradient.
    pub decoupled: bool,
}

/// The per-tensor state of an optimizer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptState {
    /// Steps taken.
    pub step: u64,
    /// SGD's momentum buffer, or Adam's first moment (empty until the first step).
    pub m: Vec<f32>,
    /// Adam's second moment.
    pub v: Vec<f32>,
}

impl Sgd {
    /// One update of the parameters `p` with their gradient `g`.
    pub fn step(&self, p: &mut [f32], g: &[f32], st: &mut OptState) {
        assert_eq!(p.len(), g.len(), "sgd: lengths");
        let first = st.step == 0;
        st.step += 1;
        if self.momentum != 0.0 && st.m.len() != p.len() {
            st.m = vec![0.0; p.len()];
        }
        for (i, (pv, &gv)) in p.iter_mut().zip(g).enumerate() {
            let mut d = gv + self.weight_decay * *pv;
            if self.momentum != 0.0 {
                let b = if first {
                    d
                } else {
                    self.momentum * st.m[i] + d
                };
                st.m[i] = b;
                d = if self.nesterov {
                    d + self.momentum * b
                } else {
                    b
                };
            }
            *pv -= self.lr * d;
        }
    }
}

impl Adam {
    /// One update of the parameters `p` with their gradient `g`.
    pub fn step(&self, p: &mut [f32], g: &[f32], st: &mut OptState) {
        assert_eq!(p.len(), g.len(), "adam: lengths");
        if st.m.len() != p.len() {
            st.m = vec![0.0; p.len()];
            st.v = vec![0.0; p.len()];
        }
        st.step += 1;
        // Bias corrections in f64, as PyTorch computes them: 1 - β^t loses digits in f32.
        let t = st.step as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(t);
        let bc2 = 1.0 - (self.beta2 as f64).powi(t);
        let step_size = (self.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (i, (pv, &gv)) in p.iter_mut().zip(g).enumerate() {
            let mut d = gv;
            if self.decoupled {
                *pv *= 1.0 - self.lr * self.weight_decay;
            } else {
                d += self.weight_decay * *pv;
            }
            st.m[i] = self.beta1 * st.m[i] + (1.0 - self.beta1) * d;
            st.v[i] = self.beta2 * st.v[i] + (1.0 - self.beta2) * d * d;
            let denom = st.v[i].sqrt() / bc2_sqrt + self.eps;
            *pv -= step_size * st.m[i] / denom;
        }
    }
}
