//! What the GEMM epilogue costs: one GEMM per shape with no epilogue, a bias, bias + ReLU,
//! bias + ReLU6, and bias then a separate ReLU6 pass over C (what an unfused ReLU6 costs).
//! The shapes are MobileNetV2 1×1 convs (short reductions, where the epilogue weighs most)
//! and GoogLeNet's first conv.
//!
//! `cargo run --release -p netc-runtime --example epilogue_bench -- [--threads T] [M N K ...]`

use netc_runtime::act::{forward_inplace, Relu6};
use netc_runtime::bench::median_seconds;
use netc_runtime::gemm::{Act, Context, Epilogue};

/// (M, N, K) = (out channels, output pixels, in channels · kh · kw).
const SHAPES: [(usize, usize, usize); 4] = [
    (96, 12544, 16),  // MobileNetV2 block 1 expand 1×1: 16 → 96 at 112×112
    (144, 3136, 24),  // block 2 expand 1×1: 24 → 144 at 56×56
    (24, 3136, 144),  // block 2 project 1×1: 144 → 24 at 56×56
    (64, 12544, 147), // GoogLeNet conv1 7×7/2: 64 out, 112×112, 3·7·7
];

fn main() {
    let mut threads = 1;
    let mut dims: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            threads = args
                .next()
                .and_then(|t| t.parse().ok())
                .expect("--threads needs a number");
        } else {
            dims.push(arg.parse().expect("a dimension"));
        }
    }
    assert!(
        dims.len().is_multiple_of(3),
        "shapes are given as M N K triples"
    );
    let shapes: Vec<(usize, usize, usize)> = if dims.is_empty() {
        SHAPES.to_vec()
    } else {
        dims.chunks(3).map(|d| (d[0], d[1], d[2])).collect()
    };
    let ctx = Context::new(threads);
    println!(
        "{} thread(s), median ms of one GEMM: C = A·B then the epilogue",
        ctx.threads()
    );
    println!(
        "{:>5} {:>6} {:>4} {:>8} {:>8} {:>10} {:>11} {:>14}",
        "M", "N", "K", "none", "bias", "bias+relu", "bias+relu6", "bias, relu6()"
    );
    for (m, n, k) in shapes {
        let fill = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed * 104_729) % 1999) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let (a, b, bias) = (fill(m * k, 1), fill(k * n, 2), fill(m, 3));
        let mut c = vec![0.0f32; m * n];
        let mut time = |epi: Epilogue, after: bool| {
            let (_, s) = median_seconds(|| {
                ctx.sgemm(
                    m, n, k, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1,
                    epi,
                );
                if after {
                    forward_inplace(Relu6, &mut c);
                }
            });
            s * 1e3
        };
        let none = time(Epilogue::NONE, false);
        let with_bias = time(Epilogue::bias_per_row(&bias), false);
        let relu = time(Epilogue::bias_per_row(&bias).relu(), false);
        let relu6 = time(Epilogue::bias_per_row(&bias).act(Act::Relu6), false);
        let unfused = time(Epilogue::bias_per_row(&bias), true);
        println!(
            "{m:>5} {n:>6} {k:>4} {none:>8.3} {with_bias:>8.3} {relu:>10.3} {relu6:>11.3} {unfused:>14.3}"
        );
    }
}
