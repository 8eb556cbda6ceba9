//! Elementwise activations, softmax over channels, and dropout, forward and backward.
//! Backward passes take what the forward kept (the output for sigmoid, tanh and softmax;
//! the input for ReLU and leaky ReLU; the mask for dropout) and overwrite `dx`.

use crate::rng::Rng;
use crate::tensor::Slot;

/// `y = max(x, 0)`
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "relu: lengths");
    for (o, &v) in y.iter_mut().zip(x) {
        // NaN passes through, as in PyTorch.
        *o = if v < 0.0 { 0.0 } else { v };
    }
}

/// `dx = dy · [y > 0]`: the output decides, so the input need not be kept (y > 0 ⇔ x > 0).
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() == dy.len() && dy.len() == dx.len(), "relu: lengths");
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(y) {
        *d = if v > 0.0 { g } else { 0.0 };
    }
}

/// `dy ← dy · [y > 0]` in place: the backward of a ReLU fused into the layer before it,
/// whose output `y` is the ReLU's.
pub fn relu_backward_inplace(y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "relu: lengths");
    for (d, &v) in dy.iter_mut().zip(y) {
        // A mask rather than a branch: every element is stored, so this vectorizes.
        let keep = u32::from(v > 0.0).wrapping_neg();
        *d = f32::from_bits(d.to_bits() & keep);
    }
}

/// [`relu_backward_inplace`] on `n` images of `len` elements at `slot` of `y` and `dy` (a
/// layer that writes its slice of a concat in place).
pub fn relu_backward_inplace_slot(n: usize, len: usize, slot: Slot, y: &[f32], dy: &mut [f32]) {
    slot.check(n, len, y.len().min(dy.len()), "relu");
    for i in 0..n {
        let r = slot.image(i, len);
        relu_backward_inplace(&y[r.clone()], &mut dy[r]);
    }
}

/// `x ← max(x, 0)`: a ReLU that shares its input's buffer (the `inplace` pass); its
/// backward is [`relu_backward_inplace`].
pub fn relu_inplace(x: &mut [f32]) {
    for v in x {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// `x ← 1 / (1 + e^-x)` in place; backward [`sigmoid_backward_inplace`].
pub fn sigmoid_inplace(x: &mut [f32]) {
    for v in x {
        *v = 1.0 / (1.0 + (-*v).exp());
    }
}

/// `dy ← dy · y(1 - y)` in place.
pub fn sigmoid_backward_inplace(y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "sigmoid: lengths");
    for (d, &v) in dy.iter_mut().zip(y) {
        *d = *d * v * (1.0 - v);
    }
}

/// `x ← tanh x` in place; backward [`tanh_backward_inplace`].
pub fn tanh_inplace(x: &mut [f32]) {
    for v in x {
        *v = v.tanh();
    }
}

/// `dy ← dy · (1 - y²)` in place.
pub fn tanh_backward_inplace(y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "tanh: lengths");
    for (d, &v) in dy.iter_mut().zip(y) {
        *d *= 1.0 - v * v;
    }
}

/// `y = x` for `x > 0`, else `slope·x`.
pub fn leaky_relu_forward(slope: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "leaky_relu: lengths");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = if v > 0.0 { v } else { slope * v };
    }
}

/// `dx = dy` where `x > 0`, else `slope·dy`.
pub fn leaky_relu_backward(slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == dy.len() && dy.len() == dx.len(),
        "leaky_relu: lengths"
    );
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
        *d = if v > 0.0 { g } else { slope * g };
    }
}

/// `y = 1 / (1 + e^-x)`
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "sigmoid: lengths");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + (-v).exp());
    }
}

/// `dx = dy · y(1 - y)`
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "sigmoid: lengths"
    );
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(y) {
        *d = g * v * (1.0 - v);
    }
}

/// `y = tanh x`
pub fn tanh_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "tanh: lengths");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.tanh();
    }
}

/// `dx = dy · (1 - y²)`
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() == dy.len() && dy.len() == dx.len(), "tanh: lengths");
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(y) {
        *d = g * (1.0 - v * v);
    }
}

/// Softmax over the channels of `n` samples of `channels × plane` (PyTorch's `dim=1`):
/// `y[c] = e^(x[c] - max) / Σ_c' e^(x[c'] - max)` at every position of the plane.
pub fn softmax_forward(channels: usize, plane: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "softmax: lengths");
    assert_eq!(x.len() % (channels * plane), 0, "softmax: shape");
    for (xs, ys) in x
        .chunks_exact(channels * plane)
        .zip(y.chunks_exact_mut(channels * plane))
    {
        for q in 0..plane {
            let max = (0..channels)
                .map(|c| xs[c * plane + q])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for c in 0..channels {
                let e = (xs[c * plane + q] - max).exp();
                ys[c * plane + q] = e;
                sum += e;
            }
            for c in 0..channels {
                ys[c * plane + q] /= sum;
            }
        }
    }
}

/// `dx[c] = y[c] · (dy[c] - Σ_c' dy[c'] y[c'])`
pub fn softmax_backward(channels: usize, plane: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "softmax: lengths"
    );
    let block = channels * plane;
    for ((ys, gs), ds) in y
        .chunks_exact(block)
        .zip(dy.chunks_exact(block))
        .zip(dx.chunks_exact_mut(block))
    {
        for q in 0..plane {
            let dot: f32 = (0..channels)
                .map(|c| gs[c * plane + q] * ys[c * plane + q])
                .sum();
            for c in 0..channels {
                ds[c * plane + q] = ys[c * plane + q] * (gs[c * plane + q] - dot);
            }
        }
    }
}

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
