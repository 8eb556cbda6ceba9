//! Where a conv layer's time goes: forward, backward data, backward weight, and the im2col
//! and col2im inside them, on 1 and 2 threads; and backward data added into a gradient
//! buffer, by the accumulating form and by the overwriting form into scratch + accumulate;
//! and the three passes again with the full `col_len`, which batches images on small maps.
//!
//! `cargo run --release -p netc-runtime --example conv_parts -- [BATCH C H W OUT K S P]`

use netc_runtime::bench::median_seconds;
use netc_runtime::conv::*;
use netc_runtime::gemm::set_num_threads;
use netc_runtime::im2col::{col2im, im2col};
use netc_runtime::tensor::accumulate;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|v| v.parse().expect("a number"))
        .collect();
    let a = if a.is_empty() {
        vec![32, 96, 28, 28, 128, 3, 1, 1]
    } else {
        a
    };
    let (n, g) = (
        a[0],
        Conv2d::square(a[1], a[2], a[3], a[4], a[5], a[6], a[7]),
    );
    let x = vec![0.5f32; n * g.c * g.h * g.w];
    let w = vec![0.01f32; g.weight_len()];
    let dy = vec![0.1f32; n * g.out * g.ho() * g.wo()];
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    let mut db = vec![0.0; g.out];
    // im2col and col2im below need a full col even for a pointwise conv.
    let mut col = vec![0.0; g.col_rows() * g.ho() * g.wo()];
    let mut scratch = vec![0.0; x.len()];
    // With the full `col_len`, small maps put several images in one GEMM.
    let mut col_batched = vec![0.0; g.col_len().max(col.len())];
    for t in [1, 2] {
        set_num_threads(t);
        let ms = |s: f64| s * 1e3;
        let (_, f) =
            median_seconds(|| conv2d_forward(&g, n, &x, &w, None, false, &mut y, &mut col));
        let (_, bd) = median_seconds(|| conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col));
        let (_, bd_acc) =
            median_seconds(|| conv2d_backward_data_acc(&g, n, &w, &dy, &mut dx, &mut col));
        let (_, bd_scratch) = median_seconds(|| {
            conv2d_backward_data(&g, n, &w, &dy, &mut scratch, &mut col);
            accumulate(&scratch, &mut dx);
        });
        let (_, bw) = median_seconds(|| {
            conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut col)
        });
        let (_, i2c) = median_seconds(|| {
            for i in 0..n {
                im2col(&g, &x[i * g.c * g.h * g.w..], 0, &mut col);
            }
        });
        let (_, c2i) = median_seconds(|| {
            for i in 0..n {
                col2im(
                    &g,
                    &col,
                    0,
                    &mut dx[i * g.c * g.h * g.w..(i + 1) * g.c * g.h * g.w],
                );
            }
        });
        println!(
            "{t} threads: forward {:.2} ms, backward data {:.2}, backward weight {:.2}; im2col ×{n} {:.2}, col2im ×{n} {:.2}",
            ms(f), ms(bd), ms(bw), ms(i2c), ms(c2i)
        );
        let cb = &mut col_batched;
        let (_, fb) = median_seconds(|| conv2d_forward(&g, n, &x, &w, None, false, &mut y, cb));
        let (_, bdb) = median_seconds(|| conv2d_backward_data(&g, n, &w, &dy, &mut dx, cb));
        let (_, bwb) =
            median_seconds(|| conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), cb));
        println!(
            "  with col_len ({}): forward {:.2} ms, backward data {:.2}, backward weight {:.2}",
            if g.col_len() > g.col_len_one() {
                "images batched"
            } else {
                "same path"
            },
            ms(fb),
            ms(bdb),
            ms(bwb)
        );
        println!(
            "  backward data into a gradient: accumulating {:.2} ms, overwriting into scratch + accumulate {:.2}",
            ms(bd_acc), ms(bd_scratch)
        );
    }
}
