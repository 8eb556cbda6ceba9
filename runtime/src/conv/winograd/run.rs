//! The three passes as rounds over blocks of tiles: transform the block's tiles (one task
//! per channel), one GEMM per Winograd point (threaded inside, over its output), transform
//! back (one task per output plane). Tasks write disjoint parts, and the GEMMs' reduction
//! order does not depend on their split, so results do not depend on the thread count.
//!
//! Scratch layout, in the caller's buffer: the transformed weights `U` (`rows × α² × cols`),
//! then a block's transformed inputs `V` (`c × α² × stride`) and products `M` (`out × α² × stride`).
//! Each is row-major per channel, so that a task owns one contiguous chunk; the GEMM of
//! point `ξ` reads them with row strides of `α²·cols` and `α²·stride` (see [`Plan::stride`]).

use rayon::prelude::*;

use super::plan::Plan;
use super::simd;
use super::transform::Transform;
use crate::gemm::{sgemm, Act, Context, Epilogue};
use crate::im2col::Conv2d;
use crate::tensor::Slot;

/// Below this much work (multiply-adds or values transformed) a step stays on the calling
/// thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Runs `f(item, state)` over `items`, on the runtime's threads when there is `work` worth
/// splitting; `init` makes each thread's state.
fn par_each<I: Send, S>(
    items: Vec<I>,
    work: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(I, &mut S) + Sync + Send,
) {
    let ctx = Context::global();
    if ctx.threads() > 1 && work >= PARALLEL_MIN && items.len() > 1 {
        ctx.install(|| items.into_par_iter().for_each_init(&init, |s, i| f(i, s)));
    } else {
        let mut s = init();
        items.into_iter().for_each(|i| f(i, &mut s));
    }
}

/// The output planes of images `images` in `y` (images at `ys`, `len` each), `plane` long,
/// as `(image, channel, plane)`.
fn planes(
    y: &mut [f32],
    ys: Slot,
    images: std::ops::Range<usize>,
    len: usize,
    plane: usize,
) -> Vec<(usize, usize, &mut [f32])> {
    let mut out = Vec::with_capacity(images.len() * len / plane.max(1));
    let mut rest = y;
    let mut at = 0;
    for i in images {
        let r = ys.image(i, len);
        let tail = std::mem::take(&mut rest);
        let (img, tail) = tail[r.start - at..].split_at_mut(len);
        rest = tail;
        at = r.end;
        for (o, p) in img.chunks_exact_mut(plane).enumerate() {
            out.push((i, o, p));
        }
    }
    out
}

/// Floats of scratch [`forward`] needs for `g` and `n` images.
pub(super) fn forward_len(p: &Plan, g: &Conv2d) -> usize {
    p.u_len(g) + p.block_len(g.c) + p.block_len(g.out)
}

/// Writes `U` for `g`'s `out × c` kernels from `w` (with `flip`, the data gradient's: see
/// [`simd::weights`]).
fn transform_weights<T: Transform>(p: &Plan, g: &Conv2d, w: &[f32], flip: bool, u: &mut [f32]) {
    let (pts, rows, cols) = (p.points(), g.out, g.c);
    let items: Vec<_> = u.chunks_exact_mut(pts * cols).enumerate().collect();
    par_each(
        items,
        rows * cols * pts,
        || (),
        |(r, ur), _| simd::weights::<T>(w, flip, rows, cols, r, ur),
    );
}

/// Writes `V` for the tile rows `rows` of `x` (images at `xs`, geometry `g`).
#[allow(clippy::too_many_arguments)]
fn transform_inputs<T: Transform>(
    p: &Plan,
    g: &Conv2d,
    x: &[f32],
    xs: Slot,
    rows: &std::ops::Range<usize>,
    v: &mut [f32],
) {
    let chunk = p.points() * p.stride();
    let items: Vec<_> = v.chunks_exact_mut(chunk).enumerate().collect();
    par_each(
        items,
        g.c * rows.len() * p.tw * p.points(),
        || vec![0.0f32; simd::input_buf_len(p)],
        |(ch, vc), buf| simd::input::<T>(g, p, x, xs, ch, rows.clone(), buf, vc),
    );
}

/// `y = act(conv(x, w) + bias + beta·y)` by Winograd: images of `x` at `xs`, of `y` at `ys`.
/// With `flip`, `w` holds the kernels of the conv whose data gradient `g` is (see
/// [`simd::weights`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    xs: Slot,
    w: &[f32],
    flip: bool,
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
    scratch: &mut [f32],
) {
    let (pts, st) = (p.points(), p.stride());
    let (u, rest) = scratch.split_at_mut(p.u_len(g));
    let (v, rest) = rest.split_at_mut(p.block_len(g.c));
    let mb = &mut rest[..p.block_len(g.out)];
    transform_weights::<T>(p, g, w, flip, u);
    let (hi, plane) = (act.clamp_hi(), g.ho() * g.wo());
    for rows in p.blocks() {
        let nt = rows.len() * p.tw;
        transform_inputs::<T>(p, g, x, xs, &rows, v);
        for xi in 0..pts {
            sgemm(
                g.out,
                nt,
                g.c,
                1.0,
                &u[xi * g.c..],
                (pts * g.c) as isize,
                1,
                &v[xi * st..],
                (pts * st) as isize,
                1,
                0.0,
                &mut mb[xi * st..],
                (pts * st) as isize,
                1,
                Epilogue::NONE,
            );
        }
        let mb: &[f32] = mb;
        let items = planes(y, ys, p.images(&rows), g.out * plane, plane);
        par_each(
            items,
            g.out * nt * pts,
            || vec![0.0f32; simd::output_buf_len(p)],
            |(i, o, yp), z| {
                let mo = &mb[o * pts * st..][..pts * st];
                let b = bias.map_or(0.0, |b| b[o]);
                simd::output::<T>(g, p, mo, rows.clone(), i, yp, b, hi, beta, z);
            },
        );
    }
}

/// `dw = ∂L/∂w` (overwritten) by Winograd, `dy` at `dys`.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
    scratch: &mut [f32],
) {
    if p.rows == 0 {
        dw.fill(0.0);
        return;
    }
    let (pts, st) = (p.points(), p.stride());
    let (du, rest) = scratch.split_at_mut(p.u_len(g));
    let (v, rest) = rest.split_at_mut(p.block_len(g.c));
    let dm = &mut rest[..p.block_len(g.out)];
    let xs = Slot::dense(g.c * g.h * g.w);
    for (bi, rows) in p.blocks().enumerate() {
        let nt = rows.len() * p.tw;
        transform_inputs::<T>(p, g, x, xs, &rows, v);
        let items: Vec<_> = dm.chunks_exact_mut(pts * st).enumerate().collect();
        par_each(
            items,
            g.out * nt * pts,
            || vec![0.0f32; simd::grad_buf_len(p)],
            |(o, dmo), buf| simd::grad::<T>(g, p, dy, dys, o, rows.clone(), buf, dmo),
        );
        // dU[ξ] (out × c) += dM[ξ] (out × nt) · V[ξ]ᵀ (nt × c), blocks summed in order.
        let beta = if bi == 0 { 0.0 } else { 1.0 };
        for xi in 0..pts {
            sgemm(
                g.out,
                g.c,
                nt,
                1.0,
                &dm[xi * st..],
                (pts * st) as isize,
                1,
                &v[xi * st..],
                1,
                (pts * st) as isize,
                beta,
                &mut du[xi * g.c..],
                (pts * g.c) as isize,
                1,
                Epilogue::NONE,
            );
        }
    }
    let du: &[f32] = du;
    let items: Vec<_> = dw.chunks_exact_mut(g.c * 9).enumerate().collect();
    par_each(
        items,
        g.out * g.c * pts,
        || (),
        |(o, dwo), _| simd::weight_grad::<T>(&du[o * pts * g.c..][..pts * g.c], g.c, dwo),
    );
}
