//! The direct forward's inner loops: one output plane from its group's phases, the taps of
//! several output rows summed in registers at once, the epilogue (bias, accumulation,
//! activation) applied as each block is stored.
//!
//! Each output sums its taps in order, so one lane is a chain of dependent multiply-adds
//! (9 for a 3×3 kernel, 4 cycles each). Two vectors of 16 outputs per chain left the FMA
//! units idle most of the time (latency-bound: ~2.3 cycles an output); four rows of 16 at
//! once keep eight chains in flight, enough to cover the latency.

use crate::gemm::Act;

/// What becomes of one output plane's sums: `y = act(beta·y + sum + b)`.
#[derive(Clone, Copy)]
pub(super) struct Out {
    pub b: f32,
    pub act: Act,
    pub beta: f32,
}

/// Output rows summed together.
const ROWS: usize = 4;

/// One output plane `yo` (`ho × wo`) from its group's phases `t`, whose rows are `cols`
/// long (output `(oy, ox)` reads tap `k` at `t[at[k] + oy·cols + ox]`), weights `wts`.
pub(super) fn output_plane(
    wo: usize,
    cols: usize,
    t: &[f32],
    at: &[usize],
    wts: &[f32],
    out: Out,
    yo: &mut [f32],
) {
    dispatch!(output_plane_body, output_plane_fast, (wo: usize, cols: usize, t: &[f32], at: &[usize], wts: &[f32], out: Out, yo: &mut [f32]));
}

/// The plane's geometry and weights, for the loops below.
#[derive(Clone, Copy)]
struct Plane<'a> {
    wo: usize,
    cols: usize,
    t: &'a [f32],
    at: &'a [usize],
    wts: &'a [f32],
    b: f32,
    hi: f32,
}

#[inline(always)]
fn output_plane_body<const FMA: bool>(
    wo: usize,
    cols: usize,
    t: &[f32],
    at: &[usize],
    wts: &[f32],
    out: Out,
    yo: &mut [f32],
) {
    let p = Plane {
        wo,
        cols,
        t,
        at,
        wts,
        b: out.b,
        hi: out.act.clamp_hi().unwrap_or(f32::INFINITY),
    };
    // The epilogue's choices made once per plane, not per element: a branch per element
    // on an activation's sign mispredicts about half the time (ReLU6 after MobileNetV2's
    // depthwise convs ran 2.5× slower so).
    match (out.beta != 0.0, out.act != Act::None) {
        (false, false) => plane::<FMA, false, false>(&p, yo),
        (false, true) => plane::<FMA, false, true>(&p, yo),
        (true, false) => plane::<FMA, true, false>(&p, yo),
        (true, true) => plane::<FMA, true, true>(&p, yo),
    }
}

#[inline(always)]
fn plane<const FMA: bool, const ACC: bool, const CLAMP: bool>(p: &Plane, yo: &mut [f32]) {
    let ho = yo.len() / p.wo.max(1);
    let mut oy = 0;
    while oy + ROWS <= ho {
        group::<ROWS, FMA, ACC, CLAMP>(p, oy, yo);
        oy += ROWS;
    }
    while oy < ho {
        group::<1, FMA, ACC, CLAMP>(p, oy, yo);
        oy += 1;
    }
}

/// Output rows `oy..oy + R`: first the last block of each row (a part of 16 or 8), then
/// the whole blocks of 16 left to right.
#[inline(always)]
fn group<const R: usize, const FMA: bool, const ACC: bool, const CLAMP: bool>(
    p: &Plane,
    oy: usize,
    yo: &mut [f32],
) {
    let wo = p.wo;
    let full = wo / 16 * 16;
    let r = wo - full;
    if r > 0 {
        if r > 8 {
            last::<R, 16, FMA, ACC, CLAMP>(p, oy, full, r, yo);
        } else {
            last::<R, 8, FMA, ACC, CLAMP>(p, oy, full, r, yo);
        }
    }
    for f in (0..full).step_by(16) {
        let acc = sums::<R, 16, FMA>(p, oy, f);
        for (i, a) in acc.iter().enumerate() {
            let at = (oy + i) * wo + f;
            finish::<16, ACC, CLAMP>(a, p, (&mut yo[at..at + 16]).try_into().expect("16"));
        }
    }
}

/// The last `r` outputs of rows `oy..oy + R`, from column `f`, as blocks of `W`. Stored
/// whole where a block's extra lanes land on later rows' outputs, which those rows then
/// overwrite (the sums read only `t`; rows are stored in order, and this block before the
/// others of its rows): a 14-wide row is one block of 16 and no copy. Else through a
/// temporary: when accumulating (the extra lanes would read `y`) and at the plane's end.
#[inline(always)]
fn last<const R: usize, const W: usize, const FMA: bool, const ACC: bool, const CLAMP: bool>(
    p: &Plane,
    oy: usize,
    f: usize,
    r: usize,
    yo: &mut [f32],
) {
    let wo = p.wo;
    let acc = sums::<R, W, FMA>(p, oy, f);
    let whole = !ACC && (oy + R - 1) * wo + f + W <= yo.len();
    for (i, a) in acc.iter().enumerate() {
        let at = (oy + i) * wo + f;
        if whole {
            finish::<W, ACC, CLAMP>(a, p, (&mut yo[at..at + W]).try_into().expect("W"));
        } else {
            let mut tmp = [0.0f32; W];
            if ACC {
                tmp[..r].copy_from_slice(&yo[at..at + r]);
            }
            finish::<W, ACC, CLAMP>(a, p, &mut tmp);
            yo[at..at + r].copy_from_slice(&tmp[..r]);
        }
    }
}

/// The sums of `W` outputs from column `f` in each of rows `oy..oy + R`: the taps in order
/// from zero, all `R·W` in registers.
#[inline(always)]
fn sums<const R: usize, const W: usize, const FMA: bool>(
    p: &Plane,
    oy: usize,
    f: usize,
) -> [[f32; W]; R] {
    let mut acc = [[0.0f32; W]; R];
    for (&a, &wv) in p.at.iter().zip(p.wts) {
        for (i, acc) in acc.iter_mut().enumerate() {
            let s = a + (oy + i) * p.cols + f;
            let x: &[f32; W] = p.t[s..s + W].try_into().expect("W inputs");
            for l in 0..W {
                acc[l] = if FMA {
                    wv.mul_add(x[l], acc[l])
                } else {
                    wv * x[l] + acc[l]
                };
            }
        }
    }
    acc
}

/// `out = act(out + sum + b)` (or `act(sum + b)`), the clamp written as selects (NaN
/// passes, as in the GEMM's epilogue).
#[inline(always)]
fn finish<const W: usize, const ACC: bool, const CLAMP: bool>(
    acc: &[f32; W],
    p: &Plane,
    out: &mut [f32; W],
) {
    for l in 0..W {
        let mut v = if ACC {
            out[l] + acc[l] + p.b
        } else {
            acc[l] + p.b
        };
        if CLAMP {
            v = if v < 0.0 { 0.0 } else { v };
            v = if v > p.hi { p.hi } else { v };
        }
        out[l] = v;
    }
}
