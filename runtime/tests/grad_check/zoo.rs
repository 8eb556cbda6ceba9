//! The backward passes of the modern CNN zoo's kernels against finite differences, with the
//! harness of `main.rs`. Activations are checked on inputs at least 0.05 away from every
//! kink, where the central difference is the derivative.

use netc_runtime::act::*;
use netc_runtime::loss::*;
use netc_runtime::norm::*;
use netc_runtime::pool::*;
use netc_runtime::rng::Rng;
use netc_runtime::tensor::*;
use netc_runtime::upsample::*;

use super::{check, dot, rand};

/// Where some activation has a kink (hardtanh's bounds are -2 and 0.5 below).
const KINKS: [f32; 8] = [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, -2.0];

/// `n` values in `[-8, 8]`, none within 0.05 of a kink or of 0.5.
fn away_from_kinks(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let x = rng.uniform(-8.0, 8.0);
        if KINKS.iter().chain(&[0.5]).all(|k| (x - k).abs() > 0.05) {
            v.push(x);
        }
    }
    v
}

fn pointwise<F: Pointwise>(name: &str, op: F, x: &[f32], dy: &[f32]) {
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; v[0].len()];
        forward(op, &v[0], &mut y);
        dot(&y, dy)
    };
    let mut y = vec![0.0; x.len()];
    forward(op, x, &mut y);
    let mut dx = vec![0.0; x.len()];
    backward(op, x, &y, dy, &mut dx);
    check(name, &[x.to_vec()], 0, &loss, &dx);
}

#[test]
fn pointwise_gradients() {
    let mut rng = Rng::new(14);
    let x = away_from_kinks(&mut rng, 64);
    let dy = rand(&mut rng, 64);
    pointwise("relu", Relu, &x, &dy);
    pointwise("relu6", Relu6, &x, &dy);
    let ht = Hardtanh {
        min: -2.0,
        max: 0.5,
    };
    pointwise("hardtanh", ht, &x, &dy);
    pointwise("hardswish", Hardswish, &x, &dy);
    pointwise("hardsigmoid", Hardsigmoid, &x, &dy);
    pointwise("silu", Silu, &x, &dy);
    pointwise("mish", Mish, &x, &dy);
    pointwise("gelu", Gelu, &x, &dy);
    pointwise("gelu_tanh", GeluTanh, &x, &dy);
    pointwise("elu", Elu { alpha: 0.7 }, &x, &dy);
    pointwise("leaky_relu", LeakyRelu { slope: 0.2 }, &x, &dy);
    pointwise("sigmoid", Sigmoid, &x, &dy);
    pointwise("tanh", Tanh, &x, &dy);
}

#[test]
fn mul_and_scale_gradients() {
    let mut rng = Rng::new(15);
    let (n, c, plane) = (2, 3, 5);
    for plane_b in [plane, 1] {
        let a = rand(&mut rng, n * c * plane);
        let b = rand(&mut rng, n * c * plane_b);
        let dy = rand(&mut rng, a.len());
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; v[0].len()];
            mul_forward(n, c, plane, plane_b, &v[0], &v[1], &mut y);
            dot(&y, &dy)
        };
        let (mut da, mut db) = (vec![0.0; a.len()], vec![0.0; b.len()]);
        mul_backward(
            n,
            c,
            plane,
            plane_b,
            &a,
            &b,
            &dy,
            Some(&mut da),
            Some(&mut db),
        );
        let ins = [a, b];
        check(&format!("mul da (plane_b {plane_b})"), &ins, 0, &loss, &da);
        check(&format!("mul db (plane_b {plane_b})"), &ins, 1, &loss, &db);
    }
    let x = rand(&mut rng, n * c * plane);
    let w = rand(&mut rng, c);
    let dy = rand(&mut rng, x.len());
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; v[0].len()];
        scale_forward(n, c, plane, &v[0], &v[1], &mut y);
        dot(&y, &dy)
    };
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; c]);
    scale_backward(n, c, plane, &x, &w, &dy, Some(&mut dx), &mut dw);
    let ins = [x, w];
    check("scale dx", &ins, 0, &loss, &dx);
    check("scale dw", &ins, 1, &loss, &dw);
}

#[test]
fn upsample_and_adaptive_pool_gradients() {
    let mut rng = Rng::new(16);
    let n = 2;
    for s in [1, 2, 3] {
        for mode in [
            UpsampleMode::Nearest,
            UpsampleMode::Bilinear {
                align_corners: false,
            },
            UpsampleMode::Bilinear {
                align_corners: true,
            },
        ] {
            let u = Upsample2d {
                c: 2,
                h: 3,
                w: 4,
                s,
                mode,
            };
            let x = rand(&mut rng, n * u.c * u.h * u.w);
            let dy = rand(&mut rng, n * u.c * u.ho() * u.wo());
            let loss = |v: &[Vec<f32>]| {
                let mut y = vec![0.0; dy.len()];
                upsample2d_forward(&u, n, &v[0], &mut y);
                dot(&y, &dy)
            };
            let mut dx = vec![0.0; x.len()];
            upsample2d_backward(&u, n, &dy, &mut dx);
            check(&format!("upsample {u:?}"), &[x], 0, &loss, &dx);
        }
    }
    for (h, w, oh, ow) in [(5, 7, 3, 4), (4, 3, 6, 5), (6, 6, 1, 1)] {
        let p = AdaptivePool2d { c: 2, h, w, oh, ow };
        let x = rand(&mut rng, n * 2 * h * w);
        let dy = rand(&mut rng, n * 2 * oh * ow);
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; dy.len()];
            adaptive_avgpool2d_forward(&p, n, &v[0], &mut y);
            dot(&y, &dy)
        };
        let mut dx = vec![0.0; x.len()];
        adaptive_avgpool2d_backward(&p, n, &dy, &mut dx);
        check(&format!("adaptive {p:?}"), &[x], 0, &loss, &dx);
    }
}

/// Layer norm over channels (with a plane wider than its block of 64 positions) and group
/// norm over 1, 2 and 6 groups.
#[test]
fn layernorm2d_and_groupnorm_gradients() {
    let mut rng = Rng::new(17);
    for (n, c, plane) in [(2, 4, 6), (1, 3, 70)] {
        let x: Vec<f32> = rand(&mut rng, n * c * plane)
            .iter()
            .map(|v| v * 2.0)
            .collect();
        let w: Vec<f32> = rand(&mut rng, c).iter().map(|v| v + 1.5).collect();
        let b = rand(&mut rng, c);
        let dy = rand(&mut rng, x.len());
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; v[0].len()];
            let (mut mean, mut rstd) = (vec![0.0; n * plane], vec![0.0; n * plane]);
            let (x, w, b) = (&v[0], &v[1], &v[2]);
            layernorm2d_forward(n, c, plane, 1e-6, x, w, b, &mut y, &mut mean, &mut rstd);
            dot(&y, &dy)
        };
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut rstd) = (vec![0.0; n * plane], vec![0.0; n * plane]);
        layernorm2d_forward(n, c, plane, 1e-6, &x, &w, &b, &mut y, &mut mean, &mut rstd);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        layernorm2d_backward(
            n, c, plane, &x, &w, &mean, &rstd, &dy, &mut dx, &mut dw, &mut db,
        );
        let ins = [x, w, b];
        check("layernorm2d dx", &ins, 0, &loss, &dx);
        check("layernorm2d dweight", &ins, 1, &loss, &dw);
        check("layernorm2d dbias", &ins, 2, &loss, &db);
    }
    let (n, c, plane) = (2, 6, 5);
    for g in [1, 2, 6] {
        let x: Vec<f32> = rand(&mut rng, n * c * plane)
            .iter()
            .map(|v| v * 2.0)
            .collect();
        let w: Vec<f32> = rand(&mut rng, c).iter().map(|v| v + 1.5).collect();
        let b = rand(&mut rng, c);
        let dy = rand(&mut rng, x.len());
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; v[0].len()];
            let (mut mean, mut rstd) = (vec![0.0; n * g], vec![0.0; n * g]);
            let (x, w, b) = (&v[0], &v[1], &v[2]);
            groupnorm_forward(n, c, plane, g, 1e-5, x, w, b, &mut y, &mut mean, &mut rstd);
            dot(&y, &dy)
        };
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut rstd) = (vec![0.0; n * g], vec![0.0; n * g]);
        groupnorm_forward(
            n, c, plane, g, 1e-5, &x, &w, &b, &mut y, &mut mean, &mut rstd,
        );
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        groupnorm_backward(
            n, c, plane, g, &x, &w, &mean, &rstd, &dy, &mut dx, &mut dw, &mut db,
        );
        let ins = [x, w, b];
        check(&format!("groupnorm({g}) dx"), &ins, 0, &loss, &dx);
        check(&format!("groupnorm({g}) dweight"), &ins, 1, &loss, &dw);
        check(&format!("groupnorm({g}) dbias"), &ins, 2, &loss, &db);
    }
}

/// The channel shuffle and stochastic depth with a fixed mask are linear, so the difference
/// checks their backward exactly (up to rounding).
#[test]
fn shuffle_and_stochastic_depth_gradients() {
    let mut rng = Rng::new(18);
    let (n, c, plane) = (2, 6, 3);
    for g in [1, 2, 3, 6] {
        let x = rand(&mut rng, n * c * plane);
        let dy = rand(&mut rng, x.len());
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; v[0].len()];
            channel_shuffle_forward(n, c, g, plane, &v[0], &mut y);
            dot(&y, &dy)
        };
        let mut dx = vec![0.0; x.len()];
        channel_shuffle_backward(n, c, g, plane, &dy, &mut dx);
        check(&format!("channel_shuffle({g})"), &[x], 0, &loss, &dx);
    }
    let n = 8;
    let x = rand(&mut rng, n * 5);
    let dy = rand(&mut rng, x.len());
    let (mut y, mut mask) = (vec![0.0; x.len()], vec![0.0; n]);
    stochastic_depth_forward(0.4, &mut Rng::new(3), n, &x, &mut y, &mut mask);
    assert!(
        mask.contains(&0.0) && mask.contains(&(1.0 / 0.6)),
        "both kinds of sample: {mask:?}"
    );
    let loss = |v: &[Vec<f32>]| {
        let (mut y, mut m) = (vec![0.0; v[0].len()], vec![0.0; n]);
        stochastic_depth_forward(0.4, &mut Rng::new(3), n, &v[0], &mut y, &mut m);
        dot(&y, &dy)
    };
    let mut dx = vec![0.0; x.len()];
    stochastic_depth_backward(n, &mask, &dy, &mut dx);
    check("stochastic_depth", &[x], 0, &loss, &dx);
}

#[test]
fn zoo_loss_gradients() {
    let mut rng = Rng::new(19);
    let logits: Vec<f32> = rand(&mut rng, 4 * 6).iter().map(|v| v * 3.0).collect();
    let labels = [0i64, 5, 2, 2];
    for smoothing in [0.0, 0.1, 1.0] {
        let mut dx = vec![0.0; logits.len()];
        softmax_ce_smooth(6, &logits, &labels, smoothing, 0.7, &mut dx);
        let loss = |v: &[Vec<f32>]| {
            let mut d = vec![0.0; v[0].len()];
            0.7 * softmax_ce_smooth(6, &v[0], &labels, smoothing, 0.7, &mut d) as f64
        };
        check(
            &format!("ce smoothing {smoothing}"),
            std::slice::from_ref(&logits),
            0,
            &loss,
            &dx,
        );
    }

    // |a - b| is at least 0.05 everywhere, so no difference crosses a tie.
    let a = rand(&mut rng, 12);
    let b: Vec<f32> = a
        .iter()
        .zip(rand(&mut rng, 12))
        .map(|(&x, r)| x + r.signum() * (0.05 + r.abs()))
        .collect();
    let (mut da, mut db) = (vec![0.0; 12], vec![0.0; 12]);
    l1(&a, &b, 0.5, Some(&mut da), Some(&mut db));
    let loss = |v: &[Vec<f32>]| 0.5 * l1(&v[0], &v[1], 0.5, None, None) as f64;
    let ins = [a, b];
    check("l1 da", &ins, 0, &loss, &da);
    check("l1 db", &ins, 1, &loss, &db);

    let x: Vec<f32> = rand(&mut rng, 15).iter().map(|v| v * 4.0).collect();
    let t: Vec<f32> = rand(&mut rng, 15).iter().map(|v| 0.5 + v / 2.0).collect();
    let (mut dx, mut dt) = (vec![0.0; 15], vec![0.0; 15]);
    bce_logits(&x, &t, 1.3, Some(&mut dx), Some(&mut dt));
    let loss = |v: &[Vec<f32>]| 1.3 * bce_logits(&v[0], &v[1], 1.3, None, None) as f64;
    let ins = [x, t];
    check("bce dx", &ins, 0, &loss, &dx);
    check("bce dt", &ins, 1, &loss, &dt);
}
