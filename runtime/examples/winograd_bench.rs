//! Winograd against im2col on the 3×3 stride-1 layers of GoogLeNet and ResNet-50: forward,
//! data gradient and weight gradient, milliseconds and effective GFLOP/s (the direct
//! convolution's `2·MACs` over the time, so that the algorithms compare on one scale).
//!
//! `cargo run --release -p netc-runtime --example winograd_bench -- [--threads T] [--f2]
//! [--layer I] [--no-im2col] [BATCH]`: `--layer` keeps only the `I`th shape of [`SHAPES`] and
//! `--no-im2col` drops the reference, so that a profiler sees one kernel.

use netc_runtime::bench::median_seconds;
use netc_runtime::conv::winograd::{self, Tile};
use netc_runtime::conv::*;
use netc_runtime::gemm::{set_num_threads, Act};

/// (input channels, output channels, map): GoogLeNet's 3×3 convs, then ResNet-50's.
pub const SHAPES: [(usize, usize, usize); 9] = [
    (64, 192, 56),
    (96, 128, 28),
    (96, 208, 14),
    (160, 320, 7),
    (192, 384, 7),
    (64, 64, 56),
    (128, 128, 28),
    (256, 256, 14),
    (512, 512, 7),
];

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = 1;
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        threads = args[i + 1].parse().expect("a thread count");
        args.drain(i..i + 2);
    }
    let f2 = args
        .iter()
        .position(|a| a == "--f2")
        .map(|i| args.remove(i));
    let mut layer = None;
    if let Some(i) = args.iter().position(|a| a == "--layer") {
        layer = Some(args[i + 1].parse::<usize>().expect("a layer index"));
        args.drain(i..i + 2);
    }
    let no_im2col = args
        .iter()
        .position(|a| a == "--no-im2col")
        .map(|i| args.remove(i))
        .is_some();
    set_num_threads(threads);
    let n: usize = args.first().map_or(8, |a| a.parse().expect("a batch"));
    let mut algos = vec![None, Some(Tile::F4)];
    if no_im2col {
        algos.remove(0);
    }
    if f2.is_some() {
        algos.push(Some(Tile::F2));
    }
    println!("batch {n}, {threads} thread(s); ms (effective GFLOP/s)");
    println!("| layer | algorithm | forward | data | weight |");
    println!("|---|---|---:|---:|---:|");
    for (_, &(c, out, hw)) in SHAPES
        .iter()
        .enumerate()
        .filter(|&(i, _)| layer.is_none_or(|l| l == i))
    {
        let g = Conv2d::square(c, hw, hw, out, 3, 1, 1);
        let x: Vec<f32> = (0..n * c * hw * hw).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..g.weight_len()).map(|i| (i % 5) as f32 * 0.01).collect();
        let p = g.out * g.ho() * g.wo();
        let dy = vec![0.1f32; n * p];
        let (mut y, mut dx, mut dw) = (vec![0.0; n * p], vec![0.0; x.len()], vec![0.0; w.len()]);
        let flops = 2.0 * (n * p * c * 9) as f64;
        let cell = |t: f64| format!("{:.2} ({:.0})", t * 1e3, flops / t / 1e9);
        for &algo in &algos {
            let (fwd, data, weight) = match algo {
                None => {
                    let mut col = vec![0.0; g.col_len()];
                    let (_, f) = median_seconds(|| {
                        conv2d_forward_act(&g, n, &x, &w, None, Act::Relu, &mut y, &mut col)
                    });
                    let (_, d) =
                        median_seconds(|| conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col));
                    let (_, wt) = median_seconds(|| {
                        conv2d_backward_weight(&g, n, &x, &dy, &mut dw, None, &mut col)
                    });
                    (f, d, wt)
                }
                Some(tile) => {
                    let mut s = vec![0.0; winograd::scratch_len(&g, tile, n)];
                    let (_, f) = median_seconds(|| {
                        winograd::conv2d_forward_act(
                            &g,
                            tile,
                            n,
                            &x,
                            &w,
                            None,
                            Act::Relu,
                            &mut y,
                            &mut s,
                        )
                    });
                    let (_, d) = median_seconds(|| {
                        winograd::conv2d_backward_data(&g, tile, n, &w, &dy, &mut dx, &mut s)
                    });
                    let (_, wt) = median_seconds(|| {
                        winograd::conv2d_backward_weight(
                            &g, tile, n, &x, &dy, &mut dw, None, &mut s,
                        )
                    });
                    (f, d, wt)
                }
            };
            let name = algo.map_or("im2col".to_string(), |t| format!("{t:?}"));
            println!(
                "| {c}→{out} @{hw} | {name} | {} | {} | {} |",
                cell(fwd),
                cell(data),
                cell(weight)
            );
        }
    }
}
