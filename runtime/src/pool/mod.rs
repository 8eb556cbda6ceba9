//! Pooling, forward and backward, with PyTorch's numerics: padding, ceil mode (a last window
//! that would start past the input and its left padding is dropped), max pooling that
//! ignores padding, average pooling that counts it (`count_include_pad=True`, the divisor
//! being the window clipped to the padded input), global average pooling, and adaptive
//! average pooling (in its own file).

mod adaptive;
mod max2x2;
mod max_rows;

pub use adaptive::{adaptive_avgpool2d_backward, adaptive_avgpool2d_forward, AdaptivePool2d};

use rayon::prelude::*;

use crate::gemm::Context;

/// Below this many input elements a pool stays on the calling thread: waking the pool's
/// threads costs more than a small pool (LeNet's, at 300K elements, ran three times slower
/// on two threads than on one).
const PARALLEL_MIN: usize = 1 << 19;

/// Planes per parallel task, for planes of `plane` elements: at least 64K elements each.
fn planes_per_task(plane: usize) -> usize {
    ((1 << 16) / plane.max(1)).max(1)
}

/// The geometry of one 2-D pool over NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride along the height.
    pub sh: usize,
    /// Stride along the width.
    pub sw: usize,
    /// Zero padding at the top and bottom.
    pub ph: usize,
    /// Zero padding at the left and right.
    pub pw: usize,
    /// PyTorch's ceil mode.
    pub ceil: bool,
}

/// One output size with PyTorch's rule.
fn out_size(d: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let (d, k, s, p) = (d as i64, k as i64, s as i64, p as i64);
    let room = d + 2 * p - k;
    let mut o = if ceil {
        room.div_euclid(s) + i64::from(room.rem_euclid(s) != 0) + 1
    } else {
        room.div_euclid(s) + 1
    };
    if ceil && (o - 1) * s >= d + p {
        o -= 1;
    }
    assert!(
        o >= 1,
        "pool: no output for size {d}, window {k}, stride {s}, padding {p}"
    );
    o as usize
}

impl Pool2d {
    /// Output height.
    pub fn ho(&self) -> usize {
        out_size(self.h, self.kh, self.sh, self.ph, self.ceil)
    }

    /// Output width.
    pub fn wo(&self) -> usize {
        out_size(self.w, self.kw, self.sw, self.pw, self.ceil)
    }

    /// Window `o` along one axis: `[start, end)` clipped to the padded input (the average's
    /// divisor), and the same clipped to the input (what is read).
    fn window(o: usize, k: usize, s: usize, p: usize, d: usize) -> (i64, i64, usize, usize) {
        let start = (o * s) as i64 - p as i64;
        let end = (start + k as i64).min((d + p) as i64);
        (
            start,
            end,
            start.max(0) as usize,
            (end.min(d as i64)).max(0) as usize,
        )
    }

    fn check(&self, n: usize, x: usize, y: usize) {
        assert!(
            self.kh > 0 && self.kw > 0 && self.sh > 0 && self.sw > 0,
            "pool: {self:?}"
        );
        assert!(
            2 * self.ph <= self.kh && 2 * self.pw <= self.kw,
            "pool: padding over half the window in {self:?}"
        );
        assert_eq!(
            x,
            n * self.c * self.h * self.w,
            "pool: input length for {self:?}"
        );
        assert_eq!(
            y,
            n * self.c * self.ho() * self.wo(),
            "pool: output length for {self:?}"
        );
    }
}

/// Max pooling. `argmax` receives, for each output, the index in its input plane of the
/// maximum (the first one on ties, as PyTorch's CPU kernel), for the backward pass.
pub fn maxpool2d_forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    assert_eq!(argmax.len(), y.len(), "maxpool: argmax length");
    maxpool::<true>(p, n, x, y, argmax);
}

/// Max pooling without the argmaxes, for inference: the same values as
/// [`maxpool2d_forward`].
pub fn maxpool2d_forward_values(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    maxpool::<false>(p, n, x, y, &mut []);
}

fn maxpool<const ARG: bool>(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    p.check(n, x.len(), y.len());
    let (ho, wo, plane) = (p.ho(), p.wo(), p.h * p.w);
    // The windows are the same in every plane: work them out once.
    let rows: Vec<(usize, usize)> = (0..ho)
        .map(|o| {
            let (_, _, a, b) = Pool2d::window(o, p.kh, p.sh, p.ph, p.h);
            (a, b)
        })
        .collect();
    let cols: Vec<(usize, usize)> = (0..wo)
        .map(|o| {
            let (_, _, a, b) = Pool2d::window(o, p.kw, p.sw, p.pw, p.w);
            (a, b)
        })
        .collect();
    // Outputs whose window lies inside the row (no left or right padding): the branch-free
    // path of the row pass.
    let inside = |ox: usize| ox * p.sw >= p.pw && ox * p.sw - p.pw + p.kw <= p.w;
    let first_in = (0..wo).find(|&ox| inside(ox)).unwrap_or(wo);
    let end_in = (first_in..wo).find(|&ox| !inside(ox)).unwrap_or(wo);
    let steps: Vec<u32> = (0..wo).map(|j| (p.sw * j) as u32).collect();
    let padded = max_rows::Padded::new(p);
    let geometry = Plane {
        p,
        rows: &rows,
        cols: &cols,
        inside: (first_in, end_in),
        steps: &steps,
        padded: &padded,
    };
    let scratch = || Scratch::new(p, ARG);
    let one = |t: &mut Scratch, (pi, (yp, ap)): (usize, (&mut [f32], &mut [u32]))| {
        let xp = &x[pi * plane..(pi + 1) * plane];
        max_plane::<ARG>(&geometry, t, xp, yp, ap);
    };
    // Planes are independent: on the runtime's threads when there is enough work.
    let ctx = Context::global();
    let parallel = ctx.threads() > 1 && x.len() >= PARALLEL_MIN;
    let outs = ho * wo;
    match (ARG, parallel) {
        (true, true) => ctx.install(|| {
            y.par_chunks_mut(outs)
                .zip(argmax.par_chunks_mut(outs))
                .enumerate()
                .with_min_len(planes_per_task(plane))
                .for_each_init(scratch, one)
        }),
        (true, false) => {
            let mut t = scratch();
            y.chunks_mut(outs)
                .zip(argmax.chunks_mut(outs))
                .enumerate()
                .for_each(|item| one(&mut t, item))
        }
        (false, true) => ctx.install(|| {
            y.par_chunks_mut(outs)
                .enumerate()
                .with_min_len(planes_per_task(plane))
                .for_each_init(scratch, |t, (pi, yp)| one(t, (pi, (yp, &mut []))))
        }),
        (false, false) => {
            let mut t = scratch();
            y.chunks_mut(outs)
                .enumerate()
                .for_each(|(pi, yp)| one(&mut t, (pi, (yp, &mut []))))
        }
    }
}

/// The windows of one max pooling, the same for every plane: rows and columns clipped to
/// the input, and the range of output columns whose windows need no clipping.
struct Plane<'a> {
    p: &'a Pool2d,
    rows: &'a [(usize, usize)],
    cols: &'a [(usize, usize)],
    inside: (usize, usize),
    /// Output `a + j`'s window starts `sw·j` columns after output `a`'s.
    steps: &'a [u32],
    /// The padded copy's layout, where [`max_rows`] applies.
    padded: &'a max_rows::Padded,
}

/// The working rows of [`max_plane`], allocated once per thread, not per plane.
struct Scratch {
    /// Each input row's maxima over the output columns' windows, and their indices.
    hb: Vec<f32>,
    hi: Vec<u32>,
    /// One input row split into its `sw` phases.
    phases: Vec<f32>,
    /// Each tap of a [`reduce`].
    taps: Vec<(usize, usize, u32)>,
    /// The padded copy of a plane for [`max_rows`].
    padded: Vec<f32>,
}

impl Scratch {
    fn new(p: &Pool2d, arg: bool) -> Scratch {
        let wo = p.wo();
        if max_rows::applies(p) {
            return Scratch {
                hb: Vec::new(),
                hi: Vec::new(),
                phases: Vec::new(),
                taps: Vec::new(),
                padded: max_rows::Padded::new(p).buffer(p),
            };
        }
        Scratch {
            padded: Vec::new(),
            hb: vec![0.0; p.h * wo],
            hi: vec![0; if arg { p.h * wo } else { 0 }],
            phases: vec![
                0.0;
                if p.sw == 1 {
                    0
                } else {
                    p.sw * p.w.div_ceil(p.sw)
                }
            ],
            taps: Vec::with_capacity(p.kh.max(p.kw)),
        }
    }
}

/// The maximum of one window (rows `y0..y1`, columns `x0..x1` of a plane `w` wide) and its
/// index in the plane: the first maximum in row-major order, but a NaN wins (the last one),
/// as in PyTorch's CPU kernel.
/// All ones where `v` replaces `best` by the scalar rule (greater, or NaN), else zero: the
/// comparison of every vectorized max kernel, as a mask so that its choices blend values and
/// indices instead of branching on data.
#[inline(always)]
fn replaces(v: f32, best: f32) -> u32 {
    u32::from((v > best) | v.is_nan()).wrapping_neg()
}

/// `v` where `m` is all ones, else `best`.
#[inline(always)]
fn blend(m: u32, v: f32, best: f32) -> f32 {
    f32::from_bits(v.to_bits() & m | best.to_bits() & !m)
}

fn max_window(
    xp: &[f32],
    w: usize,
    (y0, y1): (usize, usize),
    (x0, x1): (usize, usize),
) -> (f32, u32) {
    let mut best = f32::NEG_INFINITY;
    let mut at = (y0 * w + x0) as u32;
    for iy in y0..y1 {
        for ix in x0..x1 {
            let v = xp[iy * w + ix];
            if v > best || v.is_nan() {
                best = v;
                at = (iy * w + ix) as u32;
            }
        }
    }
    (best, at)
}

/// Max pooling of one plane into `yp` and `ap`, separably: each input row's maximum over
/// every output column's window (`hb`, with its index `hi`), then each output's maximum
/// over its window's rows. That is [`max_window`]'s rule exactly: the first maximum of the
/// first row holding the largest row maximum is the first in row-major order, and the last
/// NaN of the last row holding one is the last NaN. Both passes run across whole rows,
/// branch-free, so that they vectorize.
/// `ARG`: whether to find the argmaxes too (`ap` is empty without).
fn max_plane<const ARG: bool>(
    g: &Plane,
    t: &mut Scratch,
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    if max2x2::applies(g.p) {
        return max2x2::plane::<ARG>(g.p, xp, yp, ap);
    }
    if max_rows::applies(g.p) {
        return max_rows::plane::<ARG>(g.p, g.padded, &mut t.padded, xp, yp, ap);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the function is safe code otherwise.
        return unsafe { max_plane_avx2::<ARG>(g, t, xp, yp, ap) };
    }
    max_plane_body::<ARG>(g, t, xp, yp, ap);
}

/// [`max_plane`] compiled for AVX2: eight outputs per compare and blend.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn max_plane_avx2<const ARG: bool>(
    g: &Plane,
    t: &mut Scratch,
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    max_plane_body::<ARG>(g, t, xp, yp, ap);
}

#[inline(always)]
fn max_plane_body<const ARG: bool>(
    g: &Plane,
    t: &mut Scratch,
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    let (p, wo) = (g.p, g.cols.len());
    let (a, b) = g.inside;
    let (s, steps) = (p.sw, g.steps);
    // With a stride, each row is first split into its `s` phases (the columns ≡ r mod s),
    // so that every tap reads consecutive values of one phase and the update vectorizes.
    let phase_len = p.w.div_ceil(s);
    let (hb, hi, phases) = (&mut t.hb[..], &mut t.hi[..], &mut t.phases[..]);
    let wide = |len: usize| if ARG { len } else { 0 };
    let mut taps = std::mem::take(&mut t.taps);
    for iy in 0..p.h {
        let row = iy * p.w;
        let hbr = &mut hb[iy * wo..(iy + 1) * wo];
        let hir = &mut hi[wide(iy * wo)..wide((iy + 1) * wo)];
        for ox in (0..a).chain(b..wo) {
            let (v, at) = max_window(xp, p.w, (iy, iy + 1), g.cols[ox]);
            hbr[ox] = v;
            if ARG {
                hir[ox] = at;
            }
        }
        if a < b {
            // Output a + j's tap kx is input column x0 + s·j + kx.
            let x0 = a * s - p.pw;
            let (best, idx) = (&mut hbr[a..b], &mut hir[wide(a)..wide(b)]);
            for (i, &c) in idx.iter_mut().zip(steps) {
                *i = (row + x0) as u32 + c;
            }
            let xr = &xp[row..row + p.w];
            if s > 1 {
                for (r, phase) in phases.chunks_exact_mut(phase_len).enumerate() {
                    for (d, &v) in phase.iter_mut().zip(xr[r..].iter().step_by(s)) {
                        *d = v;
                    }
                }
            }
            taps.clear();
            taps.extend((0..p.kw).map(|kx| {
                let c = x0 + kx;
                let at = if s == 1 { c } else { c % s * phase_len + c / s };
                // Tap kx of output j is at plane index (row + c) + steps[j].
                (at, 0, (row + c) as u32)
            }));
            let src: &[f32] = if s == 1 { xr } else { phases };
            reduce::<ARG>(src, steps, &taps, best, idx);
        }
    }
    for (oy, &(y0, y1)) in g.rows.iter().enumerate() {
        let best = &mut yp[oy * wo..(oy + 1) * wo];
        let idx = &mut ap[wide(oy * wo)..wide((oy + 1) * wo)];
        for (i, &(x0, _)) in idx.iter_mut().zip(g.cols) {
            *i = (y0 * p.w + x0) as u32;
        }
        taps.clear();
        // Row iy's maximum for output j is at plane index hi[iy·wo + j].
        taps.extend((y0..y1).map(|iy| (iy * wo, wide(iy * wo), 0)));
        reduce::<ARG>(hb, hi, &taps, best, idx);
    }
    t.taps = taps;
}

/// Reduces taps into outputs, the same comparisons in the same order as [`max_window`]:
/// for output `j`, tap `(v, c, add)` (in order) offers `src[v + j]`, at plane index
/// `at[c + j] + add`, which replaces the best so far when greater or NaN. `idx` holds each
/// output's initial index. Eight outputs at a time stay in registers across all taps and
/// are stored once, with selects by masks: no branches, no masked stores.
#[inline(always)]
fn reduce<const ARG: bool>(
    src: &[f32],
    at: &[u32],
    taps: &[(usize, usize, u32)],
    best: &mut [f32],
    idx: &mut [u32],
) {
    const L: usize = 8;
    let n = best.len();
    let mut j = 0;
    while j < n {
        let w = (n - j).min(L);
        let mut b = [f32::NEG_INFINITY; L];
        let mut i = [0u32; L];
        if ARG {
            i[..w].copy_from_slice(&idx[j..j + w]);
        }
        for &(v0, c0, add) in taps {
            if w == L {
                let v: &[f32; L] = src[v0 + j..v0 + j + L].try_into().expect("a full block");
                let c: &[u32; L] = if ARG {
                    at[c0 + j..c0 + j + L].try_into().expect("a full block")
                } else {
                    &[0; L]
                };
                for l in 0..L {
                    let m = replaces(v[l], b[l]);
                    b[l] = blend(m, v[l], b[l]);
                    i[l] = (c[l] + add) & m | i[l] & !m;
                }
            } else {
                for l in 0..w {
                    let v = src[v0 + j + l];
                    let m = replaces(v, b[l]);
                    b[l] = blend(m, v, b[l]);
                    if ARG {
                        i[l] = (at[c0 + j + l] + add) & m | i[l] & !m;
                    }
                }
            }
        }
        best[j..j + w].copy_from_slice(&b[..w]);
        if ARG {
            idx[j..j + w].copy_from_slice(&i[..w]);
        }
        j += w;
    }
}

/// The gradient of max pooling: each output's gradient goes to its maximum (overwrites `dx`).
pub fn maxpool2d_backward(p: &Pool2d, n: usize, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    p.check(n, dx.len(), dy.len());
    let (outs, plane) = (p.ho() * p.wo(), p.h * p.w);
    // Planes are independent: on the runtime's threads when there is enough work.
    let one = |(pi, dxp): (usize, &mut [f32])| {
        dxp.fill(0.0);
        let r = pi * outs..(pi + 1) * outs;
        for (&g, &a) in dy[r.clone()].iter().zip(&argmax[r]) {
            dxp[a as usize] += g;
        }
    };
    let ctx = Context::global();
    if ctx.threads() > 1 && dx.len() >= PARALLEL_MIN {
        ctx.install(|| {
            dx.par_chunks_mut(plane)
                .enumerate()
                .with_min_len(planes_per_task(plane))
                .for_each(one)
        });
    } else {
        dx.chunks_mut(plane).enumerate().for_each(one);
    }
}

/// Average pooling counting the padding.
pub fn avgpool2d_forward(p: &Pool2d, n: usize, x: &[f32], y: &mut [f32]) {
    p.check(n, x.len(), y.len());
    let (ho, wo, plane) = (p.ho(), p.wo(), p.h * p.w);
    for (xp, yp) in x.chunks_exact(plane).zip(y.chunks_exact_mut(ho * wo)) {
        for oy in 0..ho {
            let (s0, e0, y0, y1) = Pool2d::window(oy, p.kh, p.sh, p.ph, p.h);
            for ox in 0..wo {
                let (s1, e1, x0, x1) = Pool2d::window(ox, p.kw, p.sw, p.pw, p.w);
                let count = ((e0 - s0) * (e1 - s1)) as f32;
                let mut sum = 0.0f32;
                for iy in y0..y1 {
                    sum += xp[iy * p.w + x0..iy * p.w + x1].iter().sum::<f32>();
                }
                yp[oy * wo + ox] = sum / count;
            }
        }
    }
}

/// The gradient of average pooling (overwrites `dx`).
pub fn avgpool2d_backward(p: &Pool2d, n: usize, dy: &[f32], dx: &mut [f32]) {
    p.check(n, dx.len(), dy.len());
    let (ho, wo, plane) = (p.ho(), p.wo(), p.h * p.w);
    dx.fill(0.0);
    for (dxp, dyp) in dx.chunks_exact_mut(plane).zip(dy.chunks_exact(ho * wo)) {
        for oy in 0..ho {
            let (s0, e0, y0, y1) = Pool2d::window(oy, p.kh, p.sh, p.ph, p.h);
            for ox in 0..wo {
                let (s1, e1, x0, x1) = Pool2d::window(ox, p.kw, p.sw, p.pw, p.w);
                let g = dyp[oy * wo + ox] / ((e0 - s0) * (e1 - s1)) as f32;
                for iy in y0..y1 {
                    dxp[iy * p.w + x0..iy * p.w + x1]
                        .iter_mut()
                        .for_each(|d| *d += g);
                }
            }
        }
    }
}

/// `y[i, c] = mean of x[i, c, :, :]` over `n·c` planes of `plane` values.
pub fn global_avgpool_forward(plane: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len() * plane, "global_avgpool: lengths");
    for (v, xp) in y.iter_mut().zip(x.chunks_exact(plane)) {
        *v = xp.iter().sum::<f32>() / plane as f32;
    }
}

/// The gradient of global average pooling (overwrites `dx`).
pub fn global_avgpool_backward(plane: usize, dy: &[f32], dx: &mut [f32]) {
    assert_eq!(dx.len(), dy.len() * plane, "global_avgpool: lengths");
    for (&g, dxp) in dy.iter().zip(dx.chunks_exact_mut(plane)) {
        dxp.fill(g / plane as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorized kernels give every output the value and argmax of the scalar rule,
    /// bitwise, with ties (few distinct values), NaNs and -∞ in the input, over strides,
    /// paddings, ceil mode and wide rows: the padded rows of `max_rows.rs` (strides 1 and
    /// 2), the separable kernel (stride 3) and the 2×2 kernel (`max2x2.rs`).
    #[test]
    fn separable_max_pooling_equals_the_scalar_windows() {
        let shapes = [
            (3, 1, 1, false, 9, 9),
            (3, 2, 1, true, 14, 15),
            (3, 2, 0, true, 7, 7),
            (2, 2, 0, false, 8, 150),
            (2, 2, 0, false, 7, 9),
            (2, 2, 0, true, 7, 9),
            (3, 1, 1, false, 5, 140),
            (5, 3, 2, true, 17, 23),
            (3, 1, 0, false, 7, 7),
            (2, 1, 1, true, 6, 11),
            (4, 2, 1, true, 13, 10),
            (3, 1, 1, false, 1, 1),
        ];
        for (k, s, pad, ceil, h, w) in shapes {
            let p = Pool2d {
                c: 2,
                h,
                w,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                ph: pad,
                pw: pad,
                ceil,
            };
            let n = 2;
            let x: Vec<f32> = (0..n * p.c * h * w)
                .map(|i| match (i * 7919) % 23 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    v => (v % 4) as f32,
                })
                .collect();
            let (ho, wo) = (p.ho(), p.wo());
            let mut y = vec![0.0; n * p.c * ho * wo];
            let mut a = vec![0u32; y.len()];
            maxpool2d_forward(&p, n, &x, &mut y, &mut a);
            let mut values = vec![0.0; y.len()];
            maxpool2d_forward_values(&p, n, &x, &mut values);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&values), bits(&y), "{p:?}: values without argmax");
            for (pi, xp) in x.chunks_exact(h * w).enumerate() {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let (_, _, y0, y1) = Pool2d::window(oy, k, s, pad, h);
                        let (_, _, x0, x1) = Pool2d::window(ox, k, s, pad, w);
                        let (best, at) = max_window(xp, w, (y0, y1), (x0, x1));
                        let o = pi * ho * wo + oy * wo + ox;
                        assert_eq!(y[o].to_bits(), best.to_bits(), "{p:?} output {o}");
                        assert_eq!(a[o], at, "{p:?} argmax {o}");
                    }
                }
            }
        }
    }
}
