//! An activation fused into a conv or linear layer (the GEMM's epilogue, `gemm::Act`) is
//! bitwise the layer without it followed by the activation's own kernel (`act::forward`):
//! on every conv path (implicit im2col, explicit im2col, pointwise, grouped, depthwise, into
//! a concat's slot, merged 1×1) and the linear layer, with outputs on both sides of 0 and 6
//! and a NaN in the input. The `relu: bool` forms equal the `_act` forms. The backward of a
//! fused ReLU6 on a slot equals the dense one image by image and is `dy · [0 < y < 6]`.

use netc_runtime::act::{backward_inplace, backward_inplace_slot, forward, Pointwise, Relu, Relu6};
use netc_runtime::conv::*;
use netc_runtime::gemm::Act;
use netc_runtime::linear::{linear_forward, linear_forward_act};
use netc_runtime::rng::Rng;
use netc_runtime::tensor::Slot;

fn random(rng: &mut Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-scale, scale)).collect()
}

/// Weights scaled so that a sum of `fan_in` products of inputs in [-1, 1) has a standard
/// deviation of about 6: outputs land below 0, inside [0, 6] and above 6.
fn weights(rng: &mut Rng, len: usize, fan_in: usize) -> Vec<f32> {
    random(rng, len, 18.0 / (fan_in as f32).sqrt())
}

/// An input in [-1, 1) with one NaN in it.
fn input(rng: &mut Rng, len: usize) -> Vec<f32> {
    let mut x = random(rng, len, 1.0);
    x[len / 3] = f32::NAN;
    x
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `fused` (the layer with the activation in its epilogue) against `plain` (the layer
/// without) followed by `act::forward(f)`, bitwise; and `plain` spans the clamp and holds NaN.
fn assert_fused<F: Pointwise>(what: &str, f: F, plain: &[f32], fused: &[f32]) {
    let mut want = vec![0.0; plain.len()];
    forward(f, plain, &mut want);
    let bad = fused
        .iter()
        .zip(&want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    assert!(
        bad.is_none(),
        "{what}: fused differs from layer + act::forward, first at {bad:?}: got {:?}, want {:?}",
        bad.map(|i| fused[i]),
        bad.map(|i| want[i])
    );
    let count = |p: fn(f32) -> bool| plain.iter().filter(|&&v| p(v)).count();
    let (below, inside, above, nan) = (
        count(|v| v < 0.0),
        count(|v| v > 0.0 && v < 6.0),
        count(|v| v > 6.0),
        count(f32::is_nan),
    );
    assert!(
        below > 10 && inside > 10 && above > 10 && nan > 0,
        "{what}: before the activation {below} values < 0, {inside} in (0, 6), {above} > 6, \
         {nan} NaN: the test does not cross the clamp"
    );
}

/// Each conv path, forward with `Act::None`, `Relu` and `Relu6`, and the bool form.
#[test]
fn fused_relu6_equals_conv_then_relu6_on_every_conv_path() {
    let mut rng = Rng::new(6);
    let sq = Conv2d::square;
    let paths = [
        ("3×3 stride 1 (implicit im2col)", sq(8, 10, 9, 20, 3, 1, 1)),
        ("3×3 stride 2 (im2col)", sq(8, 11, 10, 20, 3, 2, 1)),
        ("1×1 pointwise", sq(16, 9, 7, 24, 1, 1, 0)),
        (
            "3×3 grouped, stride 2",
            Conv2d {
                groups: 2,
                ..sq(8, 11, 9, 10, 3, 2, 1)
            },
        ),
        (
            "3×3 depthwise",
            Conv2d {
                groups: 12,
                ..sq(12, 10, 10, 12, 3, 1, 1)
            },
        ),
        (
            "1×1 grouped",
            Conv2d {
                groups: 4,
                ..sq(16, 6, 7, 8, 1, 1, 0)
            },
        ),
    ];
    for (what, g) in paths {
        let n = 2;
        let x = input(&mut rng, n * g.c * g.h * g.w);
        let w = weights(&mut rng, g.weight_len(), g.col_rows());
        let b = random(&mut rng, g.out, 1.0);
        let mut col = vec![0.0; g.col_len()];
        let ylen = n * g.out * g.ho() * g.wo();
        for bias in [Some(&b[..]), None] {
            let run = |act: Act, col: &mut [f32]| {
                let mut y = vec![f32::NAN; ylen];
                conv2d_forward_act(&g, n, &x, &w, bias, act, &mut y, col);
                y
            };
            let plain = run(Act::None, &mut col);
            let what = format!("{what}, bias {}", bias.is_some());
            assert_fused(&what, Relu6, &plain, &run(Act::Relu6, &mut col));
            assert_fused(&what, Relu, &plain, &run(Act::Relu, &mut col));
            for relu in [false, true] {
                let mut y = vec![f32::NAN; ylen];
                conv2d_forward(&g, n, &x, &w, bias, relu, &mut y, &mut col);
                let act = Act::relu_if(relu);
                assert_eq!(bits(&y), bits(&run(act, &mut col)), "{what}: relu {relu}");
            }
        }
    }
}

/// A conv writing a channel slice of a concat (`_slot_act`) computes what the dense fused
/// call does and leaves the rest of the buffer alone.
#[test]
fn fused_relu6_into_a_slot_equals_dense() {
    let mut rng = Rng::new(7);
    for g in [
        Conv2d::square(6, 8, 9, 10, 3, 1, 1),
        Conv2d::square(12, 7, 6, 9, 1, 1, 0),
    ] {
        let (n, p) = (3, g.ho() * g.wo());
        let x = input(&mut rng, n * g.c * g.h * g.w);
        let w = weights(&mut rng, g.weight_len(), g.col_rows());
        let b = random(&mut rng, g.out, 1.0);
        let mut col = vec![0.0; g.col_len()];
        let mut plain = vec![0.0; n * g.out * p];
        conv2d_forward_act(&g, n, &x, &w, Some(&b), Act::None, &mut plain, &mut col);
        let (c0, wide) = (3, g.out + 5);
        let ys = Slot::channels(c0, wide, p);
        for (act, relu) in [(Act::Relu6, None), (Act::Relu, Some(true))] {
            let mut wide_y = vec![-7.0; n * wide * p];
            conv2d_forward_slot_act(&g, n, &x, &w, Some(&b), act, &mut wide_y, ys, &mut col);
            let got: Vec<f32> = (0..n)
                .flat_map(|i| wide_y[ys.image(i, g.out * p)].to_vec())
                .collect();
            let what = format!("{g:?} into a slot, {act:?}");
            match act {
                Act::Relu6 => assert_fused(&what, Relu6, &plain, &got),
                _ => assert_fused(&what, Relu, &plain, &got),
            }
            let outside = wide_y.iter().filter(|&&v| v == -7.0).count();
            assert_eq!(outside, n * (wide - g.out) * p, "{what}: wrote outside");
            if let Some(relu) = relu {
                let mut bool_y = vec![-7.0; n * wide * p];
                conv2d_forward_slot(&g, n, &x, &w, Some(&b), relu, &mut bool_y, ys, &mut col);
                assert_eq!(bits(&bool_y), bits(&wide_y), "{what}: the bool form");
            }
        }
    }
}

/// Sibling 1×1 convs merged into one GEMM, each part into its own buffer or slot, with the
/// activation fused: what each part's own conv + `act::forward` gives.
#[test]
fn fused_relu6_in_merged_1x1_equals_separate_convs() {
    let mut rng = Rng::new(8);
    let (n, c, h, w) = (2, 24, 7, 9);
    let outs = [16, 8, 12];
    let total: usize = outs.iter().sum();
    let g = Conv2d::square(c, h, w, total, 1, 1, 0);
    let p = h * w;
    let x = input(&mut rng, n * c * p);
    let ws: Vec<Vec<f32>> = outs.iter().map(|&o| weights(&mut rng, o * c, c)).collect();
    let bs: Vec<Vec<f32>> = outs.iter().map(|&o| random(&mut rng, o, 1.0)).collect();
    let w_parts: Vec<&[f32]> = ws.iter().map(|v| &v[..]).collect();
    let b_parts: Vec<&[f32]> = bs.iter().map(|v| &v[..]).collect();
    // Part 0 and 2 into slots of one concat buffer, part 1 dense into its own.
    let concat_ch = outs[0] + outs[2] + 3;
    let dests = [
        (0, Slot::channels(0, concat_ch, p)),
        (1, Slot::dense(outs[1] * p)),
        (0, Slot::channels(outs[0] + 3, concat_ch, p)),
    ];
    let mut col = vec![0.0; merged_col_len(c, total, p)];
    let run = |act: Act, relu: Option<bool>, col: &mut [f32]| {
        let mut concat = vec![-7.0; n * concat_ch * p];
        let mut own = vec![-7.0; n * outs[1] * p];
        let mut ys: [&mut [f32]; 2] = [&mut concat, &mut own];
        match relu {
            Some(relu) => conv1x1_merged_forward(
                &g,
                n,
                &x,
                &w_parts,
                Some(&b_parts),
                relu,
                &mut ys,
                &dests,
                col,
            ),
            None => conv1x1_merged_forward_act(
                &g,
                n,
                &x,
                &w_parts,
                Some(&b_parts),
                act,
                &mut ys,
                &dests,
                col,
            ),
        }
        // Each part's output, dense.
        let bufs = [&concat, &own];
        (0..3)
            .map(|j| {
                let (buf, slot) = dests[j];
                (0..n)
                    .flat_map(|i| bufs[buf][slot.image(i, outs[j] * p)].to_vec())
                    .collect::<Vec<f32>>()
            })
            .collect::<Vec<_>>()
    };
    let merged6 = run(Act::Relu6, None, &mut col);
    let merged_relu = run(Act::Relu, None, &mut col);
    assert_eq!(
        merged_relu.iter().map(|v| bits(v)).collect::<Vec<_>>(),
        run(Act::None, Some(true), &mut col)
            .iter()
            .map(|v| bits(v))
            .collect::<Vec<_>>(),
        "merged 1×1: the bool form"
    );
    for j in 0..3 {
        let gj = Conv2d::square(c, h, w, outs[j], 1, 1, 0);
        let mut plain = vec![0.0; n * outs[j] * p];
        conv2d_forward_act(
            &gj,
            n,
            &x,
            &ws[j],
            Some(&bs[j]),
            Act::None,
            &mut plain,
            &mut [],
        );
        assert_fused(&format!("merged 1×1 part {j}"), Relu6, &plain, &merged6[j]);
        assert_fused(
            &format!("merged 1×1 part {j}"),
            Relu,
            &plain,
            &merged_relu[j],
        );
    }
}

#[test]
fn fused_relu6_equals_linear_then_relu6() {
    let mut rng = Rng::new(9);
    // Sizes around the AVX2 kernel's 6×16 tile, and a larger one with two k blocks.
    for (n, fin, fout) in [(7, 33, 17), (13, 300, 40)] {
        let x = input(&mut rng, n * fin);
        let w = weights(&mut rng, fout * fin, fin);
        let b = random(&mut rng, fout, 1.0);
        for bias in [Some(&b[..]), None] {
            let run = |act: Act| {
                let mut y = vec![f32::NAN; n * fout];
                linear_forward_act(n, fin, fout, &x, &w, bias, act, &mut y);
                y
            };
            let plain = run(Act::None);
            let what = format!("linear {n}×{fin}→{fout}, bias {}", bias.is_some());
            assert_fused(&what, Relu6, &plain, &run(Act::Relu6));
            assert_fused(&what, Relu, &plain, &run(Act::Relu));
            for relu in [false, true] {
                let mut y = vec![f32::NAN; n * fout];
                linear_forward(n, fin, fout, &x, &w, bias, relu, &mut y);
                let want = run(Act::relu_if(relu));
                assert_eq!(bits(&y), bits(&want), "{what}: relu {relu}");
            }
        }
    }
}

/// The backward of a fused ReLU6 in a slot: `dy · [0 < y < 6]` on each image's slice (0
/// where `y <= 0 or y >= 6`, so a NaN y passes dy, as PyTorch's hardtanh_backward), nothing
/// outside it touched; the ReLU slot form is unchanged and equals the generic one.
#[test]
fn backward_inplace_slot_masks_each_image() {
    let (n, len, wide) = (3, 50, 70);
    let slot = Slot {
        offset: 10,
        stride: wide,
    };
    let mut rng = Rng::new(10);
    let mut y: Vec<f32> = (0..n * wide).map(|_| rng.uniform(-3.0, 9.0)).collect();
    y[15] = f32::NAN;
    y[16] = 0.0;
    y[17] = 6.0;
    // Each slice's ends and their neighbours outside it are outside (0, 6): a slice cut
    // short, or one that spills over, shows.
    for i in 0..n {
        let r = slot.image(i, len);
        y[r.start - 1] = -1.0;
        y[r.start] = -2.0;
        y[r.end - 1] = 7.0;
        y[r.end] = 8.0;
    }
    let dy = random(&mut rng, n * wide, 1.0);
    let mut got = dy.clone();
    backward_inplace_slot(Relu6, n, len, slot, &y, &mut got);
    let mut dense = dy.clone();
    for i in 0..n {
        let r = slot.image(i, len);
        backward_inplace(Relu6, &y[r.clone()], &mut dense[r]);
    }
    assert_eq!(bits(&got), bits(&dense), "slot vs dense");
    assert!(
        got[15] == dy[15] && got[16] == 0.0 && got[17] == 0.0,
        "NaN, 0, 6"
    );
    for (at, ((&g, &d), &v)) in got.iter().zip(&dy).zip(&y).enumerate() {
        let inside = (at % wide) >= 10 && (at % wide) < 10 + len;
        let want = if inside && (v <= 0.0 || v >= 6.0) {
            0.0
        } else {
            d
        };
        assert_eq!(g, want, "at {at}: y {v}, dy {d}");
    }
    let mut relu_slot = dy.clone();
    backward_inplace_slot(Relu, n, len, slot, &y, &mut relu_slot);
    let mut relu_dense = dy.clone();
    for i in 0..n {
        let r = slot.image(i, len);
        backward_inplace(Relu, &y[r.clone()], &mut relu_dense[r]);
    }
    assert_eq!(bits(&relu_slot), bits(&relu_dense), "ReLU slot vs dense");
}
