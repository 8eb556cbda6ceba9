//! Adaptive average pooling (`F.adaptive_avg_pool2d`): the output size is given, and each
//! output averages its own bin of the input, PyTorch's bins being
//! `[floor(i·H/oh), ceil((i+1)·H/oh))` along each axis (they overlap when `oh` does not
//! divide `H`, and differ in size, so each output divides by its own bin).

/// The geometry of one adaptive pool over NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptivePool2d {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl AdaptivePool2d {
    /// Bin `o` of `out` over `d` input rows or columns: `[start, end)`.
    fn bin(o: usize, out: usize, d: usize) -> (usize, usize) {
        (o * d / out, ((o + 1) * d).div_ceil(out))
    }

    fn check(&self, n: usize, x: usize, y: usize) {
        assert!(
            self.oh > 0 && self.ow > 0 && self.h > 0 && self.w > 0,
            "adaptive_avgpool: empty size in {self:?}"
        );
        assert!(
            x == n * self.c * self.h * self.w && y == n * self.c * self.oh * self.ow,
            "adaptive_avgpool: lengths"
        );
    }
}

/// `y[oy, ox]` = the mean of `x` over bin `oy` of the rows and bin `ox` of the columns.
pub fn adaptive_avgpool2d_forward(p: &AdaptivePool2d, n: usize, x: &[f32], y: &mut [f32]) {
    p.check(n, x.len(), y.len());
    let (plane, outs) = (p.h * p.w, p.oh * p.ow);
    for (xp, yp) in x.chunks_exact(plane).zip(y.chunks_exact_mut(outs)) {
        for oy in 0..p.oh {
            let (y0, y1) = AdaptivePool2d::bin(oy, p.oh, p.h);
            for ox in 0..p.ow {
                let (x0, x1) = AdaptivePool2d::bin(ox, p.ow, p.w);
                let mut sum = 0.0f32;
                for iy in y0..y1 {
                    sum += xp[iy * p.w + x0..iy * p.w + x1].iter().sum::<f32>();
                }
                yp[oy * p.ow + ox] = sum / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    }
}

/// The gradient of adaptive average pooling (overwrites `dx`): each output's gradient,
/// divided by its bin's size, goes to every input of its bin (inputs in two bins get both).
pub fn adaptive_avgpool2d_backward(p: &AdaptivePool2d, n: usize, dy: &[f32], dx: &mut [f32]) {
    p.check(n, dx.len(), dy.len());
    let (plane, outs) = (p.h * p.w, p.oh * p.ow);
    dx.fill(0.0);
    for (dxp, dyp) in dx.chunks_exact_mut(plane).zip(dy.chunks_exact(outs)) {
        for oy in 0..p.oh {
            let (y0, y1) = AdaptivePool2d::bin(oy, p.oh, p.h);
            for ox in 0..p.ow {
                let (x0, x1) = AdaptivePool2d::bin(ox, p.ow, p.w);
                let g = dyp[oy * p.ow + ox] / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    dxp[iy * p.w + x0..iy * p.w + x1]
                        .iter_mut()
                        .for_each(|d| *d += g);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's bins for 5 rows into 3: [0, 2), [1, 4), [3, 5); and 5 into 7, where bins
    /// of one and two rows overlap.
    #[test]
    fn bins_as_pytorch() {
        let bins: Vec<_> = (0..3).map(|o| AdaptivePool2d::bin(o, 3, 5)).collect();
        assert_eq!(bins, [(0, 2), (1, 4), (3, 5)]);
        let bins: Vec<_> = (0..7).map(|o| AdaptivePool2d::bin(o, 7, 5)).collect();
        assert_eq!(
            bins,
            [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5)]
        );
    }
}
