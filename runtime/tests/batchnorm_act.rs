//! Batch normalization with its activation fused: bitwise what the unfused kernels and the
//! activation give, forward and backward; and statistics exact to rounding when the mean is
//! far from zero (the one-pass sums are shifted by each channel's first value).

use netc_runtime::gemm::Act;
use netc_runtime::norm::*;
use netc_runtime::rng::Rng;

fn clamp(v: f32, hi: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else if v > hi {
        hi
    } else {
        v
    }
}

#[test]
fn fused_activation_equals_batchnorm_then_activation() {
    let mut rng = Rng::new(5);
    let (n, c, plane) = (3, 5, 37);
    let x: Vec<f32> = (0..n * c * plane).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let dy: Vec<f32> = (0..x.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let gamma: Vec<f32> = (0..c).map(|_| rng.uniform(0.5, 4.0)).collect();
    let beta: Vec<f32> = (0..c).map(|_| rng.uniform(-1.0, 3.0)).collect();
    for (act, hi) in [(Act::Relu, f32::INFINITY), (Act::Relu6, 6.0)] {
        let stats = || (vec![0.0; c], vec![1.0; c], vec![0.0; c], vec![0.0; c]);
        let (mut rm, mut rv, mut mean, mut rstd) = stats();
        let mut y = vec![0.0; x.len()];
        batchnorm_train_forward(
            n, c, plane, 1e-5, 0.1, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut mean,
            &mut rstd,
        );
        let (mut rm2, mut rv2, mut mean2, mut rstd2) = stats();
        let mut ya = vec![0.0; x.len()];
        batchnorm_train_forward_act(
            None, n, c, plane, 1e-5, 0.1, &x, &gamma, &beta, act, &mut rm2, &mut rv2, &mut ya,
            &mut mean2, &mut rstd2,
        );
        assert!(ya.contains(&0.0), "{act:?} never clamps at 0");
        if act == Act::Relu6 {
            assert!(ya.contains(&6.0), "ReLU6 never clamps at 6");
        }
        for (i, (&a, &b)) in ya.iter().zip(&y).enumerate() {
            assert_eq!(
                a.to_bits(),
                clamp(b, hi).to_bits(),
                "{act:?} forward at {i}"
            );
        }
        assert_eq!(
            (rm, rv, mean.clone(), rstd.clone()),
            (rm2, rv2, mean2, rstd2)
        );
        // Backward: the unfused kernel on dy masked where the activation is flat.
        let masked: Vec<f32> = dy
            .iter()
            .zip(&y)
            .map(|(&g, &v)| if v > 0.0 && v < hi { g } else { 0.0 })
            .collect();
        let grads = || (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        let (mut dx, mut dg, mut db) = grads();
        batchnorm_train_backward(
            n, c, plane, &x, &gamma, &mean, &rstd, &masked, &mut dx, &mut dg, &mut db,
        );
        let (mut dxa, mut dga, mut dba) = grads();
        batchnorm_train_backward_act(
            None, n, c, plane, &x, &ya, act, &gamma, &mean, &rstd, &dy, &mut dxa, &mut dga,
            &mut dba,
        );
        assert_eq!(dga, dg, "{act:?} dgamma");
        assert_eq!(dba, db, "{act:?} dbeta");
        for (i, (&a, &b)) in dxa.iter().zip(&dx).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{act:?} dx at {i}");
        }
        // Inference.
        let mut ye = vec![0.0; x.len()];
        batchnorm_eval_forward(n, c, plane, 1e-5, &x, &gamma, &beta, &mean, &rstd, &mut ye);
        let mut yea = vec![0.0; x.len()];
        batchnorm_eval_forward_act(
            n, c, plane, 1e-5, &x, &gamma, &beta, act, &mean, &rstd, &mut yea,
        );
        for (i, (&a, &b)) in yea.iter().zip(&ye).enumerate() {
            assert_eq!(
                a.to_bits(),
                clamp(b, hi).to_bits(),
                "{act:?} inference at {i}"
            );
        }
    }
}

#[test]
fn statistics_are_exact_far_from_zero() {
    let mut rng = Rng::new(9);
    let (n, c, plane) = (4, 2, 1000);
    // Mean 3000, standard deviation ~0.03: E[x²] - E[x]² would lose every digit in f32 and
    // most in f64 without the shift.
    let x: Vec<f32> = (0..n * c * plane)
        .map(|_| 3000.0 + rng.uniform(-0.05, 0.05))
        .collect();
    let (mut rm, mut rv, mut mean, mut rstd) =
        (vec![0.0; c], vec![1.0; c], vec![0.0; c], vec![0.0; c]);
    let mut y = vec![0.0; x.len()];
    let ones = vec![1.0; c];
    let zeros = vec![0.0; c];
    batchnorm_train_forward(
        n, c, plane, 0.0, 0.1, &x, &ones, &zeros, &mut rm, &mut rv, &mut y, &mut mean, &mut rstd,
    );
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|i| x[(i * c + ch) * plane..(i * c + ch + 1) * plane].iter())
            .map(|&v| v as f64)
            .collect();
        let mu = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / vals.len() as f64;
        let want = 1.0 / var.sqrt();
        let rel = (rstd[ch] as f64 - want).abs() / want;
        assert!(
            rel < 1e-6,
            "channel {ch}: rstd {} vs {want} ({rel:e})",
            rstd[ch]
        );
    }
}
