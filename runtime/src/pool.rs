//! Pooling, forward and backward, with PyTorch's numerics: padding, ceil mode (a last window
//! that would start past the input and its left padding is dropped), max pooling that
//! ignores padding, average pooling that counts it (`count_include_pad=True`, the divisor
//! being the window clipped to the padded input), and global average pooling.

use rayon::prelude::*;

use crate::gemm::Context;

/// Below this many input elements a pool stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

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
    p.check(n, x.len(), y.len());
    assert_eq!(argmax.len(), y.len(), "maxpool: argmax length");
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
    let one = |(pi, (yp, ap)): (usize, (&mut [f32], &mut [u32]))| {
        let xp = &x[pi * plane..(pi + 1) * plane];
        for (oy, &(y0, y1)) in rows.iter().enumerate() {
            for (ox, &(x0, x1)) in cols.iter().enumerate() {
                let mut best = f32::NEG_INFINITY;
                let mut at = (y0 * p.w + x0) as u32;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let v = xp[iy * p.w + ix];
                        // A NaN wins, so that it propagates, as in PyTorch's kernel.
                        if v > best || v.is_nan() {
                            best = v;
                            at = (iy * p.w + ix) as u32;
                        }
                    }
                }
                yp[oy * wo + ox] = best;
                ap[oy * wo + ox] = at;
            }
        }
    };
    // Planes are independent: on the runtime's threads when there is enough work.
    let ctx = Context::global();
    if ctx.threads() > 1 && x.len() >= PARALLEL_MIN {
        ctx.install(|| {
            y.par_chunks_mut(ho * wo)
                .zip(argmax.par_chunks_mut(ho * wo))
                .enumerate()
                .for_each(one)
        });
    } else {
        y.chunks_mut(ho * wo)
            .zip(argmax.chunks_mut(ho * wo))
            .enumerate()
            .for_each(one);
    }
}

/// The gradient of max pooling: each output's gradient goes to its maximum (overwrites `dx`).
pub fn maxpool2d_backward(p: &Pool2d, n: usize, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    p.check(n, dx.len(), dy.len());
    let (outs, plane) = (p.ho() * p.wo(), p.h * p.w);
    dx.fill(0.0);
    for (dxp, (dyp, ap)) in dx
        .chunks_exact_mut(plane)
        .zip(dy.chunks_exact(outs).zip(argmax.chunks_exact(outs)))
    {
        for (&g, &a) in dyp.iter().zip(ap) {
            dxp[a as usize] += g;
        }
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
