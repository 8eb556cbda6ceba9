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

/// The most outputs of an ungrouped conv computed directly.
const MAX_OUT_UNGROUPED: usize = 8;

/// Whether the direct kernels compute `g`: a grouped conv with few channels per group, or
/// an ungrouped one with few inputs and outputs. LeNet's first conv (1→6, 5×5 on 28×28) is a
/// GEMM of 6 rows and a depth of 25, whose operand costs more to pack than to multiply:
/// directly, its forward went from 0.43 to 0.36 ms at batch 64 and its weight gradient from
/// 0.77 to 0.62 (`netc bench examples/lenet.net --batch 64 --threads 1`). With more outputs
/// each packed value serves more rows, and the GEMM wins (ResNet's 3→64 7×7 runs at ~42
/// GMAC/s there, the direct kernels at 8 to 18). The kernels split their work over groups,
/// so an ungrouped conv runs on one thread (the trainer runs such small networks in shards).
pub(crate) fn applies(g: &Conv2d) -> bool {
    g.cg() <= MAX_CG && (g.groups > 1 || g.out <= MAX_OUT_UNGROUPED)
}

/// One channel's zero-padded input split into `sh × sw` phases, `P[a][b][r][q] =
/// xpad[r·sh + a][q·sw + b]`, each `rows × cols`, then `slack` zeros.
///
/// Tap `(ki, kj)` of output `(oy, ox)` reads `P[ki·dh mod sh][kj·dw mod sw][oy + ki·dh div
/// sh][ox + kj·dw div sw]`: for a fixed tap, the outputs of a "wide" map of `ho × cols`
/// (the `wo` true columns and `cols - wo` that are thrown away) read one contiguous run.
/// Every loop below is such a run, vectorized whatever the map's width or stride.
struct Phases {
    /// Rows of one phase.
    rows: usize,
    /// Columns of one phase, and the row length of the wide map.
    cols: usize,
    /// Room after the last phase for the wide map's thrown-away columns to read.
    slack: usize,
    /// For input row `iy` and column phase `b`, at `iy·sw + b`: the first input column
    /// `ix0` that phase takes and where it lies. Worked out once per call: the divisions
    /// of [`Phases::at`] for every row of every plane were most of a small map's time.
    runs: Vec<(usize, usize)>,
}

impl Phases {
    fn new(g: &Conv2d) -> Phases {
        let cols = (g.w + 2 * g.pw).div_ceil(g.sw);
        let mut ph = Phases {
            rows: (g.h + 2 * g.ph).div_ceil(g.sh),
            cols,
            // (The forward's last block of a row reads up to 15 outputs past the row.)
            slack: cols + g.kw * g.dw + 16,
            runs: Vec::with_capacity(g.h * g.sw),
        };
        for iy in 0..g.h {
            for b in 0..g.sw {
                // Input columns `ix` with `(ix + pw) mod sw == b`, every `sw`-th from `ix0`.
                let ix0 = (b + g.sw - g.pw % g.sw) % g.sw;
                let at = ph.at(g, iy + g.ph, ix0 + g.pw);
                ph.runs.push((ix0, at));
            }
        }
        ph
    }

    /// Floats of one phase.
    fn phase(&self) -> usize {
        self.rows * self.cols
    }

    /// Floats of one channel's phases and slack.
    fn len(&self, g: &Conv2d) -> usize {
        g.sh * g.sw * self.phase() + self.slack
    }

    /// The phase tap `k` (`ki·kw + kj`) reads.
    fn phase_of(&self, g: &Conv2d, k: usize) -> usize {
        let (r, c) = ((k / g.kw) * g.dh, (k % g.kw) * g.dw);
        (r % g.sh) * g.sw + c % g.sw
    }

    /// Where tap `k` of wide output 0 lies within its phase.
    fn within(&self, g: &Conv2d, k: usize) -> usize {
        let (r, c) = ((k / g.kw) * g.dh, (k % g.kw) * g.dw);
        (r / g.sh) * self.cols + c / g.sw
    }

    /// Where tap `k` of wide output 0 lies in the channel's phases.
    fn tap(&self, g: &Conv2d, k: usize) -> usize {
        self.phase_of(g, k) * self.phase() + self.within(g, k)
    }

    /// Where padded pixel `(r, c)` lies.
    fn at(&self, g: &Conv2d, r: usize, c: usize) -> usize {
        ((r % g.sh) * g.sw + c % g.sw) * self.phase() + (r / g.sh) * self.cols + c / g.sw
    }

    /// Writes channel plane `x` (`h × w`) padded with zeros into `out`.
    fn fill(&self, g: &Conv2d, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (row, runs) in x.chunks_exact(g.w).zip(self.runs.chunks_exact(g.sw)) {
            for &(ix0, at) in runs {
                deal(&row[ix0.min(g.w)..], g.sw, &mut out[at..]);
            }
        }
    }

    /// Adds the interior of padded phases `p` into channel plane `dx` (`h × w`), or writes it
    /// when `beta == 0`.
    fn fold(&self, g: &Conv2d, p: &[f32], dx: &mut [f32], beta: f32) {
        for (row, runs) in dx.chunks_exact_mut(g.w).zip(self.runs.chunks_exact(g.sw)) {
            for &(ix0, at) in runs {
                let src = &p[at..];
                let row = &mut row[ix0.min(g.w)..];
                if g.sw == 1 {
                    let src = &src[..row.len()];
                    if beta == 0.0 {
                        row.copy_from_slice(src);
                    } else {
                        row.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                    }
                    continue;
                }
                for (d, &v) in row.iter_mut().step_by(g.sw).zip(src) {
                    *d = if beta == 0.0 { v } else { *d + v };
                }
            }
        }
    }

    /// Writes output plane `dy` (`ho × wo`) as a wide map after `lead` zeros, its
    /// thrown-away columns and a tail zero, into `out`.
    fn widen(&self, g: &Conv2d, dy: &[f32], lead: usize, out: &mut [f32]) {
        out.fill(0.0);
        let wo = g.wo();
        for (oy, row) in dy.chunks_exact(wo).enumerate() {
            let at = lead + oy * self.cols;
            out[at..at + wo].copy_from_slice(row);
        }
    }
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

mod channels;
mod rows;

use rows::{output_plane, Out};

/// `out[q] = x[q·step]` for every element of `x` so taken: a row dealt into one phase.
fn deal(x: &[f32], step: usize, out: &mut [f32]) {
    if step == 1 {
        return out[..x.len()].copy_from_slice(x);
    }
    dispatch!(deal_body, deal_fast, (x: &[f32], step: usize, out: &mut [f32]));
}

#[inline(always)]
fn deal_body<const FMA: bool>(x: &[f32], step: usize, out: &mut [f32]) {
    if step == 2 {
        // Pairs, which the compiler turns into shuffles. The odd last element is read after
        // the rest: read first, it was a demand miss per row ahead of the stream (60% of a
        // stride-2 depthwise layer's time on 112×112 maps).
        let pairs = x.chunks_exact(2);
        let k = x.len() / 2;
        for (o, p) in out[..k].iter_mut().zip(pairs) {
            *o = p[0];
        }
        if x.len() % 2 == 1 {
            out[k] = x[x.len() - 1];
        }
        return;
    }
    for (o, &v) in out.iter_mut().zip(x.iter().step_by(step)) {
        *o = v;
    }
}

thread_local! {
    /// Each thread's phases and wide maps of one group.
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

/// `out[f] = init[f] + Σ_k wts[k]·src[at[k] + f]` for `f < out.len()`, the taps in order and
/// summed in registers sixteen outputs at a time.
#[inline(always)]
fn gather<const FMA: bool>(src: &[f32], at: &[usize], wts: &[f32], out: &mut [f32]) {
    let len = out.len();
    let mut f = 0;
    while f + 16 <= len {
        block::<16, FMA>(src, at, wts, f, &mut out[f..f + 16]);
        f += 16;
    }
    if f + 8 <= len {
        block::<8, FMA>(src, at, wts, f, &mut out[f..f + 8]);
        f += 8;
    }
    while f < len {
        block::<1, FMA>(src, at, wts, f, &mut out[f..f + 1]);
        f += 1;
    }
}

#[inline(always)]
fn block<const W: usize, const FMA: bool>(
    src: &[f32],
    at: &[usize],
    wts: &[f32],
    f: usize,
    out: &mut [f32],
) {
    let mut acc: [f32; W] = out.try_into().expect("a block of W outputs");
    for (&a, &wv) in at.iter().zip(wts) {
        let x: &[f32; W] = src[a + f..a + f + W].try_into().expect("W inputs");
        for l in 0..W {
            acc[l] = if FMA {
                wv.mul_add(x[l], acc[l])
            } else {
                wv * x[l] + acc[l]
            };
        }
    }
    out.copy_from_slice(&acc);
}

/// `Σ x·y` in sixteen interleaved lanes (a fixed order the compiler can vectorize).
#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (xc, yc) = (x.chunks_exact(16), y.chunks_exact(16));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..16 {
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
    if channels::applies(g) {
        let xs = Slot::dense(g.c * g.h * g.w);
        return channels::forward(g, n, x, xs, w, bias, act, y, ys, beta);
    }
    planes(g, n, x, w, bias, act, y, ys, beta);
}

/// [`forward`] plane by plane, vectorized along the output rows (`rows.rs`).
#[allow(clippy::too_many_arguments)]
fn planes(
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
    let (p, og, cg, taps) = (g.ho() * g.wo(), g.og(), g.cg(), g.kh * g.kw);
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let chan = ph.len(g);
    let macs = g.out * p * cg * taps;
    // Tap k of input j of the group, in the group's phases.
    let at: Vec<usize> = (0..cg * taps)
        .map(|k| (k / taps) * chan + ph.tap(g, k % taps))
        .collect();
    for i in 0..n {
        let xi = &x[i * xs..(i + 1) * xs];
        let yi = &mut y[ys.image(i, g.out * p)];
        for_each(yi, og * p, macs, |grp, yg| {
            with_scratch(cg * chan, |t| {
                for (j, tj) in t.chunks_exact_mut(chan).enumerate() {
                    let c = grp * cg + j;
                    ph.fill(g, &xi[c * plane..(c + 1) * plane], tj);
                }
                for (oo, yo) in yg.chunks_exact_mut(p).enumerate() {
                    let o = grp * og + oo;
                    let b = bias.map_or(0.0, |b| b[o]);
                    let wts = &w[o * cg * taps..(o + 1) * cg * taps];
                    let out = Out { b, act, beta };
                    output_plane(g.wo(), ph.cols, t, &at, wts, out, yo);
                }
            })
        });
    }
}

/// The taps that read one phase: where each reads the group's wide output gradients, and
/// its `(output in the group, tap)`.
type PhaseTaps = (Vec<usize>, Vec<(usize, usize)>);

/// `dx = beta·dx + ∂L/∂x` given `dy` at `dys`, `beta` 0 or 1.
///
/// Each phase of an input gathers from the wide output gradients of its group, taken as
/// zero outside the map: `dP[s][f] = Σ_{o, k in s} w[o, k]·dyw[o][f - within(k)]`.
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
    if channels::applies(g) {
        return channels::backward_data(g, n, w, dy, dys, dx, beta);
    }
    planes_backward_data(g, n, w, dy, dys, dx, beta);
}

/// [`backward_data`] plane by plane.
#[allow(clippy::too_many_arguments)]
fn planes_backward_data(
    g: &Conv2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    beta: f32,
) {
    let (p, og, cg, taps) = (g.ho() * g.wo(), g.og(), g.cg(), g.kh * g.kw);
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let chan = ph.len(g);
    // Zeros before each wide map: the farthest a tap reaches back.
    let lead = (0..taps).map(|k| ph.within(g, k)).max().unwrap_or(0);
    let dyw_len = lead + ph.phase();
    // For each phase, where it reads each tap of each output of a group (from the start of
    // the group's wide maps), and which weight (output, tap) that tap has.
    let phases = g.sh * g.sw;
    let per_phase: Vec<PhaseTaps> = (0..phases)
        .map(|s| {
            (0..og)
                .flat_map(|oo| (0..taps).map(move |k| (oo, k)))
                .filter(|&(_, k)| ph.phase_of(g, k) == s)
                .map(|(oo, k)| (oo * dyw_len + lead - ph.within(g, k), (oo, k)))
                .unzip()
        })
        .collect();
    let most = per_phase.iter().map(|(at, _)| at.len()).max().unwrap_or(0);
    let macs = g.out * p * cg * taps;
    for (i, dxi) in dx.chunks_exact_mut(xs).enumerate().take(n) {
        let dyi = &dy[dys.image(i, g.out * p)];
        for_each(dxi, cg * plane, macs, |grp, dxg| {
            with_scratch(chan + og * dyw_len + most, |t| {
                let (tp, rest) = t.split_at_mut(chan);
                let (dyw, wts) = rest.split_at_mut(og * dyw_len);
                for (oo, d) in dyw.chunks_exact_mut(dyw_len).enumerate() {
                    let o = grp * og + oo;
                    ph.widen(g, &dyi[o * p..(o + 1) * p], lead, d);
                }
                for (j, dxc) in dxg.chunks_exact_mut(plane).enumerate() {
                    for (s, (at, which)) in per_phase.iter().enumerate() {
                        for (v, &(oo, k)) in wts.iter_mut().zip(which) {
                            *v = w[((grp * og + oo) * cg + j) * taps + k];
                        }
                        let dst = &mut tp[s * ph.phase()..(s + 1) * ph.phase()];
                        group_data(dyw, at, &wts[..at.len()], dst);
                    }
                    ph.fold(g, tp, dxc, beta);
                }
            })
        });
    }
}

/// One phase of an input gradient gathered from wide output gradients.
fn group_data(dyw: &[f32], at: &[usize], wts: &[f32], dst: &mut [f32]) {
    dispatch!(group_data_body, group_data_fast, (dyw: &[f32], at: &[usize], wts: &[f32], dst: &mut [f32]));
}

#[inline(always)]
fn group_data_body<const FMA: bool>(dyw: &[f32], at: &[usize], wts: &[f32], dst: &mut [f32]) {
    dst.fill(0.0);
    gather::<FMA>(dyw, at, wts, dst);
}

/// `dw = ∂L/∂w` given `dy` at `dys` (overwritten), summed over the images in order:
/// `dw[o, j, k] = Σ_i Σ_f dyw[i, o][f]·P[i, j][tap(k) + f]`.
pub(crate) fn backward_weight(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
) {
    if channels::applies(g) {
        return channels::backward_weight(g, n, x, dy, dys, dw);
    }
    planes_backward_weight(g, n, x, dy, dys, dw);
}

/// [`backward_weight`] plane by plane.
fn planes_backward_weight(g: &Conv2d, n: usize, x: &[f32], dy: &[f32], dys: Slot, dw: &mut [f32]) {
    let (p, og, cg, taps) = (g.ho() * g.wo(), g.og(), g.cg(), g.kh * g.kw);
    let (xs, plane) = (g.c * g.h * g.w, g.h * g.w);
    let ph = Phases::new(g);
    let (chan, wide) = (ph.len(g), g.ho() * ph.cols);
    let macs = n * g.out * p * cg * taps;
    let at: Vec<usize> = (0..taps).map(|k| ph.tap(g, k)).collect();
    dw.fill(0.0);
    for_each(dw, og * cg * taps, macs, |grp, dwg| {
        with_scratch(cg * chan + wide, |t| {
            let (t, dyw) = t.split_at_mut(cg * chan);
            for i in 0..n {
                let xi = &x[i * xs..(i + 1) * xs];
                for (j, tj) in t.chunks_exact_mut(chan).enumerate() {
                    let c = grp * cg + j;
                    ph.fill(g, &xi[c * plane..(c + 1) * plane], tj);
                }
                let dyi = &dy[dys.image(i, g.out * p)];
                for (oo, dwo) in dwg.chunks_exact_mut(cg * taps).enumerate() {
                    let o = grp * og + oo;
                    ph.widen(g, &dyi[o * p..(o + 1) * p], 0, dyw);
                    for (j, dwj) in dwo.chunks_exact_mut(taps).enumerate() {
                        group_weight(&t[j * chan..(j + 1) * chan], &at, dyw, dwj);
                    }
                }
            }
        })
    });
}

/// Adds one image's `dw[k] += Σ_f dyw[f]·t[at[k] + f]` for one output and input.
fn group_weight(t: &[f32], at: &[usize], dyw: &[f32], dwj: &mut [f32]) {
    dispatch!(group_weight_body, group_weight_fast, (t: &[f32], at: &[usize], dyw: &[f32], dwj: &mut [f32]));
}

#[inline(always)]
fn group_weight_body<const FMA: bool>(t: &[f32], at: &[usize], dyw: &[f32], dwj: &mut [f32]) {
    for (d, &a) in dwj.iter_mut().zip(at) {
        *d += dot::<FMA>(dyw, &t[a..a + dyw.len()]);
    }
}

#[cfg(test)]
mod deal_tests {
    /// Every length and step: every step-th element, in order, and nothing written past
    /// them.
    #[test]
    fn dealing_takes_every_step_th_element() {
        let x: Vec<f32> = (0..80).map(|i| i as f32).collect();
        for step in [1, 2, 3] {
            for len in 0..x.len() {
                let k = len.div_ceil(step);
                let mut out = vec![-1.0f32; k + 3];
                super::deal(&x[..len], step, &mut out);
                let want: Vec<f32> = (0..k).map(|q| (q * step) as f32).collect();
                assert_eq!(&out[..k], &want[..], "step {step}, length {len}");
                assert!(
                    out[k..].iter().all(|&v| v == -1.0),
                    "step {step}, length {len}"
                );
            }
        }
    }
}
