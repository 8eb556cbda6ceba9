//! SGEMM against a naive triple loop (f64 accumulation), over every kernel of the build, every
//! layout of A, B and C, edge sizes around each kernel's tile and blocks, alpha/beta special
//! cases and every epilogue; and bitwise determinism across thread counts.

use netc_runtime::gemm::{Act, BSource, Bias, Context, Epilogue, KernelKind, Major};

/// Every kernel this machine can run; fails if the CPU reports AVX2 and FMA (as seen by std
/// and, on Linux, by /proc/cpuinfo) but the AVX2 kernel is not available.
fn kernels() -> Vec<KernelKind> {
    #[cfg(target_arch = "x86_64")]
    {
        let std_says = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        let cpuinfo_says = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| {
                    l.split_whitespace().any(|f| f == "avx2")
                        && l.split_whitespace().any(|f| f == "fma")
                })
        });
        if std_says || cpuinfo_says {
            assert!(
                KernelKind::Avx2Fma.is_available(),
                "this CPU has AVX2 and FMA but the AVX2 kernel is not available"
            );
            assert_eq!(KernelKind::detect(), KernelKind::Avx2Fma);
        }
    }
    let kernels: Vec<KernelKind> = KernelKind::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect();
    assert!(kernels.contains(&KernelKind::Generic));
    kernels
}

fn context(kernel: KernelKind, threads: usize) -> Context {
    Context::new(threads)
        .with_kernel(kernel)
        .expect("kernels() only lists available kernels")
}

/// How a matrix is laid out in its slice.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Neither stride is 1, with gaps between elements.
    General,
    /// Row-major with rows in reverse order (negative row stride).
    Flipped,
}

const LAYOUTS: [Layout; 4] = [
    Layout::RowMajor,
    Layout::ColMajor,
    Layout::General,
    Layout::Flipped,
];

/// A rows×cols matrix stored in `data` with the given strides; gaps hold `gap`.
struct Strided {
    data: Vec<f32>,
    rs: isize,
    cs: isize,
    origin: isize,
    /// Which indices of `data` hold elements (rather than gaps).
    is_element: Vec<bool>,
}

impl Strided {
    fn new(
        rows: usize,
        cols: usize,
        layout: Layout,
        gap: f32,
        value: impl Fn(usize, usize) -> f32,
    ) -> Strided {
        let (r, c) = (rows as isize, cols as isize);
        let (rs, cs, origin, len) = match layout {
            Layout::RowMajor => (c, 1, 0, r * c),
            Layout::ColMajor => (1, r, 0, r * c),
            Layout::General => (2, 2 * r + 3, 0, (2 * r + 3) * c),
            Layout::Flipped => (-c, 1, (r - 1).max(0) * c, r * c),
        };
        let mut data = vec![gap; len as usize];
        let mut is_element = vec![false; len as usize];
        for i in 0..rows {
            for j in 0..cols {
                let idx = (origin + i as isize * rs + j as isize * cs) as usize;
                data[idx] = value(i, j);
                is_element[idx] = true;
            }
        }
        Strided {
            data,
            rs,
            cs,
            origin,
            is_element,
        }
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[(self.origin + i as isize * self.rs + j as isize * self.cs) as usize]
    }
}

/// Deterministic values in [-1, 1).
fn value(seed: usize, i: usize, j: usize) -> f32 {
    let mut x =
        (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((i as u64) << 32 | j as u64);
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// One GEMM problem; `check` runs it on a context and compares with the naive reference.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    layouts: [Layout; 3],
    bias: Option<bool>, // Some(true): per row, Some(false): per column
    act: Act,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Case {
        Case {
            m,
            n,
            k,
            alpha: 1.0,
            beta: 0.0,
            layouts: [Layout::RowMajor; 3],
            bias: None,
            act: Act::None,
        }
    }

    fn run(&self, ctx: &Context) -> (Strided, Vec<f32>) {
        let (m, n, k) = (self.m, self.n, self.k);
        let a = Strided::new(m, k, self.layouts[0], f32::NAN, |i, p| value(1, i, p));
        let b = Strided::new(k, n, self.layouts[1], f32::NAN, |p, j| value(2, p, j));
        // With beta == 0, C starts as NaN: it must not be read.
        let c0 = |i, j| {
            if self.beta == 0.0 {
                f32::NAN
            } else {
                value(3, i, j)
            }
        };
        let mut c = Strided::new(m, n, self.layouts[2], -7.0, c0);
        let bias: Vec<f32> = match self.bias {
            Some(true) => (0..m).map(|i| value(4, i, 0)).collect(),
            Some(false) => (0..n).map(|j| value(4, 0, j)).collect(),
            None => Vec::new(),
        };
        let epilogue = Epilogue {
            bias: match self.bias {
                Some(true) => Bias::PerRow(&bias),
                Some(false) => Bias::PerCol(&bias),
                None => Bias::None,
            },
            act: self.act,
        };
        ctx.sgemm(
            m,
            n,
            k,
            self.alpha,
            &a.data,
            a.rs,
            a.cs,
            &b.data,
            b.rs,
            b.cs,
            self.beta,
            &mut c.data,
            c.rs,
            c.cs,
            epilogue,
        );
        // The reference, with its error bound per element.
        let mut expected = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let (mut ab, mut magnitude) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let x = a.at(i, p) as f64 * b.at(p, j) as f64;
                    ab += x;
                    magnitude += x.abs();
                }
                let mut v = self.alpha as f64 * ab;
                magnitude *= (self.alpha as f64).abs();
                if self.beta != 0.0 {
                    v += self.beta as f64 * c0(i, j) as f64;
                    magnitude += (self.beta as f64 * c0(i, j) as f64).abs();
                }
                if let Some(per_row) = self.bias {
                    let x = bias[if per_row { i } else { j }] as f64;
                    v += x;
                    magnitude += x.abs();
                }
                if let Some(hi) = self.act.clamp_hi() {
                    v = v.max(0.0).min(hi as f64);
                }
                expected.push((
                    v,
                    4.0 * f32::EPSILON as f64 * (k as f64 + 3.0) * magnitude + 1e-30,
                ));
            }
        }
        let mut bad = Vec::new();
        for i in 0..m {
            for j in 0..n {
                let (want, tol) = expected[i * n + j];
                let got = c.at(i, j) as f64;
                let close = (got - want).abs() <= tol; // false for NaN
                if !close {
                    bad.push((i, j, got, want, tol));
                }
            }
        }
        let worst = bad.iter().map(|b| (b.2 - b.3).abs()).fold(0.0f64, |w, d| {
            if d.is_nan() || d > w {
                d
            } else {
                w
            }
        });
        assert!(
            bad.is_empty(),
            "{ctx:?} {}: {} of {} elements wrong, largest difference {worst:e}; first at (i, j) = ({}, {}): got {}, want {} ± {:e}",
            self.describe(),
            bad.len(),
            m * n,
            bad[0].0,
            bad[0].1,
            bad[0].2,
            bad[0].3,
            bad[0].4
        );
        let gaps_ok = c
            .data
            .iter()
            .enumerate()
            .all(|(idx, &x)| x == -7.0 || c.is_element[idx]);
        assert!(gaps_ok, "{ctx:?} {}: wrote outside C", self.describe());
        let values = c.data.clone();
        (c, values)
    }

    fn describe(&self) -> String {
        format!(
            "m={} n={} k={} alpha={} beta={} layouts(A, B, C)={:?} bias per row={:?} act={:?}",
            self.m, self.n, self.k, self.alpha, self.beta, self.layouts, self.bias, self.act
        )
    }
}

#[test]
fn every_layout_of_a_b_and_c() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        for la in LAYOUTS {
            for lb in LAYOUTS {
                for lc in LAYOUTS {
                    for (m, n, k) in [
                        (bl.mr + 1, bl.nr + 3, 5),
                        (2 * bl.mr, bl.nr, 1),
                        (3, 2 * bl.nr + 1, 9),
                    ] {
                        let case = Case {
                            alpha: -1.5,
                            beta: 1.0,
                            layouts: [la, lb, lc],
                            ..Case::new(m, n, k)
                        };
                        case.run(&ctx);
                    }
                }
            }
        }
    }
}

#[test]
fn sizes_around_tiles_and_blocks() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        let (mr, nr) = (bl.mr, bl.nr);
        let dims = [0, 1, mr - 1, mr, mr + 1, nr - 1, nr + 1, 2 * nr + mr + 1];
        for &m in &dims {
            for &n in &dims {
                for k in [0, 1, 3, 8] {
                    Case {
                        beta: 0.5,
                        ..Case::new(m, n, k)
                    }
                    .run(&ctx);
                }
            }
        }
        // Several k blocks; a block edge of m (3·MC + 5) and of n (NC + 1) with few rows.
        for (m, n, k) in [
            (mr + 1, nr + 1, bl.kc + 1),
            (2 * mr + 1, 3, 2 * bl.kc + 7),
            (3 * bl.mc + 5, nr + 1, 20),
            (mr - 1, bl.nc + 1, 6),
        ] {
            Case {
                beta: 0.5,
                ..Case::new(m, n, k)
            }
            .run(&ctx);
            Case {
                beta: 0.5,
                layouts: [Layout::ColMajor; 3],
                ..Case::new(m, n, k)
            }
            .run(&ctx);
        }
    }
}

#[test]
fn edge_tiles_of_every_height_and_width() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        for rows in 1..=bl.mr {
            for cols in [1, bl.nr / 2 - 1, bl.nr / 2, bl.nr / 2 + 1, bl.nr - 1, bl.nr] {
                for (bias, act) in [
                    (None, Act::None),
                    (Some(true), Act::Relu),
                    (Some(false), Act::None),
                    (Some(false), Act::Relu6),
                ] {
                    let (m, n) = (bl.mr + rows, bl.nr + cols);
                    // alpha = -8 puts outputs on both sides of 0 and 6.
                    let case = Case {
                        alpha: -8.0,
                        beta: 0.5,
                        bias,
                        act,
                        ..Case::new(m, n, 11)
                    };
                    case.run(&ctx);
                }
            }
        }
    }
}

#[test]
fn alpha_and_beta_special_values() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        for alpha in [0.0, 1.0, -1.5] {
            for beta in [0.0, 1.0, -1.5] {
                for (m, n, k) in [
                    (bl.mr, bl.nr, 7),
                    (bl.mr + 2, bl.nr + 5, bl.kc + 3),
                    (4, 5, 0),
                ] {
                    for layout in [Layout::RowMajor, Layout::ColMajor] {
                        Case {
                            alpha,
                            beta,
                            layouts: [layout; 3],
                            ..Case::new(m, n, k)
                        }
                        .run(&ctx);
                    }
                }
            }
        }
    }
}

#[test]
fn every_epilogue_once_after_the_full_reduction() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        // ReLU6 outputs at 0, strictly inside, at 6.
        let mut clamped = [0usize; 3];
        for bias in [None, Some(true), Some(false)] {
            for act in [Act::None, Act::Relu, Act::Relu6] {
                // k spans two blocks: an epilogue applied per block would show.
                for (m, n, k) in [
                    (bl.mr, bl.nr, 5),
                    (2 * bl.mr + 1, 2 * bl.nr + 3, bl.kc + 9),
                    (3, 4, 0),
                ] {
                    for layouts in [
                        [Layout::RowMajor; 3],
                        [Layout::RowMajor, Layout::RowMajor, Layout::ColMajor],
                        [Layout::General; 3],
                    ] {
                        // alpha = 20 crosses 6 (ReLU6) whatever k; alpha = 0 leaves beta·C.
                        for (alpha, beta) in [(1.0, 0.0), (-1.5, 1.0), (20.0, 0.5), (0.0, -8.0)] {
                            let case = Case {
                                alpha,
                                beta,
                                layouts,
                                bias,
                                act,
                                ..Case::new(m, n, k)
                            };
                            let (c, _) = case.run(&ctx);
                            if act == Act::Relu6 {
                                for i in 0..m {
                                    for j in 0..n {
                                        let v = c.at(i, j);
                                        let at = usize::from(v > 0.0) + usize::from(v >= 6.0);
                                        clamped[at] += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // The reference would pass a kernel that ignores the bound if no value crossed it.
        assert!(
            clamped.iter().all(|&count| count > 100),
            "{kernel:?}: ReLU6 outputs at 0, inside, at 6: {clamped:?}"
        );
    }
}

/// `act(C)` fused into the epilogue is bitwise the GEMM without it followed by the
/// activation's pointwise kernel (`act::forward`), for every kernel, on full and edge tiles,
/// both orders of C, with a bias and beta: the clamp is applied to the same value, with the
/// same NaN and -0 rules.
#[test]
fn fused_clamp_equals_act_forward_bitwise() {
    use netc_runtime::act::{forward, Relu, Relu6};
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        for (m, n, k) in [(bl.mr, bl.nr, 9), (2 * bl.mr + 3, 3 * bl.nr + 5, bl.kc + 7)] {
            for col_major in [false, true] {
                let a: Vec<f32> = (0..m * k).map(|i| value(1, i / k, i % k)).collect();
                let b: Vec<f32> = (0..k * n).map(|i| value(2, i / n, i % n)).collect();
                let bias: Vec<f32> = (0..n).map(|j| value(3, 0, j)).collect();
                let mut c0: Vec<f32> = (0..m * n).map(|i| value(4, i / n, i % n)).collect();
                // NaN and ±inf before the epilogue: beta·C carries them into the result.
                c0[..3].copy_from_slice(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
                let (rsc, csc) = if col_major {
                    (1, m as isize)
                } else {
                    (n as isize, 1)
                };
                let gemm = |act: Act, c: &mut [f32]| {
                    let epi = Epilogue::bias_per_col(&bias).act(act);
                    ctx.sgemm(
                        m, n, k, 12.0, &a, k as isize, 1, &b, n as isize, 1, 1.0, c, rsc, csc, epi,
                    );
                };
                let mut plain = c0.clone();
                gemm(Act::None, &mut plain);
                let mut want_relu = vec![0.0; m * n];
                let mut want_relu6 = vec![0.0; m * n];
                forward(Relu, &plain, &mut want_relu);
                forward(Relu6, &plain, &mut want_relu6);
                for (act, want) in [(Act::Relu, want_relu), (Act::Relu6, want_relu6)] {
                    let mut got = c0.clone();
                    gemm(act, &mut got);
                    let bad = got
                        .iter()
                        .zip(&want)
                        .position(|(g, w)| g.to_bits() != w.to_bits());
                    assert!(
                        bad.is_none(),
                        "{kernel:?} {act:?} {m}x{n}x{k} col-major C {col_major}: first \
                         difference at {bad:?}: got {:?}, want {:?}",
                        bad.map(|i| got[i]),
                        bad.map(|i| want[i])
                    );
                }
                assert!(plain.iter().any(|v| v.is_nan()), "no NaN reached C");
                assert!(plain.iter().any(|&v| v < 0.0) && plain.iter().any(|&v| v > 6.0));
            }
        }
    }
}

/// NaN propagates through ReLU and ReLU6 (as in PyTorch), +inf becomes 6 under ReLU6 and
/// -inf becomes 0: rows of A holding NaN, +inf or -inf, on full and edge tiles.
#[test]
fn clamp_propagates_nan_and_saturates_infinities() {
    for kernel in kernels() {
        let bl = kernel.blocking();
        let ctx = context(kernel, 1);
        let (m, n, k) = (bl.mr + 3, bl.nr + 5, 3);
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        // Rows 0..3 lie in a full tile, rows MR..MR+3 in the edge tile.
        let kind = |i: usize| match i {
            0..3 => Some(i),
            _ if i >= bl.mr => Some(i - bl.mr),
            _ => None,
        };
        let a: Vec<f32> = (0..m * k)
            .map(|at| match kind(at / k) {
                Some(s) if at % k == 1 => special[s],
                _ => value(1, at / k, at % k),
            })
            .collect();
        // B > 0, so an infinity in A keeps its sign in every column.
        let b: Vec<f32> = (0..k * n).map(|at| 1.5 + value(2, at, 0)).collect();
        for (act, want) in [
            (Act::None, [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]),
            (Act::Relu, [f32::NAN, f32::INFINITY, 0.0]),
            (Act::Relu6, [f32::NAN, 6.0, 0.0]),
        ] {
            let mut c = vec![0.0; m * n];
            let epi = Epilogue::NONE.act(act);
            ctx.sgemm(
                m, n, k, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1, epi,
            );
            for i in 0..m {
                for j in 0..n {
                    let got = c[i * n + j];
                    let ok = match kind(i) {
                        Some(0) => got.is_nan(),
                        Some(s) => got == want[s],
                        None => got.is_finite() && (act != Act::Relu6 || got <= 6.0),
                    };
                    assert!(ok, "{kernel:?} {act:?}: C[{i}, {j}] = {got}");
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    for kernel in kernels() {
        let one = context(kernel, 1);
        let two = context(kernel, 2);
        // Sizes that split by columns, by rows, and a column-major C.
        for (m, n, k, layout) in [
            (70, 1000, 300, Layout::RowMajor),
            (1000, 40, 300, Layout::RowMajor),
            (129, 300, 600, Layout::ColMajor),
        ] {
            let case = Case {
                alpha: -1.5,
                beta: 1.0,
                layouts: [layout; 3],
                bias: Some(true),
                ..Case::new(m, n, k)
            };
            for act in [Act::Relu, Act::Relu6] {
                // alpha = 1 for ReLU6: with k = 300 the outputs reach past 6.
                let alpha = if act == Act::Relu6 { 1.0 } else { -1.5 };
                let case = Case { alpha, act, ..case };
                let (_, single) = case.run(&one);
                let (_, double) = case.run(&two);
                let same = single
                    .iter()
                    .zip(&double)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{kernel:?} {}: 1 and 2 threads differ",
                    case.describe()
                );
            }
        }
    }
}

#[test]
fn the_global_context_follows_set_num_threads() {
    netc_runtime::gemm::set_num_threads(2);
    assert_eq!(netc_runtime::gemm::num_threads(), 2);
    let (m, n, k) = (2, 3, 4);
    let a: Vec<f32> = (0..m * k).map(|x| x as f32).collect();
    let b: Vec<f32> = (0..k * n).map(|x| x as f32).collect();
    let mut c = vec![f32::NAN; m * n];
    netc_runtime::gemm::sgemm(
        m,
        n,
        k,
        1.0,
        &a,
        k as isize,
        1,
        &b,
        n as isize,
        1,
        0.0,
        &mut c,
        n as isize,
        1,
        Epilogue::NONE,
    );
    assert_eq!(c, vec![42.0, 48.0, 54.0, 114.0, 136.0, 158.0]);
}

/// A stored row-major k×n matrix served as a generated B, in either order.
struct Served {
    b: Vec<f32>,
    k: usize,
    n: usize,
    major: Major,
}

impl BSource for Served {
    fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }
    fn major(&self) -> Major {
        self.major
    }
    fn block(&self, pc: usize, kc: usize, j0: usize, w: usize, out: &mut [f32], ld: usize) {
        for p in 0..kc {
            for j in 0..w {
                let at = match self.major {
                    Major::Row => p * ld + j,
                    Major::Col => j * ld + p,
                };
                out[at] = self.b[(pc + p) * self.n + j0 + j];
            }
        }
    }
}

/// A generated B gives bitwise the result of the same B stored, for every kernel, both
/// orders, sizes around the tiles and blocks, and 1 or 2 threads (which split C).
#[test]
fn generated_b_matches_stored_b() {
    for kernel in kernels() {
        for threads in [1, 2] {
            let ctx = context(kernel, threads);
            for (m, n, k) in [(1, 1, 1), (7, 17, 5), (70, 1000, 300), (129, 33, 600)] {
                let a: Vec<f32> = (0..m * k).map(|i| value(1, i / k, i % k)).collect();
                let b: Vec<f32> = (0..k * n).map(|i| value(2, i / n, i % n)).collect();
                let bias: Vec<f32> = (0..m).map(|i| value(3, i, 0)).collect();
                let epi = Epilogue::bias_per_row(&bias).relu();
                let c0: Vec<f32> = (0..m * n).map(|i| value(4, i / n, i % n)).collect();
                let mut want = c0.clone();
                ctx.sgemm(
                    m, n, k, 0.5, &a, k as isize, 1, &b, n as isize, 1, 0.25, &mut want,
                    n as isize, 1, epi,
                );
                for major in [Major::Row, Major::Col] {
                    let src = Served {
                        b: b.clone(),
                        k,
                        n,
                        major,
                    };
                    let mut got = c0.clone();
                    ctx.sgemm_source(
                        m, n, k, 0.5, &a, k as isize, 1, &src, 0.25, &mut got, n as isize, epi,
                    );
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{kernel:?}, {threads} threads, {m}x{n}x{k}, {major:?}"
                    );
                }
            }
        }
    }
}

/// Issue 12 item 5: 0 threads, or far more threads than CPUs, is an error returned at once
/// (10 000 threads panicked while starting the pool, 100 000 hung).
#[test]
fn try_set_num_threads_refuses_0_and_too_many() {
    use netc_runtime::gemm::{num_threads, try_set_num_threads};
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = std::time::Instant::now();
    let e = try_set_num_threads(100_000).unwrap_err();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.starts_with("100000 threads are more than 4 per CPU (this machine has ")
            && e.ends_with(&format!(": at most {})", 4 * cpus)),
        "{e}"
    );
    assert_eq!(
        try_set_num_threads(0),
        Err("0 threads: a GEMM needs at least one".to_string())
    );
    // The test above sets 2 as well, so the two may run in either order.
    assert_eq!(try_set_num_threads(2), Ok(2));
    assert_eq!(num_threads(), 2);
}
