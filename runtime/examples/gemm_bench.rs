//! GEMM throughput on the GoogLeNet im2col shapes (or given ones), against this CPU's peak.
//!
//! `cargo run --release -p netc-runtime --example gemm_bench -- [--threads T] [M N K ...]`
//!
//! Without `--threads` it runs on 1 thread and then on every available CPU.

use netc_runtime::gemm;

/// GoogLeNet layers as im2col GEMMs, (M, N, K) = (out channels, output pixels, in·kh·kw).
const SHAPES: [(usize, usize, usize); 5] = [
    (128, 784, 864),    // inception 3b 3×3: 128 out, 28×28, 96·3·3
    (192, 3136, 576),   // conv2 3×3: 192 out, 56×56, 64·3·3
    (192, 196, 480),    // inception 4a 1×1: 192 out, 14×14, 480
    (64, 12544, 147),   // conv1 7×7/2: 64 out, 112×112, 3·7·7
    (1024, 1024, 1024), // square, for reference
];

fn main() {
    let mut threads: Vec<usize> = Vec::new();
    let mut dims: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            let t = args.next().and_then(|t| t.parse().ok());
            threads.push(t.expect("--threads needs a number"));
        } else {
            dims.push(
                arg.parse()
                    .unwrap_or_else(|_| panic!("not a dimension: {arg}")),
            );
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
    if threads.is_empty() {
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        threads = if all > 1 { vec![1, all] } else { vec![1] };
    }

    println!(
        "kernel: {}; peak {} GFLOP/s per core",
        gemm::KernelKind::detect().name(),
        gemm::PEAK_GFLOPS_PER_CORE
    );
    println!(
        "{:>6} {:>6} {:>6} {:>7} {:>10} {:>9} {:>7}",
        "M", "N", "K", "threads", "ms", "GFLOP/s", "% peak"
    );
    for &t in &threads {
        for &(m, n, k) in &shapes {
            let r = gemm::bench(m, n, k, t);
            println!(
                "{:>6} {:>6} {:>6} {:>7} {:>10.3} {:>9.1} {:>6.1}%",
                r.m,
                r.n,
                r.k,
                r.threads,
                r.seconds * 1e3,
                r.gflops,
                r.peak_fraction * 100.0
            );
        }
    }
}
