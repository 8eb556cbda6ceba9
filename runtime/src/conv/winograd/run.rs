//! The three passes as rounds over blocks of tiles: transform the block's tiles (one task
//! per channel), one GEMM per Winograd point, transform back (one task per output plane).
//! Tasks write disjoint elements, and the GEMMs' reduction order does not depend on their
//! split, so results do not depend on the thread count.
//!
//! The forward (and the data gradient, a forward) writes its GEMMs' operands straight in the
//! kernel's panels ([`Packing`]), so that nothing is packed per GEMM, and runs the `α²`
//! GEMMs of a block as parallel tasks on one thread each: `U` in A panels of every point,
//! `V` in B panels, the products `M` point by point (`α² × out × stride`). The weight
//! gradient reduces over tiles, so its GEMMs read `V` (`c × α² × stride`) and `dM`
//! (`out × α² × stride`) row-major per channel with strides, through [`sgemm`] (one point
//! per task as well), into `dU` point by point (`α² × out × c`).

use rayon::prelude::*;

use super::plan::Plan;
use super::simd;
use super::simd::{Dest, Shared};
use super::transform::{Transform, LANES};
use crate::gemm::{sgemm, sgemm_packed, Act, Context, Epilogue, KernelKind, Panels};
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

/// Where the forward's GEMM operands go for `kind`'s kernel: `U` as A panels of `MR` output
/// channels (point `ξ` at depth `ξ·c`), `V` as B panels of `NR` tiles (point `ξ` at depth
/// `ξ·c`), so that point `ξ`'s A and B start `ξ·c·MR` and `ξ·c·NR` floats in.
#[derive(Clone, Copy, Debug)]
pub(super) struct Packing {
    kind: KernelKind,
    a: Panels,
    b: Panels,
}

/// The widest panels of any kernel, for scratch sizes that fit whichever runs.
const MAX_MR: usize = 6;
const MAX_NR: usize = 16;
/// Floats of slack to align `V` to 32 bytes (the kernel loads B panels aligned).
const ALIGN: usize = 8;

impl Packing {
    fn new(kind: KernelKind, p: &Plan, g: &Conv2d) -> Packing {
        let bl = kind.blocking();
        assert!(bl.mr <= MAX_MR && bl.nr <= MAX_NR && bl.nr.is_multiple_of(LANES));
        let depth = p.points() * g.c;
        Packing {
            kind,
            a: Panels::a(kind, depth * bl.mr),
            b: Panels::b(kind, depth * bl.nr),
        }
    }

    /// Floats of `U` for `out` rows, at most (any kernel).
    fn u_len(p: &Plan, g: &Conv2d) -> usize {
        (g.out + MAX_MR) * p.points() * g.c
    }

    /// Floats of a block's `V`, at most (any kernel), alignment slack included.
    fn v_len(p: &Plan, g: &Conv2d) -> usize {
        (p.tb() + MAX_NR) * p.points() * g.c + ALIGN
    }
}

/// Floats of scratch [`forward`] needs for `g` and `n` images.
pub(super) fn forward_len(p: &Plan, g: &Conv2d) -> usize {
    Packing::u_len(p, g) + p.points() * g.out * p.stride() + Packing::v_len(p, g)
}

/// Floats of scratch [`weight`] needs for `g` and `n` images.
pub(super) fn weight_len(p: &Plan, g: &Conv2d) -> usize {
    p.u_len(g) + p.block_len(g.c) + p.block_len(g.out)
}

/// Writes `U` for `g`'s `out × c` kernels from `w` in `pk`'s A panels (with `flip`, the
/// data gradient's: see [`simd::weights`]); one task per panel.
fn transform_weights<T: Transform>(pk: &Packing, g: &Conv2d, w: &[f32], flip: bool, u: &mut [f32]) {
    let (pts, rows, cols, mr) = (T::A * T::A, g.out, g.c, pk.a.side);
    let items: Vec<_> = u
        .chunks_mut(pk.a.stride)
        .take(rows.div_ceil(mr))
        .enumerate()
        .collect();
    par_each(
        items,
        rows * cols * pts,
        || (),
        |(q, panel), _| simd::weights::<T>(w, flip, rows, cols, q, mr, panel),
    );
}

/// Writes `V` for the tile rows `rows` of `x` (images at `xs`, geometry `g`): in `pk`'s B
/// panels, or with `None` channel by channel in `α² × stride` rows.
#[allow(clippy::too_many_arguments)]
fn transform_inputs<T: Transform>(
    p: &Plan,
    g: &Conv2d,
    x: &[f32],
    xs: Slot,
    rows: &std::ops::Range<usize>,
    pk: Option<&Packing>,
    v: &mut [f32],
) {
    let work = g.c * rows.len() * p.tw * p.points();
    let buf = || vec![0.0f32; simd::input_buf_len(p)];
    let run =
        |ch, dest, buf: &mut Vec<f32>| simd::input::<T>(g, p, x, xs, ch, rows.clone(), buf, dest);
    match pk {
        None => {
            let items: Vec<_> = v
                .chunks_exact_mut(p.points() * p.stride())
                .enumerate()
                .collect();
            par_each(items, work, buf, |(ch, vc), b| run(ch, Dest::Rows(vc), b));
        }
        Some(pk) => {
            let out = Shared::new(v);
            let (panels, c) = (pk.b, g.c);
            par_each((0..g.c).collect(), work, buf, |ch, b| {
                run(
                    ch,
                    Dest::Panels {
                        out: &out,
                        panels,
                        c,
                    },
                    b,
                )
            });
        }
    }
}

/// `y = act(conv(x, w) + bias + beta·y)` by Winograd: images of `x` at `xs`, of `y` at `ys`.
/// With `flip`, `w` holds the kernels of the conv whose data gradient `g` is (see
/// [`simd::weights`]). `kind` is the micro-kernel whose panels the transforms write (the
/// global context's; the tests run every kernel).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Transform>(
    kind: KernelKind,
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
    let pk = Packing::new(kind, p, g);
    let (u, rest) = scratch.split_at_mut(Packing::u_len(p, g));
    let (mb, rest) = rest.split_at_mut(pts * g.out * st);
    let at = rest.as_ptr().align_offset(32);
    let v = &mut rest[at..Packing::v_len(p, g)];
    transform_weights::<T>(&pk, g, w, flip, u);
    let u: &[f32] = u;
    let (hi, plane) = (act.clamp_hi(), g.ho() * g.wo());
    for rows in p.blocks() {
        let nt = rows.len() * p.tw;
        transform_inputs::<T>(p, g, x, xs, &rows, Some(&pk), v);
        // M[ξ] (out × nt) = U[ξ] (out × c) · V[ξ] (c × nt), one task per point.
        let vb: &[f32] = v;
        let items: Vec<_> = mb.chunks_exact_mut(g.out * st).enumerate().collect();
        par_each(
            items,
            g.out * nt * g.c * pts,
            || (),
            |(xi, m), _| {
                let (a, b) = (&u[xi * g.c * pk.a.side..], &vb[xi * g.c * pk.b.side..]);
                sgemm_packed(pk.kind, g.out, nt, g.c, a, pk.a, b, pk.b, 0.0, m, st);
            },
        );
        let mb: &[f32] = mb;
        let items = planes(y, ys, p.images(&rows), g.out * plane, plane);
        par_each(
            items,
            g.out * nt * pts,
            || vec![0.0f32; simd::output_buf_len(p)],
            |(i, o, yp), z| {
                let b = bias.map_or(0.0, |b| b[o]);
                let mo = &mb[o * st..];
                simd::output::<T>(g, p, mo, g.out * st, rows.clone(), i, yp, b, hi, beta, z);
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
        transform_inputs::<T>(p, g, x, xs, &rows, None, v);
        let items: Vec<_> = dm.chunks_exact_mut(pts * st).enumerate().collect();
        par_each(
            items,
            g.out * nt * pts,
            || vec![0.0f32; simd::grad_buf_len(p)],
            |(o, dmo), buf| simd::grad::<T>(g, p, dy, dys, o, rows.clone(), buf, dmo),
        );
        // dU[ξ] (out × c) += dM[ξ] (out × nt) · V[ξ]ᵀ (nt × c), blocks summed in order;
        // one task per point, each GEMM on its task's thread.
        let beta = if bi == 0 { 0.0 } else { 1.0 };
        let (dmb, vb): (&[f32], &[f32]) = (dm, v);
        let items: Vec<_> = du.chunks_exact_mut(g.out * g.c).enumerate().collect();
        par_each(
            items,
            g.out * g.c * nt * pts,
            || (),
            |(xi, dux), _| {
                let _alone = crate::gemm::one_thread();
                sgemm(
                    g.out,
                    g.c,
                    nt,
                    1.0,
                    &dmb[xi * st..],
                    (pts * st) as isize,
                    1,
                    &vb[xi * st..],
                    1,
                    (pts * st) as isize,
                    beta,
                    dux,
                    g.c as isize,
                    1,
                    Epilogue::NONE,
                );
            },
        );
    }
    let du: &[f32] = du;
    let items: Vec<_> = dw.chunks_exact_mut(g.c * 9).enumerate().collect();
    par_each(
        items,
        g.out * g.c * pts,
        || (),
        |(o, dwo), _| simd::weight_grad::<T>(&du[o * g.c..], g.out * g.c, g.c, dwo),
    );
}
