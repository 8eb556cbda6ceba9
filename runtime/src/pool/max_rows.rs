//! Max pooling row by row from a padded copy of each plane: GoogLeNet's 3×3 pools (stride
//! 1 in every Inception module's fourth branch, stride 2 between stages) and ResNet's stem.
//!
//! The separable kernel of `mod.rs` sets up windows, phases and taps for every input row
//! and reduces rows shorter than a vector one lane at a time: on 28×28 planes it took
//! 8.7 ns per input with the argmaxes, on 7×7 planes 21 ns. Here each plane is first copied
//! once into a buffer padded with −∞ (and split into column phases for stride 2), so that
//! for every tap the outputs of a row read one contiguous run, and each row of outputs is
//! computed eight at a time, all taps in registers, with no edge cases: the padding never
//! wins a comparison, and the last block of a row reads the slack and drops those lanes.
//!
//! The comparisons are [`max_window`](super::max_window)'s, in its order: the taps row-major,
//! a value replacing the best so far when greater or NaN, starting from −∞ at the window's
//! first input element. So values and argmaxes are those of the other kernels exactly.

use super::{blend, replaces, Pool2d};

/// Output lanes per block.
const L: usize = 8;

/// Whether this kernel computes `p`: column strides 1 and 2 (the phases of wider strides
/// are not worth a copy; the copy handles these two), any window, padding and row stride.
pub(super) fn applies(p: &Pool2d) -> bool {
    p.sw <= 2
}

/// The padded copy of one plane: `rows` rows, each `sw` phases of `cols` values, where
/// padded pixel `(r, c)` lies at `r·sw·cols + (c mod sw)·cols + c div sw`.
pub(super) struct Padded {
    rows: usize,
    cols: usize,
    /// Where column tap `kj` of output column 0 lies within a padded row (its phase and
    /// place in it), worked out once: a division per tap and block cost more than the
    /// comparisons.
    col_taps: Vec<usize>,
    /// Each tap's place in the plane relative to its window's origin, `ki·w + kj`.
    tap_offsets: Vec<u32>,
}

impl Padded {
    pub(super) fn new(p: &Pool2d) -> Padded {
        let (ho, wo) = (p.ho(), p.wo());
        // Every window's rows, and the input's rows below the top padding.
        let rows = ((ho - 1) * p.sh + p.kh).max(p.ph + p.h);
        // Every column a block reads: the last block of a row reads up to L - 1 outputs
        // past the row's end.
        let padded = ((wo - 1) * p.sw + p.kw).max(p.pw + p.w);
        let cols = padded.div_ceil(p.sw).max(wo + L - 1 + (p.kw - 1) / p.sw);
        let col_taps = (0..p.kw).map(|kj| (kj % p.sw) * cols + kj / p.sw).collect();
        let tap_offsets = (0..p.kh * p.kw)
            .map(|t| ((t / p.kw) * p.w + t % p.kw) as u32)
            .collect();
        Padded {
            rows,
            cols,
            col_taps,
            tap_offsets,
        }
    }

    /// Floats of the buffer.
    pub(super) fn len(&self, p: &Pool2d) -> usize {
        self.rows * p.sw * self.cols
    }

    /// A buffer for [`Padded::fill`]: −∞ everywhere, which the padding keeps, since every
    /// plane's copy writes the same interior.
    pub(super) fn buffer(&self, p: &Pool2d) -> Vec<f32> {
        vec![f32::NEG_INFINITY; self.len(p)]
    }

    /// Copies plane `xp` into `buf`, a [`Padded::buffer`] (whose padding is never written).
    fn fill(&self, p: &Pool2d, xp: &[f32], buf: &mut [f32]) {
        let row_len = p.sw * self.cols;
        for (iy, row) in xp.chunks_exact(p.w).enumerate() {
            let out = &mut buf[(iy + p.ph) * row_len..][..row_len];
            if p.sw == 1 {
                out[p.pw..p.pw + p.w].copy_from_slice(row);
                continue;
            }
            // Stride 2: padded column c to phase c mod 2 at c div 2, pairs at a time (which
            // the compiler turns into shuffles) from the first row element whose column is
            // even.
            let (ph0, ph1) = out.split_at_mut(self.cols);
            let ix0 = p.pw % 2;
            if ix0 == 1 {
                ph1[p.pw / 2] = row[0];
            }
            let c0 = (ix0 + p.pw) / 2;
            let k = (row.len() - ix0) / 2;
            let pairs = row[ix0..].chunks_exact(2);
            if let [v] = pairs.remainder() {
                ph0[c0 + k] = *v;
            }
            let dst = ph0[c0..c0 + k].iter_mut().zip(ph1[c0..c0 + k].iter_mut());
            for ((a, b), pr) in dst.zip(pairs) {
                *a = pr[0];
                *b = pr[1];
            }
        }
    }
}

/// One plane `xp` into `yp` and, if `ARG`, the argmaxes into `ap`; `buf` holds
/// [`Padded::len`] floats.
pub(super) fn plane<const ARG: bool>(
    p: &Pool2d,
    pad: &Padded,
    buf: &mut [f32],
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above); the function is safe code otherwise.
        return unsafe { plane_avx2::<ARG>(p, pad, buf, xp, yp, ap) };
    }
    plane_body::<ARG>(p, pad, buf, xp, yp, ap);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn plane_avx2<const ARG: bool>(
    p: &Pool2d,
    pad: &Padded,
    buf: &mut [f32],
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    plane_body::<ARG>(p, pad, buf, xp, yp, ap);
}

#[inline(always)]
fn plane_body<const ARG: bool>(
    p: &Pool2d,
    pad: &Padded,
    buf: &mut [f32],
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    pad.fill(p, xp, buf);
    let ho = p.ho();
    // Four output rows at once: each block's running maxima are a chain of dependent
    // compare-and-blends (one per tap, in the window's order), four independent chains.
    let mut oy = 0;
    while oy + ROWS <= ho {
        rows::<ARG, ROWS>(p, pad, buf, oy, yp, ap);
        oy += ROWS;
    }
    while oy < ho {
        rows::<ARG, 1>(p, pad, buf, oy, yp, ap);
        oy += 1;
    }
}

/// Output rows computed at once.
const ROWS: usize = 4;

/// Output rows `oy..oy + R` of the plane from its padded copy `buf`.
///
/// The argmaxes are tracked as tap numbers (a loop-invariant constant per tap, so one blend
/// each; building each tap's plane indices lane by lane cost more than the comparisons) and
/// turned into plane indices once per output.
#[inline(always)]
fn rows<const ARG: bool, const R: usize>(
    p: &Pool2d,
    pad: &Padded,
    buf: &[f32],
    oy: usize,
    yp: &mut [f32],
    ap: &mut [u32],
) {
    let wo = p.wo();
    let row_len = p.sw * pad.cols;
    let mut ox = 0;
    while ox < wo {
        let mut b = [[f32::NEG_INFINITY; L]; R];
        // No tap yet: the window's first element inside the plane.
        let mut t = [[NONE; L]; R];
        let mut tap_no = 0u32;
        for ki in 0..p.kh {
            for &tap in &pad.col_taps {
                for r in 0..R {
                    let at = ((oy + r) * p.sh + ki) * row_len + tap + ox;
                    let v: &[f32; L] = buf[at..at + L].try_into().expect("a block in the slack");
                    let (b, t) = (&mut b[r], &mut t[r]);
                    for l in 0..L {
                        let m = replaces(v[l], b[l]);
                        b[l] = blend(m, v[l], b[l]);
                        if ARG {
                            t[l] = tap_no & m | t[l] & !m;
                        }
                    }
                }
                tap_no += 1;
            }
        }
        let w = (wo - ox).min(L);
        for r in 0..R {
            let at = (oy + r) * wo + ox;
            yp[at..at + w].copy_from_slice(&b[r][..w]);
            if ARG {
                for (l, a) in ap[at..at + w].iter_mut().enumerate() {
                    *a = index(p, pad, oy + r, ox + l, t[r][l]);
                }
            }
        }
        ox += L;
    }
}

/// A lane whose maximum is still the initial −∞.
const NONE: u32 = u32::MAX;

/// The plane index of tap `tap` (row-major in the window) of output `(oy, ox)`, or with
/// [`NONE`] of the window's first element inside the plane.
#[inline(always)]
fn index(p: &Pool2d, pad: &Padded, oy: usize, ox: usize, tap: u32) -> u32 {
    if tap == NONE {
        let first_row = (oy * p.sh).saturating_sub(p.ph);
        return (first_row * p.w + (ox * p.sw).saturating_sub(p.pw)) as u32;
    }
    // The window's origin, wrapping where it lies in the padding: taps in the padding never
    // win, so origin plus offset lies inside the plane.
    let origin = ((oy * p.sh) as u32)
        .wrapping_sub(p.ph as u32)
        .wrapping_mul(p.w as u32)
        .wrapping_add((ox * p.sw) as u32)
        .wrapping_sub(p.pw as u32);
    origin.wrapping_add(pad.tap_offsets[tap as usize])
}
