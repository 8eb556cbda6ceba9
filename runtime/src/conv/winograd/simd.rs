//! The lane kernels: each transforms eight tiles at once, as arrays of eight `f32` that the
//! compiler turns into one AVX2 register each where the CPU has AVX2 (the `*_fast` wrappers,
//! compiled with `#[target_feature]`, chosen at run time) and into SSE pairs otherwise. Both
//! are the same source and the same arithmetic (no fused multiply-adds), so results do not
//! depend on the CPU.
//!
//! Loads are contiguous because each input row is first dealt into `m` column phases,
//! `P[s][q] = xpad[q·m + s]`: tap `j` of the tiles `tx..tx+8` is `P[j mod m][tx + j div m..]`.

use std::ops::Range;

use super::plan::Plan;
use super::transform::{two_d, Transform, L, LANES, ZERO};
use crate::gemm::Panels;
use crate::im2col::Conv2d;
use crate::tensor::Slot;

/// Calls `$body::<T>(args)` compiled for AVX2 + FMA when the CPU has both, else as is.
macro_rules! dispatch {
    ($body:ident, $fast:ident, $t:ident, ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $fast<T: Transform>($($arg: $ty),*) {
            $body::<T>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above, cached by std); the
            // function is safe code otherwise.
            return unsafe { $fast::<$t>($($arg),*) };
        }
        $body::<$t>($($arg),*)
    }};
}

/// Eight floats from `src`, or the first `cnt` and zeros.
#[inline(always)]
fn load(src: &[f32], cnt: usize) -> L {
    if cnt == LANES {
        return src[..LANES].try_into().expect("eight lanes");
    }
    let mut l = ZERO;
    for (d, &v) in l.iter_mut().zip(&src[..cnt]) {
        *d = v;
    }
    l
}

/// The `m` column phases of a row shifted right by `pad`: `phases[s·lw + q] = xpad[q·m + s]`
/// with `xpad[k] = row[k - pad]`, zero outside the row. `line` (`lw·m` floats, zero outside
/// `pad..pad + row.len()`, which this keeps) holds the shifted row; the phases are then read
/// from it in one interleaved pass that the compiler vectorizes with shuffles (a strided
/// copy per phase went one float at a time, a third of the input transform's time).
#[inline(always)]
fn deal(row: &[f32], pad: usize, m: usize, line: &mut [f32], phases: &mut [f32]) {
    let lw = phases.len() / m;
    line[pad..pad + row.len()].copy_from_slice(row);
    match m {
        2 => deal_m::<2>(&line[..lw * 2], phases),
        4 => deal_m::<4>(&line[..lw * 4], phases),
        _ => unreachable!("winograd tiles are 2 or 4 wide"),
    }
}

#[inline(always)]
fn deal_m<const M: usize>(line: &[f32], phases: &mut [f32]) {
    let lw = phases.len() / M;
    let mut outs: [&mut [f32]; M] = [(); M].map(|_| &mut [][..]);
    let mut rest = phases;
    for o in outs.iter_mut() {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(lw);
        *o = head;
        rest = tail;
    }
    // Eight entries of every phase at a time, from `8·M` consecutive floats.
    let full = lw / LANES * LANES;
    for q0 in (0..full).step_by(LANES) {
        let src = &line[q0 * M..][..M * LANES];
        for (s, out) in outs.iter_mut().enumerate() {
            let mut v = ZERO;
            for (k, l) in v.iter_mut().enumerate() {
                *l = src[k * M + s];
            }
            store(&mut out[q0..], &v);
        }
    }
    for q in full..lw {
        for (s, out) in outs.iter_mut().enumerate() {
            out[q] = line[q * M + s];
        }
    }
}

/// Floats of the shifted-row line [`deal`] needs for a plan whose phases are `lw` long.
fn line_len(p: &Plan, lw: usize) -> usize {
    lw * p.m
}

/// All eight lanes of `l` to `dst`.
#[inline(always)]
fn store(dst: &mut [f32], l: &L) {
    dst[..LANES].copy_from_slice(l);
}

/// `min(max(v, 0), hi)` with NaN passed through (the GEMM epilogue's activation).
#[inline(always)]
fn clamp(v: f32, hi: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Floats of the phase buffer and temporary the input kernel needs.
pub(super) fn input_buf_len(p: &Plan) -> usize {
    let lw = p.tw_lanes() + 1;
    p.alpha * p.m * lw + p.points() * p.stride() + line_len(p, lw)
}

/// Floats of the phase buffer and temporary the gradient kernel needs.
pub(super) fn grad_buf_len(p: &Plan) -> usize {
    let lw = p.tw_lanes();
    p.m * p.m * lw + p.alpha * p.m * p.stride() + line_len(p, lw)
}

/// A buffer every task of a parallel step writes into, each only its own elements: the
/// GEMMs' B panels interleave the channels, so the input transform's tasks (one per
/// channel) cannot each own a slice.
pub(super) struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `Shared` is a `&mut [f32]` lent to the tasks of one parallel step, which write
// disjoint elements (see `Shared::store`) and nothing reads it until the step ends.
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    pub fn new(buf: &'a mut [f32]) -> Shared<'a> {
        Shared {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }

    /// `buf[at..at + 8] = l`.
    ///
    /// # Safety
    /// No other task writes any of these eight floats during the step.
    #[inline(always)]
    unsafe fn store(&self, at: usize, l: &L) {
        assert!(at + LANES <= self.len, "winograd: a store past the panels");
        // SAFETY: in bounds (asserted); the borrow behind `ptr` lives for 'a; no other
        // task writes these floats (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(l.as_ptr(), self.ptr.add(at), LANES) };
    }
}

/// Where the input transform writes channel `ch`'s `V`.
pub(super) enum Dest<'a> {
    /// The channel's `α² × stride`, point `ξ`'s row at `ξ·stride` (the weight gradient's
    /// GEMMs read these rows with strides).
    Rows(&'a mut [f32]),
    /// The forward GEMMs' B panels, shared by every channel's task: tile `t` of point `ξ` at
    /// `panels.at(t, ξ·c + ch)`, so that point `ξ`'s B (`c × tiles`) starts at `ξ·c·NR`.
    Panels {
        out: &'a Shared<'a>,
        panels: Panels,
        c: usize,
    },
}

/// `V[ξ][t] = (Bᵀ·d_t·B)[ξ]` for channel `ch` of `x` (images at `xs`, geometry `g`) and
/// every tile `t` of the tile rows `rows`, to `dest`.
#[allow(clippy::too_many_arguments)]
pub(super) fn input<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    xs: Slot,
    ch: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dest: Dest<'_>,
) {
    dispatch!(input_body, input_fast, T, (g: &Conv2d, p: &Plan, x: &[f32], xs: Slot, ch: usize, rows: Range<usize>, buf: &mut [f32], dest: Dest<'_>))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    x: &[f32],
    xs: Slot,
    ch: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dest: Dest<'_>,
) {
    let (m, a, st) = (T::M, T::A, p.stride());
    let lw = p.tw_lanes() + 1;
    let plane = g.h * g.w;
    // `Bᵀ·d` down the columns of every tile into `tmp` (`α² × stride`), then `·B`.
    let (buf, rest) = buf.split_at_mut(a * m * lw);
    let (line, tmp) = rest.split_at_mut(line_len(p, lw));
    line.fill(0.0);
    for r in rows.clone() {
        let (i, ty) = (r / p.th, r % p.th);
        let xp = &x[xs.image(i, g.c * plane)][ch * plane..][..plane];
        for ri in 0..a {
            let dst = &mut buf[ri * m * lw..][..m * lw];
            let iy = (ty * m + ri).wrapping_sub(g.ph);
            if iy >= g.h {
                dst.fill(0.0);
                continue;
            }
            deal(&xp[iy * g.w..][..g.w], g.pw, m, line, dst);
        }
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            for j in 0..a {
                let mut col = [ZERO; 6];
                for (ri, l) in col.iter_mut().enumerate().take(a) {
                    *l = load(&buf[(ri * m + j % m) * lw + tx + j / m..], LANES);
                }
                let tc = T::input(&col);
                for (ai, l) in tc.iter().enumerate().take(a) {
                    store(&mut tmp[(ai * a + j) * st + t0 + tx..], l);
                }
            }
        }
    }
    // Along the rows, one row of points at a time: `α` streams written at once.
    let nt = rows.len() * p.tw;
    match dest {
        Dest::Rows(v) => input_rows::<T>(nt, st, tmp, |pt, t, l| store(&mut v[pt * st + t..], l)),
        Dest::Panels { out, panels, c } => input_rows::<T>(nt, st, tmp, |pt, t, l| {
            // SAFETY: eight tiles from a multiple of eight, in panels of a multiple of
            // eight, are eight consecutive floats of this channel's depth `pt·c + ch`,
            // which no other channel's task writes.
            unsafe { out.store(panels.at(t, pt * c + ch), l) }
        }),
    }
}

/// `V = tmp·B` along the rows of `tmp` (`α² × st`, from `Bᵀ·d`) for `nt` tiles, each eight
/// tiles of point `ξ` from tile `t` to `put(ξ, t, lanes)`.
#[inline(always)]
fn input_rows<T: Transform>(
    nt: usize,
    st: usize,
    tmp: &[f32],
    mut put: impl FnMut(usize, usize, &L),
) {
    let a = T::A;
    for ai in 0..a {
        for t in (0..nt).step_by(LANES) {
            let mut row = [ZERO; 6];
            for (j, l) in row.iter_mut().enumerate().take(a) {
                *l = load(&tmp[(ai * a + j) * st + t..], LANES);
            }
            let vr = T::input(&row);
            for (bj, l) in vr.iter().enumerate().take(a) {
                put(ai * a + bj, t, l);
            }
        }
    }
}

/// Floats of the temporary the output kernel needs.
pub(super) fn output_buf_len(p: &Plan) -> usize {
    p.m * p.alpha * p.stride()
}

/// Output plane `plane` (channel `o`'s `ho × wo` of image `i`, geometry `g`) from `mo`,
/// channel `o`'s products of the block `rows` (point `ξ`'s row at `ξ·ps`):
/// `y = act(Aᵀ·M·A + beta·y + bias)` on the tiles of image `i`.
///
/// In two sweeps: `Z = Aᵀ·M` for all the image's tiles, reading `α` rows of `M` at a time
/// (which the hardware prefetches; reading all `α²` rows at once stalled on every load),
/// into `z` (`m × α × stride`), then `Z·A` tile row by tile row into the plane.
#[allow(clippy::too_many_arguments)]
pub(super) fn output<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    mo: &[f32],
    ps: usize,
    rows: Range<usize>,
    i: usize,
    plane: &mut [f32],
    bias: f32,
    hi: Option<f32>,
    beta: f32,
    z: &mut [f32],
) {
    dispatch!(output_body, output_fast, T, (g: &Conv2d, p: &Plan, mo: &[f32], ps: usize, rows: Range<usize>, i: usize, plane: &mut [f32], bias: f32, hi: Option<f32>, beta: f32, z: &mut [f32]))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    mo: &[f32],
    ps: usize,
    rows: Range<usize>,
    i: usize,
    plane: &mut [f32],
    bias: f32,
    hi: Option<f32>,
    beta: f32,
    z: &mut [f32],
) {
    let (m, a, st) = (T::M, T::A, p.stride());
    let (ho, wo) = (g.ho(), g.wo());
    // The image's tile rows within the block, and its tiles.
    let lo = rows.start.max(i * p.th);
    let hi_row = rows.end.min((i + 1) * p.th);
    let (t_lo, t_hi) = ((lo - rows.start) * p.tw, (hi_row - rows.start) * p.tw);
    for bj in 0..a {
        for t in (t_lo..t_hi).step_by(LANES) {
            let mut col = [ZERO; 6];
            for (ai, l) in col.iter_mut().enumerate().take(a) {
                *l = load(&mo[(ai * a + bj) * ps + t..], LANES);
            }
            let zc = T::output(&col);
            for (ii, l) in zc.iter().enumerate().take(m) {
                store(&mut z[(ii * a + bj) * st + t..], l);
            }
        }
    }
    for r in lo..hi_row {
        let ty = r % p.th;
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            let cnt = LANES.min(p.tw - tx);
            for ii in 0..m {
                let oy = ty * m + ii;
                if oy >= ho {
                    break;
                }
                let mut zr = [ZERO; 6];
                for (bj, l) in zr.iter_mut().enumerate().take(a) {
                    *l = load(&z[(ii * a + bj) * st + t0 + tx..], LANES);
                }
                let yr = T::output(&zr);
                // The eight tiles' `m` values of this output row, transposed to the row's
                // order, then written as one run (cut at the map's edge).
                let mut run = [0.0f32; LANES * 4];
                for k in 0..LANES {
                    for j in 0..m {
                        run[k * m + j] = yr[j][k];
                    }
                }
                let x0 = tx * m;
                let len = (cnt * m).min(wo - x0);
                let dst = &mut plane[oy * wo + x0..][..len];
                epilogue(&run[..len], dst, bias, hi, beta);
            }
        }
    }
}

/// `dst = act(run + beta·dst + bias)` as the GEMM's epilogue orders it: the product, plus
/// `y`, plus the bias, then the clamp.
#[inline(always)]
fn epilogue(run: &[f32], dst: &mut [f32], bias: f32, hi: Option<f32>, beta: f32) {
    if beta != 0.0 {
        for (d, &r) in dst.iter_mut().zip(run) {
            *d += r;
        }
        for d in dst.iter_mut() {
            *d += bias;
        }
    } else {
        for (d, &r) in dst.iter_mut().zip(run) {
            *d = r + bias;
        }
    }
    if let Some(hi) = hi {
        for d in dst.iter_mut() {
            *d = clamp(*d, hi);
        }
    }
}

/// `dM[ξ][t] = (A·dY_t·Aᵀ)[ξ]` for output channel `o` of `dy` (images at `dys`) and every
/// tile `t` of the tile rows `rows`; `dm` is the channel's `α² × stride`. Outputs past the map
/// are zeros.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    dy: &[f32],
    dys: Slot,
    o: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dm: &mut [f32],
) {
    dispatch!(grad_body, grad_fast, T, (g: &Conv2d, p: &Plan, dy: &[f32], dys: Slot, o: usize, rows: Range<usize>, buf: &mut [f32], dm: &mut [f32]))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_body<T: Transform>(
    g: &Conv2d,
    p: &Plan,
    dy: &[f32],
    dys: Slot,
    o: usize,
    rows: Range<usize>,
    buf: &mut [f32],
    dm: &mut [f32],
) {
    let (m, a, st) = (T::M, T::A, p.stride());
    let (ho, wo) = (g.ho(), g.wo());
    let lw = p.tw_lanes();
    // `A·dY` down the columns of every tile into `tmp` (`α·m × stride`), then `·Aᵀ`.
    let (buf, rest) = buf.split_at_mut(m * m * lw);
    let (line, tmp) = rest.split_at_mut(line_len(p, lw));
    line.fill(0.0);
    for r in rows.clone() {
        let (i, ty) = (r / p.th, r % p.th);
        let dyp = &dy[dys.image(i, g.out * ho * wo)][o * ho * wo..][..ho * wo];
        for ii in 0..m {
            let dst = &mut buf[ii * m * lw..][..m * lw];
            let oy = ty * m + ii;
            if oy >= ho {
                dst.fill(0.0);
                continue;
            }
            deal(&dyp[oy * wo..][..wo], 0, m, line, dst);
        }
        let t0 = (r - rows.start) * p.tw;
        for tx in (0..p.tw).step_by(LANES) {
            for j in 0..m {
                let mut col = [ZERO; 4];
                for (ii, l) in col.iter_mut().enumerate().take(m) {
                    *l = load(&buf[(ii * m + j) * lw + tx..], LANES);
                }
                let zc = T::grad(&col);
                for (ai, l) in zc.iter().enumerate().take(a) {
                    store(&mut tmp[(ai * m + j) * st + t0 + tx..], l);
                }
            }
        }
    }
    // Along the rows, one row of points at a time: `α` streams written at once.
    let nt = rows.len() * p.tw;
    for ai in 0..a {
        for t in (0..nt).step_by(LANES) {
            let mut row = [ZERO; 4];
            for (j, l) in row.iter_mut().enumerate().take(m) {
                *l = load(&tmp[(ai * m + j) * st + t..], LANES);
            }
            let zr = T::grad(&row);
            for (bj, l) in zr.iter().enumerate().take(a) {
                store(&mut dm[(ai * a + bj) * st + t..], l);
            }
        }
    }
}

/// A panel of the transformed weights `(G·g·Gᵀ)[ξ]` for the kernels `g` of rows
/// `q·mr..(q + 1)·mr` (past `rows`: zeros) of the `rows × cols` kernels `w[r, col]`, or with
/// `flip` of the data gradient's, `w[col, r]` turned by 180° (`w` is then `cols × rows`
/// kernels of 3×3): `(ξ, col)` of row `q·mr + i` at `panel[(ξ·cols + col)·mr + i]`, the GEMM's
/// A panel layout.
pub(super) fn weights<T: Transform>(
    w: &[f32],
    flip: bool,
    rows: usize,
    cols: usize,
    q: usize,
    mr: usize,
    panel: &mut [f32],
) {
    dispatch!(weights_body, weights_fast, T, (w: &[f32], flip: bool, rows: usize, cols: usize, q: usize, mr: usize, panel: &mut [f32]))
}

#[inline(always)]
fn weights_body<T: Transform>(
    w: &[f32],
    flip: bool,
    rows: usize,
    cols: usize,
    q: usize,
    mr: usize,
    panel: &mut [f32],
) {
    // The lanes are the panel's rows, so that each point's `mr` values of a column are one
    // store (eight wide: the two lanes past `mr` land on the next column's first rows, which
    // are written after; the last column stores exactly `mr`).
    assert!(mr <= LANES, "winograd: A panels of {mr} rows");
    let a = T::A;
    let r0 = q * mr;
    let live = mr.min(rows.saturating_sub(r0));
    for col in 0..cols {
        let mut gg = [[ZERO; 6]; 6];
        // `l` is the lane of every one of the 3×3 taps, not an index into one array.
        #[allow(clippy::needless_range_loop)]
        for l in 0..live {
            let r = r0 + l;
            let kern: &[f32; 9] = if flip {
                w[(col * rows + r) * 9..][..9]
                    .try_into()
                    .expect("nine taps")
            } else {
                w[(r * cols + col) * 9..][..9]
                    .try_into()
                    .expect("nine taps")
            };
            for (k, &v) in kern.iter().enumerate() {
                // The data gradient's kernel is turned by 180°.
                let k = if flip { 8 - k } else { k };
                gg[k / 3][k % 3][l] = v;
            }
        }
        let uu = two_d(&gg, 3, a, T::kernel);
        for (ai, ur) in uu.iter().enumerate().take(a) {
            for (bj, l) in ur.iter().enumerate().take(a) {
                let at = ((ai * a + bj) * cols + col) * mr;
                if col + 1 < cols {
                    store(&mut panel[at..], l);
                } else {
                    panel[at..at + mr].copy_from_slice(&l[..mr]);
                }
            }
        }
    }
}

/// `dw[col] = Gᵀ·dU[·][col]·G` for the `cols` kernels of one output channel: `du` holds its
/// `α² × cols`, point `ξ`'s at `ξ·ps`; `dw` is its `cols × 9`.
pub(super) fn weight_grad<T: Transform>(du: &[f32], ps: usize, cols: usize, dw: &mut [f32]) {
    dispatch!(weight_grad_body, weight_grad_fast, T, (du: &[f32], ps: usize, cols: usize, dw: &mut [f32]))
}

#[inline(always)]
fn weight_grad_body<T: Transform>(du: &[f32], ps: usize, cols: usize, dw: &mut [f32]) {
    let a = T::A;
    for c0 in (0..cols).step_by(LANES) {
        let cnt = LANES.min(cols - c0);
        let mut dd = [[ZERO; 6]; 6];
        for (ai, dr) in dd.iter_mut().enumerate().take(a) {
            for (bj, l) in dr.iter_mut().enumerate().take(a) {
                *l = load(&du[(ai * a + bj) * ps + c0..], cnt);
            }
        }
        let gg = two_d(&dd, a, 3, T::kernel_grad);
        for l in 0..cnt {
            let k = &mut dw[(c0 + l) * 9..][..9];
            for i in 0..3 {
                for j in 0..3 {
                    k[i * 3 + j] = gg[i][j][l];
                }
            }
        }
    }
}
