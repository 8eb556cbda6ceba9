//! Every kernel against PyTorch: `fixtures/ops.json` holds inputs, upstream gradients and
//! what PyTorch computed for them (made by `fixtures/make_ops.py`); each case runs the
//! runtime's forward and backward and compares every output and gradient.

use netc_runtime::act::*;
use netc_runtime::conv::*;
use netc_runtime::conv_t::*;
use netc_runtime::linear::*;
use netc_runtime::loss::*;
use netc_runtime::norm::*;
use netc_runtime::optim::*;
use netc_runtime::pool::*;
use serde_json::Value;

mod common;
use common::{close, t, T};

fn pair(v: &Value) -> [usize; 2] {
    let a = v.as_array().unwrap();
    [
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    ]
}

fn cases() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn of(op: &str) -> Vec<Value> {
    common::of("ops.json", op)
}

#[test]
fn conv_matches_pytorch() {
    for (ci, case) in of("conv").iter().enumerate() {
        let a = &case["attrs"];
        let (x, w, dy) = (
            t(&case["inputs"]["x"]),
            t(&case["inputs"]["w"]),
            t(&case["dy"]),
        );
        let b = case["inputs"].get("b").map(t);
        let [kh, kw] = pair(&a["k"]);
        let [sh, sw] = pair(&a["s"]);
        let [ph, pw] = pair(&a["p"]);
        let [dh, dw] = pair(&a["dil"]);
        let g = Conv2d {
            c: x.shape[1],
            h: x.shape[2],
            w: x.shape[3],
            out: w.shape[0],
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups: a["groups"].as_u64().unwrap() as usize,
        };
        let n = x.shape[0];
        let out = &case["outputs"];
        let mut col = vec![0.0; g.col_len()];
        let mut y = vec![0.0; dy.data.len()];
        conv2d_forward(
            &g,
            n,
            &x.data,
            &w.data,
            b.as_ref().map(|b| &b.data[..]),
            false,
            &mut y,
            &mut col,
        );
        close(&format!("conv {ci} y"), &y, &t(&out["y"]));
        let mut dx = vec![0.0; x.data.len()];
        conv2d_backward_data(&g, n, &w.data, &dy.data, &mut dx, &mut col);
        close(&format!("conv {ci} dx"), &dx, &t(&out["dx"]));
        let mut dwv = vec![0.0; w.data.len()];
        let mut db = vec![0.0; g.out];
        let want_db = out.get("db").map(t);
        conv2d_backward_weight(
            &g,
            n,
            &x.data,
            &dy.data,
            &mut dwv,
            want_db.as_ref().map(|_| &mut db[..]),
            &mut col,
        );
        close(&format!("conv {ci} dw"), &dwv, &t(&out["dw"]));
        if let Some(want) = want_db {
            close(&format!("conv {ci} db"), &db, &want);
        }
    }
}

#[test]
fn conv_t_matches_pytorch() {
    for (ci, case) in of("conv_t").iter().enumerate() {
        let a = &case["attrs"];
        let (x, w, dy) = (
            t(&case["inputs"]["x"]),
            t(&case["inputs"]["w"]),
            t(&case["dy"]),
        );
        let b = case["inputs"].get("b").map(t);
        let [kh, kw] = pair(&a["k"]);
        let [sh, sw] = pair(&a["s"]);
        let [ph, pw] = pair(&a["p"]);
        let [oph, opw] = pair(&a["op"]);
        let [dh, dw] = pair(&a["dil"]);
        let groups = a["groups"].as_u64().unwrap() as usize;
        let tt = ConvT2d {
            c: x.shape[1],
            h: x.shape[2],
            w: x.shape[3],
            out: w.shape[1] * groups,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oph,
            opw,
            dh,
            dw,
            groups,
        };
        let n = x.shape[0];
        let out = &case["outputs"];
        assert_eq!(tt.ho() * tt.wo() * tt.out * n, dy.data.len());
        let mut col = vec![0.0; tt.col_len()];
        let mut y = vec![0.0; dy.data.len()];
        conv_t2d_forward(
            &tt,
            n,
            &x.data,
            &w.data,
            b.as_ref().map(|b| &b.data[..]),
            &mut y,
            &mut col,
        );
        close(&format!("conv_t {ci} y"), &y, &t(&out["y"]));
        let mut dx = vec![0.0; x.data.len()];
        conv_t2d_backward_data(&tt, n, &w.data, &dy.data, &mut dx, &mut col);
        close(&format!("conv_t {ci} dx"), &dx, &t(&out["dx"]));
        let mut dwv = vec![0.0; w.data.len()];
        let mut db = vec![0.0; tt.out];
        let want_db = out.get("db").map(t);
        conv_t2d_backward_weight(
            &tt,
            n,
            &x.data,
            &dy.data,
            &mut dwv,
            want_db.as_ref().map(|_| &mut db[..]),
            &mut col,
        );
        close(&format!("conv_t {ci} dw"), &dwv, &t(&out["dw"]));
        if let Some(want) = want_db {
            close(&format!("conv_t {ci} db"), &db, &want);
        }
    }
}

fn pool_of(case: &Value, x: &T) -> Pool2d {
    let a = &case["attrs"];
    let [kh, kw] = pair(&a["k"]);
    let [sh, sw] = pair(&a["s"]);
    let [ph, pw] = pair(&a["p"]);
    Pool2d {
        c: x.shape[1],
        h: x.shape[2],
        w: x.shape[3],
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        ceil: a["ceil"].as_bool().unwrap(),
    }
}

#[test]
fn pools_match_pytorch() {
    for (ci, case) in of("maxpool").iter().enumerate() {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let p = pool_of(case, &x);
        let n = x.shape[0];
        let mut y = vec![0.0; dy.data.len()];
        let mut arg = vec![0u32; dy.data.len()];
        maxpool2d_forward(&p, n, &x.data, &mut y, &mut arg);
        close(&format!("maxpool {ci} y"), &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        maxpool2d_backward(&p, n, &dy.data, &arg, &mut dx);
        close(&format!("maxpool {ci} dx"), &dx, &t(&case["outputs"]["dx"]));
    }
    for (ci, case) in of("avgpool").iter().enumerate() {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let p = pool_of(case, &x);
        let n = x.shape[0];
        let mut y = vec![0.0; dy.data.len()];
        avgpool2d_forward(&p, n, &x.data, &mut y);
        close(&format!("avgpool {ci} y"), &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        avgpool2d_backward(&p, n, &dy.data, &mut dx);
        close(&format!("avgpool {ci} dx"), &dx, &t(&case["outputs"]["dx"]));
    }
    for case in of("global_avgpool") {
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let plane = x.shape[2] * x.shape[3];
        let mut y = vec![0.0; dy.data.len()];
        global_avgpool_forward(plane, &x.data, &mut y);
        close("global_avgpool y", &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        global_avgpool_backward(plane, &dy.data, &mut dx);
        close("global_avgpool dx", &dx, &t(&case["outputs"]["dx"]));
    }
}

#[test]
fn activations_match_pytorch() {
    for case in cases() {
        let op = case["op"].as_str().unwrap();
        if !["relu", "leaky_relu", "sigmoid", "tanh", "softmax"].contains(&op) {
            continue;
        }
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let mut y = vec![0.0; x.data.len()];
        let mut dx = vec![0.0; x.data.len()];
        match op {
            "relu" => {
                forward(Relu, &x.data, &mut y);
                backward(Relu, &x.data, &y, &dy.data, &mut dx);
            }
            "leaky_relu" => {
                let s = case["attrs"]["slope"].as_f64().unwrap() as f32;
                forward(LeakyRelu { slope: s }, &x.data, &mut y);
                backward(LeakyRelu { slope: s }, &x.data, &y, &dy.data, &mut dx);
            }
            "sigmoid" => {
                forward(Sigmoid, &x.data, &mut y);
                backward(Sigmoid, &x.data, &y, &dy.data, &mut dx);
            }
            "tanh" => {
                forward(Tanh, &x.data, &mut y);
                backward(Tanh, &x.data, &y, &dy.data, &mut dx);
            }
            _ => {
                let c = x.shape[1];
                let plane = x.shape[2..].iter().product();
                softmax_forward(c, plane, &x.data, &mut y);
                softmax_backward(c, plane, &y, &dy.data, &mut dx);
            }
        }
        close(&format!("{op} y"), &y, &t(&case["outputs"]["y"]));
        close(&format!("{op} dx"), &dx, &t(&case["outputs"]["dx"]));
    }
}

#[test]
fn lrn_matches_pytorch() {
    for (ci, case) in of("lrn").iter().enumerate() {
        let a = &case["attrs"];
        let (x, dy) = (t(&case["inputs"]["x"]), t(&case["dy"]));
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3]);
        let size = a["size"].as_u64().unwrap() as usize;
        let (alpha, beta, k) = (
            a["alpha"].as_f64().unwrap() as f32,
            a["beta"].as_f64().unwrap() as f32,
            a["k"].as_f64().unwrap() as f32,
        );
        let mut y = vec![0.0; x.data.len()];
        let mut scale = vec![0.0; x.data.len()];
        lrn_forward(
            n, c, plane, size, alpha, beta, k, &x.data, &mut y, &mut scale,
        );
        close(&format!("lrn {ci} y"), &y, &t(&case["outputs"]["y"]));
        let mut dx = vec![0.0; x.data.len()];
        let mut scratch = vec![0.0; c * plane];
        lrn_backward(
            n,
            c,
            plane,
            size,
            alpha,
            beta,
            &x.data,
            &scale,
            &dy.data,
            &mut dx,
            &mut scratch,
        );
        close(&format!("lrn {ci} dx"), &dx, &t(&case["outputs"]["dx"]));
    }
}

#[test]
fn batchnorm_matches_pytorch_in_both_modes() {
    for case in of("batchnorm_train") {
        let i = &case["inputs"];
        let (x, gamma, beta, dy) = (t(&i["x"]), t(&i["gamma"]), t(&i["beta"]), t(&case["dy"]));
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let (mut rm, mut rv) = (t(&i["running_mean"]).data, t(&i["running_var"]).data);
        let mut y = vec![0.0; x.data.len()];
        let (mut mean, mut rstd) = (vec![0.0; c], vec![0.0; c]);
        batchnorm_train_forward(
            n,
            c,
            plane,
            1e-5,
            0.1,
            &x.data,
            &gamma.data,
            &beta.data,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let o = &case["outputs"];
        close("batchnorm y", &y, &t(&o["y"]));
        close("batchnorm running_mean", &rm, &t(&o["running_mean"]));
        close("batchnorm running_var", &rv, &t(&o["running_var"]));
        let mut dx = vec![0.0; x.data.len()];
        let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
        batchnorm_train_backward(
            n,
            c,
            plane,
            &x.data,
            &gamma.data,
            &mean,
            &rstd,
            &dy.data,
            &mut dx,
            &mut dg,
            &mut db,
        );
        close("batchnorm dx", &dx, &t(&o["dx"]));
        close("batchnorm dgamma", &dg, &t(&o["dgamma"]));
        close("batchnorm dbeta", &db, &t(&o["dbeta"]));
    }
    for case in of("batchnorm_eval") {
        let i = &case["inputs"];
        let (x, gamma, beta) = (t(&i["x"]), t(&i["gamma"]), t(&i["beta"]));
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let mut y = vec![0.0; x.data.len()];
        batchnorm_eval_forward(
            n,
            c,
            plane,
            1e-5,
            &x.data,
            &gamma.data,
            &beta.data,
            &t(&i["running_mean"]).data,
            &t(&i["running_var"]).data,
            &mut y,
        );
        close("batchnorm eval y", &y, &t(&case["outputs"]["y"]));
    }
}

#[test]
fn linear_matches_pytorch() {
    for case in of("linear") {
        let i = &case["inputs"];
        let (x, w, dy) = (t(&i["x"]), t(&i["w"]), t(&case["dy"]));
        let b = i.get("b").map(t);
        let (n, fin, fout) = (x.shape[0], x.shape[1], w.shape[0]);
        let mut y = vec![0.0; n * fout];
        linear_forward(
            n,
            fin,
            fout,
            &x.data,
            &w.data,
            b.as_ref().map(|b| &b.data[..]),
            false,
            &mut y,
        );
        let o = &case["outputs"];
        close("linear y", &y, &t(&o["y"]));
        let mut dx = vec![0.0; x.data.len()];
        linear_backward_data(n, fin, fout, &w.data, &dy.data, &mut dx);
        close("linear dx", &dx, &t(&o["dx"]));
        let mut dw = vec![0.0; w.data.len()];
        let mut db = vec![0.0; fout];
        let want_db = o.get("db").map(t);
        linear_backward_weight(
            n,
            fin,
            fout,
            &x.data,
            &dy.data,
            &mut dw,
            want_db.as_ref().map(|_| &mut db[..]),
        );
        close("linear dw", &dw, &t(&o["dw"]));
        if let Some(want) = want_db {
            close("linear db", &db, &want);
        }
    }
}

#[test]
fn losses_match_pytorch() {
    let case = &of("ce")[0];
    let x = t(&case["inputs"]["x"]);
    let labels: Vec<i64> = case["inputs"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let mut dx = vec![0.0; x.data.len()];
    let loss = softmax_ce(x.shape[1], &x.data, &labels, 1.0, &mut dx);
    let want = case["outputs"]["loss"].as_f64().unwrap() as f32;
    assert!(
        (loss - want).abs() <= 1e-5 * want.abs().max(1.0),
        "ce: {loss} vs {want}"
    );
    close("ce dx", &dx, &t(&case["outputs"]["dx"]));

    let case = &of("mse")[0];
    let (a, b) = (t(&case["inputs"]["a"]), t(&case["inputs"]["b"]));
    let (mut da, mut db) = (vec![0.0; a.data.len()], vec![0.0; a.data.len()]);
    let loss = mse(&a.data, &b.data, 1.0, Some(&mut da), Some(&mut db));
    let want = case["outputs"]["loss"].as_f64().unwrap() as f32;
    assert!((loss - want).abs() <= 1e-6, "mse: {loss} vs {want}");
    close("mse da", &da, &t(&case["outputs"]["da"]));
    close("mse db", &db, &t(&case["outputs"]["db"]));
}

#[test]
fn optimizers_match_pytorch() {
    for name in ["sgd", "adam", "adamw"] {
        for case in of(name) {
            let a = &case["attrs"];
            let f = |k: &str, d: f64| a.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
            let mut p = t(&case["inputs"]["p"]).data;
            let mut st = OptState::default();
            for g in case["inputs"]["grads"].as_array().unwrap() {
                let g = t(g).data;
                if name == "sgd" {
                    Sgd {
                        lr: f("lr", 0.0),
                        momentum: f("momentum", 0.0),
                        weight_decay: f("weight_decay", 0.0),
                        nesterov: a.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
                    }
                    .step(&mut p, &g, &mut st);
                } else {
                    Adam {
                        lr: f("lr", 0.0),
                        beta1: f("beta1", 0.9),
                        beta2: f("beta2", 0.999),
                        eps: f("eps", 1e-8),
                        weight_decay: f("weight_decay", if name == "adamw" { 0.01 } else { 0.0 }),
                        decoupled: name == "adamw",
                    }
                    .step(&mut p, &g, &mut st);
                }
            }
            close(&format!("{name} {a}"), &p, &t(&case["outputs"]["p"]));
        }
    }
}

#[test]
fn concat_and_add_match_pytorch() {
    use netc_runtime::tensor::*;
    let case = &of("concat")[0];
    let (a, b, dy) = (
        t(&case["inputs"]["a"]),
        t(&case["inputs"]["b"]),
        t(&case["dy"]),
    );
    let (n, ca, cb) = (a.shape[0], a.shape[1], b.shape[1]);
    let plane: usize = a.shape[2..].iter().product();
    let mut y = vec![0.0; n * (ca + cb) * plane];
    concat_channels(n, plane, ca, 0, ca + cb, &a.data, &mut y);
    concat_channels(n, plane, cb, ca, ca + cb, &b.data, &mut y);
    close("concat y", &y, &t(&case["outputs"]["y"]));
    let (mut da, mut db) = (vec![0.0; a.data.len()], vec![0.0; b.data.len()]);
    slice_channels(n, plane, ca, 0, ca + cb, &dy.data, &mut da);
    slice_channels(n, plane, cb, ca, ca + cb, &dy.data, &mut db);
    close("concat da", &da, &t(&case["outputs"]["da"]));
    close("concat db", &db, &t(&case["outputs"]["db"]));

    let case = &of("add")[0];
    let ins: Vec<T> = ["a", "b", "c"]
        .iter()
        .map(|k| t(&case["inputs"][k]))
        .collect();
    let mut y = vec![0.0; ins[0].data.len()];
    add_forward(&[&ins[0].data, &ins[1].data, &ins[2].data], &mut y);
    close("add y", &y, &t(&case["outputs"]["y"]));
    // The gradient of a sum reaches every input unchanged.
    for k in ["da", "db", "dc"] {
        close(
            &format!("add {k}"),
            &t(&case["dy"]).data,
            &t(&case["outputs"][k]),
        );
    }
}
