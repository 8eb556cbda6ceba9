//! Depthwise convolutions of MobileNetV2 and EfficientNet-B0, computed directly: forward,
//! forward with bias and ReLU6 (inference's form after a folded batchnorm), data gradient
//! and weight gradient, milliseconds and multiply-adds per second. Inputs are random of
//! both signs, as activations are: an activation that branches per element shows here.
//!
//! `cargo run --release -p netc-runtime --example depthwise_bench -- [--threads T] [--layer I]
//! [BATCH]`: `--layer` keeps only the `I`th shape, for a profiler.
//! PyTorch times the same layers inside whole networks in `bench/profile_layers.py`.

use netc_runtime::bench::{median_seconds, pseudo_random};
use netc_runtime::conv::*;
use netc_runtime::gemm::{set_num_threads, Act};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = 1;
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        threads = args[i + 1].parse().expect("a thread count");
        args.drain(i..i + 2);
    }
    let mut layer = None;
    if let Some(i) = args.iter().position(|a| a == "--layer") {
        layer = Some(args[i + 1].parse::<usize>().expect("a layer index"));
        args.drain(i..i + 2);
    }
    set_num_threads(threads);
    let n: usize = args.first().map_or(8, |a| a.parse().expect("a batch"));
    println!("batch {n}, {threads} thread(s); ms (GMAC/s)");
    println!("| C×H×W | k/s | forward | + bias, ReLU6 | data | weight |");
    println!("|---|---|---:|---:|---:|---:|");
    // (channels, map, kernel, stride)
    for (_, &(c, hw, k, s)) in [
        (32, 112, 3, 1),
        (96, 112, 3, 2),
        (144, 56, 3, 1),
        (144, 56, 3, 2),
        (192, 28, 3, 1),
        (384, 14, 3, 1),
        (576, 14, 3, 1),
        (960, 7, 3, 1),
        (240, 28, 5, 1),
        (672, 14, 5, 2),
    ]
    .iter()
    .enumerate()
    .filter(|&(i, _)| layer.is_none_or(|l| l == i))
    {
        let g = Conv2d {
            groups: c,
            ..Conv2d::square(c, hw, hw, c, k, s, k / 2)
        };
        let x = pseudo_random(n * c * hw * hw, 7);
        let w = vec![0.5f32; g.weight_len()];
        let bias = vec![0.1f32; c];
        let p = g.out * g.ho() * g.wo();
        let dy = vec![0.1f32; n * p];
        let (mut y, mut dx, mut dw) = (vec![0.0; n * p], vec![0.0; x.len()], vec![0.0; w.len()]);
        let mut col = vec![0.0; g.col_len()];
        let macs = (n * p * k * k) as f64;
        let (_, fwd) =
            median_seconds(|| conv2d_forward(&g, n, &x, &w, None, false, &mut y, &mut col));
        let (_, act) = median_seconds(|| {
            conv2d_forward_act(&g, n, &x, &w, Some(&bias), Act::Relu6, &mut y, &mut col)
        });
        let (_, data) = median_seconds(|| conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col));
        let (_, weight) =
            median_seconds(|| conv2d_backward_weight(&g, n, &x, &dy, &mut dw, None, &mut col));
        let cell = |t: f64| format!("{:.3} ({:.1})", t * 1e3, macs / t / 1e9);
        println!(
            "| {c}×{hw}×{hw} | {k}/{s} | {} | {} | {} | {} |",
            cell(fwd),
            cell(act),
            cell(data),
            cell(weight)
        );
    }
}
