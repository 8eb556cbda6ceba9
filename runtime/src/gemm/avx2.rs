//! The AVX2 + FMA micro-kernel: a 6×16 tile of C held in 12 ymm registers.
//!
//! Register budget (16 ymm): 12 accumulators (6 rows × 2 vectors of 8), 2 for the current row
//! of the B panel, 1–2 for broadcasts of A. Per step of k the kernel issues 2 loads of B,
//! 6 broadcasts of A and 12 FMAs: with two FMA pipes that is 6 cycles of FMA work against
//! 8 loads, which the three load ports of Zen 3/4 (two on Haswell–Skylake) sustain.

use super::kernel::{Kernel, TileBias, TileEpilogue};

/// Rows of the tile.
pub(crate) const MR: usize = 6;
/// Columns of the tile.
pub(crate) const NR: usize = 16;

/// Whether the CPU reports both AVX2 and FMA (std caches the CPUID query).
pub(crate) fn is_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The AVX2 + FMA kernel.
pub(crate) struct Avx2Fma;

impl Kernel for Avx2Fma {
    const MR: usize = MR;
    const NR: usize = NR;
    // See `mod.rs` for how these were chosen for the target CPU.
    const MC: usize = 144;
    const KC: usize = 256;
    const NC: usize = 4080;

    unsafe fn kernel(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        epi: TileEpilogue,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller upholds the kernel contract, which includes that this CPU has
        // AVX2 and FMA (the only requirement `kernel_avx2` adds).
        unsafe {
            match epi.clamp {
                None => kernel_avx2::<MR, 2, CLAMP_NONE>(k, alpha, a, b, beta, c, rsc, epi),
                Some(hi) if hi == f32::INFINITY => {
                    kernel_avx2::<MR, 2, CLAMP_RELU>(k, alpha, a, b, beta, c, rsc, epi)
                }
                Some(_) => kernel_avx2::<MR, 2, CLAMP_BOTH>(k, alpha, a, b, beta, c, rsc, epi),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (k, alpha, a, b, beta, c, rsc, epi);
            unreachable!("the AVX2 kernel is never selected off x86_64");
        }
    }

    /// Computes only the rows and 8-column halves that the edge tile needs: on a 4-row or
    /// 4-column edge this saves a third or a half of the work of the edge strip.
    unsafe fn kernel_edge(
        mr: usize,
        nr: usize,
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        epi: TileEpilogue,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller upholds the contract of `kernel_edge`; every instance below
        // touches a subset of the full tile.
        unsafe {
            macro_rules! dispatch {
                ($($rows:literal)*) => {
                    match (mr, nr <= NR / 2) {
                        $(
                            ($rows, true) => kernel_avx2::<$rows, 1, CLAMP_ANY>(k, alpha, a, b, beta, c, rsc, epi),
                            ($rows, false) => kernel_avx2::<$rows, 2, CLAMP_ANY>(k, alpha, a, b, beta, c, rsc, epi),
                        )*
                        _ => unreachable!("an edge tile has 1 to MR rows"),
                    }
                };
            }
            dispatch!(1 2 3 4 5 6)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (mr, nr, k, alpha, a, b, beta, c, rsc, epi);
            unreachable!("the AVX2 kernel is never selected off x86_64");
        }
    }
}

/// How [`kernel_avx2`] clamps: no clamp, `max(0, x)` (ReLU), `min(max(0, x), hi)`, each fixed
/// at compile time, or as `epi.clamp` says. A full tile, where the epilogue weighs most
/// (with k = 16, a third of the tile's time), gets one of the first three, so its finish is
/// straight-line code (a branch per vector on the clamp cost a 16-channel 1×1 conv 10%);
/// edge tiles, which already go through a temporary, read the epilogue.
const CLAMP_NONE: u8 = 0;
const CLAMP_RELU: u8 = 1;
const CLAMP_BOTH: u8 = 2;
const CLAMP_ANY: u8 = 3;

/// The first `ROWS` rows and `8·NV` columns of the MR×NR kernel (`ROWS = MR, NV = 2` is the
/// full tile); every element gets exactly the operations the full kernel would give it.
/// `CLAMP` is one of the `CLAMP_*` above; unless it is `CLAMP_ANY` it must agree with
/// `epi.clamp`.
///
/// See [`Kernel::kernel`] for the contract (with the tile cut down to ROWS × 8·NV);
/// additionally the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_avx2<const ROWS: usize, const NV: usize, const CLAMP: u8>(
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    epi: TileEpilogue,
) {
    use std::arch::x86_64::*;
    const { assert!(ROWS >= 1 && ROWS <= MR && (NV == 1 || NV == 2) && CLAMP <= CLAMP_ANY) };

    // Every `if $i < ROWS` and `if NV == 2` below is decided at compile time: each instance
    // is straight-line code over registers.

    // Start fetching the C tile now, so it arrives during the k loop: C is usually far
    // (each tile is visited once per k block), and reading or writing it would stall.
    macro_rules! prefetch_row {
        ($i:expr) => {
            if $i < ROWS {
                // A prefetch cannot fault, so these are safe; they name the first and last
                // element of row i.
                let row = c.wrapping_offset($i as isize * rsc);
                _mm_prefetch::<_MM_HINT_T0>(row.cast());
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(8 * NV - 1).cast());
            }
        };
    }
    prefetch_row!(0);
    prefetch_row!(1);
    prefetch_row!(2);
    prefetch_row!(3);
    prefetch_row!(4);
    prefetch_row!(5);

    // ab[i] holds row i of the tile: columns 0..8 and 8..16.
    let mut ab = [[_mm256_setzero_ps(); 2]; MR];
    let mut a = a;
    let mut b = b;

    // One step of k: a rank-1 update of the tile by column p of A and row p of B.
    macro_rules! step {
        () => {{
            // SAFETY: the contract gives k*MR floats at `a` and k*NR 64-byte-aligned floats at
            // `b`; each step reads at most MR and NR of them and moves on, k steps in all.
            unsafe {
                let b0 = _mm256_load_ps(b);
                let b1 = if NV == 2 {
                    _mm256_load_ps(b.add(8))
                } else {
                    b0
                };
                macro_rules! row {
                    ($i:expr) => {
                        if $i < ROWS {
                            let ai = _mm256_broadcast_ss(&*a.add($i));
                            ab[$i][0] = _mm256_fmadd_ps(ai, b0, ab[$i][0]);
                            if NV == 2 {
                                ab[$i][1] = _mm256_fmadd_ps(ai, b1, ab[$i][1]);
                            }
                        }
                    };
                }
                row!(0);
                row!(1);
                row!(2);
                row!(3);
                row!(4);
                row!(5);
                a = a.add(MR);
                b = b.add(NR);
            }
        }};
    }

    for _ in 0..k / 4 {
        step!();
        step!();
        step!();
        step!();
    }
    for _ in 0..k % 4 {
        step!();
    }

    let alpha_v = _mm256_set1_ps(alpha);
    let beta_v = _mm256_set1_ps(beta);
    let zero = _mm256_setzero_ps();
    // The clamp: `lo` applies max(0, x), `hi` min(hi, x) as well (ReLU6); ReLU's hi = ∞ is
    // skipped. Constants unless CLAMP_ANY.
    let (lo, hi) = match CLAMP {
        CLAMP_NONE => (false, false),
        CLAMP_RELU => (true, false),
        CLAMP_BOTH => (true, true),
        _ => match epi.clamp {
            Some(hi) => (true, hi < f32::INFINITY),
            None => (false, false),
        },
    };
    debug_assert!(
        CLAMP == CLAMP_ANY
            || (lo, hi)
                == (
                    epi.clamp.is_some(),
                    epi.clamp.is_some_and(|h| h < f32::INFINITY)
                ),
        "CLAMP {CLAMP} for {:?}",
        epi.clamp
    );
    let hi_v = _mm256_set1_ps(epi.clamp.unwrap_or(0.0));
    let col_bias = match epi.bias {
        // SAFETY: a Col bias points to NR floats (contract).
        TileBias::Col(bias) => unsafe {
            Some([_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))])
        },
        _ => None,
    };

    // Finish vector v (columns 8v..8v+8) of row i: scale, add beta*C (reading C only if
    // beta != 0), bias, clamp, store.
    macro_rules! finish {
        ($i:expr, $v:expr) => {{
            // SAFETY: the tile has row stride `rsc` and unit column stride; row i < ROWS
            // and columns 8v..8v+8 (v < NV) are inside it.
            let c_v = unsafe { c.offset($i as isize * rsc).add(8 * $v) };
            let mut r = ab[$i][$v];
            if alpha != 1.0 {
                r = _mm256_mul_ps(r, alpha_v);
            }
            if beta != 0.0 {
                // SAFETY: as above, and beta != 0 so C may be read.
                let c_old = unsafe { _mm256_loadu_ps(c_v) };
                r = _mm256_fmadd_ps(c_old, beta_v, r);
            }
            match epi.bias {
                TileBias::None => {}
                TileBias::Row(bias) => {
                    // SAFETY: a Row bias points to MR floats (contract).
                    r = _mm256_add_ps(r, unsafe { _mm256_broadcast_ss(&*bias.add($i)) });
                }
                TileBias::Col(_) => {
                    if let Some(bc) = col_bias {
                        r = _mm256_add_ps(r, bc[$v]);
                    }
                }
            }
            if lo {
                // max(0, x) returns the second operand when either is NaN: NaN propagates.
                r = _mm256_max_ps(zero, r);
                if hi {
                    // Likewise min(hi, x): NaN stays NaN, as PyTorch's relu6.
                    r = _mm256_min_ps(hi_v, r);
                }
            }
            // SAFETY: as above; every element of the tile is writable.
            unsafe { _mm256_storeu_ps(c_v, r) };
        }};
    }
    macro_rules! finish_row {
        ($i:expr) => {
            if $i < ROWS {
                finish!($i, 0);
                if NV == 2 {
                    finish!($i, 1);
                }
            }
        };
    }
    finish_row!(0);
    finish_row!(1);
    finish_row!(2);
    finish_row!(3);
    finish_row!(4);
    finish_row!(5);
}

/// The 8×8 transpose of `r` (row `j` of the result is column `j` of `r`): pairs of rows
/// interleaved, then pairs of pairs, then the 128-bit halves swapped.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;

    let (t0, t1) = (
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
    );
    let (t2, t3) = (
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
    );
    let (t4, t5) = (
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
    );
    let (t6, t7) = (
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    );
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Packs one full 16-wide panel from 16 source rows that are each contiguous along k (the
/// panel of a column-major B, or of the Bᵀ that a linear layer or a weight gradient passes):
/// `dst[p*16 + r] = src[r*ri + p]`. Blocks of 8×8 are transposed in registers, where the
/// portable loop moves one float at a time.
///
/// # Safety
/// `src.offset(r*ri + p)` is readable for `r < 16`, `p < k`; `dst` is writable for `16*k`
/// floats; the CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pack_16_from_rows(k: usize, src: *const f32, ri: isize, dst: *mut f32) {
    use std::arch::x86_64::*;

    let blocked = k / 8 * 8;
    for p in (0..blocked).step_by(8) {
        for half in 0..2 {
            // SAFETY: rows half*8 .. half*8+8 and steps p .. p+8 are in the block (caller).
            let row = |r: usize| unsafe {
                _mm256_loadu_ps(src.offset((half * 8 + r) as isize * ri).add(p))
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
            let steps = transpose8([r0, r1, r2, r3, r4, r5, r6, r7]);
            for (t, v) in steps.into_iter().enumerate() {
                // SAFETY: step p+t < k, columns half*8 .. half*8+8 of the panel (caller).
                unsafe { _mm256_storeu_ps(dst.add((p + t) * 16 + half * 8), v) };
            }
        }
    }
    for p in blocked..k {
        for r in 0..16 {
            // SAFETY: r < 16, p < k (caller).
            unsafe { *dst.add(p * 16 + r) = *src.offset(r as isize * ri).add(p) };
        }
    }
}
