//! B operands that are not stored but generated block by block: an implicit im2col writes
//! the part of the column matrix a GEMM is about to pack, straight from the image, so the
//! full column matrix is never written to memory and read back.

use super::pack;

/// The order in which a [`BSource`] writes a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Major {
    /// `B[pc + p, j0 + j]` at `out[p*ld + j]`: steps of the reduction are rows. The loop
    /// nest lets such a source write full panels in place.
    Row,
    /// `B[pc + p, j0 + j]` at `out[j*ld + p]`: columns of B are contiguous. The loop nest
    /// transposes them into panels.
    Col,
}

/// A k×n B operand of [`sgemm_source`](super::sgemm_source), written on demand.
///
/// The loop nest asks for blocks of at most KC rows and at most NR columns (one packed
/// panel) and packs them. Each call must write exactly the values of B; they may be asked
/// for several times (once per thread that needs them) and in any order.
pub trait BSource: Sync {
    /// `(k, n)`: the shape of B.
    fn shape(&self) -> (usize, usize);

    /// The order of [`block`](BSource::block)'s output.
    fn major(&self) -> Major;

    /// Writes the `kc × w` block of B whose first element is `(pc, j0)` into `out` with
    /// leading dimension `ld`, in the order [`major`](BSource::major) says. `out` holds
    /// exactly the block: `(kc - 1)·ld + w` floats (row-major) or `(w - 1)·ld + kc`.
    fn block(&self, pc: usize, kc: usize, j0: usize, w: usize, out: &mut [f32], ld: usize);
}

/// Packs the `kc × nc` block of `src` at `(pc, j0)` into panels of `nr` columns, as
/// `pack::pack` does for a stored B: `dst[q*kc*nr + p*nr + r] = B[pc + p, j0 + q*nr + r]`,
/// zero past column `nc`. `tmp` is scratch for column-major sources.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_source(
    nr: usize,
    src: &dyn BSource,
    pc: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
    tmp: &mut pack::AlignedBuf,
) {
    if kc == 0 {
        return;
    }
    let major = src.major();
    for (q, panel) in dst[..nc.div_ceil(nr) * kc * nr]
        .chunks_exact_mut(kc * nr)
        .enumerate()
    {
        let w = nr.min(nc - q * nr);
        match major {
            Major::Row => {
                // The panel is the row-major block with leading dimension nr.
                src.block(pc, kc, j0 + q * nr, w, &mut panel[..(kc - 1) * nr + w], nr);
                if w < nr {
                    for step in panel.chunks_exact_mut(nr) {
                        step[w..].fill(0.0);
                    }
                }
            }
            Major::Col => {
                let t = tmp.get(w * kc);
                src.block(pc, kc, j0 + q * nr, w, t, kc);
                // SAFETY: `t` holds the w×kc block (row i of the panel at t[i*kc..]).
                unsafe { pack::pack(nr, w, kc, t.as_ptr(), kc as isize, 1, panel) };
            }
        }
    }
}

/// `out[p*ld + r] = xp[tap[p] + a + r]` for lanes `r < s` and `xp[tap[p] + b + r]` for
/// `s <= r < 16`, for every `p < tap.len()`: a 16-wide panel of B whose columns come from
/// two runs of memory (an implicit im2col's panel of pixels that spans two output rows).
///
/// # Panics
/// If `s > 16`, or a run or a row of `out` is out of bounds.
pub fn panel_from_two_runs(
    xp: &[f32],
    tap: &[usize],
    a: usize,
    b: usize,
    s: usize,
    out: &mut [f32],
    ld: usize,
) {
    assert!(s <= 16, "a panel has 16 lanes");
    let mask: [u32; 16] = std::array::from_fn(|r| if r < s { !0 } else { 0 });
    #[cfg(target_arch = "x86_64")]
    if super::avx2::is_available() {
        // SAFETY: the CPU has AVX2 (checked); the function is safe code otherwise.
        return unsafe { two_runs_avx2(xp, tap, a, b, &mask, out, ld) };
    }
    two_runs(xp, tap, a, b, &mask, out, ld);
}

/// [`panel_from_two_runs`] compiled for AVX2, which makes the selection two 8-lane blends.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn two_runs_avx2(
    xp: &[f32],
    tap: &[usize],
    a: usize,
    b: usize,
    mask: &[u32; 16],
    out: &mut [f32],
    ld: usize,
) {
    two_runs(xp, tap, a, b, mask, out, ld);
}

#[inline(always)]
fn two_runs(
    xp: &[f32],
    tap: &[usize],
    a: usize,
    b: usize,
    mask: &[u32; 16],
    out: &mut [f32],
    ld: usize,
) {
    for (p, &t) in tap.iter().enumerate() {
        let row: &mut [f32; 16] = (&mut out[p * ld..p * ld + 16]).try_into().unwrap();
        let ra: &[f32; 16] = xp[t + a..t + a + 16].try_into().unwrap();
        let rb: &[f32; 16] = xp[t + b..t + b + 16].try_into().unwrap();
        for r in 0..16 {
            row[r] = f32::from_bits(ra[r].to_bits() & mask[r] | rb[r].to_bits() & !mask[r]);
        }
    }
}
