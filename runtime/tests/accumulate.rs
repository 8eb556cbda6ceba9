//! The accumulating (`_acc`) forms of backward data add the input gradient into `dx`: from a
//! random `dx0` they give `dx0 + ∂L/∂x` (what the overwriting form writes), to rounding, on
//! every path of the implementation. The overwriting forms, which share the code with
//! `beta = 0`, still ignore what `dx` held (the same bits from NaN and from `dx0`).
//!
//! Which path a conv takes (see `conv/mod.rs`, checked by its unit test
//! `accumulate_test_geometries_take_their_paths`): a stride-1 conv whose padding is at most its
//! reach computes dX as a convolution with the flipped kernel (`DataAsConv`) when `col` holds
//! the flipped weights and the padded dY; a 1×1 stride-1 unpadded one is a GEMM straight into
//! dX (pointwise); every other one is a GEMM into col, then col2im adds it into dX.

// Only its `assert_close`: the rest reads PyTorch fixtures.
#[allow(dead_code)]
mod common;

use common::assert_close;
use netc_runtime::conv::*;
use netc_runtime::conv_t::*;
use netc_runtime::linear::*;
use netc_runtime::rng::Rng;
use netc_runtime::tensor::Slot;

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Checks one kernel, `run(accumulate, dx)`: the overwriting form (`accumulate` false) gives
/// the same bits whatever `dx` held, and the accumulating form gives `dx0 + that` within 1e-5
/// relative (plus 1e-6 of the largest value, for sums that cancel).
fn check(what: &str, rng: &mut Rng, len: usize, mut run: impl FnMut(bool, &mut [f32])) {
    assert!(len > 0, "{what}: empty");
    let dx0 = random(rng, len);
    let mut over = vec![f32::NAN; len];
    run(false, &mut over);
    let mut over_from_dx0 = dx0.clone();
    run(false, &mut over_from_dx0);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&over) == bits(&over_from_dx0),
        "{what}: the overwriting form depends on what dx held"
    );
    assert!(
        over.iter().any(|&v| v.abs() > 0.01),
        "{what}: a gradient too small to tell adding from not"
    );
    let want: Vec<f32> = dx0.iter().zip(&over).map(|(a, b)| a + b).collect();
    let mut got = dx0.clone();
    run(true, &mut got);
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close(what, &got, &want, 1e-5, 1e-6 * largest);
}

/// Both data-gradient forms of a conv, dense and with `dy` read from a channel slot, with
/// `room` times the col buffer the conv needs.
fn check_conv(what: &str, g: Conv2d, room: usize) {
    let mut rng = Rng::new(7);
    let n = 2;
    let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
    let w = random(&mut rng, g.weight_len());
    let dy = random(&mut rng, n * ys);
    let mut col = vec![0.0; room * g.col_len_one()];
    check(what, &mut rng, n * xs, |acc, dx| {
        if acc {
            conv2d_backward_data_acc(&g, n, &w, &dy, dx, &mut col);
        } else {
            conv2d_backward_data(&g, n, &w, &dy, dx, &mut col);
        }
    });
    // dy as channels 3.. of a tensor with 4 more channels than the conv has outputs.
    let plane = g.ho() * g.wo();
    let dys = Slot::channels(3, g.out + 4, plane);
    let wide = random(&mut rng, n * (g.out + 4) * plane);
    check(&format!("{what}, slot"), &mut rng, n * xs, |acc, dx| {
        if acc {
            conv2d_backward_data_slot_acc(&g, n, &w, &wide, dys, dx, &mut col);
        } else {
            conv2d_backward_data_slot(&g, n, &w, &wide, dys, dx, &mut col);
        }
    });
}

#[test]
fn conv_3x3_stride_1_as_a_conv_with_the_flipped_kernel() {
    let g = Conv2d::square(4, 7, 6, 5, 3, 1, 1);
    check_conv("3×3 stride 1", g, 1);
}

#[test]
fn conv_3x3_stride_1_by_col2im() {
    // One input channel and 16 outputs: the padded dY does not fit col, so col2im.
    let g = Conv2d::square(1, 5, 5, 16, 3, 1, 1);
    check_conv("3×3 stride 1, col2im", g, 1);
    // Padding beyond the kernel's reach: col2im whatever the room.
    let g = Conv2d::square(2, 5, 6, 3, 3, 1, 3);
    check_conv("3×3 stride 1 padding 3", g, 4);
}

#[test]
fn conv_strided_by_col2im() {
    check_conv("3×3 stride 2", Conv2d::square(3, 9, 8, 4, 3, 2, 1), 1);
    check_conv("1×1 stride 2", Conv2d::square(5, 7, 7, 3, 1, 2, 0), 1);
}

#[test]
fn conv_1x1_stride_1_pointwise() {
    check_conv("1×1", Conv2d::square(6, 5, 7, 4, 1, 1, 0), 1);
    // More output channels than one k block of the GEMM (KC = 256): beta applies only to
    // the first block, the others add to what it wrote.
    check_conv("1×1, 300 outputs", Conv2d::square(3, 4, 5, 300, 1, 1, 0), 1);
}

#[test]
fn conv_dilated() {
    let g = Conv2d {
        dh: 2,
        dw: 3,
        ..Conv2d::square(3, 9, 11, 4, 3, 1, 2)
    };
    check_conv("dilated, flipped kernel", g, 1);
    let g = Conv2d {
        dh: 2,
        dw: 2,
        ..Conv2d::square(3, 10, 9, 4, 3, 2, 1)
    };
    check_conv("dilated stride 2, col2im", g, 1);
}

#[test]
fn conv_grouped() {
    let g = Conv2d {
        groups: 2,
        ..Conv2d::square(4, 6, 7, 6, 3, 1, 1)
    };
    check_conv("grouped, flipped kernel", g, 1);
    let g = Conv2d {
        groups: 3,
        ..Conv2d::square(6, 8, 7, 9, 3, 2, 1)
    };
    check_conv("grouped stride 2, col2im", g, 1);
    let g = Conv2d {
        groups: 2,
        ..Conv2d::square(6, 4, 5, 4, 1, 1, 0)
    };
    check_conv("grouped 1×1, pointwise", g, 1);
}

fn conv_t(c: usize, out: usize, k: usize, s: usize, p: usize, op: usize, d: usize) -> ConvT2d {
    ConvT2d {
        c,
        h: 5,
        w: 6,
        out,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        ph: p,
        pw: p,
        oph: op,
        opw: op,
        dh: d,
        dw: d,
        groups: 1,
    }
}

/// The backward data of a conv_t is the forward of its adjoint conv: an implicit-im2col GEMM
/// (stride 1), an im2col + GEMM (stride 2), or a GEMM over dY itself (1×1).
#[test]
fn conv_t_backward_data() {
    let cases = [
        ("conv_t 3×3 stride 2", conv_t(3, 4, 3, 2, 1, 1, 1)),
        ("conv_t 3×3 stride 1", conv_t(3, 4, 3, 1, 1, 0, 1)),
        ("conv_t 4×4 stride 2 dilated", conv_t(2, 3, 4, 2, 1, 0, 2)),
        ("conv_t 1×1", conv_t(5, 3, 1, 1, 0, 0, 1)),
        (
            "conv_t grouped",
            ConvT2d {
                groups: 2,
                ..conv_t(4, 6, 3, 2, 1, 1, 1)
            },
        ),
    ];
    let mut rng = Rng::new(9);
    for (what, t) in cases {
        let n = 2;
        let w = random(&mut rng, t.weight_len());
        let dy = random(&mut rng, n * t.out * t.ho() * t.wo());
        let mut col = vec![0.0; t.col_len()];
        check(what, &mut rng, n * t.c * t.h * t.w, |acc, dx| {
            if acc {
                conv_t2d_backward_data_acc(&t, n, &w, &dy, dx, &mut col);
            } else {
                conv_t2d_backward_data(&t, n, &w, &dy, dx, &mut col);
            }
        });
    }
}

#[test]
fn linear_data_gradient() {
    let mut rng = Rng::new(13);
    // The last has more outputs than one k block (KC = 256).
    for (n, fin, fout) in [(3, 7, 5), (2, 20, 1), (5, 37, 300)] {
        let w = random(&mut rng, fout * fin);
        let dy = random(&mut rng, n * fout);
        let what = format!("linear {n}×{fin}→{fout}");
        check(&what, &mut rng, n * fin, |acc, dx| {
            if acc {
                linear_backward_data_acc(n, fin, fout, &w, &dy, dx);
            } else {
                linear_backward_data(n, fin, fout, &w, &dy, dx);
            }
        });
    }
}

/// The merged 1×1 convs: the accumulating form adds to `dx` and leaves the weight and bias
/// gradients as the overwriting form writes them.
#[test]
fn conv1x1_merged_backward_data() {
    let mut rng = Rng::new(17);
    let (n, c, h, w) = (2, 5, 3, 4);
    let p = h * w;
    let outs = [3, 4, 2];
    let g = Conv2d::square(c, h, w, 9, 1, 1, 0);
    let x = random(&mut rng, n * c * p);
    let ws: Vec<Vec<f32>> = outs.iter().map(|&o| random(&mut rng, o * c)).collect();
    let w_refs: Vec<&[f32]> = ws.iter().map(|v| &v[..]).collect();
    // Parts 0 and 2 in buffer 0 (a 3 + 2 channel tensor), part 1 at channel 6 of buffer 1.
    let dests = [
        (0, Slot::channels(0, 5, p)),
        (1, Slot::channels(6, 10, p)),
        (0, Slot::channels(3, 5, p)),
    ];
    let (dy0, dy1) = (random(&mut rng, n * 5 * p), random(&mut rng, n * 10 * p));
    let mut col = vec![0.0; merged_col_len(c, 9, p)];
    let mut grads = |acc: bool, dx: Option<&mut [f32]>| {
        let mut dw: Vec<Vec<f32>> = outs.iter().map(|&o| vec![f32::NAN; o * c]).collect();
        let mut db: Vec<Vec<f32>> = outs.iter().map(|&o| vec![f32::NAN; o]).collect();
        let mut dw_refs: Vec<&mut [f32]> = dw.iter_mut().map(|v| &mut v[..]).collect();
        let mut db_refs: Vec<&mut [f32]> = db.iter_mut().map(|v| &mut v[..]).collect();
        let f = if acc {
            conv1x1_merged_backward_acc
        } else {
            conv1x1_merged_backward
        };
        f(
            &g,
            n,
            &x,
            &w_refs,
            &[&dy0, &dy1],
            &dests,
            &mut dw_refs,
            Some(&mut db_refs),
            dx,
            &mut col,
        );
        (dw, db)
    };
    let over = grads(false, None);
    assert_eq!(grads(true, None), over, "dw, db without dx");
    let mut dx = vec![0.0; x.len()];
    assert_eq!(grads(true, Some(&mut dx)), over, "dw, db with dx");
    check("merged 1×1", &mut rng, n * c * p, |acc, dx| {
        grads(acc, Some(dx));
    });
}
