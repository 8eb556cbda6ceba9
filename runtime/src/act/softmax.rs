//! Softmax over the channels of NCHW tensors (PyTorch's `dim=1`), stable for large inputs
//! (it subtracts each position's maximum), and its backward from the output.

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
