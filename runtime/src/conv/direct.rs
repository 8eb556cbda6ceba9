//! Depthwise and small-group convolutions computed directly, forward and backward.
//!
//! A depthwise 3×3 conv has `K = kh·kw = 9`: as im2col + GEMM it is one GEMM per channel of
//! 1×9×P, all copying and no arithmetic (MobileNetV2's depthwise layers ran ~3× slower than
//! PyTorch's that way). Here each output plane is a sum of shifted input rows scaled by one
//! weight each — `y[oy, ·] += w[ki, kj] · x[oy·sh + ki·dh - ph, kj·dw - pw + sw·(·)]` — which
//! is an axpy over a row of outputs, vectorized along the width.
//!
//! Strided convolutions are made contiguous by splitting each zero-padded input plane into
//! `sw` column phases, `P[s][r][q] = xpad[r][q·sw + s]`: tap `kj` of output column `ox` is
//! then `P[(kj·dw) mod sw][r][ox + (kj·dw) div sw]`. The data gradient scatters into the same
//! phases and folds them back.
//!
//! Work is split over groups (forward, data gradient: each task writes its own channels of
//! one image) and over output channels (weight gradient: each task sums its channel over the
//! images in order), so results do not depend on the thread count.

use std::cell::RefCell;

use rayon::prelude::*;

use super::Conv2d;
use crate::gemm::{Act, Context};
use crate::tensor::Slot;

/// The largest `c/groups` computed directly; above it, a group's GEMM has enough reduction
/// to beat the `cg·kh·kw` axpys per output row.
const MAX_CG: usize = 4;

/// Below this many multiply-adds a call stays on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Whether the direct kernels compute `g`: a grouped conv with few channels per group.
pub(crate) fn applies(g: &Conv2d) -> bool {
    g.groups > 1 && g.cg() <= MAX_CG
}

/// The padded, phase-split planes of one group's input channels.
struct Phases {
    /// Padded rows.
    rows: usize,
    /// Columns of one phase.
    cols: usize,
    /// Column phases (the width stride).
    phases: usize,
}

impl Phases {
    fn new(g: &Conv2d) -> Phases {
        let wp = g.w + 2 * g.pw;
        Phases {
            rows: g.h + 2 * g.ph,
            cols: wp.div_ceil(g.sw),
            phases: g.sw,
        }
    }

    /// Floats of one channel's phases.
    fn len(&self) -> usize {
        self.phases * self.rows * self.cols
    }

    /// Where tap `(ki, kj)` of output `(oy, 0)` lies in a channel's phases; the taps of the
    /// next outputs follow contiguously.
    fn tap(&self, g: &Conv2d, oy: usize, ki: usize, kj: usize) -> usize {
        let (r, c) = (oy * g.sh + ki * g.dh, kj * g.dw);
        ((c % self.phases) * self.rows + r) * self.cols + c / self.phases
    }

    /// Writes channel plane `x` (`h × w`) padded with zeros into `out`.
    fn fill(&self, g: &Conv2d, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (iy, row) in x.chunks_exact(g.w).enumerate() {
            let r = iy + g.ph;
            for (ix, &v) in row.iter().enumerate() {
                let c = ix + g.pw;
                out[((c % self.phases) * self.rows + r) * self.cols + c / self.phases] = v;
            }
        }
    }

    /// Adds the interior of padded phases `p` into channel plane `dx` (`h × w`), or writes it
    /// when `beta == 0`.
    fn fold(&self, g: &Conv2d, p: &[f32], dx: &mut [f32], beta: f32) {
        for (iy, row) in dx.chunks_exact_mut(g.w).enumerate() {
            let r = iy + g.ph;
            for (ix, d) in row.iter_mut().enumerate() {
                let c = ix + g.pw;
                let v = p[((c % self.phases) * self.rows + r) * self.cols + c / self.phases];
                *d = if beta == 0.0 { v } else { *d + v };
            }
        }
    }
}

thread_local! {
    /// Each thread's phases of one group's input (or input gradient).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch of at least `len` floats.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// Runs `f(index, chunk)` over the `chunk`-sized pieces of `buf`, on the runtime's threads
/// when the call has `macs` worth splitting.
fn for_each(buf: &mut [f32], chunk: usize, macs: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let ctx = Context::global();
    if ctx.threads() > 1 && macs >= PARALLEL_MIN_MACS && buf.len() > chunk {
        ctx.install(|| {
            buf.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c))
        });
    } else {
        buf.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// `y = a·x + y` over a row, fused multiply-adds where the CPU has them.
#[inline(always)]
fn axpy<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if FMA { a.mul_add(x, *y) } else { a * x + *y };
    }
}

/// `Σ x·y` in eight interleaved lanes (a fixed order the compiler can vectorize).
#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] = if FMA {
                a[l].mul_add(b[l], lanes[l])
            } else {
                a[l] * b[l] + lanes[l]
            };
        }
    }
    for (l, (&a, &b)) in xr.iter().zip(yr).enumerate() {
        lanes[l] = if FMA {
            a.mul_add(b, lanes[l])
        } else {
            a * b + lanes[l]
        };
    }
    lanes.iter().sum()
}

/// Calls `$body::<true>(args)` compiled for AVX2+FMA when the CPU has both, else the
/// portable `$body::<false>(args)`.
macro_rules! dispatch {
    ($body:ident, $fast:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $fast($($arg: $ty),*) {
            $body::<true>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); the function is safe
            // code otherwise.
            return unsafe { $fast($($arg),*) };
        }
        return $body::<false>($($arg),*);
    };
}

/// `y = act(conv(x, w) + bias + beta·y)` at `ys` of `y`, `beta` 0 or 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
) {
    let (p, og, cg) = (g.ho() * g.wo(), g.og(), g.cg());
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let macs = g.out * p * cg * g.kh * g.kw;
    for i in 0..n {
        let xi = &x[i * xs..(i + 1) * xs];
        let yi = &mut y[ys.image(i, g.out * p)];
        for_each(yi, og * p, macs, |grp, yg| {
            with_scratch(cg * ph.len(), |t| {
                for (j, tj) in t.chunks_exact_mut(ph.len()).enumerate() {
                    let c = grp * cg + j;
                    ph.fill(g, &xi[c * plane..(c + 1) * plane], tj);
                }
                let w = &w[grp * og * cg * g.kh * g.kw..(grp + 1) * og * cg * g.kh * g.kw];
                let bias = bias.map(|b| &b[grp * og..(grp + 1) * og]);
                group_forward(g, &ph, t, w, bias, act, yg, beta);
            })
        });
    }
}

/// The `og` output planes of one group from its input's phases `t`.
#[allow(clippy::too_many_arguments)]
fn group_forward(
    g: &Conv2d,
    ph: &Phases,
    t: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    yg: &mut [f32],
    beta: f32,
) {
    dispatch!(group_forward_body, group_forward_fast, (g: &Conv2d, ph: &Phases, t: &[f32], w: &[f32], bias: Option<&[f32]>, act: Act, yg: &mut [f32], beta: f32));
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn group_forward_body<const FMA: bool>(
    g: &Conv2d,
    ph: &Phases,
    t: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    yg: &mut [f32],
    beta: f32,
) {
    let (wo, taps, cg) = (g.wo(), g.kh * g.kw, g.cg());
    let hi = act.clamp_hi();
    for (o, yo) in yg.chunks_exact_mut(g.ho() * wo).enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        for (oy, row) in yo.chunks_exact_mut(wo).enumerate() {
            if beta == 0.0 {
                row.fill(b);
            } else if b != 0.0 {
                row.iter_mut().for_each(|v| *v += b);
            }
            for j in 0..cg {
                let tj = &t[j * ph.len()..(j + 1) * ph.len()];
                let wj = &w[(o * cg + j) * taps..(o * cg + j + 1) * taps];
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let at = ph.tap(g, oy, ki, kj);
                        axpy::<FMA>(wj[ki * g.kw + kj], &tj[at..at + wo], row);
                    }
                }
            }
            if let Some(hi) = hi {
                // As the GEMM epilogue: max(x, 0) then min(x, hi), NaN passed through.
                for v in row.iter_mut() {
                    if *v < 0.0 {
                        *v = 0.0;
                    } else if *v > hi {
                        *v = hi;
                    }
                }
            }
        }
    }
}

/// `dx = beta·dx + ∂L/∂x` given `dy` at `dys`, `beta` 0 or 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_data(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    beta: f32,
) {
    let (p, og, cg) = (g.ho() * g.wo(), g.og(), g.cg());
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let macs = g.out * p * cg * g.kh * g.kw;
    for (i, dxi) in dx.chunks_exact_mut(xs).enumerate().take(n) {
        let dyi = &dy[dys.image(i, g.out * p)];
        for_each(dxi, cg * plane, macs, |grp, dxg| {
            with_scratch(cg * ph.len(), |t| {
                t.fill(0.0);
                let w = &w[grp * og * cg * g.kh * g.kw..(grp + 1) * og * cg * g.kh * g.kw];
                group_data(g, &ph, w, &dyi[grp * og * p..(grp + 1) * og * p], t);
                for (j, dxc) in dxg.chunks_exact_mut(plane).enumerate() {
                    ph.fold(g, &t[j * ph.len()..(j + 1) * ph.len()], dxc, beta);
                }
            })
        });
    }
}

/// Scatters one group's output gradient `dyg` into its input's padded phases `t`.
fn group_data(g: &Conv2d, ph: &Phases, w: &[f32], dyg: &[f32], t: &mut [f32]) {
    dispatch!(group_data_body, group_data_fast, (g: &Conv2d, ph: &Phases, w: &[f32], dyg: &[f32], t: &mut [f32]));
}

#[inline(always)]
fn group_data_body<const FMA: bool>(
    g: &Conv2d,
    ph: &Phases,
    w: &[f32],
    dyg: &[f32],
    t: &mut [f32],
) {
    let (wo, taps, cg) = (g.wo(), g.kh * g.kw, g.cg());
    for (o, dyo) in dyg.chunks_exact(g.ho() * wo).enumerate() {
        for (oy, row) in dyo.chunks_exact(wo).enumerate() {
            for j in 0..cg {
                let tj = &mut t[j * ph.len()..(j + 1) * ph.len()];
                let wj = &w[(o * cg + j) * taps..(o * cg + j + 1) * taps];
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let at = ph.tap(g, oy, ki, kj);
                        axpy::<FMA>(wj[ki * g.kw + kj], row, &mut tj[at..at + wo]);
                    }
                }
            }
        }
    }
}

/// `dw = ∂L/∂w` given `dy` at `dys` (overwritten), summed over the images in order.
pub(crate) fn backward_weight(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
) {
    let (p, og, cg) = (g.ho() * g.wo(), g.og(), g.cg());
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let taps = g.kh * g.kw;
    let macs = n * g.out * p * cg * taps;
    dw.fill(0.0);
    for_each(dw, og * cg * taps, macs, |grp, dwg| {
        with_scratch(cg * ph.len(), |t| {
            for i in 0..n {
                let xi = &x[i * xs..(i + 1) * xs];
                for (j, tj) in t.chunks_exact_mut(ph.len()).enumerate() {
                    let c = grp * cg + j;
                    ph.fill(g, &xi[c * plane..(c + 1) * plane], tj);
                }
                let dyg = &dy[dys.image(i, g.out * p)][grp * og * p..(grp + 1) * og * p];
                group_weight(g, &ph, t, dyg, dwg);
            }
        })
    });
}

/// Adds one image's weight gradient of one group to `dwg`.
fn group_weight(g: &Conv2d, ph: &Phases, t: &[f32], dyg: &[f32], dwg: &mut [f32]) {
    dispatch!(group_weight_body, group_weight_fast, (g: &Conv2d, ph: &Phases, t: &[f32], dyg: &[f32], dwg: &mut [f32]));
}

#[inline(always)]
fn group_weight_body<const FMA: bool>(
    g: &Conv2d,
    ph: &Phases,
    t: &[f32],
    dyg: &[f32],
    dwg: &mut [f32],
) {
    let (wo, taps, cg) = (g.wo(), g.kh * g.kw, g.cg());
    for (o, dyo) in dyg.chunks_exact(g.ho() * wo).enumerate() {
        for j in 0..cg {
            let tj = &t[j * ph.len()..(j + 1) * ph.len()];
            let dwj = &mut dwg[(o * cg + j) * taps..(o * cg + j + 1) * taps];
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let mut s = 0.0;
                    for (oy, row) in dyo.chunks_exact(wo).enumerate() {
                        let at = ph.tap(g, oy, ki, kj);
                        s += dot::<FMA>(row, &tj[at..at + wo]);
                    }
                    dwj[ki * g.kw + kj] += s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
