//! GEMMs on operands their producer wrote straight into the kernel's panels.
//!
//! A Winograd layer multiplies 36 pairs of freshly transformed matrices per block of tiles;
//! through [`sgemm`](super::sgemm) each pair would be written by the transform, then read
//! and written again by packing. Here the transform writes the panels itself ([`Panels`]
//! says where each element goes), and [`sgemm_packed`] runs the loop nest over them on the
//! calling thread, so that independent GEMMs can be the parallel tasks. Every element of C
//! gets the same arithmetic as from [`sgemm`](super::sgemm) with the same operands stored:
//! same kernel, same k blocks.

use super::kernel::{Kernel, KernelKind, TileEpilogue};
use super::{avx2, blocks, generic, tile};

/// Where the elements of a packed operand go: panel `q` (rows `q·side..` of A, or columns
/// `q·side..` of B) starts at `q·stride` and holds the operand's whole depth, element
/// `(depth p, row or column r)` at `p·side + r mod side`. A k block of the loop nest is then
/// a slice of each panel, whatever the blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panels {
    /// Rows (A) or columns (B) per panel: the kernel's MR or NR.
    pub side: usize,
    /// Floats from one panel to the next: at least `k·side`.
    pub stride: usize,
}

impl Panels {
    /// Panels for A (`side` = MR) of `kind`'s kernel.
    pub fn a(kind: KernelKind, stride: usize) -> Panels {
        Panels {
            side: kind.blocking().mr,
            stride,
        }
    }

    /// Panels for B (`side` = NR) of `kind`'s kernel.
    pub fn b(kind: KernelKind, stride: usize) -> Panels {
        Panels {
            side: kind.blocking().nr,
            stride,
        }
    }

    /// The offset of element (`depth`, row or column `i`).
    #[inline(always)]
    pub fn at(&self, i: usize, depth: usize) -> usize {
        (i / self.side) * self.stride + depth * self.side + i % self.side
    }

    /// Floats an operand of `len` rows (A) or columns (B) spans, padding of its last panel
    /// included.
    pub fn len(&self, len: usize, k: usize) -> usize {
        match len.div_ceil(self.side) {
            0 => 0,
            q => (q - 1) * self.stride + k * self.side,
        }
    }
}

/// `C = A·B + beta·C` on the calling thread, `A` (m×k) and `B` (k×n) packed for `kind`'s
/// kernel as `pa` and `pb` say, `C` row-major with row stride `rsc`. The padding rows of A's
/// last panel and columns of B's may hold anything finite or not: they only reach parts of
/// the kernel's tile that are dropped.
///
/// # Panics
/// If `kind` is not available here, the layouts are not `kind`'s or too tight for `k`, an
/// operand is shorter than its layout spans, B is not 32-byte aligned (the kernel's loads of
/// B are aligned), or C is too short.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed(
    kind: KernelKind,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    pa: Panels,
    b: &[f32],
    pb: Panels,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    assert!(
        kind.is_available(),
        "sgemm_packed: {kind:?} is not available"
    );
    let bl = kind.blocking();
    assert_eq!(
        (pa.side, pb.side),
        (bl.mr, bl.nr),
        "sgemm_packed: panel sides"
    );
    assert!(pa.stride >= k * pa.side && pb.stride >= k * pb.side);
    assert!(a.len() >= pa.len(m, k), "sgemm_packed: A is short");
    assert!(b.len() >= pb.len(n, k), "sgemm_packed: B is short");
    assert!(
        b.as_ptr().align_offset(32) == 0 && pb.stride.is_multiple_of(8),
        "sgemm_packed: B panels must be 32-byte aligned"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(rsc >= n && c.len() >= (m - 1) * rsc + n, "sgemm_packed: C");
    match kind {
        KernelKind::Generic => run::<generic::Generic>(m, n, k, a, pa, b, pb, beta, c, rsc),
        KernelKind::Avx2Fma => run::<avx2::Avx2Fma>(m, n, k, a, pa, b, pb, beta, c, rsc),
    }
}

/// Loops 4 to 1 of the nest ([`super::gemm_loops`]) without packing.
#[allow(clippy::too_many_arguments)]
fn run<K: Kernel>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    pa: Panels,
    b: &[f32],
    pb: Panels,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if k == 0 {
        // Nothing to multiply: C = beta·C, as the stored GEMM leaves it.
        for i in 0..m {
            for v in &mut c[i * rsc..][..n] {
                *v = if beta == 0.0 { 0.0 } else { beta * *v };
            }
        }
        return;
    }
    // A panel at a time against every B panel: the A panels come straight from the
    // producer's buffer (often larger than L2), so each is read from memory once and then
    // used from L1 for all of this GEMM's columns, while B (one point's `k × n`, a few
    // hundred KiB) stays in L2.
    for (pc, kc) in blocks(k, K::KC, 1) {
        let beta = if pc == 0 { beta } else { 1.0 };
        for ir in (0..m).step_by(K::MR) {
            let a_panel = &a[(ir / K::MR) * pa.stride + pc * K::MR..][..kc * K::MR];
            for jr in (0..n).step_by(K::NR) {
                let b_panel = &b[(jr / K::NR) * pb.stride + pc * K::NR..][..kc * K::NR];
                let (mr, nr) = (K::MR.min(m - ir), K::NR.min(n - jr));
                // The tile's last element, checked against C before any write.
                let _ = &c[(ir + mr - 1) * rsc + jr + nr - 1];
                // SAFETY: the kernel is available (checked by the caller); the panels are
                // kc·MR and kc·NR floats (sliced above), B's 32-byte aligned (its base and
                // stride checked by the caller, pc·NR floats is a multiple of 32 bytes); the
                // mr×nr tile at (ir, jr) with row stride rsc lies inside `c` (its last
                // element indexed above), which is borrowed mutably.
                unsafe {
                    let cp = c.as_mut_ptr().add(ir * rsc + jr);
                    tile::<K>(
                        kc,
                        1.0,
                        a_panel,
                        b_panel,
                        beta,
                        cp,
                        rsc as isize,
                        1,
                        mr,
                        nr,
                        TileEpilogue::NONE,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::pack::AlignedBuf;
    use crate::gemm::{Context, Epilogue};

    #[test]
    fn packed_operands_give_the_stored_gemm_bitwise() {
        for kind in KernelKind::ALL.into_iter().filter(|k| k.is_available()) {
            let ctx = Context::new(1).with_kernel(kind).unwrap();
            let bl = kind.blocking();
            for (m, n, k) in [
                (7, 19, 5),
                (64, 40, 300),
                (13, 16, 600),
                (1, 1, 1),
                (6, 3, 0),
            ] {
                let a: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
                    .collect();
                let b: Vec<f32> = (0..k * n)
                    .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
                    .collect();
                // Loose strides, and NaN in every float the layouts leave out: none may
                // reach C.
                let pa = Panels::a(kind, k * bl.mr + 3);
                let pb = Panels::b(kind, (k * bl.nr).next_multiple_of(8) + 16);
                let mut ap = vec![f32::NAN; pa.len(m, k)];
                let mut bbuf = AlignedBuf::new();
                let bp = bbuf.get(pb.len(n, k));
                bp.fill(f32::NAN);
                for i in 0..m {
                    for p in 0..k {
                        ap[pa.at(i, p)] = a[i * k + p];
                    }
                }
                for p in 0..k {
                    for j in 0..n {
                        bp[pb.at(j, p)] = b[p * n + j];
                    }
                }
                let rsc = n + 2;
                let c0: Vec<f32> = (0..m * rsc).map(|i| (i % 3) as f32).collect();
                for beta in [0.0, 1.0] {
                    let mut want = c0.clone();
                    let (ki, ni, ri) = (k as isize, n as isize, rsc as isize);
                    let e = Epilogue::NONE;
                    ctx.sgemm(
                        m, n, k, 1.0, &a, ki, 1, &b, ni, 1, beta, &mut want, ri, 1, e,
                    );
                    let mut got = c0.clone();
                    sgemm_packed(kind, m, n, k, &ap, pa, bp, pb, beta, &mut got, rsc);
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{kind:?} {m}×{n}×{k} beta {beta}");
                }
            }
        }
    }
}
