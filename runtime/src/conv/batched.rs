//! Small maps: several images in one GEMM.
//!
//! On a 7×7 map an image's GEMM has `n = 49` columns: the whole weight matrix is packed for
//! three and a bit panels of 16, and a weight gradient reads and writes all of `dW` for a
//! reduction of 49. (ResNet-50's 7×7 convolutions ran at half PyTorch's speed this way.)
//! Here up to [`MAX_IMAGES`] images (more for tiny convs) are the columns of one GEMM: B is each image's im2col
//! (implicit where that pays, else stored, or the image itself for a pointwise
//! conv) side by side, generated block by block, and C goes to scratch and is scattered
//! back to NCHW. The weight gradient gathers the images' `dY` side by side and reduces over
//! all their pixels at once.
//!
//! The scratch is the `col` buffer, which [`Conv2d::col_len`] sizes for it; with less room
//! the callers fall back to one image at a time. Results do not depend on the thread count
//! (the GEMM splits C, never the reduction), but differ in rounding from the per-image path.

use super::*;
use crate::gemm::{BSource, Major};
use crate::im2col::Im2colSource;

/// Maps of at most this many pixels are batched.
pub(crate) const SMALL_MAP: usize = 256;

/// Convs whose GEMM for one image is at most this many flops are batched whatever their map
/// (LeNet's: 0.24 and 0.48 MFLOP, too little to split between threads). The measure is the
/// GEMM's work, not the weights alone: MobileNetV2's 16→96 1×1 conv on 112×112 has only
/// 1,536 weights, but an image's GEMM is 38 MFLOP with a 4.8 MB output, which batching only
/// copies once more through scratch (it ran 10.1 ms at batch 8 batched, 7.5 ms per image).
pub(crate) const SMALL_GEMM_FLOPS: usize = 4 << 20;

/// Images per GEMM: `8 × 49 = 392` columns fill 25 panels; more where the scratch is small
/// (up to [`TINY_ROOM`] floats), so that a tiny conv's GEMM grows large enough to split.
pub(crate) const MAX_IMAGES: usize = 8;

/// The most images per GEMM, for the tiniest convs.
const MAX_TINY_IMAGES: usize = 64;

/// Scratch (floats) below which more than [`MAX_IMAGES`] images share a GEMM.
const TINY_ROOM: usize = 1 << 19;

/// How one image's B is made.
enum Kind {
    /// The input itself (a pointwise conv).
    Input,
    /// An implicit im2col of the padded input (where it pays).
    Implicit(Im2colPlan),
    /// A stored im2col.
    Stored,
}

impl Kind {
    fn of(g: &Conv2d) -> Kind {
        if g.is_pointwise() {
            Kind::Input
        } else if Im2colPlan::pays(g) {
            Kind::Implicit(Im2colPlan::new(g))
        } else {
            Kind::Stored
        }
    }

    /// Floats of one image's B in `col`.
    fn room(&self, g: &Conv2d) -> usize {
        match self {
            Kind::Input => 0,
            Kind::Implicit(plan) => plan.padded_len(),
            Kind::Stored => g.col_rows() * g.ho() * g.wo(),
        }
    }
}

/// Whether `g` is batched at all: one group, and a small map or a small GEMM per image.
pub(super) fn applies(g: &Conv2d) -> bool {
    let pixels = g.ho() * g.wo();
    g.groups == 1 && (pixels <= SMALL_MAP || 2 * g.weight_len() * pixels <= SMALL_GEMM_FLOPS)
}

/// Floats of `col` one image takes.
fn per_image(g: &Conv2d, kind: &Kind) -> usize {
    (kind.room(g) + g.out * g.ho() * g.wo()).max(1)
}

/// The most images per GEMM for `g`.
fn most_images(g: &Conv2d, kind: &Kind) -> usize {
    (TINY_ROOM / per_image(g, kind)).clamp(MAX_IMAGES, MAX_TINY_IMAGES)
}

/// Floats of `col` that batching `g` uses at most (0 when it does not apply).
pub(crate) fn col_len(g: &Conv2d) -> usize {
    if !applies(g) {
        return 0;
    }
    let kind = Kind::of(g);
    most_images(g, &kind) * per_image(g, &kind)
}

/// Images per GEMM for `n` images and `col_len` floats of scratch (below 2: not batched).
fn images(g: &Conv2d, kind: &Kind, n: usize, col_len: usize) -> usize {
    if !applies(g) || n < 2 {
        return 0;
    }
    n.min(most_images(g, kind))
        .min(col_len / per_image(g, kind))
}

/// One image's B (K×P), or its transpose.
enum Part<'a> {
    Implicit(Im2colSource<'a>),
    /// A K×P row-major matrix.
    Stored {
        m: &'a [f32],
        p: usize,
        transposed: bool,
    },
}

impl BSource for Part<'_> {
    fn shape(&self) -> (usize, usize) {
        match self {
            Part::Implicit(s) => s.shape(),
            Part::Stored { m, p, transposed } => {
                let k = m.len() / p;
                if *transposed {
                    (*p, k)
                } else {
                    (k, *p)
                }
            }
        }
    }

    fn major(&self) -> Major {
        match self {
            Part::Implicit(s) => s.major(),
            Part::Stored { transposed, .. } => {
                if *transposed {
                    Major::Col
                } else {
                    Major::Row
                }
            }
        }
    }

    fn block(&self, pc: usize, kc: usize, j0: usize, w: usize, out: &mut [f32], ld: usize) {
        match self {
            Part::Implicit(s) => s.block(pc, kc, j0, w, out, ld),
            Part::Stored {
                m,
                p,
                transposed: false,
            } => {
                for r in 0..kc {
                    let at = (pc + r) * p + j0;
                    out[r * ld..r * ld + w].copy_from_slice(&m[at..at + w]);
                }
            }
            Part::Stored {
                m,
                p,
                transposed: true,
            } => {
                // Column j of the block is row j0 + j of the matrix, pixels pc..pc+kc.
                for j in 0..w {
                    let at = (j0 + j) * p + pc;
                    out[j * ld..j * ld + kc].copy_from_slice(&m[at..at + kc]);
                }
            }
        }
    }
}

/// The images' B side by side (K × m·P), or their transposes stacked (m·P × K).
struct Images<'a> {
    parts: Vec<Part<'a>>,
    p: usize,
    transposed: bool,
}

impl BSource for Images<'_> {
    fn shape(&self) -> (usize, usize) {
        let (r, c) = self.parts[0].shape();
        if self.transposed {
            (r * self.parts.len(), c)
        } else {
            (r, c * self.parts.len())
        }
    }

    fn major(&self) -> Major {
        self.parts[0].major()
    }

    fn block(&self, pc: usize, kc: usize, j0: usize, w: usize, out: &mut [f32], ld: usize) {
        // Split the block where it crosses from one image to the next: along its columns,
        // or (transposed) along its rows.
        let (start, len) = if self.transposed { (pc, kc) } else { (j0, w) };
        let mut at = start;
        while at < start + len {
            let (i, q) = (at / self.p, at % self.p);
            let run = (self.p - q).min(start + len - at);
            let off = at - start;
            // Where element (row off, col 0) or (row 0, col off) of the block lies in `out`.
            let shift = match (self.transposed, self.major()) {
                (false, Major::Row) | (true, Major::Col) => off,
                (false, Major::Col) | (true, Major::Row) => off * ld,
            };
            let out = &mut out[shift..];
            if self.transposed {
                self.parts[i].block(q, run, j0, w, out, ld);
            } else {
                self.parts[i].block(pc, kc, q, run, out, ld);
            }
            at += run;
        }
    }
}

/// Fills image `xi`'s B into `room` as `kind` says.
fn prepare(g: &Conv2d, kind: &Kind, xi: &[f32], room: &mut [f32]) {
    match kind {
        Kind::Input => {}
        Kind::Implicit(_) => pad_input(g, xi, 0, room),
        Kind::Stored => im2col(g, xi, 0, room),
    }
}

/// Image `xi`'s B (or its transpose) from what [`prepare`] left in `room`.
fn part<'a>(
    g: &Conv2d,
    kind: &'a Kind,
    xi: &'a [f32],
    room: &'a [f32],
    transposed: bool,
) -> Part<'a> {
    let p = g.ho() * g.wo();
    match kind {
        Kind::Input => Part::Stored {
            m: xi,
            p,
            transposed,
        },
        Kind::Implicit(plan) => Part::Implicit(plan.source(room, transposed)),
        Kind::Stored => Part::Stored {
            m: &room[..g.col_rows() * p],
            p,
            transposed,
        },
    }
}

/// `y = act(conv(x, w) + bias + beta·y)` at `ys`, image `i` of `x` at `xs`, `beta` 0 or 1.
/// Returns false (and does nothing) unless batching applies.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    xs: Slot,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ys: Slot,
    beta: f32,
    col: &mut [f32],
) -> bool {
    let kind = Kind::of(g);
    let nb = images(g, &kind, n, col.len());
    if nb < 2 {
        return false;
    }
    assert!(beta == 0.0 || beta == 1.0, "conv: beta {beta}");
    let (k, p, room) = (g.col_rows(), g.ho() * g.wo(), kind.room(g));
    let (xlen, ylen) = (g.c * g.h * g.w, g.out * p);
    // The GEMM's epilogue adds the bias and applies the activation. Adding to `y`, the
    // GEMM starts from `y`'s values gathered into its C, as the GEMM of one image does
    // with `y` itself: `y` joins the sum before its first block of `k` (KC), so a sum
    // added after the whole product would round otherwise, and an image's outputs would
    // depend on how many images share its GEMM (a batch cut into shards must compute the
    // same bits).
    let epi = match bias {
        Some(b) => Epilogue::bias_per_row(b).act(act),
        None => Epilogue::NONE.act(act),
    };
    for i0 in (0..n).step_by(nb) {
        let m = nb.min(n - i0);
        let (rooms, rest) = col.split_at_mut(nb * room);
        let cbuf = &mut rest[..g.out * m * p];
        let mp = m * p;
        if beta != 0.0 {
            for ii in 0..m {
                let yi = &y[ys.image(i0 + ii, ylen)];
                for (o, row) in yi.chunks_exact(p).enumerate() {
                    cbuf[o * mp + ii * p..o * mp + (ii + 1) * p].copy_from_slice(row);
                }
            }
        }
        for (ii, r) in rooms.chunks_exact_mut(room.max(1)).take(m).enumerate() {
            prepare(g, &kind, &x[xs.image(i0 + ii, xlen)], r);
        }
        let rooms: &[f32] = rooms;
        let parts = (0..m)
            .map(|ii| {
                let r = &rooms[ii * room..(ii + 1) * room];
                part(g, &kind, &x[xs.image(i0 + ii, xlen)], r, false)
            })
            .collect();
        let b = Images {
            parts,
            p,
            transposed: false,
        };
        sgemm_source(
            g.out,
            mp,
            k,
            1.0,
            w,
            k as isize,
            1,
            &b,
            beta,
            cbuf,
            mp as isize,
            epi,
        );
        for ii in 0..m {
            let yi = &mut y[ys.image(i0 + ii, ylen)];
            for (o, row) in yi.chunks_exact_mut(p).enumerate() {
                row.copy_from_slice(&cbuf[o * mp + ii * p..o * mp + (ii + 1) * p]);
            }
        }
    }
    true
}

/// `dw = ∂L/∂w` (overwritten) from `n` images, `dy` at `dys`. Returns false (and does
/// nothing) unless batching applies.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight(
    g: &Conv2d,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dys: Slot,
    dw: &mut [f32],
    col: &mut [f32],
) -> bool {
    let kind = Kind::of(g);
    let nb = images(g, &kind, n, col.len());
    if nb < 2 {
        return false;
    }
    let (k, p, room) = (g.col_rows(), g.ho() * g.wo(), kind.room(g));
    let (xlen, ylen) = (g.c * g.h * g.w, g.out * p);
    for i0 in (0..n).step_by(nb) {
        let m = nb.min(n - i0);
        let mp = m * p;
        let (rooms, rest) = col.split_at_mut(nb * room);
        let abuf = &mut rest[..g.out * mp];
        for ii in 0..m {
            let i = i0 + ii;
            prepare(
                g,
                &kind,
                &x[i * xlen..(i + 1) * xlen],
                &mut rooms[ii * room..][..room],
            );
            let dyi = &dy[dys.image(i, ylen)];
            for (o, src) in dyi.chunks_exact(p).enumerate() {
                abuf[o * mp + ii * p..o * mp + (ii + 1) * p].copy_from_slice(src);
            }
        }
        let rooms: &[f32] = rooms;
        let parts = (0..m)
            .map(|ii| {
                let (i, r) = (i0 + ii, &rooms[ii * room..(ii + 1) * room]);
                part(g, &kind, &x[i * xlen..(i + 1) * xlen], r, true)
            })
            .collect();
        let b = Images {
            parts,
            p,
            transposed: true,
        };
        let beta = if i0 == 0 { 0.0 } else { 1.0 };
        sgemm_source(
            g.out,
            k,
            mp,
            1.0,
            abuf,
            mp as isize,
            1,
            &b,
            beta,
            dw,
            k as isize,
            Epilogue::NONE,
        );
    }
    true
}
