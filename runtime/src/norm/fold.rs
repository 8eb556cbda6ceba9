//! Batchnorm folded into the convolution before it, at inference: with `s = γ/√(var + eps)`
//! per output channel, `bn(conv(x, w) + b) = conv(x, s·w) + β + (b − mean)·s`, one GEMM with
//! another weight and bias. The compiler's interpreter and generated code both call this, so
//! the formula is written once.

/// The folded weight and bias of a conv whose weight `w` holds `γ.len()` output channels:
/// `wf[o] = s·w[o]`, `bf[o] = β[o] + (b[o] − mean[o])·s` with `s = γ[o]/√(var[o] + eps)`
/// (`b` = 0 without a bias), in `f64` and rounded once, as [`super::batchnorm_eval_forward`]
/// computes its scale and shift.
#[allow(clippy::too_many_arguments)]
pub fn fold_batchnorm(
    eps: f32,
    w: &[f32],
    b: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    wf: &mut [f32],
    bf: &mut [f32],
) {
    let k = w.len() / gamma.len();
    assert_eq!(w.len(), k * gamma.len(), "fold_batchnorm: weight length");
    assert_eq!(wf.len(), w.len(), "fold_batchnorm: folded weight length");
    assert_eq!(bf.len(), gamma.len(), "fold_batchnorm: folded bias length");
    for (o, (wo, fo)) in w.chunks_exact(k).zip(wf.chunks_exact_mut(k)).enumerate() {
        let s = gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt();
        for (f, &v) in fo.iter_mut().zip(wo) {
            *f = (s * v as f64) as f32;
        }
        let b = b.map_or(0.0, |b| b[o]) as f64;
        bf[o] = (beta[o] as f64 + (b - mean[o] as f64) * s) as f32;
    }
}
