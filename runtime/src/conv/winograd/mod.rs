//! Winograd convolution for 3×3 stride-1 convs: F(2×2, 3×3) and F(4×4, 3×3).
//!
//! Each output map is cut into `m × m` tiles (`m` = 2 or 4); the `α × α` input patch of a tile
//! (`α = m + 2`) and each 3×3 kernel are moved to the Winograd domain, where the convolution
//! is an elementwise product summed over input channels, that is `α²` independent GEMMs:
//!
//! - forward:          `M[ξ] (out × T) = U[ξ] (out × c) · V[ξ] (c × T)`, with
//!   `U = G·g·Gᵀ` per kernel, `V = Bᵀ·d·B` per tile and channel, and `y = Aᵀ·M·A` per tile;
//! - backward, data:   the forward of `dy` (padded by `2 - p`) with the kernels turned by 180°
//!   and their channels swapped;
//! - backward, weight: `dU[ξ] (out × c) = Σ_tiles dM[ξ] (out × T) · V[ξ]ᵀ (T × c)` with
//!   `dM = A·dY·Aᵀ` per tile, then `dg = Gᵀ·dU·G` per kernel; `db` as im2col's.
//!
//! F4 does 36 products per 16 outputs where im2col does 9 per output (4× fewer multiply-adds,
//! 2.25× for F2), for more rounding: against a float64 definition, the largest error relative
//! to the sum of the products' magnitudes measured 0.5e-6 to 3.4e-6 for F4 and up to 3.1e-7
//! for F2 (im2col: up to 3.0e-7); `examples/winograd_error.rs` prints it per layer. The transforms cost
//! memory traffic instead of arithmetic, so Winograd wins on large maps and batches and loses
//! where the transformed weights (`α²/9` times the weights) are read for few tiles: the caller
//! chooses per layer (`examples/winograd_bench.rs`; one thread, batch 8, F4 against im2col:
//! 1.4–1.6× faster on 56×56 and 28×28 maps, about even on 14×14, slower on 7×7, and at
//! batch 1 slower from 14×14 down).
//!
//! The calls mirror the im2col ones of [`crate::conv`] (slots, `_acc` forms, activation
//! epilogue in the order of the GEMM's) with a [`Tile`] and their own scratch of
//! [`scratch_len`] floats. Layout: `plan.rs` (tiles and blocks), `transform.rs` (the matrices),
//! `simd.rs` (the lane kernels), `run.rs` (the passes), `tests.rs`.

mod plan;
mod run;
mod simd;
mod transform;

use crate::gemm::Act;
use crate::im2col::Conv2d;
use crate::tensor::Slot;
use plan::Plan;
use transform::{F2, F4};

/// The micro-kernel the global context runs, whose panels the transforms write.
fn kind() -> crate::gemm::KernelKind {
    crate::gemm::Context::global().kernel()
}

/// The output tile: F(2×2, 3×3) or F(4×4, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// 2×2 outputs from 4×4 inputs: 2.25× fewer multiplies, error near im2col's.
    F2,
    /// 4×4 outputs from 6×6 inputs: 4× fewer multiplies, about 10× im2col's error.
    F4,
}

impl Tile {
    /// Outputs per tile side.
    pub fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }
}

/// Whether Winograd computes `g`: a 3×3 kernel, stride 1, no dilation, one group, padding
/// at most 2 (the data gradient pads `dy` by `2 - p`).
pub fn applies(g: &Conv2d) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.groups == 1
        && g.ph <= 2
        && g.pw <= 2
}

/// The conv whose forward is `g`'s data gradient: `dy` (`out × ho × wo`) to `dx`
/// (`c × h × w`), padded by `2 - p`.
fn transposed(g: &Conv2d) -> Conv2d {
    Conv2d {
        c: g.out,
        h: g.ho(),
        w: g.wo(),
        out: g.c,
        ph: 2 - g.ph,
        pw: 2 - g.pw,
        ..*g
    }
}

/// Floats of scratch every call for `g` with `tile` over `n` images needs (any pass). It
/// stops growing once `n` images fill a block of tiles, so `usize::MAX` gives the scratch
/// for any batch.
pub fn scratch_len(g: &Conv2d, tile: Tile, n: usize) -> usize {
    assert!(applies(g), "winograd: {g:?} is not a 3×3 stride-1 conv");
    // A block never holds more tile rows than BLOCK_TILES.
    let n = n.min(plan::BLOCK_TILES);
    let gt = transposed(g);
    let p = Plan::new(g, tile, n);
    let forward = run::forward_len(&p, g);
    let data = run::forward_len(&Plan::new(&gt, tile, n), &gt);
    forward.max(data).max(run::weight_len(&p, g))
}

/// Panics unless the call's buffers fit `g` (a bug in the caller).
#[allow(clippy::too_many_arguments)]
fn check(g: &Conv2d, tile: Tile, n: usize, x: usize, w: usize, y: usize, ys: Slot, scratch: usize) {
    g.check();
    assert!(applies(g), "winograd: {g:?} is not a 3×3 stride-1 conv");
    assert_eq!(x, n * g.c * g.h * g.w, "winograd: input length for {g:?}");
    assert_eq!(w, g.weight_len(), "winograd: weight length for {g:?}");
    ys.check(n, g.out * g.ho() * g.wo(), y, "winograd: output");
    assert!(
        scratch >= scratch_len(g, tile, n),
        "winograd: scratch too short for {g:?}"
    );
}

/// `y = act(conv(x, w) + bias + beta·y)`, image `i` of `y` at `ys`.
#[allow(clippy::too_many_arguments)]
fn forward(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
    scratch: &mut [f32],
) {
    check(g, tile, n, x.len(), w.len(), y.len(), ys, scratch.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out, "winograd: bias length");
    }
    let (p, k) = (Plan::new(g, tile, n), kind());
    let xs = Slot::dense(g.c * g.h * g.w);
    match tile {
        Tile::F2 => run::forward::<F2>(k, g, &p, x, xs, w, false, bias, act, y, ys, beta, scratch),
        Tile::F4 => run::forward::<F4>(k, g, &p, x, xs, w, false, bias, act, y, ys, beta, scratch),
    }
}

/// `y = act(conv(x, w) + bias)`: [`crate::conv::conv2d_forward_act`] by Winograd.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_act(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let ys = Slot::dense(g.out * g.ho() * g.wo());
    forward(g, tile, n, x, w, bias, act, y, ys, 0.0, scratch);
}

/// [`conv2d_forward_act`] writing image `i` at `ys` of `y` (a channel slice of a concat).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_slot_act(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    scratch: &mut [f32],
) {
    forward(g, tile, n, x, w, bias, act, y, ys, 0.0, scratch);
}

/// `y = act(conv(x, w) + bias + y)` at `ys` of `y`: a residual summed in the epilogue, as
/// [`crate::conv::conv2d_forward_slot_act_acc`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_slot_act_acc(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    scratch: &mut [f32],
) {
    forward(g, tile, n, x, w, bias, act, y, ys, 1.0, scratch);
}

/// `dx = beta·dx + ∂L/∂x`, image `i` of `dy` at `dys`: a Winograd forward of `dy` with the
/// turned kernels.
#[allow(clippy::too_many_arguments)]
fn backward_data(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    beta: f32,
    scratch: &mut [f32],
) {
    g.check();
    assert!(applies(g), "winograd: {g:?} is not a 3×3 stride-1 conv");
    assert_eq!(w.len(), g.weight_len(), "winograd: weight length for {g:?}");
    assert_eq!(
        dx.len(),
        n * g.c * g.h * g.w,
        "winograd: dx length for {g:?}"
    );
    dys.check(n, g.out * g.ho() * g.wo(), dy.len(), "winograd: dy");
    assert!(
        scratch.len() >= scratch_len(g, tile, n),
        "winograd: scratch too short for {g:?}"
    );
    let gt = transposed(g);
    let p = Plan::new(&gt, tile, n);
    let dxs = Slot::dense(g.c * g.h * g.w);
    match tile {
        Tile::F2 => run::forward::<F2>(
            kind(),
            &gt,
            &p,
            dy,
            dys,
            w,
            true,
            None,
            Act::None,
            dx,
            dxs,
            beta,
            scratch,
        ),
        Tile::F4 => run::forward::<F4>(
            kind(),
            &gt,
            &p,
            dy,
            dys,
            w,
            true,
            None,
            Act::None,
            dx,
            dxs,
            beta,
            scratch,
        ),
    }
}

/// `dx = ∂L/∂x` given `dy = ∂L/∂y` (overwrites `dx`).
pub fn conv2d_backward_data(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    backward_data(g, tile, n, w, dy, dys, dx, 0.0, scratch);
}

/// `dx += ∂L/∂x`: [`conv2d_backward_data`] adding into `dx`.
pub fn conv2d_backward_data_acc(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    backward_data(g, tile, n, w, dy, dys, dx, 1.0, scratch);
}

/// [`conv2d_backward_data`] reading image `i` of `dy` at `dys`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_data_slot(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    backward_data(g, tile, n, w, dy, dys, dx, 0.0, scratch);
}

/// [`conv2d_backward_data_acc`] reading image `i` of `dy` at `dys`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_data_slot_acc(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    w: &[f32],
    dy: &[f32],
    dys: Slot,
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    backward_data(g, tile, n, w, dy, dys, dx, 1.0, scratch);
}

/// `dw = ∂L/∂w` and, if asked, `db = ∂L/∂b` (overwrites both).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    let dys = Slot::dense(g.out * g.ho() * g.wo());
    conv2d_backward_weight_slot(g, tile, n, x, dy, dys, dw, db, scratch);
}

/// [`conv2d_backward_weight`] reading image `i` of `dy` at `dys`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight_slot(
    g: &Conv2d,
    tile: Tile,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    check(g, tile, n, x.len(), dw.len(), dy.len(), dys, scratch.len());
    let p = Plan::new(g, tile, n);
    match tile {
        Tile::F2 => run::weight::<F2>(g, &p, x, dy, dys, dw, scratch),
        Tile::F4 => run::weight::<F4>(g, &p, x, dy, dys, dw, scratch),
    }
    if let Some(db) = db {
        super::bias_backward_slot(n, g.out, g.ho() * g.wo(), dy, dys, db);
    }
}

#[cfg(test)]
mod tests;
