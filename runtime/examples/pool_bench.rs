//! Max pooling of GoogLeNet's, ResNet-50's and LeNet's shapes, with and without the argmaxes
//! (training's forward and inference's), in ns per input element.
//!
//! `cargo run --release -p netc-runtime --example pool_bench -- [BATCH]`

use netc_runtime::bench::{median_seconds, pseudo_random};
use netc_runtime::gemm::set_num_threads;
use netc_runtime::pool::*;

fn main() {
    set_num_threads(1);
    let n: usize = std::env::args()
        .nth(1)
        .map_or(8, |a| a.parse().expect("a batch"));
    println!("batch {n}, 1 thread; ns per input element");
    println!("| C×H×W | k/s/p | forward | values only | backward |");
    println!("|---|---|---:|---:|---:|");
    for &(c, hw, k, s, p) in &[
        (64, 112, 3, 2, 1),
        (192, 56, 3, 2, 1),
        (192, 28, 3, 1, 1),
        (480, 14, 3, 1, 1),
        (832, 7, 3, 1, 1),
        (6, 28, 2, 2, 0),
        (16, 10, 2, 2, 0),
    ] {
        let g = Pool2d {
            c,
            h: hw,
            w: hw,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: p,
            pw: p,
            ceil: true,
        };
        let x = pseudo_random(n * c * hw * hw, 7);
        let ylen = n * c * g.ho() * g.wo();
        let (mut y, mut arg) = (vec![0.0; ylen], vec![0u32; ylen]);
        let (dy, mut dx) = (vec![1.0f32; ylen], vec![0.0; x.len()]);
        let (_, fwd) = median_seconds(|| maxpool2d_forward(&g, n, &x, &mut y, &mut arg));
        let (_, values) = median_seconds(|| maxpool2d_forward_values(&g, n, &x, &mut y));
        let (_, bwd) = median_seconds(|| maxpool2d_backward(&g, n, &dy, &arg, &mut dx));
        let ns = |t: f64| t * 1e9 / x.len() as f64;
        println!(
            "| {c}×{hw}×{hw} | {k}/{s}/{p} | {:.2} | {:.2} | {:.2} |",
            ns(fwd),
            ns(values),
            ns(bwd)
        );
    }
}
