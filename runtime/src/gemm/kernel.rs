//! The micro-kernel contract shared by every kernel, and the list of kernels.
//!
//! A micro-kernel computes one MR×NR tile of C from an MR-row panel of packed A and an
//! NR-column panel of packed B (see `pack.rs`):
//!
//! ```text
//! C[i, j] := epilogue(beta * C[i, j] + alpha * sum_p A[i, p] * B[p, j])   0 <= i < MR, 0 <= j < NR
//! ```
//!
//! where `epilogue` adds an optional bias (one value per row or per column of the tile) and
//! then an optional clamp to `[0, hi]` (ReLU with `hi = ∞`, ReLU6 with `hi = 6`). The loop nest in `mod.rs` passes the real epilogue only with the last
//! k block, so it is applied once per element of C, after the full reduction.

/// The bias part of a tile epilogue; the pointer is at the tile's first row (`Row`, MR values)
/// or first column (`Col`, NR values).
#[derive(Clone, Copy, Debug)]
pub(crate) enum TileBias {
    /// Add nothing.
    None,
    /// `C[i, j] += bias[i]`.
    Row(*const f32),
    /// `C[i, j] += bias[j]`.
    Col(*const f32),
}

/// What a kernel applies to a finished tile before it stores it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpilogue {
    pub bias: TileBias,
    /// `Some(hi)`: clamp to `[0, hi]` last, `min(max(x, 0), hi)` with NaN kept; `hi = ∞` is
    /// ReLU, for which a kernel skips the `min` (decided once per tile, not per element).
    pub clamp: Option<f32>,
}

impl TileEpilogue {
    /// The identity: used for every k block but the last.
    pub const NONE: TileEpilogue = TileEpilogue {
        bias: TileBias::None,
        clamp: None,
    };
}

/// A micro-kernel together with the block sizes that suit it (chosen in `mod.rs`).
///
/// Everything but `kernel` is a constant, so the loop nest is monomorphized per kernel and
/// the compiler sees the panel sizes.
pub(crate) trait Kernel {
    /// Rows of the C tile (and of each packed A panel).
    const MR: usize;
    /// Columns of the C tile (and of each packed B panel).
    const NR: usize;
    /// Rows of A packed at once (loop 3); a multiple of MR.
    const MC: usize;
    /// Depth of one packed block (loop 4).
    const KC: usize;
    /// Columns of B packed at once (loop 5); a multiple of NR.
    const NC: usize;

    /// `C := epi(beta*C + alpha*A*B)` on one MR×NR tile.
    ///
    /// # Safety
    /// - `a` points to `k * MR` readable floats: `A[i, p]` at `a[p*MR + i]`;
    /// - `b` points to `k * NR` readable floats, 64-byte aligned: `B[p, j]` at `b[p*NR + j]`;
    /// - `c` points to an MR×NR tile with row stride `rsc` and column stride 1, every element
    ///   writable, and readable unless `beta == 0` (then C is not read at all, so it may hold
    ///   NaN or garbage);
    /// - a `TileBias::Row` / `Col` pointer points to MR / NR readable floats;
    /// - the kernel is available on this CPU (`KernelKind::is_available`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        epi: TileEpilogue,
    );

    /// [`kernel`](Kernel::kernel) for an edge tile of which only the first `mr` rows and `nr`
    /// columns are wanted (`1 <= mr <= MR`, `1 <= nr <= NR`). `c` is then always an MR×NR
    /// temporary; a kernel may leave the unwanted part of it unwritten, but must give every
    /// wanted element exactly the value [`kernel`](Kernel::kernel) would. The default runs
    /// the full kernel.
    ///
    /// # Safety
    /// As [`kernel`](Kernel::kernel).
    #[allow(clippy::too_many_arguments)]
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
        let _ = (mr, nr);
        // SAFETY: the same contract.
        unsafe { Self::kernel(k, alpha, a, b, beta, c, rsc, epi) }
    }
}

/// The micro-kernels of this build. Every kernel computes the same thing; only their speed and
/// rounding differ (the AVX2 kernel fuses multiply and add).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Portable Rust, 4×8 tiles; always available.
    Generic,
    /// AVX2 + FMA intrinsics, 6×16 tiles; x86_64 CPUs that report both features.
    Avx2Fma,
}

impl KernelKind {
    /// Every kernel of this build, available here or not.
    pub const ALL: [KernelKind; 2] = [KernelKind::Generic, KernelKind::Avx2Fma];

    /// A short name for reports and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Generic => "generic 4x8",
            KernelKind::Avx2Fma => "avx2+fma 6x16",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            KernelKind::Generic => true,
            KernelKind::Avx2Fma => super::avx2::is_available(),
        }
    }

    /// The fastest kernel this CPU runs; detected once, then cached.
    pub fn detect() -> KernelKind {
        static DETECTED: std::sync::OnceLock<KernelKind> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            if KernelKind::Avx2Fma.is_available() {
                KernelKind::Avx2Fma
            } else {
                KernelKind::Generic
            }
        })
    }

    /// The kernel's tile and block sizes.
    pub fn blocking(self) -> Blocking {
        fn of<K: Kernel>() -> Blocking {
            Blocking {
                mr: K::MR,
                nr: K::NR,
                mc: K::MC,
                kc: K::KC,
                nc: K::NC,
            }
        }
        match self {
            KernelKind::Generic => of::<super::generic::Generic>(),
            KernelKind::Avx2Fma => of::<super::avx2::Avx2Fma>(),
        }
    }
}

/// Tile and block sizes of a kernel, in BLIS's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of a C tile, of a packed A panel.
    pub mr: usize,
    /// Columns of a C tile, of a packed B panel.
    pub nr: usize,
    /// Rows of A packed at once (loop 3).
    pub mc: usize,
    /// Depth of the packed blocks (loop 4): the reduction is split into blocks of at most kc.
    pub kc: usize,
    /// Columns of B packed at once (loop 5).
    pub nc: usize,
}
