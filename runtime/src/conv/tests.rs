//! The convolutions' unit tests: slots against dense calls, and which path each
//! geometry of `tests/accumulate.rs` takes.

use super::*;

/// `len` values repeating every `period` steps of `m`: `((i·m) mod period)/scale - shift`,
/// varied and exact in float32.
fn pattern(len: usize, m: usize, period: usize, scale: f32, shift: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * m) % period) as f32 / scale - shift)
        .collect()
}

/// A conv that writes (and reads its gradient from) a channel slice of a wider buffer
/// computes exactly what the dense calls do, and leaves the rest of the buffer alone.
#[test]
fn slots_equal_dense_calls() {
    let geometries = [
        Conv2d::square(3, 6, 5, 4, 3, 1, 1),
        Conv2d::square(5, 4, 7, 3, 1, 1, 0),
        Conv2d::square(2, 9, 4, 6, 3, 2, 1),
    ];
    for g in geometries {
        let (n, p) = (3, g.ho() * g.wo());
        let (c0, wide) = (2, g.out + 5);
        let ys = Slot::channels(c0, wide, p);
        let fill = |len: usize, m: usize| pattern(len, m, 17, 4.0, 2.0);
        let x = fill(n * g.c * g.h * g.w, 7);
        let w = fill(g.weight_len(), 5);
        let b = fill(g.out, 3);
        let mut col = vec![0.0; g.col_len() + g.weight_len() + 4 * g.c * (g.h + 8) * (g.w + 8)];
        let mut dense = vec![0.0; n * g.out * p];
        conv2d_forward(&g, n, &x, &w, Some(&b), true, &mut dense, &mut col);
        let mut wide_y = vec![f32::NAN; n * wide * p];
        conv2d_forward_slot(&g, n, &x, &w, Some(&b), true, &mut wide_y, ys, &mut col);
        for i in 0..n {
            let got = &wide_y[ys.image(i, g.out * p)];
            assert_eq!(got, &dense[i * g.out * p..][..g.out * p], "{g:?}");
        }
        let outside = wide_y.iter().filter(|v| v.is_nan()).count();
        assert_eq!(
            outside,
            n * (wide - g.out) * p,
            "{g:?}: wrote outside the slot"
        );

        let dy = fill(n * g.out * p, 11);
        let mut wide_dy = vec![f32::NAN; n * wide * p];
        for i in 0..n {
            wide_dy[ys.image(i, g.out * p)].copy_from_slice(&dy[i * g.out * p..][..g.out * p]);
        }
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
        conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut col);
        conv2d_backward_data(&g, n, &w, &dy, &mut dx, &mut col);
        let (mut dw2, mut db2, mut dx2) =
            (vec![0.0; w.len()], vec![0.0; g.out], vec![0.0; x.len()]);
        conv2d_backward_weight_slot(&g, n, &x, &wide_dy, ys, &mut dw2, Some(&mut db2), &mut col);
        conv2d_backward_data_slot(&g, n, &w, &wide_dy, ys, &mut dx2, &mut col);
        assert_eq!((dw, db, dx), (dw2, db2, dx2), "{g:?}");
    }
}

/// The geometries of `tests/accumulate.rs` take the paths that test names: dX as a conv
/// with the flipped kernel, col2im, or pointwise (`room` times the col the conv needs).
#[test]
fn accumulate_test_geometries_take_their_paths() {
    let sq = Conv2d::square;
    let flipped = |g: &Conv2d, room: usize| DataAsConv::new(g, room * g.col_len_one()).is_some();
    let as_conv = [
        sq(4, 7, 6, 5, 3, 1, 1),
        Conv2d {
            dh: 2,
            dw: 3,
            ..sq(3, 9, 11, 4, 3, 1, 2)
        },
        Conv2d {
            groups: 2,
            ..sq(4, 6, 7, 6, 3, 1, 1)
        },
    ];
    for g in as_conv {
        assert!(flipped(&g, 1), "{g:?} is not computed as a conv");
    }
    let by_col2im = [
        (sq(1, 5, 5, 16, 3, 1, 1), 1),
        (sq(2, 5, 6, 3, 3, 1, 3), 4),
        (sq(3, 9, 8, 4, 3, 2, 1), 1),
        (sq(5, 7, 7, 3, 1, 2, 0), 1),
        (
            Conv2d {
                dh: 2,
                dw: 2,
                ..sq(3, 10, 9, 4, 3, 2, 1)
            },
            1,
        ),
        (
            Conv2d {
                groups: 3,
                ..sq(6, 8, 7, 9, 3, 2, 1)
            },
            1,
        ),
    ];
    for (g, room) in by_col2im {
        assert!(
            !g.is_pointwise() && !flipped(&g, room),
            "{g:?} does not go through col2im"
        );
    }
    let pointwise = [
        sq(6, 5, 7, 4, 1, 1, 0),
        sq(3, 4, 5, 300, 1, 1, 0),
        Conv2d {
            groups: 2,
            ..sq(6, 4, 5, 4, 1, 1, 0)
        },
    ];
    for g in pointwise {
        assert!(g.is_pointwise(), "{g:?} is not pointwise");
    }
}

/// Backward data as a forward conv agrees with GEMM + col2im (different summation
/// order, so to rounding), with padding below, at and above half the kernel, dilation
/// and groups.
#[test]
fn data_as_conv_matches_col2im() {
    let geometries = [
        Conv2d::square(3, 5, 6, 4, 3, 1, 1),
        Conv2d::square(2, 20, 18, 3, 3, 1, 0),
        Conv2d::square(2, 4, 17, 3, 5, 1, 4),
        Conv2d {
            dh: 2,
            dw: 3,
            groups: 2,
            ..Conv2d::square(4, 9, 19, 6, 3, 1, 2)
        },
    ];
    for g in geometries {
        let n = 2;
        let dy: Vec<f32> = (0..n * g.out * g.ho() * g.wo())
            .map(|i| ((i * 7) % 13) as f32 - 6.0)
            .collect();
        let w: Vec<f32> = (0..g.weight_len())
            .map(|i| ((i * 5) % 11) as f32 - 5.0)
            .collect();
        let mut col = vec![0.0; g.col_len()];
        let dc = DataAsConv::new(&g, col.len()).expect("the rewrite applies");
        let (room, wt) = dc.flip(&g, &w, &mut col);
        let xs = g.c * g.h * g.w;
        let mut got = vec![f32::NAN; n * xs];
        let mut want = vec![0.0; n * xs];
        let mut col2 = vec![0.0; g.col_len()];
        for i in 0..n {
            let dyi = &dy[i * g.out * g.ho() * g.wo()..][..g.out * g.ho() * g.wo()];
            dc.image(&g, wt, dyi, &mut got[i * xs..(i + 1) * xs], 0.0, room);
            data_grad_image(&g, &w, dyi, &mut want[i * xs..(i + 1) * xs], 0.0, &mut col2);
        }
        // Small integers: both orders are exact.
        assert_eq!(got, want, "{g:?}");
    }
}

/// The direct depthwise and small-group kernels against the definition.
mod direct {
    use super::super::direct::{backward_data, backward_weight, forward};
    use super::*;

    /// Direct convolution in f64, the definition: `y[i,o,oy,ox] = Σ w·x`.
    fn reference(g: &Conv2d, n: usize, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (ho, wo, og, cg) = (g.ho(), g.wo(), g.og(), g.cg());
        let mut y = vec![0.0; n * g.out * ho * wo];
        for i in 0..n {
            for o in 0..g.out {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0.0f64;
                        for j in 0..cg {
                            let c = (o / og) * cg + j;
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                                    let ix = (ox * g.sw + kj * g.dw) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((i * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                    let wv = w[((o * cg + j) * g.kh + ki) * g.kw + kj];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((i * g.out + o) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }
        y
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn geometries() -> Vec<Conv2d> {
        let mut out = Vec::new();
        for &(c, groups, out_c) in &[(4, 4, 4), (3, 3, 6), (8, 2, 4), (6, 3, 3)] {
            for &(h, w) in &[(7, 7), (6, 9), (1, 1), (5, 2)] {
                for &(k, s, p, d) in &[(3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 2, 1), (3, 1, 2, 2)] {
                    if h + 2 * p < d * (k - 1) + 1 || w + 2 * p < d * (k - 1) + 1 {
                        continue;
                    }
                    out.push(Conv2d {
                        c,
                        h,
                        w,
                        out: out_c,
                        kh: k,
                        kw: k,
                        sh: s,
                        sw: s,
                        ph: p,
                        pw: p,
                        dh: d,
                        dw: d,
                        groups,
                    });
                }
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f64], what: &str, g: &Conv2d) {
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what} of {g:?} at {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let n = 2;
            let x = data(n * g.c * g.h * g.w, 1);
            let w = data(g.weight_len(), 2);
            let mut y = vec![f32::NAN; n * g.out * g.ho() * g.wo()];
            let ys = Slot::dense(g.out * g.ho() * g.wo());
            forward(&g, n, &x, &w, None, Act::None, &mut y, ys, 0.0);
            close(&y, &reference(&g, n, &x, &w), "forward", &g);
        }
    }

    /// The epilogue as each row is stored: bias, accumulation into `y` and ReLU6, on rows
    /// long enough for blocks of 16 and 8 and every kind of last block (a whole block
    /// spilling into the next row, or the plane's last row through a temporary).
    #[test]
    fn forward_epilogues_match_the_definition() {
        for &(h, w) in &[(5, 17), (4, 30), (3, 24), (6, 14), (2, 9), (3, 40)] {
            for &(k, s) in &[(3, 1), (3, 2), (5, 1)] {
                let g = Conv2d {
                    groups: 3,
                    ..Conv2d::square(3, h, w, 3, k, s, k / 2)
                };
                let n = 2;
                let x = data(n * g.c * g.h * g.w, 3);
                let wt: Vec<f32> = data(g.weight_len(), 4).iter().map(|v| 4.0 * v).collect();
                let bias = data(g.out, 5);
                let len = n * g.out * g.ho() * g.wo();
                let y0: Vec<f32> = data(len, 6).iter().map(|v| 3.0 * v).collect();
                let sums = reference(&g, n, &x, &wt);
                let ys = Slot::dense(g.out * g.ho() * g.wo());
                for act in [Act::None, Act::Relu6] {
                    for beta in [0.0f32, 1.0] {
                        let mut y = if beta == 0.0 {
                            vec![f32::NAN; len]
                        } else {
                            y0.clone()
                        };
                        forward(&g, n, &x, &wt, Some(&bias), act, &mut y, ys, beta);
                        let plane = g.ho() * g.wo();
                        let want: Vec<f64> = sums
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                let o = (i / plane) % g.out;
                                let v = v + bias[o] as f64 + beta as f64 * y0[i] as f64;
                                match act {
                                    Act::Relu6 => v.clamp(0.0, 6.0),
                                    _ => v,
                                }
                            })
                            .collect();
                        close(&y, &want, &format!("forward {act:?} beta {beta}"), &g);
                    }
                }
            }
        }
    }

    /// `⟨dy, conv(x)⟩ = ⟨dx(dy), x⟩ = ⟨dw(x, dy), w⟩`: both gradients are the adjoints of the
    /// forward, checked one basis vector at a time against the definition.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward() {
        for g in geometries() {
            let n = 2;
            let (xs, ys_len) = (n * g.c * g.h * g.w, n * g.out * g.ho() * g.wo());
            let dys = Slot::dense(g.out * g.ho() * g.wo());
            let x = data(xs, 3);
            let w = data(g.weight_len(), 4);
            let dy = data(ys_len, 5);
            // dx[e] = ⟨dy, conv(e_basis, w)⟩.
            let mut dx = vec![f32::NAN; xs];
            backward_data(&g, n, &w, &dy, dys, &mut dx, 0.0);
            let want: Vec<f64> = (0..xs)
                .map(|e| {
                    let mut basis = vec![0.0; xs];
                    basis[e] = 1.0;
                    let y = reference(&g, n, &basis, &w);
                    y.iter().zip(&dy).map(|(a, &b)| a * b as f64).sum()
                })
                .collect();
            close(&dx, &want, "data gradient", &g);
            let mut acc = dx.clone();
            backward_data(&g, n, &w, &dy, dys, &mut acc, 1.0);
            let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
            close(&acc, &twice, "accumulated data gradient", &g);
            // dw[e] = ⟨dy, conv(x, e_basis)⟩.
            let mut dw = vec![f32::NAN; g.weight_len()];
            backward_weight(&g, n, &x, &dy, dys, &mut dw);
            let want: Vec<f64> = (0..g.weight_len())
                .map(|e| {
                    let mut basis = vec![0.0; g.weight_len()];
                    basis[e] = 1.0;
                    let y = reference(&g, n, &x, &basis);
                    y.iter().zip(&dy).map(|(a, &b)| a * b as f64).sum()
                })
                .collect();
            close(&dw, &want, "weight gradient", &g);
        }
    }
}

/// Small maps batch images into one GEMM when `col` has [`Conv2d::col_len`]; with only
/// [`Conv2d::col_len_one`] they go image by image. Both agree (to rounding: the reductions
/// are ordered differently) for every kind of B (pointwise, implicit, stored), dense and in
/// slots, overwriting and accumulating, for batches that do and do not fill the last GEMM.
#[test]
fn batched_small_maps_equal_image_by_image() {
    let sq = Conv2d::square;
    let geometries = [
        sq(5, 7, 7, 6, 1, 1, 0), // pointwise: the input is B
        sq(4, 6, 5, 7, 3, 1, 1), // implicit im2col; data gradient as a conv
        sq(3, 9, 8, 5, 3, 2, 1), // stride 2: stored im2col
        sq(6, 8, 8, 4, 1, 2, 0), // 1×1 stride 2
        sq(2, 5, 5, 3, 5, 1, 2), // 5×5
    ];
    let fill = |len: usize, m: usize| pattern(len, m, 19, 8.0, 1.1);
    for g in geometries {
        assert!(g.col_len() > g.col_len_one(), "{g:?} is not batched");
        for n in [2, 3, 11] {
            let p = g.ho() * g.wo();
            let (xs, ys_len) = (g.c * g.h * g.w, g.out * p);
            let (c0, wide) = (1, g.out + 3);
            let ys = Slot::channels(c0, wide, p);
            let x = fill(n * xs, 7);
            let w = fill(g.weight_len(), 5);
            let b = fill(g.out, 3);
            let dy = fill(n * wide * p, 11);
            let run = |col_len: usize| {
                let mut col = vec![0.0; col_len];
                let mut y = vec![0.5; n * wide * p];
                let act = Act::Relu6;
                conv2d_forward_slot_act(&g, n, &x, &w, Some(&b), act, &mut y, ys, &mut col);
                let mut acc = fill(n * ys_len, 13);
                conv2d_forward_acc(&g, n, &x, &w, &mut acc, &mut col);
                let (mut dw, mut db) = (vec![f32::NAN; w.len()], vec![0.0; g.out]);
                conv2d_backward_weight_slot(&g, n, &x, &dy, ys, &mut dw, Some(&mut db), &mut col);
                let mut dx = fill(n * xs, 17);
                conv2d_backward_data_slot_acc(&g, n, &w, &dy, ys, &mut dx, &mut col);
                [y, acc, dw, db, dx]
            };
            let (one, batched) = (run(g.col_len_one()), run(g.col_len()));
            for (name, (a, b)) in ["y", "y += conv", "dw", "db", "dx"]
                .iter()
                .zip(one.iter().zip(&batched))
            {
                for (i, (&u, &v)) in a.iter().zip(b).enumerate() {
                    assert!(
                        u.to_bits() == v.to_bits() || (u - v).abs() <= 1e-4 * (1.0 + u.abs()),
                        "{name} of {g:?}, n = {n}, at {i}: {u} one by one, {v} batched"
                    );
                }
            }
        }
    }
}

/// An image's forward outputs are the same bits whatever images share its call: a batch
/// cut into shards (`crate::shard`) relies on it. With a residual summed in the epilogue and
/// a reduction longer than the GEMM's KC (64 channels × 3×3 = 576), the batched path once
/// added the residual after the whole product, where the GEMM of one image adds it before
/// the first block of `k`: 188 of 1024 outputs differed in their last bits.
#[test]
fn an_image_computes_the_same_bits_in_any_batch() {
    let sq = Conv2d::square;
    let geometries = [
        sq(64, 4, 4, 64, 3, 1, 1),   // batched, k = 576
        sq(64, 16, 16, 32, 3, 1, 1), // batched (256 pixels), k = 576
        sq(32, 17, 17, 8, 3, 1, 1),  // per image, implicit
        sq(300, 7, 7, 16, 1, 1, 0),  // pointwise, k = 300
        sq(40, 9, 9, 24, 3, 2, 1),   // stride 2, stored
        Conv2d {
            groups: 12,
            ..sq(12, 9, 9, 12, 3, 1, 1) // direct
        },
    ];
    let fill = |len: usize, m: usize| pattern(len, m, 31, 8.0, 1.9);
    for g in geometries {
        let (n, p) = (3, g.ho() * g.wo());
        let (xs, per) = (g.c * g.h * g.w, g.out * p);
        let (x, w, b) = (fill(n * xs, 7), fill(g.weight_len(), 5), fill(g.out, 3));
        let r = fill(n * per, 11);
        let mut col = vec![0.0; g.col_len()];
        for residual in [false, true] {
            let call = |n: usize, x: &[f32], y: &mut [f32], col: &mut [f32]| {
                let ys = Slot::dense(per);
                if residual {
                    conv2d_forward_slot_act_acc(&g, n, x, &w, Some(&b), Act::Relu, y, ys, col);
                } else {
                    conv2d_forward_slot_act(&g, n, x, &w, Some(&b), Act::Relu, y, ys, col);
                }
            };
            let mut all = r.clone();
            call(n, &x, &mut all, &mut col);
            for i in 0..n {
                let mut one = r[i * per..(i + 1) * per].to_vec();
                call(1, &x[i * xs..(i + 1) * xs], &mut one, &mut col);
                let differ = one
                    .iter()
                    .zip(&all[i * per..(i + 1) * per])
                    .filter(|(u, v)| u.to_bits() != v.to_bits())
                    .count();
                assert_eq!(
                    differ, 0,
                    "{g:?}, residual {residual}, image {i}: {differ} of {per} differ"
                );
            }
        }
    }
}

/// A residual added and activated in the convolution's epilogue
/// (`conv2d_forward_slot_act_acc`) equals the convolution, then the sum, then the clamp, on
/// every path: per image (implicit, stored, pointwise), batched, and direct.
#[test]
fn residual_in_the_epilogue_equals_conv_then_add_then_clamp() {
    let sq = Conv2d::square;
    let geometries = [
        sq(5, 17, 17, 6, 3, 1, 1),   // implicit, per image (289 pixels)
        sq(4, 33, 34, 5, 3, 2, 1),   // stored, per image
        sq(70, 34, 34, 66, 1, 2, 0), // strided 1×1: stored, per image
        sq(70, 17, 17, 66, 1, 1, 0), // pointwise, per image
        sq(4, 6, 5, 7, 3, 1, 1),     // batched
        Conv2d {
            groups: 6,
            ..sq(6, 9, 9, 6, 3, 1, 1) // direct
        },
    ];
    let fill = |len: usize, m: usize| pattern(len, m, 29, 4.0, 3.5);
    for g in geometries {
        let (n, p) = (3, g.ho() * g.wo());
        let ys = Slot::channels(2, g.out + 4, p);
        let (x, w, b) = (
            fill(n * g.c * g.h * g.w, 7),
            fill(g.weight_len(), 5),
            fill(g.out, 3),
        );
        let r = fill(n * (g.out + 4) * p, 11);
        let mut col = vec![0.0; g.col_len()];
        for act in [Act::None, Act::Relu, Act::Relu6] {
            let mut got = r.clone();
            conv2d_forward_slot_act_acc(&g, n, &x, &w, Some(&b), act, &mut got, ys, &mut col);
            let mut conv = vec![f32::NAN; r.len()];
            conv2d_forward_slot_act(&g, n, &x, &w, Some(&b), Act::None, &mut conv, ys, &mut col);
            let hi = act.clamp_hi();
            for i in 0..n {
                let at = ys.image(i, g.out * p);
                for j in at.clone() {
                    let mut want = conv[j] + r[j];
                    if let Some(hi) = hi {
                        want = want.clamp(0.0, hi);
                    }
                    let tol = 1e-4 * (1.0 + want.abs());
                    assert!(
                        (got[j] - want).abs() <= tol,
                        "{g:?} {act:?} at {j}: {} vs {want}",
                        got[j]
                    );
                }
            }
            let outside =
                (0..r.len()).filter(|&j| (0..n).all(|i| !ys.image(i, g.out * p).contains(&j)));
            assert!(
                outside
                    .into_iter()
                    .all(|j| got[j].to_bits() == r[j].to_bits()),
                "{g:?}: wrote outside the slot"
            );
        }
    }
}

/// Batching copies every output once more through scratch, so it is for GEMMs too small to
/// be worth a call each: LeNet's convs and 7×7 maps are batched, MobileNetV2's 1×1 convs on
/// 112×112 maps are not, though they have fewer weights than LeNet's second conv (batching
/// them made the 16→96 expansion 35% slower and took 38 MB of scratch at batch 8).
#[test]
fn only_small_gemms_are_batched() {
    let lenet = [
        Conv2d::square(1, 28, 28, 6, 5, 1, 2),
        Conv2d::square(6, 14, 14, 16, 5, 1, 0),
    ];
    for g in lenet {
        assert!(batched::applies(&g), "{g:?}");
    }
    assert!(batched::applies(&Conv2d::square(512, 7, 7, 2048, 1, 1, 0)));
    let expand = Conv2d::square(16, 112, 112, 96, 1, 1, 0);
    assert!(expand.weight_len() < lenet[1].weight_len());
    assert!(!batched::applies(&expand));
    assert!(!batched::applies(&Conv2d::square(3, 224, 224, 32, 3, 2, 1)));
    assert_eq!(batched::col_len(&expand), 0);
}
