//! Winograd against a float64 definition of the convolution and its gradients, on sizes that
//! are not multiples of the tile (edge tiles), several blocks, pads 0 to 2 and channels not
//! multiples of eight; and against the im2col calls. Errors are bounded relative to the sum
//! of the magnitudes of the products each output adds up, the scale of its rounding.

use super::*;
use crate::conv;

/// The bound on `|got - exact| / Σ|products|`: F4's about 3× the worst that
/// `examples/winograd_error.rs` measured on GoogLeNet's and ResNet-50's layers (3.4e-6, the
/// weight gradient of 512→512 at 7×7), F2's about 6× its worst (3.1e-7).
fn bound(tile: Tile) -> f64 {
    match tile {
        Tile::F2 => 2e-6,
        Tile::F4 => 1e-5,
    }
}

fn fill(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 1009.0 - 0.5) * 2.0)
        .collect()
}

/// The geometries: odd maps, pads 0, 1, 2 and uneven, many tiles per row (two lane groups),
/// and enough tiles for several blocks.
fn geometries() -> Vec<(Conv2d, usize)> {
    let mut uneven = Conv2d::square(4, 11, 6, 5, 3, 1, 1);
    uneven.pw = 0;
    vec![
        (Conv2d::square(5, 9, 7, 11, 3, 1, 1), 1),
        (Conv2d::square(5, 9, 7, 11, 3, 1, 0), 3),
        (Conv2d::square(13, 13, 10, 6, 3, 1, 1), 3),
        (Conv2d::square(3, 40, 38, 4, 3, 1, 1), 3),
        (Conv2d::square(9, 5, 5, 17, 3, 1, 2), 2),
        (uneven, 3),
    ]
}

/// Each value of the exact result, with the sum of its products' magnitudes.
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

    fn add(&mut self, at: usize, a: f32, b: f32) {
        let p = a as f64 * b as f64;
        self.v[at] += p;
        self.mag[at] += p.abs();
    }

    /// Panics unless `got` is within `tol·Σ|products|` of the exact values; returns the
    /// largest relative error.
    fn check(&self, got: &[f32], tol: f64, what: &str) -> f64 {
        assert_eq!(got.len(), self.v.len(), "{what}: length");
        let mut worst = 0.0f64;
        for (i, (&g, (&v, &m))) in got.iter().zip(self.v.iter().zip(&self.mag)).enumerate() {
            let err = (g as f64 - v).abs() / m.max(1e-30);
            assert!(
                err <= tol || (g as f64 - v).abs() < 1e-30,
                "{what}: index {i}: got {g}, exact {v}, relative error {err:.2e} > {tol:.0e}"
            );
            worst = worst.max(err);
        }
        worst
    }
}

/// Calls `f(i, o, c, oy, ox, ki, kj, x_index)` for every product of the conv where the tap
/// lands inside the input (`x_index` into `x`).
fn each_product(g: &Conv2d, n: usize, mut f: impl FnMut([usize; 7], usize)) {
    let (ho, wo) = (g.ho(), g.wo());
    for i in 0..n {
        for o in 0..g.out {
            for c in 0..g.c {
                for oy in 0..ho {
                    for ox in 0..wo {
                        for ki in 0..3 {
                            for kj in 0..3 {
                                let iy = (oy + ki).wrapping_sub(g.ph);
                                let ix = (ox + kj).wrapping_sub(g.pw);
                                if iy < g.h && ix < g.w {
                                    let xi = ((i * g.c + c) * g.h + iy) * g.w + ix;
                                    f([i, o, c, oy, ox, ki, kj], xi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn exact_forward(g: &Conv2d, n: usize, x: &[f32], w: &[f32]) -> Exact {
    let (ho, wo) = (g.ho(), g.wo());
    let mut e = Exact::new(n * g.out * ho * wo);
    each_product(g, n, |[i, o, c, oy, ox, ki, kj], xi| {
        let at = ((i * g.out + o) * ho + oy) * wo + ox;
        e.add(at, x[xi], w[((o * g.c + c) * 3 + ki) * 3 + kj]);
    });
    e
}

fn exact_data(g: &Conv2d, n: usize, w: &[f32], dy: &[f32]) -> Exact {
    let (ho, wo) = (g.ho(), g.wo());
    let mut e = Exact::new(n * g.c * g.h * g.w);
    each_product(g, n, |[i, o, c, oy, ox, ki, kj], xi| {
        let d = dy[((i * g.out + o) * ho + oy) * wo + ox];
        e.add(xi, d, w[((o * g.c + c) * 3 + ki) * 3 + kj]);
    });
    e
}

fn exact_weight(g: &Conv2d, n: usize, x: &[f32], dy: &[f32]) -> Exact {
    let (ho, wo) = (g.ho(), g.wo());
    let mut e = Exact::new(g.weight_len());
    each_product(g, n, |[i, o, c, oy, ox, ki, kj], xi| {
        let d = dy[((i * g.out + o) * ho + oy) * wo + ox];
        e.add(((o * g.c + c) * 3 + ki) * 3 + kj, d, x[xi]);
    });
    e
}

#[test]
fn forward_matches_the_definition_with_bias_and_activation() {
    for (g, n) in geometries() {
        for tile in [Tile::F2, Tile::F4] {
            let p = g.ho() * g.wo();
            let (x, w, b) = (
                fill(n * g.c * g.h * g.w, 1),
                fill(g.weight_len(), 2),
                fill(g.out, 3),
            );
            let mut e = exact_forward(&g, n, &x, &w);
            let mut scratch = vec![f32::NAN; scratch_len(&g, tile, n)];
            let mut y = vec![f32::NAN; n * g.out * p];
            conv2d_forward_act(&g, tile, n, &x, &w, None, Act::None, &mut y, &mut scratch);
            e.check(&y, bound(tile), &format!("{g:?} {tile:?} forward"));
            // Bias, then ReLU6: the exact values shifted and clamped (the magnitudes include
            // the bias).
            conv2d_forward_act(
                &g,
                tile,
                n,
                &x,
                &w,
                Some(&b),
                Act::Relu6,
                &mut y,
                &mut scratch,
            );
            for (at, v) in e.v.iter_mut().enumerate() {
                let bo = b[at / p % g.out] as f64;
                *v = (*v + bo).clamp(0.0, 6.0);
                e.mag[at] += bo.abs();
            }
            e.check(&y, bound(tile), &format!("{g:?} {tile:?} forward relu6"));
        }
    }
}

/// The forward and the data gradient through each kernel this CPU has, whose panels differ
/// (the generic kernel's 4×8 against AVX2's 6×16): the transforms' packed layouts must match
/// the kernel that reads them.
#[test]
fn every_kernel_reads_the_panels_the_transforms_write() {
    use crate::gemm::KernelKind;
    for kind in KernelKind::ALL.into_iter().filter(|k| k.is_available()) {
        for (g, n) in geometries() {
            for tile in [Tile::F2, Tile::F4] {
                let p = g.ho() * g.wo();
                let (x, w) = (fill(n * g.c * g.h * g.w, 4), fill(g.weight_len(), 5));
                let dy = fill(n * g.out * p, 6);
                let mut scratch = vec![f32::NAN; scratch_len(&g, tile, n)];
                let run = |g: &Conv2d, x: &[f32], flip, y: &mut [f32], s: &mut [f32]| {
                    let pl = Plan::new(g, tile, n);
                    let (xs, ys) = (Slot::dense(g.c * g.h * g.w), Slot::dense(g.out * p_of(g)));
                    let a = Act::None;
                    match tile {
                        Tile::F2 => run::forward::<F2>(
                            kind, g, &pl, x, xs, &w, flip, None, a, y, ys, 0.0, s,
                        ),
                        Tile::F4 => run::forward::<F4>(
                            kind, g, &pl, x, xs, &w, flip, None, a, y, ys, 0.0, s,
                        ),
                    }
                };
                let mut y = vec![f32::NAN; n * g.out * p];
                run(&g, &x, false, &mut y, &mut scratch);
                let what = format!("{kind:?} {g:?} {tile:?}");
                exact_forward(&g, n, &x, &w).check(&y, bound(tile), &format!("{what} forward"));
                let mut dx = vec![f32::NAN; x.len()];
                run(&transposed(&g), &dy, true, &mut dx, &mut scratch);
                exact_data(&g, n, &w, &dy).check(&dx, bound(tile), &format!("{what} data"));
            }
        }
    }
}

/// Output pixels of `g`.
fn p_of(g: &Conv2d) -> usize {
    g.ho() * g.wo()
}

#[test]
fn data_gradient_matches_the_definition() {
    for (g, n) in geometries() {
        for tile in [Tile::F2, Tile::F4] {
            let (w, dy) = (
                fill(g.weight_len(), 4),
                fill(n * g.out * g.ho() * g.wo(), 5),
            );
            let e = exact_data(&g, n, &w, &dy);
            let mut scratch = vec![f32::NAN; scratch_len(&g, tile, n)];
            let mut dx = vec![f32::NAN; n * g.c * g.h * g.w];
            conv2d_backward_data(&g, tile, n, &w, &dy, &mut dx, &mut scratch);
            e.check(&dx, bound(tile), &format!("{g:?} {tile:?} data"));
        }
    }
}

#[test]
fn weight_and_bias_gradients_match_the_definition() {
    for (g, n) in geometries() {
        for tile in [Tile::F2, Tile::F4] {
            let p = g.ho() * g.wo();
            let (x, dy) = (fill(n * g.c * g.h * g.w, 6), fill(n * g.out * p, 7));
            let e = exact_weight(&g, n, &x, &dy);
            let mut scratch = vec![f32::NAN; scratch_len(&g, tile, n)];
            let (mut dw, mut db) = (vec![f32::NAN; g.weight_len()], vec![f32::NAN; g.out]);
            conv2d_backward_weight(&g, tile, n, &x, &dy, &mut dw, Some(&mut db), &mut scratch);
            e.check(&dw, bound(tile), &format!("{g:?} {tile:?} weight"));
            let mut want = vec![0.0; g.out];
            conv::bias_backward(n, g.out, p, &dy, &mut want);
            assert_eq!(db, want, "{g:?} {tile:?} bias");
        }
    }
}

/// Slots write (and read) only their channel slice; `_acc` forms add what was there.
#[test]
fn slots_and_accumulating_forms_equal_the_dense_calls() {
    for (g, n) in geometries() {
        let tile = Tile::F4;
        let p = g.ho() * g.wo();
        let (c0, wide) = (2, g.out + 3);
        let ys = Slot::channels(c0, wide, p);
        let (x, w, b) = (
            fill(n * g.c * g.h * g.w, 8),
            fill(g.weight_len(), 9),
            fill(g.out, 10),
        );
        let mut scratch = vec![0.0; scratch_len(&g, tile, n)];
        let mut dense = vec![0.0; n * g.out * p];
        conv2d_forward_act(
            &g,
            tile,
            n,
            &x,
            &w,
            Some(&b),
            Act::Relu,
            &mut dense,
            &mut scratch,
        );
        let mut wide_y = vec![f32::NAN; n * wide * p];
        conv2d_forward_slot_act(
            &g,
            tile,
            n,
            &x,
            &w,
            Some(&b),
            Act::Relu,
            &mut wide_y,
            ys,
            &mut scratch,
        );
        for i in 0..n {
            assert_eq!(
                &wide_y[ys.image(i, g.out * p)],
                &dense[i * g.out * p..][..g.out * p]
            );
        }
        let outside = wide_y.iter().filter(|v| v.is_nan()).count();
        assert_eq!(
            outside,
            n * (wide - g.out) * p,
            "{g:?}: wrote outside the slot"
        );

        // A residual r summed in the epilogue: act(conv + r + b) ≈ act(conv + b + r).
        let r = fill(n * g.out * p, 11);
        let mut acc = vec![f32::NAN; n * wide * p];
        for i in 0..n {
            acc[ys.image(i, g.out * p)].copy_from_slice(&r[i * g.out * p..][..g.out * p]);
        }
        conv2d_forward_slot_act_acc(
            &g,
            tile,
            n,
            &x,
            &w,
            Some(&b),
            Act::Relu,
            &mut acc,
            ys,
            &mut scratch,
        );
        let mut plain = vec![0.0; n * g.out * p];
        conv2d_forward_act(
            &g,
            tile,
            n,
            &x,
            &w,
            None,
            Act::None,
            &mut plain,
            &mut scratch,
        );
        for i in 0..n {
            let got = &acc[ys.image(i, g.out * p)];
            for (k, &v) in got.iter().enumerate() {
                let at = i * g.out * p + k;
                let want = ((plain[at] + r[at]) + b[k / p]).max(0.0);
                assert_eq!(v, want, "{g:?}: residual at {at}");
            }
        }

        let dy = fill(n * g.out * p, 12);
        let mut wide_dy = vec![f32::NAN; n * wide * p];
        for i in 0..n {
            wide_dy[ys.image(i, g.out * p)].copy_from_slice(&dy[i * g.out * p..][..g.out * p]);
        }
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
        conv2d_backward_weight(&g, tile, n, &x, &dy, &mut dw, Some(&mut db), &mut scratch);
        conv2d_backward_data(&g, tile, n, &w, &dy, &mut dx, &mut scratch);
        let (mut dw2, mut db2, mut dx2) =
            (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
        conv2d_backward_weight_slot(
            &g,
            tile,
            n,
            &x,
            &wide_dy,
            ys,
            &mut dw2,
            Some(&mut db2),
            &mut scratch,
        );
        conv2d_backward_data_slot(&g, tile, n, &w, &wide_dy, ys, &mut dx2, &mut scratch);
        assert_eq!((&dw, &db, &dx), (&dw2, &db2, &dx2), "{g:?}");

        let base = fill(x.len(), 13);
        let mut dx3 = base.clone();
        conv2d_backward_data_slot_acc(&g, tile, n, &w, &wide_dy, ys, &mut dx3, &mut scratch);
        let mut dx4 = base.clone();
        conv2d_backward_data_acc(&g, tile, n, &w, &dy, &mut dx4, &mut scratch);
        for (k, (&a, &d)) in dx3.iter().zip(&dx).enumerate() {
            assert_eq!(a, dx4[k]);
            assert!(
                (a - (base[k] + d)).abs() <= 1e-5 * (1.0 + a.abs()),
                "{g:?}: dx acc at {k}"
            );
        }
    }
}

/// Winograd and the im2col calls agree (within Winograd's rounding) on every pass.
#[test]
fn winograd_equals_im2col() {
    for (g, n) in geometries() {
        for tile in [Tile::F2, Tile::F4] {
            let p = g.ho() * g.wo();
            let (x, w, b) = (
                fill(n * g.c * g.h * g.w, 14),
                fill(g.weight_len(), 15),
                fill(g.out, 16),
            );
            let dy = fill(n * g.out * p, 17);
            let mut scratch = vec![0.0; scratch_len(&g, tile, n)];
            let mut col = vec![0.0; g.col_len() + conv::batched_col_len(&g)];
            let (mut y1, mut y2) = (vec![0.0; n * g.out * p], vec![0.0; n * g.out * p]);
            conv2d_forward_act(
                &g,
                tile,
                n,
                &x,
                &w,
                Some(&b),
                Act::Relu,
                &mut y1,
                &mut scratch,
            );
            conv::conv2d_forward_act(&g, n, &x, &w, Some(&b), Act::Relu, &mut y2, &mut col);
            let (mut dx1, mut dx2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            conv2d_backward_data(&g, tile, n, &w, &dy, &mut dx1, &mut scratch);
            conv::conv2d_backward_data(&g, n, &w, &dy, &mut dx2, &mut col);
            let (mut dw1, mut dw2) = (vec![0.0; w.len()], vec![0.0; w.len()]);
            conv2d_backward_weight(&g, tile, n, &x, &dy, &mut dw1, None, &mut scratch);
            conv::conv2d_backward_weight(&g, n, &x, &dy, &mut dw2, None, &mut col);
            for (what, a, b) in [
                ("forward", &y1, &y2),
                ("data", &dx1, &dx2),
                ("weight", &dw1, &dw2),
            ] {
                let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (k, (u, v)) in a.iter().zip(b.iter()).enumerate() {
                    assert!(
                        (u - v).abs() <= 1e-4 * scale,
                        "{g:?} {tile:?} {what} at {k}: winograd {u}, im2col {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn scratch_stops_growing_with_the_batch() {
    let g = Conv2d::square(16, 7, 7, 32, 3, 1, 1);
    for tile in [Tile::F2, Tile::F4] {
        let any = scratch_len(&g, tile, usize::MAX);
        assert!((1..10_000).all(|n| scratch_len(&g, tile, n) <= any));
        assert_eq!(scratch_len(&g, tile, 100_000), any);
    }
}

#[test]
fn applies_to_3x3_stride_1_only() {
    assert!(applies(&Conv2d::square(64, 56, 56, 192, 3, 1, 1)));
    assert!(!applies(&Conv2d::square(64, 56, 56, 192, 3, 2, 1)));
    assert!(!applies(&Conv2d::square(64, 56, 56, 192, 1, 1, 0)));
    assert!(!applies(&Conv2d::square(64, 56, 56, 192, 5, 1, 2)));
    let mut dilated = Conv2d::square(8, 9, 9, 8, 3, 1, 1);
    dilated.dh = 2;
    assert!(!applies(&dilated));
    let mut grouped = Conv2d::square(8, 9, 9, 8, 3, 1, 1);
    grouped.groups = 2;
    assert!(!applies(&grouped));
}
