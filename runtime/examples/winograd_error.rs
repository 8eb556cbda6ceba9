//! The rounding of Winograd F2 and F4 and of im2col on the 3×3 layers of GoogLeNet and
//! ResNet-50: the largest `|computed - exact| / Σ|products|` over every output of the forward
//! pass, the data gradient and the weight gradient, the exact values in float64.
//!
//! `cargo run --release -p netc-runtime --example winograd_error -- [BATCH]` (default 1)

use netc_runtime::conv::winograd::{self, Tile};
use netc_runtime::conv::*;
use netc_runtime::gemm::Act;
use netc_runtime::rng::Rng;

/// (input channels, output channels, map): GoogLeNet's 3×3 convs, then ResNet-50's.
const SHAPES: [(usize, usize, usize); 9] = [
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

/// The exact result of a sum of products per output, and the sum of their magnitudes.
struct Exact {
    v: Vec<f64>,
    mag: Vec<f64>,
}

impl Exact {
    fn new(len: usize) -> Exact {
        Exact {
            v: vec![0.0; len],
            mag: vec![0.0; len],
        }
    }

    fn add(&mut self, at: usize, p: f64) {
        self.v[at] += p;
        self.mag[at] += p.abs();
    }

    fn worst(&self, got: &[f32]) -> f64 {
        got.iter()
            .zip(self.v.iter().zip(&self.mag))
            .map(|(&g, (&v, &m))| (g as f64 - v).abs() / m.max(1e-300))
            .fold(0.0, f64::max)
    }
}

/// The exact forward, data and weight results of `g` (pad 1) by the definition.
fn exact(g: &Conv2d, n: usize, x: &[f32], w: &[f32], dy: &[f32]) -> [Exact; 3] {
    let (h, wd) = (g.h, g.w);
    let mut e = [
        Exact::new(n * g.out * h * wd),
        Exact::new(x.len()),
        Exact::new(w.len()),
    ];
    for i in 0..n {
        for o in 0..g.out {
            for c in 0..g.c {
                for k in 0..9 {
                    let (ki, kj) = (k / 3, k % 3);
                    let wv = w[(o * g.c + c) * 9 + k] as f64;
                    for oy in 0..h {
                        let iy = (oy + ki).wrapping_sub(1);
                        if iy >= h {
                            continue;
                        }
                        for ox in 0..wd {
                            let ix = (ox + kj).wrapping_sub(1);
                            if ix >= wd {
                                continue;
                            }
                            let xi = ((i * g.c + c) * h + iy) * wd + ix;
                            let yi = ((i * g.out + o) * h + oy) * wd + ox;
                            let (xv, dv) = (x[xi] as f64, dy[yi] as f64);
                            e[0].add(yi, xv * wv);
                            e[1].add(xi, dv * wv);
                            e[2].add((o * g.c + c) * 9 + k, dv * xv);
                        }
                    }
                }
            }
        }
    }
    e
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1, |a| a.parse().expect("a batch"));
    let mut rng = Rng::new(7);
    println!("batch {n}; max |got - exact| / Σ|products| (forward · data · weight)");
    println!("| layer | F2 | F4 | im2col |");
    println!("|---|---|---|---|");
    for &(c, out, hw) in &SHAPES {
        let g = Conv2d::square(c, hw, hw, out, 3, 1, 1);
        let mut uniform =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect() };
        let x = uniform(n * c * hw * hw);
        let w = uniform(g.weight_len());
        let dy = uniform(n * out * hw * hw);
        let e = exact(&g, n, &x, &w, &dy);
        let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
        let mut cells = Vec::new();
        for tile in [Tile::F2, Tile::F4] {
            let mut s = vec![0.0; winograd::scratch_len(&g, tile, n)];
            winograd::conv2d_forward_act(&g, tile, n, &x, &w, None, Act::None, &mut y, &mut s);
            winograd::conv2d_backward_data(&g, tile, n, &w, &dy, &mut dx, &mut s);
            winograd::conv2d_backward_weight(&g, tile, n, &x, &dy, &mut dw, None, &mut s);
            cells.push([e[0].worst(&y), e[1].worst(&dx), e[2].worst(&dw)]);
        }
        let mut col = vec![0.0; g.col_len()];
        conv2d_forward_act(&g, n, &x, &w, None, Act::None, &mut y, &mut col);
        conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col);
        conv2d_backward_weight(&g, n, &x, &dy, &mut dw, None, &mut col);
        cells.push([e[0].worst(&y), e[1].worst(&dx), e[2].worst(&dw)]);
        let cell = |v: [f64; 3]| format!("{:.1e} · {:.1e} · {:.1e}", v[0], v[1], v[2]);
        println!(
            "| {c}→{out} @{hw} | {} | {} | {} |",
            cell(cells[0]),
            cell(cells[1]),
            cell(cells[2])
        );
    }
}
