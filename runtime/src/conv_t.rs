//! Transposed convolution as the adjoint of convolution. A conv_t from `c` to `out` channels
//! with output size `(h-1)s - 2p + d(k-1) + op + 1` is the backward-data pass of the conv
//! that maps its output back to its input (`out` to `c` channels, same `k, s, p, d`):
//! - forward = GEMM + col2im (that conv's backward data), plus the bias;
//! - backward, data = im2col + GEMM (that conv's forward);
//! - backward, weight = that conv's backward weight with the roles of x and y swapped.
//!
//! Weights are `[c, out/groups, kh, kw]` (PyTorch's layout), which is exactly the layout of
//! the adjoint conv's weights `[its out = c, its in/groups = out/groups, kh, kw]`.

use crate::conv::{self, bias_backward, Conv2d};

/// The geometry of one transposed convolution over NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvT2d {
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
    /// Output padding: extra rows at the bottom.
    pub oph: usize,
    /// Output padding: extra columns at the right.
    pub opw: usize,
    /// Dilation along the height.
    pub dh: usize,
    /// Dilation along the width.
    pub dw: usize,
    /// Channels split into this many independent convolutions.
    pub groups: usize,
}

impl ConvT2d {
    /// Output height: `(h-1)s - 2p + d(k-1) + op + 1`.
    pub fn ho(&self) -> usize {
        (self.h - 1) * self.sh + self.dh * (self.kh - 1) + self.oph + 1 - 2 * self.ph
    }

    /// Output width.
    pub fn wo(&self) -> usize {
        (self.w - 1) * self.sw + self.dw * (self.kw - 1) + self.opw + 1 - 2 * self.pw
    }

    /// Weights: `[c, out/groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.c * (self.out / self.groups) * self.kh * self.kw
    }

    /// Length of the col2im buffer that the conv_t functions need.
    pub fn col_len(&self) -> usize {
        self.adjoint().col_len()
    }

    /// The conv whose backward-data pass this is: from this op's output to its input.
    pub fn adjoint(&self) -> Conv2d {
        let g = Conv2d {
            c: self.out,
            h: self.ho(),
            w: self.wo(),
            out: self.c,
            kh: self.kh,
            kw: self.kw,
            sh: self.sh,
            sw: self.sw,
            ph: self.ph,
            pw: self.pw,
            dh: self.dh,
            dw: self.dw,
            groups: self.groups,
        };
        assert!(
            g.ho() == self.h && g.wo() == self.w,
            "conv_t: output padding must be smaller than the stride in {self:?}"
        );
        g
    }
}

/// `y = conv_t(x, w) + bias`.
pub fn conv_t2d_forward(
    t: &ConvT2d,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) {
    let g = t.adjoint();
    conv::conv2d_backward_data(&g, n, w, x, y, col);
    if let Some(b) = bias {
        assert_eq!(b.len(), t.out, "conv_t: bias length");
        let plane = g.h * g.w;
        for img in y.chunks_exact_mut(t.out * plane) {
            for (ch, &bc) in img.chunks_exact_mut(plane).zip(b) {
                ch.iter_mut().for_each(|v| *v += bc);
            }
        }
    }
}

/// `dx = ∂L/∂x` given `dy` (overwrites `dx`).
pub fn conv_t2d_backward_data(
    t: &ConvT2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    col: &mut [f32],
) {
    conv::conv2d_forward(&t.adjoint(), n, dy, w, None, false, dx, col);
}

/// `dx += ∂L/∂x` given `dy`: [`conv_t2d_backward_data`] adding into `dx` through the GEMM's
/// beta.
pub fn conv_t2d_backward_data_acc(
    t: &ConvT2d,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    col: &mut [f32],
) {
    conv::conv2d_forward_acc(&t.adjoint(), n, dy, w, dx, col);
}

/// `dw = ∂L/∂w` and, if asked, `db = ∂L/∂b` (overwrites both).
pub fn conv_t2d_backward_weight(
    t: &ConvT2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    col: &mut [f32],
) {
    let g = t.adjoint();
    // The adjoint conv reads dy (this op's output side) and writes x (its input side).
    conv::conv2d_backward_weight(&g, n, dy, x, dw, None, col);
    if let Some(db) = db {
        bias_backward(n, t.out, g.h * g.w, dy, db);
    }
}
