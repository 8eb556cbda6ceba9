//! The transposed convolution equals the lecture's construction: insert `s - 1` zeros
//! between the rows and columns of the input, pad by `k - p - 1` (plus the output padding at
//! the bottom and right), and convolve with stride 1 using the kernel flipped in both axes
//! with input and output channels swapped.

use netc_runtime::conv::*;
use netc_runtime::conv_t::*;
use netc_runtime::rng::Rng;

#[test]
fn conv_t_is_the_lectures_zero_insertion_construction() {
    let mut rng = Rng::new(5);
    for (k, s, p, op) in [
        (3, 2, 1, 1),
        (4, 2, 1, 0),
        (3, 3, 0, 2),
        (5, 1, 2, 0),
        (2, 2, 0, 1),
        (3, 2, 2, 0),
    ] {
        let (c, out, h, w, n) = (3, 2, 4, 5, 2);
        let t = ConvT2d {
            c,
            h,
            w,
            out,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: p,
            pw: p,
            oph: op,
            opw: op,
            dh: 1,
            dw: 1,
            groups: 1,
        };
        let x: Vec<f32> = (0..n * c * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let wt: Vec<f32> = (0..t.weight_len())
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let mut y = vec![0.0; n * out * t.ho() * t.wo()];
        let mut col = vec![0.0; t.col_len()];
        conv_t2d_forward(&t, n, &x, &wt, None, &mut y, &mut col);

        // Zero insertion and padding: `k - p - 1` on each side, plus `op` at the end.
        let pad = k - p - 1;
        let (hz, wz) = (
            (h - 1) * s + 1 + 2 * pad + op,
            (w - 1) * s + 1 + 2 * pad + op,
        );
        let mut z = vec![0.0; n * c * hz * wz];
        for i in 0..n * c {
            for r in 0..h {
                for q in 0..w {
                    z[i * hz * wz + (pad + r * s) * wz + pad + q * s] = x[i * h * w + r * w + q];
                }
            }
        }
        // The flipped kernel with channels swapped: [out, c, k, k] from [c, out, k, k].
        let mut flipped = vec![0.0; wt.len()];
        for ci in 0..c {
            for o in 0..out {
                for a in 0..k {
                    for b in 0..k {
                        flipped[((o * c + ci) * k + a) * k + b] =
                            wt[((ci * out + o) * k + (k - 1 - a)) * k + (k - 1 - b)];
                    }
                }
            }
        }
        let g = Conv2d::square(c, hz, wz, out, k, 1, 0);
        assert_eq!(
            (g.ho(), g.wo()),
            (t.ho(), t.wo()),
            "k={k} s={s} p={p} op={op}"
        );
        let mut y2 = vec![0.0; y.len()];
        let mut col2 = vec![0.0; g.col_len()];
        conv2d_forward(&g, n, &z, &flipped, None, false, &mut y2, &mut col2);
        let worst = y
            .iter()
            .zip(&y2)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "k={k} s={s} p={p} op={op}: differs by {worst}"
        );
    }
}
