//! Batchnorm folded into the convolution before it, at inference (the `fold_bn` pass). With
//! `s = γ/√(var + eps)` per output channel, `bn(conv(x, w) + b) = conv(x, s·w) + β + (b −
//! mean)·s`: one GEMM with another weight and bias, whose epilogue can then also apply the
//! activation after the batchnorm, and no pass of its own over the activations.
//!
//! The folded weight follows the parameters as they are: every inference pass folds it again,
//! into scratch, just before its convolution (`out × K` multiplications, where the batchnorm
//! it replaces reads and writes every activation of the batch). Nothing is cached, so
//! nothing can go stale when the trainer updates the weights or the statistics.
//!
//! The formula is written twice: [`fold_batchnorm`] for the interpreter and the plan runner,
//! and [`helper`], the same function printed into generated modules (the runtime has no such
//! kernel). Generated code is compared with the unfused interpreter, which keeps them equal.

use proc_macro2::TokenStream;
use quote::quote;

/// The batchnorm a conv applies after itself at inference: the batchnorm's path (its
/// parameters are `PATH.weight`, `.bias`, `.running_mean` and `.running_var`) and its `eps`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fold {
    pub bn: String,
    pub eps: f64,
}

/// The folded weight and bias of a conv whose weight `w` holds `γ.len()` output channels:
/// `wf[o] = s·w[o]`, `bf[o] = β[o] + (b[o] − mean[o])·s` with `s = γ[o]/√(var[o] + eps)`
/// (`b` = 0 without a bias), in `f64` and rounded once, as the runtime's batchnorm computes
/// its scale and shift.
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
    for (o, (wo, fo)) in w.chunks_exact(k).zip(wf.chunks_exact_mut(k)).enumerate() {
        let s = gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt();
        for (f, &v) in fo.iter_mut().zip(wo) {
            *f = (s * v as f64) as f32;
        }
        let b = b.map_or(0.0, |b| b[o]) as f64;
        bf[o] = (beta[o] as f64 + (b - mean[o] as f64) * s) as f32;
    }
}

/// [`fold_batchnorm`] as an item of a generated module (which has it when it folds a
/// batchnorm).
pub fn helper() -> TokenStream {
    quote! {
        /// Batchnorm folded into the convolution before it (inference): per output channel
        /// `o`, `s = γ[o]/√(var[o] + eps)`, `wf[o] = s·w[o]` and `bf[o] = β[o] + (b[o] −
        /// mean[o])·s` (`b` = 0 without a bias), in `f64` and rounded once.
        #[allow(clippy::too_many_arguments)]
        fn fold_batchnorm(
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
            for (o, (wo, fo)) in w.chunks_exact(k).zip(wf.chunks_exact_mut(k)).enumerate() {
                let s = gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt();
                for (f, &v) in fo.iter_mut().zip(wo) {
                    *f = (s * v as f64) as f32;
                }
                let b = b.map_or(0.0, |b| b[o]) as f64;
                bf[o] = (beta[o] as f64 + (b - mean[o] as f64) * s) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folded conv gives what the conv and then the batchnorm give, with and without a
    /// bias, on a grouped conv too.
    #[test]
    fn a_folded_conv_is_the_conv_then_its_batchnorm() {
        use netc_runtime as rt;
        let mut rng = rt::rng::Rng::new(3);
        let mut draw = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..n).map(|_| rng.uniform(lo, hi)).collect()
        };
        for (groups, bias) in [(1, true), (1, false), (4, true), (2, false)] {
            let geo = rt::conv::Conv2d {
                c: 4,
                h: 5,
                w: 5,
                out: 4,
                kh: 3,
                kw: 3,
                sh: 1,
                sw: 1,
                ph: 1,
                pw: 1,
                dh: 1,
                dw: 1,
                groups,
            };
            let (n, k) = (2, 4 / groups * 9);
            let x = draw(n * 4 * 25, -1.0, 1.0);
            let w = draw(4 * k, -1.0, 1.0);
            let b = draw(4, -0.5, 0.5);
            let (gamma, beta) = (draw(4, 0.5, 1.5), draw(4, -0.5, 0.5));
            let (mean, var) = (draw(4, -0.5, 0.5), draw(4, 0.1, 2.0));
            let b = bias.then_some(&b[..]);
            let mut col = vec![0.0; geo.col_len()];
            let (mut conv, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            rt::conv::conv2d_forward(&geo, n, &x, &w, b, false, &mut conv, &mut col);
            rt::norm::batchnorm_eval_forward(
                n, 4, 25, 1e-5, &conv, &gamma, &beta, &mean, &var, &mut want,
            );
            let (mut wf, mut bf) = (vec![0.0; w.len()], vec![0.0; 4]);
            fold_batchnorm(1e-5, &w, b, &gamma, &beta, &mean, &var, &mut wf, &mut bf);
            let mut got = vec![0.0; x.len()];
            rt::conv::conv2d_forward(&geo, n, &x, &wf, Some(&bf), false, &mut got, &mut col);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5,
                    "groups {groups}: [{i}] {g} against {w}"
                );
            }
        }
    }
}
