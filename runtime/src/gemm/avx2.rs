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
            kernel_avx2::<MR, 2>(k, alpha, a, b, beta, c, rsc, epi)
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
                            ($rows, true) => kernel_avx2::<$rows, 1>(k, alpha, a, b, beta, c, rsc, epi),
                            ($rows, false) => kernel_avx2::<$rows, 2>(k, alpha, a, b, beta, c, rsc, epi),
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

/// The first `ROWS` rows and `8·NV` columns of the MR×NR kernel (`ROWS = MR, NV = 2` is the
/// full tile); every element gets exactly the operations the full kernel would give it.
///
/// See [`Kernel::kernel`] for the contract (with the tile cut down to ROWS × 8·NV);
/// additionally the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_avx2<const ROWS: usize, const NV: usize>(
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
    const { assert!(ROWS >= 1 && ROWS <= MR && (NV == 1 || NV == 2)) };

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
    let col_bias = match epi.bias {
        // SAFETY: a Col bias points to NR floats (contract).
        TileBias::Col(bias) => unsafe {
            Some([_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))])
        },
        _ => None,
    };

    // Finish vector v (columns 8v..8v+8) of row i: scale, add beta*C (reading C only if
    // beta != 0), bias, ReLU, store.
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
            if epi.relu {
                // max(x, 0) returns the second operand (0) when x is NaN.
                r = _mm256_max_ps(r, zero);
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
