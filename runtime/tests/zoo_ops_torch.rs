//! The kernels of the modern CNN zoo against PyTorch: `fixtures/zoo_ops.json` (made by
//! `fixtures/make_zoo_ops.py`) holds inputs at every kink of every activation, upstream
//! gradients and what PyTorch computed; each case runs the runtime's forward and backward and
//! compares every output, saved statistic and gradient.

use netc_runtime::act::*;
use netc_runtime::loss::*;
use netc_runtime::norm::*;
use netc_runtime::pool::*;
use netc_runtime::tensor::*;
use netc_runtime::upsample::*;
use serde_json::Value;

mod common;
use common::{close, t, T};

fn of(op: &str) -> Vec<Value> {
    common::of("zoo_ops.json", op)
}

fn attr(case: &Value, key: &str) -> f32 {
    case["attrs"][key].as_f64().unwrap() as f32
}

fn count(case: &Value, key: &str) -> usize {
    case["attrs"][key].as_u64().unwrap() as usize
}

/// `n, c, plane` of an NCHW fixture tensor.
fn dims(x: &T) -> (usize, usize, usize) {
    (x.shape[0], x.shape[1], x.shape[2..].iter().product())
}

/// Forward and backward of `op` against the case; for FROM_OUTPUT ops, the in-place forms
/// too (bitwise the same forward, the same gradient).
fn pointwise<F: Pointwise>(op: F, case: &Value, what: &str) {
    let (x, dy, out) = (t(&case["inputs"]["x"]), t(&case["dy"]), &case["outputs"]);
    let mut y = vec![0.0; x.data.len()];
    forward(op, &x.data, &mut y);
    close(&format!("{what} y"), &y, &t(&out["y"]));
    let mut dx = vec![0.0; y.len()];
    backward(op, &x.data, &y, &dy.data, &mut dx);
    close(&format!("{what} dx"), &dx, &t(&out["dx"]));
    let mut inplace = x.data.clone();
    forward_inplace(op, &mut inplace);
    assert_eq!(inplace, y, "{what}: in-place forward");
    if F::FROM_OUTPUT {
        let mut d = dy.data.clone();
        backward_inplace(op, &y, &mut d);
        assert_eq!(d, dx, "{what}: in-place backward");
    }
}

#[test]
fn activations_match_pytorch() {
    let ops = [
        "relu",
        "relu6",
        "hardtanh",
        "hardswish",
        "hardsigmoid",
        "silu",
        "mish",
        "gelu",
        "gelu_tanh",
        "elu",
        "leaky_relu",
        "sigmoid",
        "tanh",
    ];
    for name in ops {
        for (ci, case) in of(name).iter().enumerate() {
            let what = format!("{name} {ci}");
            match name {
                "relu" => pointwise(Relu, case, &what),
                "relu6" => pointwise(Relu6, case, &what),
                "hardtanh" => {
                    let (min, max) = (attr(case, "min"), attr(case, "max"));
                    pointwise(Hardtanh { min, max }, case, &what)
                }
                "hardswish" => pointwise(Hardswish, case, &what),
                "hardsigmoid" => pointwise(Hardsigmoid, case, &what),
                "silu" => pointwise(Silu, case, &what),
                "mish" => pointwise(Mish, case, &what),
                "gelu" => pointwise(Gelu, case, &what),
                "gelu_tanh" => pointwise(GeluTanh, case, &what),
                "elu" => pointwise(
                    Elu {
                        alpha: attr(case, "alpha"),
                    },
                    case,
                    &what,
                ),
                "leaky_relu" => pointwise(
                    LeakyRelu {
                        slope: attr(case, "slope"),
                    },
                    case,
                    &what,
                ),
                "sigmoid" => pointwise(Sigmoid, case, &what),
                _ => pointwise(Tanh, case, &what),
            }
        }
    }
}

/// ReLU's backward in place (the mask of a fused ReLU) gives what its backward gives.
#[test]
fn relu_in_place_matches_pytorch() {
    let case = &of("relu")[0];
    let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
    let mut y = vec![0.0; x.data.len()];
    forward(Relu, &x.data, &mut y);
    close("relu forward", &y, &t(&case["outputs"]["y"]));
    let mut d = dy.data.clone();
    backward_inplace(Relu, &y, &mut d);
    close("relu backward in place", &d, &t(&case["outputs"]["dx"]));
}

#[test]
fn mul_and_scale_match_pytorch() {
    for (ci, case) in of("mul").iter().enumerate() {
        let (a, b, dy) = (
            t(&case["inputs"]["a"]),
            t(&case["inputs"]["b"]),
            t(&case["dy"]),
        );
        let (n, c, plane_a) = dims(&a);
        let plane_b = dims(&b).2;
        let out = &case["outputs"];
        let mut y = vec![0.0; a.data.len()];
        mul_forward(n, c, plane_a, plane_b, &a.data, &b.data, &mut y);
        close(&format!("mul {ci} y"), &y, &t(&out["y"]));
        let (mut da, mut db) = (vec![0.0; a.data.len()], vec![0.0; b.data.len()]);
        mul_backward(
            n,
            c,
            plane_a,
            plane_b,
            &a.data,
            &b.data,
            &dy.data,
            Some(&mut da),
            Some(&mut db),
        );
        close(&format!("mul {ci} da"), &da, &t(&out["da"]));
        close(&format!("mul {ci} db"), &db, &t(&out["db"]));
    }
    let case = &of("scale")[0];
    let (x, w, dy) = (
        t(&case["inputs"]["x"]),
        t(&case["inputs"]["w"]),
        t(&case["dy"]),
    );
    let (n, c, plane) = dims(&x);
    let out = &case["outputs"];
    let mut y = vec![0.0; x.data.len()];
    scale_forward(n, c, plane, &x.data, &w.data, &mut y);
    close("scale y", &y, &t(&out["y"]));
    let (mut dx, mut dw) = (vec![0.0; x.data.len()], vec![0.0; c]);
    scale_backward(
        n,
        c,
        plane,
        &x.data,
        &w.data,
        &dy.data,
        Some(&mut dx),
        &mut dw,
    );
    close("scale dx", &dx, &t(&out["dx"]));
    close("scale dw", &dw, &t(&out["dw"]));
}

#[test]
fn upsample_matches_pytorch() {
    for (ci, case) in of("upsample").iter().enumerate() {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let mode = match case["attrs"]["mode"].as_str().unwrap() {
            "nearest" => UpsampleMode::Nearest,
            _ => UpsampleMode::Bilinear {
                align_corners: case["attrs"]["align_corners"].as_bool().unwrap(),
            },
        };
        let u = Upsample2d {
            c: x.shape[1],
            h: x.shape[2],
            w: x.shape[3],
            s: count(case, "s"),
            mode,
        };
        let n = x.shape[0];
        let what = format!("upsample {ci} ({mode:?}, s = {})", u.s);
        let mut y = vec![0.0; dy.data.len()];
        upsample2d_forward(&u, n, &x.data, &mut y);
        close(&format!("{what} y"), &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        upsample2d_backward(&u, n, &dy.data, &mut dx);
        close(&format!("{what} dx"), &dx, &t(&case["outputs"]["dx"]));
    }
}

#[test]
fn adaptive_avgpool_matches_pytorch() {
    for (ci, case) in of("adaptive_avgpool").iter().enumerate() {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let out: Vec<usize> = case["attrs"]["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let p = AdaptivePool2d {
            c: x.shape[1],
            h: x.shape[2],
            w: x.shape[3],
            oh: out[0],
            ow: out[1],
        };
        let n = x.shape[0];
        let mut y = vec![0.0; dy.data.len()];
        adaptive_avgpool2d_forward(&p, n, &x.data, &mut y);
        close(&format!("adaptive {ci} y"), &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        adaptive_avgpool2d_backward(&p, n, &dy.data, &mut dx);
        close(
            &format!("adaptive {ci} dx"),
            &dx,
            &t(&case["outputs"]["dx"]),
        );
    }
}

/// Layer norm over channels and group norm: outputs, saved statistics and all gradients.
#[test]
fn layernorm2d_and_groupnorm_match_pytorch() {
    for op in ["layernorm2d", "groupnorm"] {
        for (ci, case) in of(op).iter().enumerate() {
            let ins = &case["inputs"];
            let (x, w, b, dy) = (
                t(&ins["x"]),
                t(&ins["weight"]),
                t(&ins["bias"]),
                t(&case["dy"]),
            );
            let (n, c, plane) = dims(&x);
            let eps = attr(case, "eps");
            let out = &case["outputs"];
            let stats = t(&out["mean"]).data.len();
            let mut y = vec![0.0; x.data.len()];
            let (mut mean, mut rstd) = (vec![0.0; stats], vec![0.0; stats]);
            let (mut dx, mut dw, mut db) = (vec![0.0; x.data.len()], vec![0.0; c], vec![0.0; c]);
            if op == "layernorm2d" {
                let (x, w, b) = (&x.data, &w.data, &b.data);
                layernorm2d_forward(n, c, plane, eps, x, w, b, &mut y, &mut mean, &mut rstd);
                layernorm2d_backward(
                    n, c, plane, x, w, &mean, &rstd, &dy.data, &mut dx, &mut dw, &mut db,
                );
            } else {
                let g = count(case, "groups");
                let (x, w, b) = (&x.data, &w.data, &b.data);
                groupnorm_forward(n, c, plane, g, eps, x, w, b, &mut y, &mut mean, &mut rstd);
                groupnorm_backward(
                    n, c, plane, g, x, w, &mean, &rstd, &dy.data, &mut dx, &mut dw, &mut db,
                );
            }
            let what = format!("{op} {ci}");
            close(&format!("{what} y"), &y, &t(&out["y"]));
            close(&format!("{what} mean"), &mean, &t(&out["mean"]));
            close(&format!("{what} rstd"), &rstd, &t(&out["rstd"]));
            close(&format!("{what} dx"), &dx, &t(&out["dx"]));
            close(&format!("{what} dweight"), &dw, &t(&out["dweight"]));
            close(&format!("{what} dbias"), &db, &t(&out["dbias"]));
        }
    }
}

#[test]
fn channel_shuffle_matches_pytorch() {
    for case in of("channel_shuffle") {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let (n, c, plane) = dims(&x);
        let g = count(&case, "groups");
        let mut y = vec![0.0; x.data.len()];
        channel_shuffle_forward(n, c, g, plane, &x.data, &mut y);
        // A permutation: exact.
        assert_eq!(y, t(&case["outputs"]["y"]).data, "shuffle {g} y");
        let mut dx = vec![0.0; x.data.len()];
        channel_shuffle_backward(n, c, g, plane, &dy.data, &mut dx);
        assert_eq!(dx, t(&case["outputs"]["dx"]).data, "shuffle {g} dx");
    }
}

fn loss_close(what: &str, got: f32, case: &Value) {
    let want = case["outputs"]["loss"].as_f64().unwrap() as f32;
    assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn losses_match_pytorch() {
    for case in of("ce") {
        let x = t(&case["inputs"]["x"]);
        let labels: Vec<i64> = case["inputs"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let smoothing = attr(&case, "smoothing");
        let mut dx = vec![0.0; x.data.len()];
        let loss = softmax_ce_smooth(x.shape[1], &x.data, &labels, smoothing, 1.0, &mut dx);
        loss_close(&format!("ce {smoothing}"), loss, &case);
        close(
            &format!("ce {smoothing} dx"),
            &dx,
            &t(&case["outputs"]["dx"]),
        );
    }

    let case = &of("l1")[0];
    let (a, b) = (t(&case["inputs"]["a"]), t(&case["inputs"]["b"]));
    let (mut da, mut db) = (vec![0.0; a.data.len()], vec![0.0; a.data.len()]);
    let loss = l1(&a.data, &b.data, 1.0, Some(&mut da), Some(&mut db));
    loss_close("l1", loss, case);
    close("l1 da", &da, &t(&case["outputs"]["da"]));
    close("l1 db", &db, &t(&case["outputs"]["db"]));
    assert!(da[..3].iter().all(|&v| v == 0.0), "l1: no gradient at ties");

    let case = &of("bce")[0];
    let (x, target) = (t(&case["inputs"]["x"]), t(&case["inputs"]["t"]));
    let (mut dx, mut dt) = (vec![0.0; x.data.len()], vec![0.0; x.data.len()]);
    let loss = bce_logits(&x.data, &target.data, 1.0, Some(&mut dx), Some(&mut dt));
    loss_close("bce", loss, case);
    close("bce dx", &dx, &t(&case["outputs"]["dx"]));
    close("bce dt", &dt, &t(&case["outputs"]["dt"]));
}

/// The gradient through a fixed mask: PyTorch's dropout and stochastic depth drew a mask
/// (kept with its scale, `1/(1-p)`, or dropped); netc's backward through the same mask gives
/// PyTorch's gradient, and applying the mask gives its output.
#[test]
fn dropout_and_stochastic_depth_through_a_fixed_mask_match_pytorch() {
    for (ci, case) in of("dropout").iter().enumerate() {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let mask = t(&case["outputs"]["mask"]);
        let kept = mask.data.iter().filter(|&&m| m != 0.0).count();
        assert!(
            kept > 0 && kept < mask.data.len(),
            "dropout {ci}: a mask that drops some"
        );
        let mut dx = vec![0.0; x.data.len()];
        dropout_backward(&mask.data, &dy.data, &mut dx);
        close(&format!("dropout {ci} dx"), &dx, &t(&case["outputs"]["dx"]));
        let y: Vec<f32> = x.data.iter().zip(&mask.data).map(|(v, m)| v * m).collect();
        close(&format!("dropout {ci} y"), &y, &t(&case["outputs"]["y"]));
    }
    let case = &of("stochastic_depth")[0];
    let (x, dy, mask) = (
        t(&case["inputs"]["x"]),
        t(&case["dy"]),
        t(&case["outputs"]["mask"]),
    );
    let n = mask.data.len();
    let mut dx = vec![0.0; x.data.len()];
    stochastic_depth_backward(n, &mask.data, &dy.data, &mut dx);
    close("stochastic depth dx", &dx, &t(&case["outputs"]["dx"]));
}
