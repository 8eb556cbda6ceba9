//! Packing: copying a block of A or B into the panel layout the micro-kernels stream through.
//!
//! A block of A (mc×kc) becomes ⌈mc/MR⌉ panels of MR rows, B (kc×nc) becomes ⌈nc/NR⌉ panels
//! of NR columns. Inside a panel, step p of the reduction is R consecutive floats, so the
//! kernel reads both panels strictly sequentially whatever the strides of the original
//! matrices. Rows (columns) past the edge of the block are zero, so the kernel can always
//! compute a full tile. Buffers are 64-byte aligned (one cache line, two ymm vectors).

/// One cache line of floats; a `Vec` of these is a 64-byte-aligned float buffer.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; 16]);

/// A growable, 64-byte-aligned scratch buffer, reused from call to call.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl AlignedBuf {
    /// An empty buffer; it allocates on first use.
    pub const fn new() -> AlignedBuf {
        AlignedBuf { lines: Vec::new() }
    }

    /// The first `len` floats of the buffer (grown if needed), 64-byte aligned. Their contents
    /// are whatever the last user left.
    pub fn get(&mut self, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0.0; 16]));
        }
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 = its alignment, so the
        // `Vec<Line>` is `16 * lines.len() >= len` initialized, contiguous floats, and the
        // returned borrow keeps `self` mutably borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), len) }
    }
}

/// Packs a `len × k` block into panels of `r` rows; see [`pack_r`]. The panel widths of the
/// kernels get their own copy of the loops, with the width known to the compiler.
///
/// # Safety
/// As [`pack_r`].
#[inline(always)]
pub(crate) unsafe fn pack(
    r: usize,
    len: usize,
    k: usize,
    src: *const f32,
    ri: isize,
    rp: isize,
    dst: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match r {
            4 => pack_r::<4>(len, k, src, ri, rp, dst),
            6 => pack_r::<6>(len, k, src, ri, rp, dst),
            8 => pack_r::<8>(len, k, src, ri, rp, dst),
            16 => pack_r::<16>(len, k, src, ri, rp, dst),
            _ => unreachable!("no kernel has a panel width of {r}"),
        }
    }
}

/// Packs a `len × k` block into panels of `R` rows.
///
/// Element `(i, p)` of the block is at `src[i*ri + p*rp]`. Panel `q` holds rows
/// `q*R .. q*R + R`, step `p` first: `dst[q*k*R + p*R + r] = src(q*R + r, p)`; rows at or past
/// `len` are zero. Packing A (mc×kc) is `pack_r::<MR>(mc, kc, a, rsa, csa, ..)`; packing B
/// (kc×nc) is `pack_r::<NR>(nc, kc, b, csb, rsb, ..)`, that is, packing Bᵀ.
///
/// # Safety
/// `src.offset(i*ri + p*rp)` must be in bounds of one allocation and readable for every
/// `i < len`, `p < k`.
unsafe fn pack_r<const R: usize>(
    len: usize,
    k: usize,
    src: *const f32,
    ri: isize,
    rp: isize,
    dst: &mut [f32],
) {
    if k == 0 {
        return;
    }
    let (full, panels) = (len / R, len.div_ceil(R));
    assert!(dst.len() >= panels * k * R, "pack: destination too short");
    let (dst, edge) = dst[..panels * k * R].split_at_mut(full * k * R);

    if ri == 1 {
        // The R values of a step are contiguous (B row-major, A column-major): copy. Walk
        // the source row by row (p outer), so reads stream through memory instead of
        // touching k far-apart lines for every panel, and ask for the line two rows ahead,
        // which the hardware prefetcher cannot guess (rows are far apart).
        for p in 0..k {
            // SAFETY: src(0..full*R, p) is in bounds and contiguous (ri == 1).
            let row = unsafe { std::slice::from_raw_parts(src.offset(p as isize * rp), full * R) };
            let ahead = src.wrapping_offset((p + 2).min(k - 1) as isize * rp);
            for (q, from) in row.chunks_exact(R).enumerate() {
                prefetch(ahead.wrapping_add(q * R));
                dst[(q * k + p) * R..][..R].copy_from_slice(from);
            }
        }
    } else {
        for (q, panel) in dst.chunks_exact_mut(k * R).enumerate() {
            // SAFETY: row q*R is < len, so in bounds by the caller's guarantee.
            let src = unsafe { src.offset((q * R) as isize * ri) };
            #[cfg(target_arch = "x86_64")]
            if R == 16 && rp == 1 && super::avx2::is_available() {
                // SAFETY: the panel's 16 rows are in bounds and contiguous along k (rp == 1),
                // the panel holds 16*k floats, and the CPU has AVX2 and FMA.
                unsafe { super::avx2::pack_16_from_rows(k, src, ri, panel.as_mut_ptr()) };
                continue;
            }
            if rp == 1 {
                // Each row is contiguous along k (A row-major, B column-major): gather R
                // streams.
                let mut rows_in: [&[f32]; R] = [&[]; R];
                for (r, row) in rows_in.iter_mut().enumerate() {
                    // SAFETY: src(r, 0..k) is in bounds and contiguous (rp == 1).
                    *row = unsafe { std::slice::from_raw_parts(src.offset(r as isize * ri), k) };
                }
                for (p, step) in panel.chunks_exact_mut(R).enumerate() {
                    for (x, row) in step.iter_mut().zip(&rows_in) {
                        *x = row[p];
                    }
                }
            } else {
                for (p, step) in panel.chunks_exact_mut(R).enumerate() {
                    for (r, x) in step.iter_mut().enumerate() {
                        // SAFETY: r < R and p < k, in bounds by the caller's guarantee.
                        *x = unsafe { *src.offset(r as isize * ri + p as isize * rp) };
                    }
                }
            }
        }
    }

    if full < panels {
        // The edge panel: the rows that exist, then zeros.
        let rows = len - full * R;
        // SAFETY: row full*R is < len, so in bounds by the caller's guarantee.
        let src = unsafe { src.offset((full * R) as isize * ri) };
        for (p, step) in edge.chunks_exact_mut(R).enumerate() {
            for (r, x) in step.iter_mut().enumerate() {
                *x = if r < rows {
                    // SAFETY: r < rows and p < k, in bounds by the caller's guarantee.
                    unsafe { *src.offset(r as isize * ri + p as isize * rp) }
                } else {
                    0.0
                };
            }
        }
    }
}

/// Hints that the line holding `p` will be read soon; a no-op off x86_64. A prefetch never
/// faults, so `p` may point anywhere.
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `prefetch` only needs SSE, which every x86_64 CPU has, and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_cache_line_aligned() {
        let mut buf = AlignedBuf::new();
        for len in [1, 15, 16, 17, 1000] {
            assert_eq!(buf.get(len).as_ptr() as usize % 64, 0);
            assert_eq!(buf.get(len).len(), len);
        }
    }

    /// Packs a 5×3 block (stored with the given strides) into panels of 2 rows.
    fn pack_5x3(ri: isize, rp: isize) -> Vec<f32> {
        let mut src = vec![f32::NAN; 64];
        for i in 0..5 {
            for p in 0..3 {
                src[(i as isize * ri + p as isize * rp) as usize] = (10 * i + p) as f32;
            }
        }
        let mut dst = vec![-1.0; 3 * 3 * 2];
        // SAFETY: every offset i*ri + p*rp for i < 5, p < 3 is < 64 for the strides below.
        unsafe { pack_r::<2>(5, 3, src.as_ptr(), ri, rp, &mut dst) };
        dst
    }

    /// The AVX2 transposing path (16-wide panels from rows contiguous along k) against the
    /// definition, for k around its blocks of 8 and an edge panel.
    #[test]
    fn sixteen_wide_panels_from_rows_match_the_definition() {
        let (len, ri) = (35usize, 29usize);
        for k in [0, 1, 7, 8, 9, 16, 23] {
            let src: Vec<f32> = (0..len * ri).map(|x| x as f32).collect();
            let mut dst = vec![f32::NAN; len.div_ceil(16) * 16 * k];
            // SAFETY: src(i, p) = src[i*29 + p] with i < 35, p < 23 is inside the 35*29 floats.
            unsafe { pack(16, len, k, src.as_ptr(), ri as isize, 1, &mut dst) };
            for (idx, &x) in dst.iter().enumerate() {
                let (q, p, r) = (idx / (16 * k), idx / 16 % k, idx % 16);
                let i = q * 16 + r;
                let want = if i < len { src[i * ri + p] } else { 0.0 };
                assert_eq!(x, want, "k = {k}, panel {q}, step {p}, row {r}");
            }
        }
    }

    #[test]
    fn panels_are_step_major_and_zero_padded() {
        #[rustfmt::skip]
        let expected = vec![
            0.0, 10.0,   1.0, 11.0,   2.0, 12.0,
            20.0, 30.0,  21.0, 31.0,  22.0, 32.0,
            40.0, 0.0,   41.0, 0.0,   42.0, 0.0,
        ];
        // Unit stride along the panel, along k, and neither.
        for (ri, rp) in [(1, 5), (3, 1), (4, 17)] {
            assert_eq!(pack_5x3(ri, rp), expected, "strides ({ri}, {rp})");
        }
    }
}
