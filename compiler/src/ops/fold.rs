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
//! The formula is the runtime's (`rt::norm::fold_batchnorm`), which the interpreter, the plan
//! runner and generated modules all call.

/// The batchnorm a conv applies after itself at inference: the batchnorm's path (its
/// parameters are `PATH.weight`, `.bias`, `.running_mean` and `.running_var`) and its `eps`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fold {
    pub bn: String,
    pub eps: f64,
}

#[cfg(test)]
mod tests {
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
            rt::norm::fold_batchnorm(1e-5, &w, b, &gamma, &beta, &mean, &var, &mut wf, &mut bf);
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
