//! Upsampling by an integer factor, as `F.interpolate(x, scale_factor=s, mode=...)`: nearest
//! neighbour, and bilinear with `align_corners` false (pixel centres line up, PyTorch's
//! default) or true (corner pixels line up). The backward passes are the adjoints: each
//! output's gradient goes back to the inputs it read, with the weights it read them with.
//!
//! Source positions and weights follow PyTorch's CPU kernels step by step, in f32, so the
//! rounding of a weight is PyTorch's: `src = (o + 1/2)/s - 1/2` clamped at 0 (or
//! `o·(d-1)/(d·s-1)` with `align_corners`), `i0 = floor(src)`, `i1 = min(i0 + 1, d - 1)`,
//! `λ1 = src - i0`.

/// How an output pixel is computed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Copies the input pixel `floor(o/s)` (PyTorch's `"nearest"`).
    Nearest,
    /// Interpolates the four nearest input pixels (PyTorch's `"bilinear"`).
    Bilinear {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
}

/// The geometry of one upsampling of NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upsample2d {
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// The scale factor, along both axes.
    pub s: usize,
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

impl Upsample2d {
    /// Output height, `h·s`.
    pub fn ho(&self) -> usize {
        self.h * self.s
    }

    /// Output width, `w·s`.
    pub fn wo(&self) -> usize {
        self.w * self.s
    }

    fn check(&self, n: usize, x: usize, y: usize) {
        assert!(
            self.s > 0 && self.h > 0 && self.w > 0,
            "upsample: empty size in {self:?}"
        );
        assert!(
            x == n * self.c * self.h * self.w && y == n * self.c * self.ho() * self.wo(),
            "upsample: lengths"
        );
    }

    /// The input rows or columns that output `o` reads along an axis of `d` inputs, and
    /// their weights: `(i0, i1, λ0, λ1)`.
    fn source(&self, o: usize, d: usize) -> (usize, usize, f32, f32) {
        match self.mode {
            // PyTorch computes `floor(o · (float)(1/s))` (`o >> 1` for s = 2); that is
            // `o / s` for every s <= 32 and o < 2^20, as a test below checks.
            UpsampleMode::Nearest => (o / self.s, o / self.s, 1.0, 0.0),
            _ if self.s == 1 => (o, o, 1.0, 0.0),
            UpsampleMode::Bilinear { align_corners } => {
                let out = d * self.s;
                let src = if align_corners {
                    let scale = if out > 1 {
                        (d - 1) as f32 / (out - 1) as f32
                    } else {
                        0.0
                    };
                    scale * o as f32
                } else {
                    let scale = (1.0 / self.s as f64) as f32;
                    let src = scale * (o as f32 + 0.5) - 0.5;
                    if src < 0.0 {
                        0.0
                    } else {
                        src
                    }
                };
                let i0 = (src.floor() as usize).min(d - 1);
                let l1 = (src - i0 as f32).clamp(0.0, 1.0);
                let i1 = if i0 < d - 1 { i0 + 1 } else { i0 };
                (i0, i1, 1.0 - l1, l1)
            }
        }
    }
}

/// `y = upsample(x)`: nearest copies `x[oy/s, ox/s]`; bilinear is
/// `λ0ʸ(λ0ˣ·x[i0ʸ, i0ˣ] + λ1ˣ·x[i0ʸ, i1ˣ]) + λ1ʸ(λ0ˣ·x[i1ʸ, i0ˣ] + λ1ˣ·x[i1ʸ, i1ˣ])`.
pub fn upsample2d_forward(u: &Upsample2d, n: usize, x: &[f32], y: &mut [f32]) {
    u.check(n, x.len(), y.len());
    let (wo, plane) = (u.wo(), u.h * u.w);
    for (xp, yp) in x.chunks_exact(plane).zip(y.chunks_exact_mut(u.ho() * wo)) {
        for (oy, row) in yp.chunks_exact_mut(wo).enumerate() {
            let (y0, y1, hy0, hy1) = u.source(oy, u.h);
            let (r0, r1) = (&xp[y0 * u.w..(y0 + 1) * u.w], &xp[y1 * u.w..(y1 + 1) * u.w]);
            if u.mode == UpsampleMode::Nearest {
                for (ox, o) in row.iter_mut().enumerate() {
                    *o = r0[ox / u.s];
                }
                continue;
            }
            for (ox, o) in row.iter_mut().enumerate() {
                let (x0, x1, wx0, wx1) = u.source(ox, u.w);
                *o = hy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + hy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
            }
        }
    }
}

/// The gradient of [`upsample2d_forward`], its adjoint (overwrites `dx`): each output's
/// gradient is added to the inputs it read, times the weights it read them with.
pub fn upsample2d_backward(u: &Upsample2d, n: usize, dy: &[f32], dx: &mut [f32]) {
    u.check(n, dx.len(), dy.len());
    let (wo, plane) = (u.wo(), u.h * u.w);
    dx.fill(0.0);
    for (dxp, dyp) in dx.chunks_exact_mut(plane).zip(dy.chunks_exact(u.ho() * wo)) {
        for (oy, row) in dyp.chunks_exact(wo).enumerate() {
            let (y0, y1, hy0, hy1) = u.source(oy, u.h);
            if u.mode == UpsampleMode::Nearest {
                for (ox, &g) in row.iter().enumerate() {
                    dxp[y0 * u.w + ox / u.s] += g;
                }
                continue;
            }
            for (ox, &g) in row.iter().enumerate() {
                let (x0, x1, wx0, wx1) = u.source(ox, u.w);
                dxp[y0 * u.w + x0] += hy0 * wx0 * g;
                dxp[y0 * u.w + x1] += hy0 * wx1 * g;
                dxp[y1 * u.w + x0] += hy1 * wx0 * g;
                dxp[y1 * u.w + x1] += hy1 * wx1 * g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// PyTorch's nearest source index, `floor(o · (float)(1/s))` in f32, is `o / s` for
    /// every factor up to 32 and every output index below 2^20.
    #[test]
    fn nearest_index_is_integer_division() {
        for s in 1..=32usize {
            let scale = (1.0 / s as f64) as f32;
            for o in 0..1usize << 20 {
                assert_eq!(
                    (o as f32 * scale).floor() as usize,
                    o / s,
                    "s = {s}, o = {o}"
                );
            }
        }
    }
}
