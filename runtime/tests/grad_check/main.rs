//! Every backward pass against finite differences: for `L = Σ y·dy` with a random `dy`, the
//! analytic gradient of each input must match `(L(x + ε) - L(x - ε)) / 2ε`, with `L`
//! accumulated in f64. Inputs are spread so that no ReLU sits at 0 and no pooling window
//! has a tie within ε. The kernels of the modern CNN zoo are in `zoo.rs`.

use netc_runtime::act::*;
use netc_runtime::conv::*;
use netc_runtime::conv_t::*;
use netc_runtime::linear::*;
use netc_runtime::loss::*;
use netc_runtime::norm::*;
use netc_runtime::pool::*;
use netc_runtime::rng::Rng;
use netc_runtime::tensor::*;

mod zoo;

const EPS: f32 = 1e-2;

fn rand(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Distinct values at least 0.05 apart and away from 0, in random order.
fn spread(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| {
            let x = (i as f32 + 1.0) * 0.05;
            if i % 2 == 0 {
                x
            } else {
                -x
            }
        })
        .collect();
    rng.shuffle(&mut v);
    v
}

fn dot(y: &[f32], dy: &[f32]) -> f64 {
    y.iter().zip(dy).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Compares `analytic` with the central difference of `loss` over every element of
/// `inputs[which]`.
fn check(
    name: &str,
    inputs: &[Vec<f32>],
    which: usize,
    loss: &dyn Fn(&[Vec<f32>]) -> f64,
    analytic: &[f32],
) {
    assert_eq!(
        inputs[which].len(),
        analytic.len(),
        "{name}: gradient length"
    );
    let scale = analytic
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-3);
    let mut xs = inputs.to_vec();
    for i in 0..analytic.len() {
        let x0 = xs[which][i];
        xs[which][i] = x0 + EPS;
        let up = loss(&xs);
        xs[which][i] = x0 - EPS;
        let down = loss(&xs);
        xs[which][i] = x0;
        let numeric = ((up - down) / (2.0 * EPS as f64)) as f32;
        let a = analytic[i];
        assert!(
            (a - numeric).abs() <= 2e-2 * a.abs() + 3e-3 * scale,
            "{name}: input {which} element {i}: analytic {a}, numeric {numeric}"
        );
    }
}

#[test]
fn conv_gradients() {
    let mut rng = Rng::new(1);
    for g in [
        Conv2d::square(3, 5, 6, 4, 3, 1, 1),
        Conv2d {
            c: 4,
            h: 7,
            w: 6,
            out: 2,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 1,
            ph: 1,
            pw: 1,
            dh: 2,
            dw: 1,
            groups: 2,
        },
        Conv2d::square(5, 3, 4, 3, 1, 1, 0),
        // Padding wider than the image along a stride-1 row (a 5×5 kernel on 1×2).
        Conv2d {
            c: 2,
            h: 1,
            w: 2,
            out: 3,
            kh: 5,
            kw: 5,
            sh: 1,
            sw: 1,
            ph: 2,
            pw: 2,
            dh: 1,
            dw: 1,
            groups: 1,
        },
        Conv2d {
            c: 2,
            h: 3,
            w: 3,
            out: 2,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 4,
            pw: 4,
            dh: 3,
            dw: 3,
            groups: 1,
        },
    ] {
        let n = 2;
        let x = rand(&mut rng, n * g.c * g.h * g.w);
        let w = rand(&mut rng, g.weight_len());
        let b = rand(&mut rng, g.out);
        let ylen = n * g.out * g.ho() * g.wo();
        let dy = rand(&mut rng, ylen);
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; ylen];
            let mut col = vec![0.0; g.col_len()];
            conv2d_forward(&g, n, &v[0], &v[1], Some(&v[2]), false, &mut y, &mut col);
            dot(&y, &dy)
        };
        let mut col = vec![0.0; g.col_len()];
        let mut dx = vec![0.0; x.len()];
        conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col);
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; g.out]);
        conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut col);
        // The fused backward gives bitwise the same gradients as the two separate passes.
        let (mut dx2, mut dw2, mut db2) =
            (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.out]);
        conv2d_backward(
            &g,
            n,
            &x,
            &w,
            &dy,
            &mut dx2,
            &mut dw2,
            Some(&mut db2),
            &mut col,
        );
        assert!(
            dx == dx2 && dw == dw2 && db == db2,
            "fused conv backward differs for {g:?}"
        );
        let ins = [x, w, b];
        check("conv dx", &ins, 0, &loss, &dx);
        check("conv dw", &ins, 1, &loss, &dw);
        check("conv db", &ins, 2, &loss, &db);
    }
}

#[test]
fn conv_t_gradients() {
    let mut rng = Rng::new(2);
    let t = ConvT2d {
        c: 3,
        h: 3,
        w: 4,
        out: 4,
        kh: 3,
        kw: 3,
        sh: 2,
        sw: 2,
        ph: 1,
        pw: 1,
        oph: 1,
        opw: 0,
        dh: 1,
        dw: 1,
        groups: 1,
    };
    let n = 2;
    let x = rand(&mut rng, n * t.c * t.h * t.w);
    let w = rand(&mut rng, t.weight_len());
    let b = rand(&mut rng, t.out);
    let ylen = n * t.out * t.ho() * t.wo();
    let dy = rand(&mut rng, ylen);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; ylen];
        let mut col = vec![0.0; t.col_len()];
        conv_t2d_forward(&t, n, &v[0], &v[1], Some(&v[2]), &mut y, &mut col);
        dot(&y, &dy)
    };
    let mut col = vec![0.0; t.col_len()];
    let mut dx = vec![0.0; x.len()];
    conv_t2d_backward_data(&t, n, &w, &dy, &mut dx, &mut col);
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; t.out]);
    conv_t2d_backward_weight(&t, n, &x, &dy, &mut dw, Some(&mut db), &mut col);
    let ins = [x, w, b];
    check("conv_t dx", &ins, 0, &loss, &dx);
    check("conv_t dw", &ins, 1, &loss, &dw);
    check("conv_t db", &ins, 2, &loss, &db);
}

#[test]
fn pool_gradients() {
    let mut rng = Rng::new(3);
    for p in [
        Pool2d {
            c: 2,
            h: 5,
            w: 6,
            kh: 3,
            kw: 3,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 1,
            ceil: false,
        },
        Pool2d {
            c: 2,
            h: 6,
            w: 5,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 0,
            pw: 1,
            ceil: true,
        },
    ] {
        let n = 2;
        let x = spread(&mut rng, n * p.c * p.h * p.w);
        let ylen = n * p.c * p.ho() * p.wo();
        let dy = rand(&mut rng, ylen);
        let max_loss = |v: &[Vec<f32>]| {
            let (mut y, mut a) = (vec![0.0; ylen], vec![0u32; ylen]);
            maxpool2d_forward(&p, n, &v[0], &mut y, &mut a);
            dot(&y, &dy)
        };
        let (mut y, mut a) = (vec![0.0; ylen], vec![0u32; ylen]);
        maxpool2d_forward(&p, n, &x, &mut y, &mut a);
        let mut dx = vec![0.0; x.len()];
        maxpool2d_backward(&p, n, &dy, &a, &mut dx);
        check("maxpool dx", std::slice::from_ref(&x), 0, &max_loss, &dx);
        let avg_loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; ylen];
            avgpool2d_forward(&p, n, &v[0], &mut y);
            dot(&y, &dy)
        };
        avgpool2d_backward(&p, n, &dy, &mut dx);
        check("avgpool dx", std::slice::from_ref(&x), 0, &avg_loss, &dx);
    }
    let x = rand(&mut rng, 2 * 3 * 4 * 5);
    let dy = rand(&mut rng, 6);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; 6];
        global_avgpool_forward(20, &v[0], &mut y);
        dot(&y, &dy)
    };
    let mut dx = vec![0.0; x.len()];
    global_avgpool_backward(20, &dy, &mut dx);
    check("global_avgpool dx", &[x], 0, &loss, &dx);
}

#[test]
fn activation_gradients() {
    let mut rng = Rng::new(4);
    let x = spread(&mut rng, 40)
        .iter()
        .map(|v| v * 2.0)
        .collect::<Vec<_>>();
    let dy = rand(&mut rng, 40);
    type Fwd = fn(&[f32], &mut [f32]);
    let fwd: [(&str, Fwd); 4] = [
        ("relu", |x, y| forward(Relu, x, y)),
        ("sigmoid", |x, y| forward(Sigmoid, x, y)),
        ("tanh", |x, y| forward(Tanh, x, y)),
        ("leaky_relu", |x, y| forward(LeakyRelu { slope: 0.2 }, x, y)),
    ];
    for (name, f) in fwd {
        let loss = |v: &[Vec<f32>]| {
            let mut y = vec![0.0; 40];
            f(&v[0], &mut y);
            dot(&y, &dy)
        };
        let mut y = vec![0.0; 40];
        f(&x, &mut y);
        let mut dx = vec![0.0; 40];
        match name {
            "relu" => backward(Relu, &x, &y, &dy, &mut dx),
            "sigmoid" => backward(Sigmoid, &x, &y, &dy, &mut dx),
            "tanh" => backward(Tanh, &x, &y, &dy, &mut dx),
            _ => backward(LeakyRelu { slope: 0.2 }, &x, &y, &dy, &mut dx),
        }
        check(name, std::slice::from_ref(&x), 0, &loss, &dx);
    }
    // Softmax over 5 channels of a 2×4 plane, two samples.
    let x = rand(&mut rng, 2 * 5 * 8);
    let dy = rand(&mut rng, 80);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; 80];
        softmax_forward(5, 8, &v[0], &mut y);
        dot(&y, &dy)
    };
    let mut y = vec![0.0; 80];
    softmax_forward(5, 8, &x, &mut y);
    let mut dx = vec![0.0; 80];
    softmax_backward(5, 8, &y, &dy, &mut dx);
    check("softmax", &[x], 0, &loss, &dx);
    // Dropout with a fixed mask is linear in x.
    let x = rand(&mut rng, 50);
    let dy = rand(&mut rng, 50);
    let (mut y, mut mask) = (vec![0.0; 50], vec![0.0; 50]);
    dropout_forward(0.3, &mut Rng::new(9), &x, &mut y, &mut mask);
    let loss = |v: &[Vec<f32>]| {
        let (mut y, mut m) = (vec![0.0; 50], vec![0.0; 50]);
        dropout_forward(0.3, &mut Rng::new(9), &v[0], &mut y, &mut m);
        dot(&y, &dy)
    };
    let mut dx = vec![0.0; 50];
    dropout_backward(&mask, &dy, &mut dx);
    check("dropout", &[x], 0, &loss, &dx);
}

#[test]
fn batchnorm_and_lrn_gradients() {
    let mut rng = Rng::new(5);
    let (n, c, plane) = (3, 4, 5);
    let x = rand(&mut rng, n * c * plane);
    let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.3).collect();
    let beta = rand(&mut rng, c);
    let dy = rand(&mut rng, x.len());
    let loss = |v: &[Vec<f32>]| {
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        let (mut y, mut mean, mut rstd) = (vec![0.0; v[0].len()], vec![0.0; c], vec![0.0; c]);
        batchnorm_train_forward(
            n, c, plane, 1e-5, 0.1, &v[0], &v[1], &v[2], &mut rm, &mut rv, &mut y, &mut mean,
            &mut rstd,
        );
        dot(&y, &dy)
    };
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    let (mut y, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    batchnorm_train_forward(
        n, c, plane, 1e-5, 0.1, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut mean, &mut rstd,
    );
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    batchnorm_train_backward(
        n, c, plane, &x, &gamma, &mean, &rstd, &dy, &mut dx, &mut dg, &mut db,
    );
    let ins = [x, gamma, beta];
    check("batchnorm dx", &ins, 0, &loss, &dx);
    check("batchnorm dgamma", &ins, 1, &loss, &dg);
    check("batchnorm dbeta", &ins, 2, &loss, &db);

    let (n, c, plane) = (2, 6, 3);
    let x = rand(&mut rng, n * c * plane);
    let dy = rand(&mut rng, x.len());
    for (size, alpha, beta, k) in [(3, 0.5, 0.75, 1.0), (4, 0.3, 0.6, 2.0)] {
        let loss = |v: &[Vec<f32>]| {
            let (mut y, mut s) = (vec![0.0; v[0].len()], vec![0.0; v[0].len()]);
            lrn_forward(n, c, plane, size, alpha, beta, k, &v[0], &mut y, &mut s);
            dot(&y, &dy)
        };
        let (mut y, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        lrn_forward(n, c, plane, size, alpha, beta, k, &x, &mut y, &mut s);
        let mut dx = vec![0.0; x.len()];
        lrn_backward(
            n,
            c,
            plane,
            size,
            alpha,
            beta,
            &x,
            &s,
            &dy,
            &mut dx,
            &mut vec![0.0; c * plane],
        );
        check("lrn dx", std::slice::from_ref(&x), 0, &loss, &dx);
    }
}

#[test]
fn linear_and_loss_gradients() {
    let mut rng = Rng::new(6);
    let (n, fin, fout) = (3, 5, 4);
    let x = rand(&mut rng, n * fin);
    let w = rand(&mut rng, fout * fin);
    let b = rand(&mut rng, fout);
    let dy = rand(&mut rng, n * fout);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; n * fout];
        linear_forward(n, fin, fout, &v[0], &v[1], Some(&v[2]), false, &mut y);
        dot(&y, &dy)
    };
    let mut dx = vec![0.0; x.len()];
    linear_backward_data(n, fin, fout, &w, &dy, &mut dx);
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; fout]);
    linear_backward_weight(n, fin, fout, &x, &dy, &mut dw, Some(&mut db));
    let ins = [x, w, b];
    check("linear dx", &ins, 0, &loss, &dx);
    check("linear dw", &ins, 1, &loss, &dw);
    check("linear db", &ins, 2, &loss, &db);

    let logits: Vec<f32> = rand(&mut rng, 4 * 6).iter().map(|v| v * 3.0).collect();
    let labels = [0i64, 5, 2, 2];
    let mut dx = vec![0.0; logits.len()];
    softmax_ce(6, &logits, &labels, 0.7, &mut dx);
    let loss = |v: &[Vec<f32>]| {
        let mut d = vec![0.0; v[0].len()];
        0.7 * softmax_ce(6, &v[0], &labels, 0.7, &mut d) as f64
    };
    check("ce", &[logits], 0, &loss, &dx);

    let (a, bb) = (rand(&mut rng, 12), rand(&mut rng, 12));
    let (mut da, mut dbb) = (vec![0.0; 12], vec![0.0; 12]);
    mse(&a, &bb, 0.5, Some(&mut da), Some(&mut dbb));
    let loss = |v: &[Vec<f32>]| 0.5 * mse(&v[0], &v[1], 0.5, None, None) as f64;
    let ins = [a, bb];
    check("mse da", &ins, 0, &loss, &da);
    check("mse db", &ins, 1, &loss, &dbb);
}

#[test]
fn concat_and_add_gradients() {
    let mut rng = Rng::new(7);
    let (n, plane) = (2, 3);
    let (a, b) = (rand(&mut rng, n * 2 * plane), rand(&mut rng, n * 3 * plane));
    let dy = rand(&mut rng, n * 5 * plane);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; n * 5 * plane];
        concat_channels(n, plane, 2, 0, 5, &v[0], &mut y);
        concat_channels(n, plane, 3, 2, 5, &v[1], &mut y);
        dot(&y, &dy)
    };
    let (mut da, mut db) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    slice_channels(n, plane, 2, 0, 5, &dy, &mut da);
    slice_channels(n, plane, 3, 2, 5, &dy, &mut db);
    let ins = [a, b];
    check("concat a", &ins, 0, &loss, &da);
    check("concat b", &ins, 1, &loss, &db);

    let (a, b) = (rand(&mut rng, 10), rand(&mut rng, 10));
    let dy = rand(&mut rng, 10);
    let loss = |v: &[Vec<f32>]| {
        let mut y = vec![0.0; 10];
        add_forward(&[&v[0], &v[1]], &mut y);
        dot(&y, &dy)
    };
    check("add a", &[a.clone(), b.clone()], 0, &loss, &dy);
    check("add b", &[a, b], 1, &loss, &dy);
}

/// Edge cases from review: an empty batch writes zero weight gradients and leaves batchnorm's
/// running statistics alone; ReLU passes NaN through (as PyTorch), in the kernel and in the
/// GEMM epilogue.
#[test]
fn empty_batches_and_nan() {
    let g = Conv2d::square(2, 4, 4, 3, 3, 1, 1);
    let (mut dw, mut db) = (vec![9.0; g.weight_len()], vec![9.0; 3]);
    let mut col = vec![0.0; g.col_len()];
    conv2d_backward_weight(&g, 0, &[], &[], &mut dw, Some(&mut db), &mut col);
    assert!(dw.iter().chain(&db).all(|&v| v == 0.0));
    let (mut rm, mut rv) = (vec![0.5; 2], vec![2.0; 2]);
    let (mut mean, mut rstd) = (vec![0.0; 2], vec![0.0; 2]);
    batchnorm_train_forward(
        0,
        2,
        9,
        1e-5,
        0.1,
        &[],
        &[1.0; 2],
        &[0.0; 2],
        &mut rm,
        &mut rv,
        &mut [],
        &mut mean,
        &mut rstd,
    );
    assert_eq!((rm, rv), (vec![0.5; 2], vec![2.0; 2]));

    let mut y = [0.0; 3];
    forward(Relu, &[f32::NAN, -1.0, 2.0], &mut y);
    assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 2.0);
    let mut y = vec![0.0; 2];
    linear_forward(2, 1, 1, &[f32::NAN, -3.0], &[1.0], None, true, &mut y);
    assert!(y[0].is_nan() && y[1] == 0.0, "{y:?}");
}
