//! im2col and col2im: the reshaping that turns a convolution into a GEMM (the lecture's
//! `indcol`). For one image and one group of `cg` input channels, `col` is a matrix with
//! `cg·kh·kw` rows and `ho·wo` columns: row `(c, i, j)` holds, for every output position, the
//! input value that kernel tap `(i, j)` of channel `c` sees there (zero in the padding).
//! `col2im` is its adjoint: it adds every column entry back to the input position it came
//! from, which is the gradient of im2col.

use rayon::prelude::*;

use crate::gemm::{panel_from_two_runs, BSource, Context, Major};

/// The geometry of one 2-D convolution over NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub out: usize,
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
    /// Dilation along the height.
    pub dh: usize,
    /// Dilation along the width.
    pub dw: usize,
    /// Channels split into this many independent convolutions.
    pub groups: usize,
}

impl Conv2d {
    /// A square convolution without dilation or groups.
    pub fn square(
        c: usize,
        h: usize,
        w: usize,
        out: usize,
        k: usize,
        s: usize,
        p: usize,
    ) -> Conv2d {
        Conv2d {
            c,
            h,
            w,
            out,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: p,
            pw: p,
            dh: 1,
            dw: 1,
            groups: 1,
        }
    }

    /// Output height: `floor((h + 2p - d(k-1) - 1) / s) + 1`.
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.ph - self.dh * (self.kh - 1) - 1) / self.sh + 1
    }

    /// Output width.
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.pw - self.dw * (self.kw - 1) - 1) / self.sw + 1
    }

    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }

    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.out / self.groups
    }

    /// Rows of the im2col matrix of one group: the GEMM's reduction length.
    pub fn col_rows(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Weights: `[out, c/groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.out * self.col_rows()
    }

    /// Length of the scratch buffer (`col`) that the conv functions need: an image's im2col
    /// (none for a pointwise conv, which reads its input directly), or room for several
    /// images in one GEMM on small maps (`conv::batched`), whichever is more.
    pub fn col_len(&self) -> usize {
        self.col_len_one().max(crate::conv::batched_col_len(self))
    }

    /// The least `col` the conv functions accept: one image's im2col (none for a pointwise
    /// conv). They batch images only when given [`Conv2d::col_len`].
    pub fn col_len_one(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.col_rows() * self.ho() * self.wo()
        }
    }

    /// A 1×1, stride-1, unpadded conv reads its input as the GEMM operand directly.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// Panics unless the geometry is one a conv can have (a bug in the caller).
    pub fn check(&self) {
        assert!(
            self.c > 0 && self.out > 0 && self.groups > 0,
            "conv: empty channels or groups in {self:?}"
        );
        assert!(
            self.c.is_multiple_of(self.groups) && self.out.is_multiple_of(self.groups),
            "conv: groups must divide channels in {self:?}"
        );
        assert!(
            self.kh > 0 && self.kw > 0 && self.sh > 0 && self.sw > 0 && self.dh > 0 && self.dw > 0,
            "conv: zero kernel, stride or dilation in {self:?}"
        );
        assert!(
            self.h + 2 * self.ph > self.dh * (self.kh - 1)
                && self.w + 2 * self.pw > self.dw * (self.kw - 1),
            "conv: the window does not fit in {self:?}"
        );
    }
}

/// For each output position along one axis, which input index kernel tap `t` reads, or
/// `None` in the padding: `i = o·s - p + t·d`.
#[inline]
fn source(o: usize, t: usize, s: usize, p: usize, d: usize, len: usize) -> Option<usize> {
    let i = (o * s + t * d).wrapping_sub(p);
    (i < len).then_some(i)
}

/// The outputs `lo..hi` of a row of `wo` whose input `o·s + shift - p` lies inside `0..len`
/// (those are consecutive).
fn strided_run(wo: usize, shift: usize, s: usize, p: usize, len: usize) -> (usize, usize) {
    // o·s + shift ≥ p, and o·s + shift < len + p.
    let lo = p.saturating_sub(shift).div_ceil(s).min(wo);
    let hi = (len + p).saturating_sub(shift).div_ceil(s).clamp(lo, wo);
    (lo, hi)
}

/// Below this many elements of `col`, im2col and col2im stay on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// Runs `f` over `(index, chunk)` for the chunks of `buf`, on the runtime's threads when the
/// buffer is large. Each chunk is written by one call, so the result does not depend on the
/// thread count.
pub(crate) fn for_chunks(buf: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let ctx = Context::global();
    if ctx.threads() > 1 && buf.len() >= PARALLEL_MIN && buf.len() > chunk {
        ctx.install(|| {
            buf.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c))
        });
    } else {
        buf.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// [`for_chunks`] over two buffers at once: `f(index, chunk of a, chunk of b)`, the chunks
/// of `b` `chunk_b` long.
pub(crate) fn for_chunks2(
    a: &mut [f32],
    chunk: usize,
    b: &mut [f32],
    chunk_b: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let ctx = Context::global();
    if ctx.threads() > 1 && a.len() >= PARALLEL_MIN && a.len() > chunk {
        ctx.install(|| {
            a.par_chunks_mut(chunk)
                .zip(b.par_chunks_mut(chunk_b))
                .enumerate()
                .for_each(|(i, (ca, cb))| f(i, ca, cb))
        });
    } else {
        a.chunks_mut(chunk)
            .zip(b.chunks_mut(chunk_b))
            .enumerate()
            .for_each(|(i, (ca, cb))| f(i, ca, cb));
    }
}

/// Fills `col` (`cg·kh·kw` × `ho·wo`, row-major) from channels `c0..c0+cg` of one image `x`
/// (`c × h × w`).
pub fn im2col(g: &Conv2d, x: &[f32], c0: usize, col: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let plane = g.h * g.w;
    assert!(x.len() >= (c0 + g.cg()) * plane, "im2col: input too short");
    assert!(col.len() >= g.col_rows() * ho * wo, "im2col: col too short");
    // One chunk per (channel, kernel row): kw rows of col.
    for_chunks(
        &mut col[..g.col_rows() * ho * wo],
        g.kw * ho * wo,
        |r, rows| {
            let (c, ki) = (c0 + r / g.kh, r % g.kh);
            let xc = &x[c * plane..(c + 1) * plane];
            for (kj, row) in rows.chunks_exact_mut(ho * wo).enumerate() {
                for oy in 0..ho {
                    let out = &mut row[oy * wo..(oy + 1) * wo];
                    let Some(iy) = source(oy, ki, g.sh, g.ph, g.dh, g.h) else {
                        out.fill(0.0);
                        continue;
                    };
                    let xr = &xc[iy * g.w..(iy + 1) * g.w];
                    if g.sw == 1 {
                        // Stride 1: a contiguous run of the input row, ix = ox + kj·d - p,
                        // between zeros where the window hangs over the padding.
                        let shift = kj * g.dw;
                        let lo = g.pw.saturating_sub(shift).min(wo);
                        let hi = (g.w + g.pw).saturating_sub(shift).clamp(lo, wo);
                        out[..lo].fill(0.0);
                        if lo < hi {
                            out[lo..hi].copy_from_slice(&xr[lo + shift - g.pw..hi + shift - g.pw]);
                        }
                        out[hi..].fill(0.0);
                    } else {
                        // A stride: every sw-th input of a run, ix = ox·sw + kj·d - p, between
                        // zeros (no test per element: 7×7/2 conv1 spent a third of its
                        // forward here).
                        let (lo, hi) = strided_run(wo, kj * g.dw, g.sw, g.pw, g.w);
                        out[..lo].fill(0.0);
                        if lo < hi {
                            let ix = lo * g.sw + kj * g.dw - g.pw;
                            let src = xr[ix..].iter().step_by(g.sw);
                            for (o, &v) in out[lo..hi].iter_mut().zip(src) {
                                *o = v;
                            }
                        }
                        out[hi..].fill(0.0);
                    }
                }
            }
        },
    );
}

/// The adjoint of [`im2col`]: adds every entry of `col` to the input position it was read
/// from, into channels `c0..c0+cg` of one image `dx` (which the caller zeroes first).
pub fn col2im(g: &Conv2d, col: &[f32], c0: usize, dx: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let plane = g.h * g.w;
    assert!(
        dx.len() >= (c0 + g.cg()) * plane,
        "col2im: output too short"
    );
    assert!(col.len() >= g.col_rows() * ho * wo, "col2im: col too short");
    let taps = g.kh * g.kw;
    // One chunk per input channel: all of its taps add into its own plane only.
    for_chunks(
        &mut dx[c0 * plane..(c0 + g.cg()) * plane],
        plane,
        |ci, xc| {
            let rows = &col[ci * taps * ho * wo..(ci + 1) * taps * ho * wo];
            for (t, row) in rows.chunks_exact(ho * wo).enumerate() {
                let (ki, kj) = (t / g.kw, t % g.kw);
                for oy in 0..ho {
                    let Some(iy) = source(oy, ki, g.sh, g.ph, g.dh, g.h) else {
                        continue;
                    };
                    let xr = &mut xc[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * wo..(oy + 1) * wo];
                    if g.sw == 1 {
                        // Stride 1: the run that im2col copied, added back as one slice.
                        let shift = kj * g.dw;
                        let lo = g.pw.saturating_sub(shift).min(wo);
                        let hi = (g.w + g.pw).saturating_sub(shift).clamp(lo, wo);
                        if lo < hi {
                            let dst = &mut xr[lo + shift - g.pw..hi + shift - g.pw];
                            for (d, &v) in dst.iter_mut().zip(&src[lo..hi]) {
                                *d += v;
                            }
                        }
                    } else {
                        let (lo, hi) = strided_run(wo, kj * g.dw, g.sw, g.pw, g.w);
                        if lo < hi {
                            let ix = lo * g.sw + kj * g.dw - g.pw;
                            let dst = xr[ix..].iter_mut().step_by(g.sw);
                            for (d, &v) in dst.zip(&src[lo..hi]) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        },
    );
}

/// Floats past the last plane of a padded input: the 16-wide fast path of
/// [`Im2colSource`] reads (and discards) up to 15 values past the last one it needs.
const PAD_SLACK: usize = 16;

/// The im2col matrix of one image and group as a GEMM operand that is never stored: the
/// GEMM asks for one panel at a time, and each is read from a zero-padded copy `xp` of the
/// input. A padded plane of `hp × wp` is stored as its `sw` column phases, each `hp × wq`
/// (`wq = ⌈wp / sw⌉`, padded column `c` in phase `c mod sw` at `c div sw`), so that the
/// pixels of an output row read consecutive values whatever the stride. Element (row
/// `(c, i, j)`, pixel `(oy, ox)`) is `xp[tap[row] + pix[pixel]]`, where `tap = c·sw·hp·wq +
/// (j·dw mod sw)·hp·wq + i·dh·wq + j·dw div sw` and `pix = oy·sh·wq + ox`: the two tables
/// are all the geometry there is.
pub struct Im2colSource<'a> {
    xp: &'a [f32],
    plan: &'a Im2colPlan,
    /// As `col` (K×P, forward) or as `colᵀ` (P×K, the weight gradient's B).
    transposed: bool,
}

/// The tables of [`Im2colSource`] for one geometry, shared by every image.
#[derive(Debug)]
pub struct Im2colPlan {
    tap: Vec<usize>,
    pix: Vec<usize>,
    wo: usize,
    padded_len: usize,
}

/// Rows and columns of one phase of a padded plane of `g`.
fn phase_dims(g: &Conv2d) -> (usize, usize) {
    (g.h + 2 * g.ph, (g.w + 2 * g.pw).div_ceil(g.sw))
}

impl Im2colPlan {
    /// The tables for `g`.
    pub fn new(g: &Conv2d) -> Im2colPlan {
        let (hp, wq) = phase_dims(g);
        let phase = hp * wq;
        let mut tap = Vec::with_capacity(g.col_rows());
        for c in 0..g.cg() {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let col = j * g.dw;
                    tap.push(c * g.sw * phase + (col % g.sw) * phase + i * g.dh * wq + col / g.sw);
                }
            }
        }
        let (ho, wo) = (g.ho(), g.wo());
        let pix = (0..ho * wo).map(|q| q / wo * g.sh * wq + q % wo).collect();
        Im2colPlan {
            tap,
            pix,
            wo,
            padded_len: g.cg() * g.sw * phase + PAD_SLACK,
        }
    }

    /// Whether the GEMM should read `g`'s im2col from a padded copy of the input rather than
    /// from a stored col matrix: not for a pointwise conv (the input is its col), nor where
    /// the copy would be larger than col (a 1×1 stride-2 conv reads a quarter of its input:
    /// storing that quarter is cheaper than copying all of it).
    pub fn pays(g: &Conv2d) -> bool {
        let (hp, wq) = phase_dims(g);
        !g.is_pointwise() && g.cg() * g.sw * hp * wq <= g.col_rows() * g.ho() * g.wo()
    }

    /// Floats of the padded input of one group ([`pad_input`]).
    pub fn padded_len(&self) -> usize {
        self.padded_len
    }

    /// The im2col matrix (K×P) of the padded input `xp`, or its transpose (P×K).
    pub fn source<'a>(&'a self, xp: &'a [f32], transposed: bool) -> Im2colSource<'a> {
        assert!(
            xp.len() >= self.padded_len,
            "im2col: padded input too short"
        );
        Im2colSource {
            xp,
            plan: self,
            transposed,
        }
    }
}

/// Copies channels `c0..c0+cg` of one image `x` into `xp` with `ph`, `pw` zeros around
/// every plane, split into `sw` column phases, then [`PAD_SLACK`] zeros: the input of an
/// [`Im2colSource`].
pub fn pad_input(g: &Conv2d, x: &[f32], c0: usize, xp: &mut [f32]) {
    let (hp, wq) = phase_dims(g);
    let block = g.sw * hp * wq;
    let plane = g.h * g.w;
    let (planes, slack) = xp[..g.cg() * block + PAD_SLACK].split_at_mut(g.cg() * block);
    for_chunks(planes, block, |ci, xc| {
        let src = &x[(c0 + ci) * plane..(c0 + ci + 1) * plane];
        if g.sw > 1 {
            xc.fill(0.0);
            for (y, row) in src.chunks_exact(g.w).enumerate() {
                for b in 0..g.sw {
                    // Input columns ix with (ix + pw) mod sw == b, every sw-th from ix0.
                    let ix0 = (b + g.sw - g.pw % g.sw) % g.sw;
                    let at = b * hp * wq + (y + g.ph) * wq + (ix0 + g.pw) / g.sw;
                    let src = row.iter().skip(ix0).step_by(g.sw);
                    for (d, &v) in xc[at..].iter_mut().zip(src) {
                        *d = v;
                    }
                }
            }
            return;
        }
        let wp = wq;
        xc[..g.ph * wp].fill(0.0);
        xc[(g.ph + g.h) * wp..].fill(0.0);
        for (y, row) in xc[g.ph * wp..(g.ph + g.h) * wp]
            .chunks_exact_mut(wp)
            .enumerate()
        {
            row[..g.pw].fill(0.0);
            row[g.pw..g.pw + g.w].copy_from_slice(&src[y * g.w..(y + 1) * g.w]);
            row[g.pw + g.w..].fill(0.0);
        }
    });
    slack.fill(0.0);
}

impl BSource for Im2colSource<'_> {
    fn shape(&self) -> (usize, usize) {
        let (k, p) = (self.plan.tap.len(), self.plan.pix.len());
        if self.transposed {
            (p, k)
        } else {
            (k, p)
        }
    }

    fn major(&self) -> Major {
        if self.transposed {
            Major::Col
        } else {
            Major::Row
        }
    }

    fn block(&self, pc: usize, kc: usize, j0: usize, w: usize, out: &mut [f32], ld: usize) {
        let plan = self.plan;
        if self.transposed {
            // Column j of the block is row j0 + j of col, over pixels pc..pc+kc.
            let taps = &plan.tap[j0..j0 + w];
            let pix = &plan.pix[pc..pc + kc];
            for (j, &t) in taps.iter().enumerate() {
                let dst = &mut out[j * ld..j * ld + kc];
                let xp = &self.xp[t..];
                // Pixels of one output row are consecutive in xp: copy row by row.
                let mut p = 0;
                while p < kc {
                    let len = (plan.wo - (pc + p) % plan.wo).min(kc - p);
                    dst[p..p + len].copy_from_slice(&xp[pix[p]..pix[p] + len]);
                    p += len;
                }
            }
        } else {
            // Row p of the block is row pc + p of col, over pixels j0..j0+w.
            let taps = &plan.tap[pc..pc + kc];
            let pix = &plan.pix[j0..j0 + w];
            // A full panel of 16 pixels in at most two output rows is two runs of xp: the
            // first `s` lanes from one, the rest from the other.
            let s = plan.wo - j0 % plan.wo;
            if w == 16 && (s >= 16 || 16 - s <= plan.wo) {
                let s = s.min(16);
                let a = pix[0];
                let b = if s < 16 { pix[s] - s } else { a };
                panel_from_two_runs(self.xp, taps, a, b, s, out, ld);
            } else {
                for (p, &t) in taps.iter().enumerate() {
                    let xp = &self.xp[t..];
                    for (d, &q) in out[p * ld..p * ld + w].iter_mut().zip(pix) {
                        *d = xp[q];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_of_the_lectures_3x3_example() {
        // A 3×3 image 1..9 and a 2×2 kernel: four output positions, each a 2×2 patch.
        let g = Conv2d::square(1, 3, 3, 1, 2, 1, 0);
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut col = vec![0.0; 4 * 4];
        im2col(&g, &x, 0, &mut col);
        #[rustfmt::skip]
        let want = [
            1., 2., 4., 5.,   // tap (0, 0) at each output position
            2., 3., 5., 6.,   // tap (0, 1)
            4., 5., 7., 8.,   // tap (1, 0)
            5., 6., 8., 9.,   // tap (1, 1)
        ];
        assert_eq!(col, want);
    }

    #[test]
    fn padding_reads_zero() {
        let g = Conv2d::square(1, 2, 2, 1, 3, 1, 1);
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut col = vec![f32::NAN; 9 * 4];
        im2col(&g, &x, 0, &mut col);
        // Tap (1, 1), the centre, sees the image itself.
        assert_eq!(&col[4 * 4..5 * 4], &x);
        // Tap (0, 0) sees padding except at output (1, 1).
        assert_eq!(&col[0..4], &[0.0, 0.0, 0.0, 1.0]);
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.
    #[test]
    fn col2im_is_the_adjoint() {
        let g = Conv2d {
            c: 4,
            h: 7,
            w: 6,
            out: 2,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 1,
            ph: 1,
            pw: 2,
            dh: 2,
            dw: 1,
            groups: 2,
        };
        let x: Vec<f32> = (0..g.c * g.h * g.w)
            .map(|i| ((i * 7) % 13) as f32 - 6.0)
            .collect();
        let n = g.col_rows() * g.ho() * g.wo();
        let cv: Vec<f32> = (0..n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        for c0 in [0, g.cg()] {
            let mut col = vec![0.0; n];
            im2col(&g, &x, c0, &mut col);
            let lhs: f64 = col
                .iter()
                .zip(&cv)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let mut dx = vec![0.0; x.len()];
            col2im(&g, &cv, c0, &mut dx);
            let rhs: f64 = x
                .iter()
                .zip(&dx)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert_eq!(lhs, rhs);
        }
    }

    /// Every block the GEMM can ask of the implicit im2col, in both orders, is the
    /// corresponding block of the stored col matrix: wide and narrow outputs (panels in one,
    /// two or more output rows), padding, dilation, strides (the column phases), groups.
    #[test]
    fn implicit_im2col_blocks_match_im2col() {
        let mut geometries = vec![
            Conv2d::square(3, 28, 28, 4, 3, 1, 1),
            Conv2d::square(2, 7, 9, 2, 3, 1, 2),
            Conv2d::square(2, 11, 30, 2, 5, 2, 2),
            Conv2d::square(1, 20, 17, 1, 1, 1, 0),
            // Strides 2 and 3 through the column phases: a 7×7/2 stem, odd sizes.
            Conv2d::square(3, 23, 21, 2, 7, 2, 3),
            Conv2d::square(2, 17, 19, 2, 3, 3, 1),
            Conv2d::square(2, 6, 5, 2, 1, 2, 0),
        ];
        geometries.push(Conv2d {
            dh: 2,
            dw: 3,
            groups: 2,
            c: 4,
            ..Conv2d::square(4, 13, 40, 2, 3, 1, 3)
        });
        for g in geometries {
            let x: Vec<f32> = (0..g.c * g.h * g.w).map(|i| i as f32 + 1.0).collect();
            let (k, p) = (g.col_rows(), g.ho() * g.wo());
            let plan = Im2colPlan::new(&g);
            for c0 in (0..g.c).step_by(g.cg()) {
                let mut col = vec![0.0; k * p];
                im2col(&g, &x, c0, &mut col);
                let mut xp = vec![f32::NAN; plan.padded_len()];
                pad_input(&g, &x, c0, &mut xp);
                for transposed in [false, true] {
                    let src = plan.source(&xp, transposed);
                    let (rows, cols) = src.shape();
                    let ranges = [(0, rows), (1, rows - 1), (rows / 3, rows / 2 + 1)];
                    for (pc, kc) in ranges.into_iter().filter(|&(_, kc)| kc > 0) {
                        for j0 in 0..cols {
                            for w in [1, 5, 16].into_iter().filter(|w| j0 + w <= cols) {
                                let ld = if transposed { kc + 3 } else { 19 };
                                let len = if transposed {
                                    (w - 1) * ld + kc
                                } else {
                                    (kc - 1) * ld + w
                                };
                                let mut out = vec![f32::NAN; len];
                                src.block(pc, kc, j0, w, &mut out, ld);
                                for pp in 0..kc {
                                    for j in 0..w {
                                        let (r, q) = if transposed {
                                            (j0 + j, pc + pp)
                                        } else {
                                            (pc + pp, j0 + j)
                                        };
                                        let got = if transposed {
                                            out[j * ld + pp]
                                        } else {
                                            out[pp * ld + j]
                                        };
                                        assert_eq!(
                                            got,
                                            col[r * p + q],
                                            "{g:?} c0 {c0} transposed {transposed} row {r} pixel {q}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
