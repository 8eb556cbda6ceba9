//! Results do not depend on the thread count: convolution forward (with ReLU or ReLU6 fused)
//! and both backward passes, and a linear layer with ReLU6 fused, are bitwise equal on 1 and
//! 2 threads (work is split over output rows and columns only, never over a reduction), and
//! so are elementwise activations large enough to be split into chunks, depthwise convolutions
//! (split over channels), batchnorm with ReLU (statistics split over channels) and Winograd
//! convolutions (transforms split over channels, GEMMs over their outputs). Each also runs
//! on 2 threads with the calling thread alone (`gemm::serial`, as generated code runs a layer
//! below its crossover) and gives the same bits. One test in its own binary, since the thread
//! count is global.

use netc_runtime::act::{backward, forward, Gelu};
use netc_runtime::conv::*;
use netc_runtime::gemm::{serial, set_num_threads, Act};
use netc_runtime::linear::linear_forward_act;
use netc_runtime::norm::{batchnorm_train_backward_act, batchnorm_train_forward_act};
use netc_runtime::rng::Rng;

fn run(g: &Conv2d, n: usize, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> [Vec<f32>; 5] {
    let mut col = vec![0.0; g.col_len()];
    let mut y = vec![0.0; dy.len()];
    conv2d_forward(g, n, x, w, Some(b), true, &mut y, &mut col);
    // ReLU6 with the weights scaled up (more for short reductions), so that outputs reach
    // past 6.
    let scale = 8.0 * (864.0 / g.col_rows() as f32).max(1.0);
    let w8: Vec<f32> = w.iter().map(|v| scale * v).collect();
    let mut y6 = vec![0.0; dy.len()];
    conv2d_forward_act(g, n, x, &w8, Some(b), Act::Relu6, &mut y6, &mut col);
    assert!(y6.contains(&6.0) && y6.contains(&0.0), "ReLU6 not crossed");
    let mut dx = vec![0.0; x.len()];
    conv2d_backward_data(g, n, w, dy, &mut dx, &mut col);
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; g.out]);
    conv2d_backward_weight(g, n, x, dy, &mut dw, Some(&mut db), &mut col);
    [y, y6, dx, dw, db]
}

/// [`run`]'s passes by Winograd F4 (ReLU6 only where the weights reach it), where it applies.
fn winograd(g: &Conv2d, n: usize, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> [Vec<f32>; 5] {
    use netc_runtime::conv::winograd::{self as wg, Tile};
    let tile = Tile::F4;
    let mut s = vec![0.0; wg::scratch_len(g, tile, n)];
    let mut y = vec![0.0; dy.len()];
    wg::conv2d_forward_act(g, tile, n, x, w, Some(b), Act::Relu, &mut y, &mut s);
    let mut y6 = vec![0.0; dy.len()];
    wg::conv2d_forward_act(g, tile, n, x, w, Some(b), Act::Relu6, &mut y6, &mut s);
    let mut dx = vec![0.0; x.len()];
    wg::conv2d_backward_data(g, tile, n, w, dy, &mut dx, &mut s);
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; g.out]);
    wg::conv2d_backward_weight(g, tile, n, x, dy, &mut dw, Some(&mut db), &mut s);
    [y, y6, dx, dw, db]
}

/// A linear layer with ReLU6 fused, large enough that its GEMM splits.
fn linear_relu6(x: &[f32], w: &[f32], b: &[f32], n: usize, fin: usize, fout: usize) -> Vec<f32> {
    let mut y = vec![0.0; n * fout];
    linear_forward_act(n, fin, fout, x, w, Some(b), Act::Relu6, &mut y);
    assert!(y.contains(&6.0) && y.contains(&0.0), "ReLU6 not crossed");
    y
}

/// GELU forward and backward over more elements than run on one thread.
fn gelu(x: &[f32], dy: &[f32]) -> [Vec<f32>; 2] {
    let mut y = vec![0.0; x.len()];
    forward(Gelu, x, &mut y);
    let mut dx = vec![0.0; x.len()];
    backward(Gelu, x, &y, dy, &mut dx);
    [y, dx]
}

#[test]
fn conv_and_activations_are_bitwise_equal_on_1_and_2_threads() {
    let mut rng = Rng::new(11);
    // Large enough that the GEMMs split: 96 → 128 channels, 3×3, on 28×28.
    // The last two are depthwise, computed directly and split over channels.
    for g in [
        Conv2d::square(96, 28, 28, 128, 3, 1, 1),
        Conv2d::square(192, 28, 28, 64, 1, 1, 0),
        Conv2d {
            groups: 96,
            ..Conv2d::square(96, 28, 28, 96, 3, 1, 1)
        },
        Conv2d {
            groups: 96,
            ..Conv2d::square(96, 28, 28, 96, 5, 2, 2)
        },
    ] {
        let n = 2;
        let x: Vec<f32> = (0..n * g.c * g.h * g.w)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let w: Vec<f32> = (0..g.weight_len())
            .map(|_| rng.uniform(-0.1, 0.1))
            .collect();
        let b: Vec<f32> = (0..g.out).map(|_| rng.uniform(-0.1, 0.1)).collect();
        let dy: Vec<f32> = (0..n * g.out * g.ho() * g.wo())
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        type Passes = fn(&Conv2d, usize, &[f32], &[f32], &[f32], &[f32]) -> [Vec<f32>; 5];
        let mut algos: Vec<(&str, Passes)> = vec![("im2col", run)];
        if netc_runtime::conv::winograd::applies(&g) && g.groups == 1 {
            algos.push(("winograd", winograd));
        }
        for (algo, passes) in algos {
            set_num_threads(1);
            let one = passes(&g, n, &x, &w, &b, &dy);
            set_num_threads(2);
            let two = passes(&g, n, &x, &w, &b, &dy);
            let alone = serial(|| passes(&g, n, &x, &w, &b, &dy));
            for (name, (a, b)) in ["y", "y relu6", "dx", "dw", "db"]
                .iter()
                .zip(one.iter().zip(&two))
            {
                let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(
                    same,
                    "{algo}: {name} differs between 1 and 2 threads for {g:?}"
                );
            }
            let bits = |v: &[Vec<f32>]| v.concat().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&one) == bits(&alone),
                "{algo}: differs between 1 thread and 2 with one alone for {g:?}"
            );
        }
    }
    let (n, fin, fout) = (64, 512, 1000);
    let x: Vec<f32> = (0..n * fin).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w: Vec<f32> = (0..fout * fin).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let b: Vec<f32> = (0..fout).map(|_| rng.uniform(-1.0, 1.0)).collect();
    set_num_threads(1);
    let one = linear_relu6(&x, &w, &b, n, fin, fout);
    set_num_threads(2);
    let two = linear_relu6(&x, &w, &b, n, fin, fout);
    let alone = serial(|| linear_relu6(&x, &w, &b, n, fin, fout));
    assert!(alone
        .iter()
        .zip(&one)
        .all(|(p, q)| p.to_bits() == q.to_bits()));
    assert!(
        one.iter()
            .zip(&two)
            .all(|(p, q)| p.to_bits() == q.to_bits()),
        "linear + ReLU6 differs between 1 and 2 threads"
    );

    let len = (1 << 20) + 123;
    let x: Vec<f32> = (0..len).map(|_| rng.uniform(-5.0, 5.0)).collect();
    let dy: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
    set_num_threads(1);
    let one = gelu(&x, &dy);
    set_num_threads(2);
    let two = gelu(&x, &dy);
    let bits = |v: &[Vec<f32>; 2]| v.concat().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&one) == bits(&two),
        "GELU differs between 1 and 2 threads"
    );
    assert!(bits(&serial(|| gelu(&x, &dy))) == bits(&one));

    let (n, c, plane) = (4, 64, 28 * 28);
    let x: Vec<f32> = (0..n * c * plane).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let dy: Vec<f32> = (0..x.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let gamma: Vec<f32> = (0..c).map(|_| rng.uniform(0.5, 1.5)).collect();
    let beta: Vec<f32> = (0..c).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let batchnorm = || {
        let (mut rm, mut rv, mut mean, mut rstd) =
            (vec![0.0; c], vec![1.0; c], vec![0.0; c], vec![0.0; c]);
        let mut y = vec![0.0; x.len()];
        batchnorm_train_forward_act(
            None,
            n,
            c,
            plane,
            1e-5,
            0.1,
            &x,
            &gamma,
            &beta,
            Act::Relu,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        batchnorm_train_backward_act(
            None,
            n,
            c,
            plane,
            &x,
            &y,
            Act::Relu,
            &gamma,
            &mean,
            &rstd,
            &dy,
            &mut dx,
            &mut dg,
            &mut db,
        );
        [y, rm, rv, dx, dg, db]
            .concat()
            .iter()
            .map(|f| f.to_bits())
            .collect::<Vec<_>>()
    };
    set_num_threads(1);
    let one = batchnorm();
    set_num_threads(2);
    assert!(
        one == batchnorm(),
        "batchnorm + ReLU differs between 1 and 2 threads"
    );
    assert!(serial(batchnorm) == one);
}
