//! Single-precision GEMM, `C = alpha·A·B + beta·C`, the workhorse of every convolution
//! (im2col) and linear layer: arbitrary strides, a fused epilogue (bias, then ReLU or ReLU6),
//! packed operands, the BLIS five-loop nest around a register-blocked micro-kernel, and
//! threads over the output only.
//!
//! Layout of this module: `mod.rs` (the API and the loop nest), `pack.rs` (panels),
//! `source.rs` (B operands generated block by block, such as an implicit im2col),
//! `packed.rs` (operands their producer packed, Winograd's),
//! `kernel.rs` (the micro-kernel contract), `avx2.rs` and `generic.rs` (the kernels),
//! `context.rs` (kernel choice, thread pool, splitting the work), `one_thread.rs` (a layer
//! on the calling thread alone), `bench.rs` (timing).
//!
//! # Blocking for the target CPU
//!
//! The AVX2 kernel's sizes (`avx2.rs`) are chosen for the machine netc is developed and
//! benchmarked on: an AMD EPYC (Zen 4) core with L1d 32 KiB, L2 1 MiB private, L3 32 MiB
//! shared, two 256-bit FMA pipes (99 GFLOP/s FP32 at the nominal 3.1 GHz; the core boosts
//! higher, so measured rates above 99 are possible). MR×NR = 6×16 fills 12 of the 16 ymm
//! registers with accumulators. The five loops keep each operand in the cache level its reuse
//! calls for:
//!
//! - **KC = 256** (loop 4). The kernel streams one kc×NR panel of B (256·16·4 B = 16 KiB) and
//!   one MR×kc panel of A (6 KiB) per tile: 22 KiB, so the B panel stays in the 32 KiB L1
//!   while loop 1 runs every A panel past it. A smaller kc re-reads and re-writes C more often
//!   (once per k block): kc = 192 cut 192×196×480 from 101 to 87 GFLOP/s; 320–512 measured
//!   the same as 256 within noise, so the L1 argument decides. Blocks are balanced: k = 864
//!   becomes 4 blocks of 216, not 3×256 + 96.
//! - **MC = 144** (loop 3). The packed A block, mc×kc = 144·256·4 B = 144 KiB, stays in L2
//!   across the whole jr loop: well under the 1 MiB L2, leaving room for the B panels flowing
//!   through and for C. 144 = 24·MR.
//! - **NC = 4080** (loop 5). The packed B block, kc×nc = 256·4080·4 B = 4 MiB, is shared by
//!   every A block of loop 3 and lives in L3 (32 MiB); a large nc makes packing A (once per nc
//!   columns) negligible. 4080 = 255·NR. nc from 768 to 12800 measured within noise of each
//!   other, 4080 best on 64×12544×147.
//!
//! Packing is part of the cost on the GoogLeNet shapes: with m = 64 channels every packed
//! element of B feeds only 128 flops. Contiguous B is therefore packed row by row (streaming
//! reads) with a software prefetch two rows ahead, which took 64×12544×147 from 76 to ~88
//! GFLOP/s. A column-major B (linear layers, weight gradients) is transposed into panels
//! 8×8 at a time in AVX2 registers: 256×1000×1024 with Bᵀ went from 95 to 104 GFLOP/s.
//!
//! The result of every element depends only on k, KC and the kernel: the k blocks do not
//! depend on m, n, the thread count or where a tile sits, so results are bitwise identical
//! for any number of threads.

pub(crate) mod avx2;
mod bench;
mod context;
mod generic;
mod kernel;
mod one_thread;
mod pack;
mod packed;
mod source;

pub use bench::{bench, BenchResult, PEAK_GFLOPS_PER_CORE};
pub use context::{
    num_threads, set_num_threads, try_set_num_threads, Context, MAX_THREADS_PER_CPU,
};
pub use kernel::{Blocking, KernelKind};
pub use one_thread::{is_one_thread, one_thread, one_thread_if, serial, OneThread};
pub use packed::{sgemm_packed, Panels};
pub use source::{panel_from_two_runs, BSource, Major};

use kernel::{Kernel, TileBias, TileEpilogue};
use pack::AlignedBuf;

/// A bias added to C after the product, before the activation.
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    /// No bias.
    #[default]
    None,
    /// `C[i, j] += bias[i]`, `bias.len() == m`: convolution, `C[out_ch, pixels]`.
    PerRow(&'a [f32]),
    /// `C[i, j] += bias[j]`, `bias.len() == n`: linear layer, `Y[batch, out]`.
    PerCol(&'a [f32]),
}

/// The activation an epilogue applies last, each a clamp `min(max(x, 0), hi)` with NaN
/// passed through (as PyTorch's `relu` and `relu6`, and [`crate::act::Relu`] /
/// [`crate::act::Relu6`], which it equals bitwise on the same input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Act {
    /// The identity.
    #[default]
    None,
    /// `max(x, 0)`: the clamp to `[0, ∞)`.
    Relu,
    /// `min(max(x, 0), 6)`: the clamp to `[0, 6]` (MobileNet's activation).
    Relu6,
}

impl Act {
    /// `Relu` if `relu`, else `None`: the activation of the kernels' `relu: bool` forms.
    pub fn relu_if(relu: bool) -> Act {
        if relu {
            Act::Relu
        } else {
            Act::None
        }
    }

    /// The upper bound of the clamp to `[0, hi]`, `None` for no activation (ReLU: ∞).
    pub fn clamp_hi(self) -> Option<f32> {
        match self {
            Act::None => None,
            Act::Relu => Some(f32::INFINITY),
            Act::Relu6 => Some(6.0),
        }
    }
}

/// What happens to each element of C once, after the full reduction over k:
/// `C[i, j] = act(alpha·(A·B)[i, j] + beta·C[i, j] + bias)`.
///
/// Built as `Epilogue::NONE`, `Epilogue::RELU`, `Epilogue::bias_per_row(&b)`,
/// `Epilogue::bias_per_col(&b).relu()`, `Epilogue::bias_per_row(&b).act(Act::Relu6)`, ...
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// The bias to add.
    pub bias: Bias<'a>,
    /// The activation applied last (NaN propagates).
    pub act: Act,
}

impl<'a> Epilogue<'a> {
    /// Plain GEMM.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: Bias::None,
        act: Act::None,
    };
    /// ReLU only.
    pub const RELU: Epilogue<'static> = Epilogue {
        bias: Bias::None,
        act: Act::Relu,
    };

    /// `C[i, j] += bias[i]` (one bias per output channel of a convolution).
    pub fn bias_per_row(bias: &'a [f32]) -> Epilogue<'a> {
        Epilogue {
            bias: Bias::PerRow(bias),
            act: Act::None,
        }
    }

    /// `C[i, j] += bias[j]` (one bias per output feature of a linear layer).
    pub fn bias_per_col(bias: &'a [f32]) -> Epilogue<'a> {
        Epilogue {
            bias: Bias::PerCol(bias),
            act: Act::None,
        }
    }

    /// The same epilogue followed by ReLU.
    pub fn relu(self) -> Epilogue<'a> {
        self.act(Act::Relu)
    }

    /// The same epilogue followed by `act` (instead of its own activation).
    pub fn act(self, act: Act) -> Epilogue<'a> {
        Epilogue { act, ..self }
    }
}

/// `C = alpha·A·B + beta·C`, then the epilogue, on the global [`Context`] (the detected kernel
/// and [`num_threads`] threads).
///
/// A is m×k with element `(i, p)` at `a[i*rsa + p*csa]`, B is k×n with `(p, j)` at
/// `b[p*rsb + j*csb]`, C is m×n with `(i, j)` at `c[i*rsc + j*csc]`: a transpose is a swap of
/// strides. Strides may be negative; each slice then starts at the matrix element with the
/// lowest address. `beta == 0` means C is only written (NaN in C does not propagate);
/// `alpha == 0` or `k == 0` means A and B are not read.
///
/// # Panics
/// On a contract violation, which is a bug in the caller (generated code): a slice shorter
/// than its matrix's extent, a bias whose length is not m (per row) or n (per column), or
/// strides of C that make two elements of C share memory.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
    epilogue: Epilogue,
) {
    Context::global().sgemm(
        m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, epilogue,
    );
}

/// `C = alpha·A·B + beta·C`, then the epilogue, like [`sgemm`], with B generated block by
/// block by `b` (k×n, see [`BSource`]) instead of read from memory, and C row-major
/// (`(i, j)` at `c[i*rsc + j]`). Every element of C gets the same arithmetic as from
/// [`sgemm`] with B stored.
///
/// # Panics
/// As [`sgemm`], and if `b.shape()` is not `(k, n)`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_source(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &dyn BSource,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    epilogue: Epilogue,
) {
    Context::global().sgemm_source(m, n, k, alpha, a, rsa, csa, b, beta, c, rsc, epilogue);
}

/// A GEMM after its arguments were checked: raw pointers at element (0, 0) of each operand.
/// Tasks of a parallel GEMM are sub-problems of one of these over disjoint parts of C.
#[derive(Clone, Copy)]
struct Problem<'s> {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    /// The bias pointer is at row 0 (Row) or column 0 (Col) of C.
    bias: TileBias,
    /// The clamp to `[0, hi]` of the epilogue, if any (see [`TileEpilogue`]).
    clamp: Option<f32>,
    /// B generated on demand instead of read through `b` (which is then unused), from
    /// column `j0` of the source on.
    source: Option<&'s dyn BSource>,
    j0: usize,
}

// SAFETY: a `Problem` is only built by `Context::sgemm` / `sgemm_source` from borrowed slices
// (and a `Sync` B source) that outlive the call, and only sent to the tasks of that call; each
// task writes a disjoint rectangle of C (C's strides were checked not to alias) and only
// reads A, B and the bias.
unsafe impl Send for Problem<'_> {}

impl<'s> Problem<'s> {
    /// The sub-problem on rows `rows` and columns `cols` of C.
    ///
    /// # Safety
    /// The ranges must lie inside `0..m` and `0..n`.
    unsafe fn sub(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Problem<'s> {
        let (i, j) = (rows.start as isize, cols.start as isize);
        // SAFETY: (i, 0) of A, (0, j) of B and (i, j) of C are elements of the checked
        // operands (or one past a dimension of length 0, which is never dereferenced).
        unsafe {
            Problem {
                m: rows.len(),
                n: cols.len(),
                a: self.a.offset(i * self.rsa),
                b: self.b.offset(j * self.csb),
                c: self.c.offset(i * self.rsc + j * self.csc),
                bias: match self.bias {
                    TileBias::None => TileBias::None,
                    TileBias::Row(p) => TileBias::Row(p.offset(i)),
                    TileBias::Col(p) => TileBias::Col(p.offset(j)),
                },
                j0: self.j0 + cols.start,
                ..*self
            }
        }
    }

    /// The same product transposed: `Cᵀ = Bᵀ·Aᵀ`, so a column-major C becomes row-major.
    /// Only for a stored B.
    fn transposed(&self) -> Problem<'s> {
        assert!(self.source.is_none(), "a generated B is never transposed");
        Problem {
            m: self.n,
            n: self.m,
            a: self.b,
            rsa: self.csb,
            csa: self.rsb,
            b: self.a,
            rsb: self.csa,
            csb: self.rsa,
            rsc: self.csc,
            csc: self.rsc,
            bias: match self.bias {
                TileBias::None => TileBias::None,
                TileBias::Row(p) => TileBias::Col(p),
                TileBias::Col(p) => TileBias::Row(p),
            },
            ..*self
        }
    }
}

/// Packing buffers of one thread, reused across calls (`t`: blocks of a generated B).
struct Scratch {
    a: AlignedBuf,
    b: AlignedBuf,
    t: AlignedBuf,
}

impl Scratch {
    const fn new() -> Scratch {
        Scratch {
            a: AlignedBuf::new(),
            b: AlignedBuf::new(),
            t: AlignedBuf::new(),
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new(Scratch::new()) };
}

/// Runs `p` on this thread with kernel `kind`, using this thread's packing buffers.
///
/// # Safety
/// `p` comes from `Context::sgemm` (pointers valid for its extents, C not aliased, no other
/// thread touching its part of C) and `kind` is available on this CPU.
unsafe fn run_serial(kind: KernelKind, p: &Problem) {
    SCRATCH.with(|scratch| {
        let mut fresh;
        let mut borrowed;
        let scratch = match scratch.try_borrow_mut() {
            Ok(s) => {
                borrowed = s;
                &mut *borrowed
            }
            Err(_) => {
                fresh = Scratch::new();
                &mut fresh
            }
        };
        // SAFETY: forwarded from the caller.
        unsafe {
            match kind {
                KernelKind::Generic => gemm_loops::<generic::Generic>(p, scratch),
                KernelKind::Avx2Fma => gemm_loops::<avx2::Avx2Fma>(p, scratch),
            }
        }
    });
}

/// Splits `0..len` into the fewest blocks of at most `max`, of equal size rounded up to a
/// multiple of `align` (`max` must be a multiple of `align`); yields `(start, len)`.
fn blocks(len: usize, max: usize, align: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = len.div_ceil(max).max(1);
    let size = len.div_ceil(count).next_multiple_of(align).max(1);
    (0..len)
        .step_by(size)
        .map(move |start| (start, size.min(len - start)))
}

/// The largest tile of any kernel (for the edge-tile temporary).
const MAX_TILE: usize = 128;
/// The largest MR or NR of any kernel.
const MAX_SIDE: usize = 16;

/// The BLIS loop nest around kernel `K`, on one thread.
///
/// # Safety
/// As [`run_serial`], with `K` available on this CPU.
unsafe fn gemm_loops<K: Kernel>(p: &Problem, scratch: &mut Scratch) {
    const { assert!(K::MR * K::NR <= MAX_TILE && K::MR <= MAX_SIDE && K::NR <= MAX_SIDE) };
    const { assert!(K::MC % K::MR == 0 && K::NC % K::NR == 0) };
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.csc != 1 && p.rsc == 1 {
        // Column-major C: the kernel stores rows, so compute Cᵀ = Bᵀ·Aᵀ instead.
        // SAFETY: the transposed problem describes the same memory.
        return unsafe { gemm_loops::<K>(&p.transposed(), scratch) };
    }
    let kc_max = K::KC.min(p.k);
    let b_pack = scratch
        .b
        .get(K::NC.min(p.n.next_multiple_of(K::NR)) * kc_max);
    let a_pack = scratch
        .a
        .get(K::MC.min(p.m.next_multiple_of(K::MR)) * kc_max);

    // Loop 5 (jc): split n by NC.
    for (jc, nc) in blocks(p.n, K::NC, K::NR) {
        // Loop 4 (pc): split k by KC, pack B.
        for (pc, kc) in blocks(p.k, K::KC, 1) {
            match p.source {
                // SAFETY: the kc×nc block at (pc, jc) lies inside B.
                None => unsafe {
                    let b = p.b.offset(pc as isize * p.rsb + jc as isize * p.csb);
                    pack::pack(K::NR, nc, kc, b, p.csb, p.rsb, b_pack);
                },
                Some(src) => {
                    let j0 = p.j0 + jc;
                    source::pack_source(K::NR, src, pc, kc, j0, nc, b_pack, &mut scratch.t);
                }
            }
            // Only the first k block scales C by beta; only the last applies the epilogue.
            let beta = if pc == 0 { p.beta } else { 1.0 };
            let last = pc + kc == p.k;

            // Loop 3 (ic): split m by MC, pack A.
            for (ic, mc) in blocks(p.m, K::MC, K::MR) {
                // SAFETY: the mc×kc block at (ic, pc) lies inside A.
                unsafe {
                    let a = p.a.offset(ic as isize * p.rsa + pc as isize * p.csa);
                    pack::pack(K::MR, mc, kc, a, p.rsa, p.csa, a_pack);
                }

                // Loop 2 (jr): split nc by NR, one packed B panel at a time.
                for jr in (0..nc).step_by(K::NR) {
                    let b_panel = &b_pack[jr * kc..][..kc * K::NR];
                    // Loop 1 (ir): split mc by MR, one packed A panel at a time.
                    for ir in (0..mc).step_by(K::MR) {
                        let a_panel = &a_pack[ir * kc..][..kc * K::MR];
                        let (i, j) = (ic + ir, jc + jr);
                        let epi = if last {
                            // SAFETY: row i and column j are inside C, so inside the bias.
                            unsafe {
                                TileEpilogue {
                                    bias: match p.bias {
                                        TileBias::None => TileBias::None,
                                        TileBias::Row(b) => TileBias::Row(b.add(i)),
                                        TileBias::Col(b) => TileBias::Col(b.add(j)),
                                    },
                                    clamp: p.clamp,
                                }
                            }
                        } else {
                            TileEpilogue::NONE
                        };
                        // SAFETY: the tile at (i, j) lies inside C; the panels are packed.
                        unsafe {
                            let c = p.c.offset(i as isize * p.rsc + j as isize * p.csc);
                            let (mr, nr) = (K::MR.min(mc - ir), K::NR.min(nc - jr));
                            tile::<K>(
                                kc, p.alpha, a_panel, b_panel, beta, c, p.rsc, p.csc, mr, nr, epi,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// One tile: straight to C when it is a full MR×NR tile with unit column stride, else through
/// an MR×NR temporary (copy in, run the same kernel, copy out), so every element of C sees the
/// same arithmetic wherever its tile lies.
///
/// # Safety
/// The `mr`×`nr` tile at `c` (strides `rsc`, `csc`) is writable, and readable if beta != 0;
/// the bias pointer (if any) covers `mr` (Row) or `nr` (Col) values; `K` is available.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<K: Kernel>(
    kc: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    mr: usize,
    nr: usize,
    epi: TileEpilogue,
) {
    if mr == K::MR && nr == K::NR && csc == 1 {
        // SAFETY: a full tile with unit column stride, exactly the kernel's contract.
        return unsafe { K::kernel(kc, alpha, a.as_ptr(), b.as_ptr(), beta, c, rsc, epi) };
    }
    let mut t = [0.0f32; MAX_TILE];
    let at = |i: usize, j: usize| i as isize * rsc + j as isize * csc;
    if beta != 0.0 {
        for i in 0..mr {
            for j in 0..nr {
                // SAFETY: (i, j) is inside the tile, readable since beta != 0.
                t[i * K::NR + j] = unsafe { *c.offset(at(i, j)) };
            }
        }
    }
    let mut bias = [0.0f32; MAX_SIDE];
    let bias_t = match epi.bias {
        TileBias::None => TileBias::None,
        TileBias::Row(p) => {
            // SAFETY: a Row bias covers mr values.
            bias[..mr].copy_from_slice(unsafe { std::slice::from_raw_parts(p, mr) });
            TileBias::Row(bias.as_ptr())
        }
        TileBias::Col(p) => {
            // SAFETY: a Col bias covers nr values.
            bias[..nr].copy_from_slice(unsafe { std::slice::from_raw_parts(p, nr) });
            TileBias::Col(bias.as_ptr())
        }
    };
    let epi_t = TileEpilogue {
        bias: bias_t,
        clamp: epi.clamp,
    };
    // SAFETY: `t` is a full MR×NR tile with row stride NR, initialized; `bias` covers MAX_SIDE.
    unsafe {
        K::kernel_edge(
            mr,
            nr,
            kc,
            alpha,
            a.as_ptr(),
            b.as_ptr(),
            beta,
            t.as_mut_ptr(),
            K::NR as isize,
            epi_t,
        );
    }
    for i in 0..mr {
        for j in 0..nr {
            // SAFETY: (i, j) is inside the tile.
            unsafe { *c.offset(at(i, j)) = t[i * K::NR + j] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_balanced_and_cover_the_range() {
        let collect = |len, max, align| blocks(len, max, align).collect::<Vec<_>>();
        assert_eq!(
            collect(864, 256, 1),
            vec![(0, 216), (216, 216), (432, 216), (648, 216)]
        );
        assert_eq!(collect(256, 256, 1), vec![(0, 256)]);
        assert_eq!(collect(257, 256, 1), vec![(0, 129), (129, 128)]);
        assert_eq!(collect(192, 144, 6), vec![(0, 96), (96, 96)]);
        assert_eq!(collect(7, 144, 6), vec![(0, 7)]);
        assert_eq!(collect(0, 144, 6), vec![]);
        for len in 0..300 {
            let total: usize = blocks(len, 48, 6).map(|(_, l)| l).sum();
            assert_eq!(total, len);
            assert!(blocks(len, 48, 6).all(|(s, l)| s % 6 == 0 && l <= 48));
        }
    }
}
