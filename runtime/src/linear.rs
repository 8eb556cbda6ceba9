//! The linear layer as one GEMM each way, with PyTorch's weight layout `[out, in]`:
//! - forward:          `Y (n×out) = X (n×in) · Wᵀ (in×out) + b` (bias and activation in the
//!   epilogue)
//! - backward, data:   `dX (n×in) = dY (n×out) · W (out×in)`
//! - backward, weight: `dW (out×in) = dYᵀ (out×n) · X (n×in)`, `db = Σ_n dY`

use crate::gemm::{sgemm, Act, Epilogue};

/// `y = x·wᵀ + bias`, then ReLU if `relu`: [`linear_forward_act`] with [`Act::Relu`] or
/// [`Act::None`].
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    n: usize,
    fin: usize,
    fout: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    linear_forward_act(n, fin, fout, x, w, bias, Act::relu_if(relu), y);
}

/// `y = act(x·wᵀ + bias)`, the activation in the GEMM's epilogue.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_act(
    n: usize,
    fin: usize,
    fout: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
) {
    assert!(
        x.len() == n * fin && w.len() == fout * fin && y.len() == n * fout,
        "linear: lengths"
    );
    let epi = match bias {
        Some(b) => Epilogue::bias_per_col(b),
        None => Epilogue::default(),
    }
    .act(act);
    // Wᵀ: element (p of in, j of out) is w[j·in + p].
    sgemm(
        n,
        fout,
        fin,
        1.0,
        x,
        fin as isize,
        1,
        w,
        1,
        fin as isize,
        0.0,
        y,
        fout as isize,
        1,
        epi,
    );
}

/// `dx = dy·w` (overwrites `dx`).
pub fn linear_backward_data(
    n: usize,
    fin: usize,
    fout: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    backward_data(n, fin, fout, w, dy, dx, 0.0);
}

/// `dx += dy·w`: [`linear_backward_data`] adding into `dx` through the GEMM's beta.
pub fn linear_backward_data_acc(
    n: usize,
    fin: usize,
    fout: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    backward_data(n, fin, fout, w, dy, dx, 1.0);
}

/// `dx = beta·dx + dy·w` (beta 0: `dx` only written).
fn backward_data(
    n: usize,
    fin: usize,
    fout: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    beta: f32,
) {
    assert!(
        dx.len() == n * fin && w.len() == fout * fin && dy.len() == n * fout,
        "linear: lengths"
    );
    sgemm(
        n,
        fin,
        fout,
        1.0,
        dy,
        fout as isize,
        1,
        w,
        fin as isize,
        1,
        beta,
        dx,
        fin as isize,
        1,
        Epilogue::default(),
    );
}

/// `dw = dyᵀ·x` and, if asked, `db = Σ_n dy` (overwrites both).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_weight(
    n: usize,
    fin: usize,
    fout: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    assert!(
        x.len() == n * fin && dw.len() == fout * fin && dy.len() == n * fout,
        "linear: lengths"
    );
    // dyᵀ: element (j of out, i of n) is dy[i·out + j].
    sgemm(
        fout,
        fin,
        n,
        1.0,
        dy,
        1,
        fout as isize,
        x,
        fin as isize,
        1,
        0.0,
        dw,
        fin as isize,
        1,
        Epilogue::default(),
    );
    if let Some(db) = db {
        assert_eq!(db.len(), fout, "linear: bias gradient length");
        db.fill(0.0);
        for row in dy.chunks_exact(fout) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}
