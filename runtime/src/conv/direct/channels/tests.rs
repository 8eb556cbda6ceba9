//! The channel-vector kernels against the row kernels: the forward to the bit, the
//! gradients within rounding.

use super::*;

/// Values of every sign and scale, zeros (and negative zeros) among them, from a
/// fixed generator.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match s % 11 {
                0 => 0.0,
                1 => -0.0,
                _ => ((s >> 11) % 2001) as f32 / 1000.0 - 1.0,
            }
        })
        .collect()
}

/// Depthwise convs of whole blocks of eight channels: maps from 1×1 to 28×28, rectangular
/// and narrower than a block of pixels; 1×1, 3×3 and 5×5 kernels at strides 1 and 2, no,
/// some and more padding than the kernel reaches, dilation 2.
fn geometries() -> Vec<Conv2d> {
    let mut v = Vec::new();
    for (c, h, w) in [
        (8, 7, 7),
        (16, 14, 14),
        (8, 5, 9),
        (24, 3, 2),
        (8, 1, 1),
        (8, 28, 28),
    ] {
        for (k, s, p, d) in [
            (3, 1, 1, 1),
            (3, 2, 1, 1),
            (5, 1, 2, 1),
            (5, 2, 2, 1),
            (3, 1, 0, 1),
            (3, 1, 2, 2),
            (1, 1, 0, 1),
            (3, 2, 0, 1),
            (3, 1, 3, 1),
        ] {
            if h + 2 * p > d * (k - 1) && w + 2 * p > d * (k - 1) {
                v.push(Conv2d {
                    c,
                    h,
                    w,
                    out: c,
                    kh: k,
                    kw: k,
                    sh: s,
                    sw: s,
                    ph: p,
                    pw: p,
                    dh: d,
                    dw: d,
                    groups: c,
                });
            }
        }
    }
    v
}

/// Every geometry, epilogue and slot here gives the row kernels' outputs to the bit.
#[test]
fn channels_in_vectors_give_the_row_kernels_bits() {
    if !crate::gemm::avx2::is_available() {
        return;
    }
    let mut cases = 0;
    for g in geometries() {
        let Conv2d { c, h, w, kh: k, .. } = g;
        assert!(applies(&g));
        let n = 2;
        let pl = g.ho() * g.wo();
        let x = values(n * c * h * w, cases);
        let wts = values(c * k * k, cases + 1);
        let b = values(c, cases + 2);
        for act in [Act::None, Act::Relu, Act::Relu6] {
            for beta in [0.0, 1.0] {
                for bias in [None, Some(&b[..])] {
                    // The outputs at channel 3 of a wider tensor, as into a concat.
                    let ys = Slot::channels(3, c + 5, pl);
                    let y0 = values(n * (c + 5) * pl, cases + 3);
                    let (mut want, mut got) = (y0.clone(), y0);
                    super::super::planes(&g, n, &x, &wts, bias, act, &mut want, ys, beta);
                    forward(
                        &g,
                        n,
                        &x,
                        Slot::dense(c * h * w),
                        &wts,
                        bias,
                        act,
                        &mut got,
                        ys,
                        beta,
                    );
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{g:?} {act:?} beta {beta} bias {}",
                        bias.is_some()
                    );
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 400, "{cases} cases");
}

/// A NaN in the input reaches the outputs it feeds, through the clamp, as in the row
/// kernels.
#[test]
fn a_nan_passes_the_clamp() {
    if !crate::gemm::avx2::is_available() {
        return;
    }
    let g = Conv2d {
        c: 8,
        h: 4,
        w: 4,
        out: 8,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
        groups: 8,
    };
    let mut x = values(8 * 16, 5);
    x[2 * 16 + 5] = f32::NAN;
    let wts = values(8 * 9, 6);
    let mut y = vec![0.0; 8 * 16];
    forward(
        &g,
        1,
        &x,
        Slot::dense(8 * 16),
        &wts,
        None,
        Act::Relu6,
        &mut y,
        Slot::dense(8 * 16),
        0.0,
    );
    let nans: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_nan()).collect();
    assert!(
        !nans.is_empty() && nans.iter().all(|&i| i / 16 == 2),
        "{nans:?}"
    );
}

/// The data and weight gradients agree with the row kernels' within rounding, on
/// every geometry (strides and paddings past the kernel's reach scatter), with the
/// output gradients at a slot.
#[test]
fn gradients_agree_with_the_row_kernels() {
    if !crate::gemm::avx2::is_available() {
        return;
    }
    let close = |got: &[f32], want: &[f32], what: &str| {
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{what}: [{i}] {a} against {b}"
            );
        }
    };
    let mut cases = 0;
    for g in geometries() {
        let Conv2d { c, h, w, kh: k, .. } = g;
        let (n, pl) = (3, g.ho() * g.wo());
        let x = values(n * c * h * w, cases);
        let wts = values(c * k * k, cases + 1);
        let dys = Slot::channels(2, c + 3, pl);
        let dy = values(n * (c + 3) * pl, cases + 2);
        let (mut want, mut got) = (vec![0.0; c * k * k], vec![0.0; c * k * k]);
        super::super::planes_backward_weight(&g, n, &x, &dy, dys, &mut want);
        backward_weight(&g, n, &x, &dy, dys, &mut got);
        close(&got, &want, &format!("dw {g:?}"));
        for beta in [0.0, 1.0] {
            let dx0 = values(n * c * h * w, cases + 3);
            let (mut want, mut got) = (dx0.clone(), dx0);
            super::super::planes_backward_data(&g, n, &wts, &dy, dys, &mut want, beta);
            backward_data(&g, n, &wts, &dy, dys, &mut got, beta);
            close(&got, &want, &format!("dx {g:?} beta {beta}"));
        }
        cases += 1;
    }
    assert!(cases > 40, "{cases} cases");
}
