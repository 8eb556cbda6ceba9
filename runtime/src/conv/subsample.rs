//! A strided 1×1 convolution's B operand read straight from the input: the GEMM packs every
//! `s`-th pixel itself, so the subsampled copy that im2col would write (and the GEMM read
//! back) is never made. ResNet's downsampling projections are such convolutions.

use super::Conv2d;
use crate::gemm::{BSource, Major};

/// Whether `g` is a 1×1, unpadded convolution with a stride (a stride of 1 is pointwise,
/// which reads its input as B already).
pub(crate) fn applies(g: &Conv2d) -> bool {
    g.kh == 1 && g.kw == 1 && g.ph == 0 && g.pw == 0 && !g.is_pointwise()
}

/// B (`cg × P`: row `r` is channel `r` at the output pixels) or its transpose, over the
/// channels `x` of one group of one image.
pub(crate) struct Subsample<'a> {
    x: &'a [f32],
    g: Conv2d,
    transposed: bool,
}

impl<'a> Subsample<'a> {
    pub(crate) fn new(g: &Conv2d, x: &'a [f32], transposed: bool) -> Subsample<'a> {
        assert!(applies(g), "subsample: not a strided 1×1 conv: {g:?}");
        assert!(x.len() >= g.cg() * g.h * g.w, "subsample: input too short");
        Subsample {
            x,
            g: *g,
            transposed,
        }
    }

    /// Where output pixel `q` reads within a channel.
    fn pixel(&self, q: usize) -> usize {
        let wo = self.g.wo();
        (q / wo) * self.g.sh * self.g.w + (q % wo) * self.g.sw
    }

    /// `out[t] = channel[pixel(q0 + t)]` for `t < out.len()`, row by row of the output.
    fn gather(&self, channel: &[f32], q0: usize, out: &mut [f32]) {
        let (wo, sw) = (self.g.wo(), self.g.sw);
        let mut t = 0;
        while t < out.len() {
            let q = q0 + t;
            let run = (wo - q % wo).min(out.len() - t);
            let src = &channel[self.pixel(q)..];
            for (o, &v) in out[t..t + run].iter_mut().zip(src.iter().step_by(sw)) {
                *o = v;
            }
            t += run;
        }
    }
}

impl BSource for Subsample<'_> {
    fn shape(&self) -> (usize, usize) {
        let (k, p) = (self.g.cg(), self.g.ho() * self.g.wo());
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
        let plane = self.g.h * self.g.w;
        let channel = |r: usize| &self.x[r * plane..(r + 1) * plane];
        if self.transposed {
            // Column j of the block is channel j0 + j over pixels pc..pc+kc.
            for j in 0..w {
                self.gather(channel(j0 + j), pc, &mut out[j * ld..j * ld + kc]);
            }
        } else {
            // Row r of the block is channel pc + r over pixels j0..j0+w.
            for r in 0..kc {
                self.gather(channel(pc + r), j0, &mut out[r * ld..r * ld + w]);
            }
        }
    }
}
