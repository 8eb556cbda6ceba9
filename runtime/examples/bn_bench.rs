//! Times batchnorm's training forward and backward, with and without a fused ReLU6, on
//! MobileNetV2's largest batchnorm (96 channels of 112×112 at batch 8): ms and GB/s.

use std::time::Instant;

use netc_runtime::gemm::Act;
use netc_runtime::norm;

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e3
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(1, |s| s.parse().unwrap());
    netc_runtime::gemm::set_num_threads(threads);
    let (n, c, plane) = (8, 96, 112 * 112);
    let len = n * c * plane;
    // Random values: a ReLU's mask as unpredictable as in a network.
    let mut rng = netc_runtime::rng::Rng::new(1);
    let x: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let dy: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let (gamma, beta) = (vec![1.1f32; c], vec![0.1f32; c]);
    let (mut rm, mut rv) = (vec![0.0f32; c], vec![1.0f32; c]);
    let (mut mean, mut rstd) = (vec![0.0f32; c], vec![0.0f32; c]);
    let (mut y, mut dx) = (vec![0.0f32; len], vec![0.0f32; len]);
    let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
    for act in [Act::None, Act::Relu6] {
        let f = time(|| {
            norm::batchnorm_train_forward_act(
                None, n, c, plane, 1e-5, 0.1, &x, &gamma, &beta, act, &mut rm, &mut rv, &mut y,
                &mut mean, &mut rstd,
            )
        });
        let b = time(|| {
            norm::batchnorm_train_backward_act(
                None, n, c, plane, &x, &y, act, &gamma, &mean, &rstd, &dy, &mut dx, &mut dg,
                &mut db,
            )
        });
        let gb = |ms: f64, passes: f64| passes * 4.0 * len as f64 / ms / 1e6;
        println!(
            "{act:?} {threads}T: forward {f:.2} ms ({:.1} GB/s), backward {b:.2} ms ({:.1} GB/s)",
            gb(f, 3.0),
            gb(b, 6.0)
        );
    }
}
