//! The transforms of F(2×2, 3×3) and F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016), in one dimension on lanes of eight tiles, and the
//! two-dimensional forms `Xᵀ·d·X` built from them (columns first, then rows).
//!
//! A tile of `α = m + 2` inputs gives `m` outputs: `y = Aᵀ·[(G·g) ⊙ (Bᵀ·d)]`. F4 uses the
//! interpolation points 0, ±1, ±2 and ∞; F2 uses 0, ±1 and ∞. The matrices are written out
//! as sums, with the zeros skipped and the common subexpressions shared, because a product
//! by a table would multiply by zero (which the compiler may not drop: `0·∞` is NaN).
//!
//! The weight gradient runs the same algebra backwards: with `dM = A·dY·Aᵀ` per tile,
//! `dU = Σ_tiles dM ⊙ V`, and `dg = Gᵀ·dU·G`.

/// Tiles (or weights) transformed at once: one AVX2 register of `f32`.
pub(super) const LANES: usize = 8;

/// One value of eight tiles.
pub(super) type L = [f32; LANES];

/// The zero lane.
pub(super) const ZERO: L = [0.0; LANES];

// Plain loops, not `std::array::from_fn`: its closure is a function of its own, which the
// `#[target_feature]` wrappers of `simd.rs` would call out of line, compiled without AVX.

#[inline(always)]
fn add(mut a: L, b: L) -> L {
    for k in 0..LANES {
        a[k] += b[k];
    }
    a
}

#[inline(always)]
fn sub(mut a: L, b: L) -> L {
    for k in 0..LANES {
        a[k] -= b[k];
    }
    a
}

#[inline(always)]
fn mul(mut a: L, s: f32) -> L {
    for v in &mut a {
        *v *= s;
    }
    a
}

/// One tile size's transforms; arrays are sized for the largest (`α = 6`, `m = 4`) and only
/// the first `A` (or `M`) entries are used.
pub(super) trait Transform {
    /// Outputs per tile side.
    const M: usize;
    /// Inputs per tile side, `M + 2`.
    const A: usize;
    /// `Bᵀ·d`: a row (or column) of an input tile to the Winograd domain.
    fn input(d: &[L; 6]) -> [L; 6];
    /// `Aᵀ·m`: from the Winograd domain to `M` outputs.
    fn output(m: &[L; 6]) -> [L; 4];
    /// `A·dy`: an output gradient to the Winograd domain (the adjoint of `output`).
    fn grad(dy: &[L; 4]) -> [L; 6];
    /// `G·g`: three kernel taps to the Winograd domain.
    fn kernel(g: &[L; 3]) -> [L; 6];
    /// `Gᵀ·du`: the adjoint of `kernel`, from the Winograd domain back to three taps.
    fn kernel_grad(du: &[L; 6]) -> [L; 3];
}

/// F(2×2, 3×3): 4×4 tiles, 2×2 outputs.
pub(super) struct F2;

/// F(4×4, 3×3): 6×6 tiles, 4×4 outputs.
pub(super) struct F4;

impl Transform for F2 {
    const M: usize = 2;
    const A: usize = 4;

    #[inline(always)]
    fn input(d: &[L; 6]) -> [L; 6] {
        // Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
        [
            sub(d[0], d[2]),
            add(d[1], d[2]),
            sub(d[2], d[1]),
            sub(d[1], d[3]),
            ZERO,
            ZERO,
        ]
    }

    #[inline(always)]
    fn output(m: &[L; 6]) -> [L; 4] {
        // Aᵀ = [1 1 1 0; 0 1 -1 -1]
        [
            add(add(m[0], m[1]), m[2]),
            sub(sub(m[1], m[2]), m[3]),
            ZERO,
            ZERO,
        ]
    }

    #[inline(always)]
    fn grad(dy: &[L; 4]) -> [L; 6] {
        [
            dy[0],
            add(dy[0], dy[1]),
            sub(dy[0], dy[1]),
            mul(dy[1], -1.0),
            ZERO,
            ZERO,
        ]
    }

    #[inline(always)]
    fn kernel(g: &[L; 3]) -> [L; 6] {
        // G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
        let s = mul(add(g[0], g[2]), 0.5);
        let h = mul(g[1], 0.5);
        [g[0], add(s, h), sub(s, h), g[2], ZERO, ZERO]
    }

    #[inline(always)]
    fn kernel_grad(du: &[L; 6]) -> [L; 3] {
        let s = mul(add(du[1], du[2]), 0.5);
        [add(du[0], s), mul(sub(du[1], du[2]), 0.5), add(s, du[3])]
    }
}

impl Transform for F4 {
    const M: usize = 4;
    const A: usize = 6;

    #[inline(always)]
    fn input(d: &[L; 6]) -> [L; 6] {
        // Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
        //       0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
        let a = sub(d[4], mul(d[2], 4.0));
        let b = sub(d[3], mul(d[1], 4.0));
        let c = sub(d[4], d[2]);
        let e = mul(sub(d[3], d[1]), 2.0);
        [
            add(sub(mul(d[0], 4.0), mul(d[2], 5.0)), d[4]),
            add(a, b),
            sub(a, b),
            add(c, e),
            sub(c, e),
            add(sub(mul(d[1], 4.0), mul(d[3], 5.0)), d[5]),
        ]
    }

    #[inline(always)]
    fn output(m: &[L; 6]) -> [L; 4] {
        // Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
        let (p12, m12) = (add(m[1], m[2]), sub(m[1], m[2]));
        let (p34, m34) = (add(m[3], m[4]), sub(m[3], m[4]));
        [
            add(add(m[0], p12), p34),
            add(m12, mul(m34, 2.0)),
            add(p12, mul(p34, 4.0)),
            add(add(m12, mul(m34, 8.0)), m[5]),
        ]
    }

    #[inline(always)]
    fn grad(dy: &[L; 4]) -> [L; 6] {
        let (p02, p13) = (add(dy[0], dy[2]), add(dy[1], dy[3]));
        let q02 = add(dy[0], mul(dy[2], 4.0));
        let q13 = add(mul(dy[1], 2.0), mul(dy[3], 8.0));
        [
            dy[0],
            add(p02, p13),
            sub(p02, p13),
            add(q02, q13),
            sub(q02, q13),
            dy[3],
        ]
    }

    #[inline(always)]
    fn kernel(g: &[L; 3]) -> [L; 6] {
        // G = [¼ 0 0; -⅙ -⅙ -⅙; -⅙ ⅙ -⅙; 1/24 1/12 ⅙; 1/24 -1/12 ⅙; 0 0 1]
        let s = add(g[0], g[2]);
        let t = add(mul(g[0], 0.25), g[2]);
        let h = mul(g[1], 0.5);
        [
            mul(g[0], 0.25),
            mul(add(s, g[1]), -1.0 / 6.0),
            mul(sub(s, g[1]), -1.0 / 6.0),
            mul(add(t, h), 1.0 / 6.0),
            mul(sub(t, h), 1.0 / 6.0),
            g[2],
        ]
    }

    #[inline(always)]
    fn kernel_grad(du: &[L; 6]) -> [L; 3] {
        let (p12, m12) = (add(du[1], du[2]), sub(du[2], du[1]));
        let (p34, m34) = (add(du[3], du[4]), sub(du[3], du[4]));
        [
            add(
                mul(du[0], 0.25),
                sub(mul(p34, 1.0 / 24.0), mul(p12, 1.0 / 6.0)),
            ),
            add(mul(m12, 1.0 / 6.0), mul(m34, 1.0 / 12.0)),
            add(mul(sub(p34, p12), 1.0 / 6.0), du[5]),
        ]
    }
}

/// `X·d·Yᵀ` for a `rows_in × cols_in` square `d`: `f` (one of the 1-D transforms, `n_in`
/// values to `n_out`) down every column, then along every row.
#[inline(always)]
pub(super) fn two_d<const NI: usize, const NO: usize>(
    d: &[[L; 6]; 6],
    n_in: usize,
    n_out: usize,
    f: impl Fn(&[L; NI]) -> [L; NO],
) -> [[L; 6]; 6] {
    let mut t = [[ZERO; 6]; 6];
    for j in 0..n_in {
        let mut col = [ZERO; NI];
        for (i, c) in col.iter_mut().enumerate().take(n_in) {
            *c = d[i][j];
        }
        let r = f(&col);
        for i in 0..n_out {
            t[i][j] = r[i];
        }
    }
    let mut out = [[ZERO; 6]; 6];
    for i in 0..n_out {
        let mut row = [ZERO; NI];
        row[..n_in].copy_from_slice(&t[i][..n_in]);
        let r = f(&row);
        out[i][..n_out].copy_from_slice(&r[..n_out]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y_k = Σ_j d_{k+j}·g_j` (a 1-D correlation) through the transforms equals the
    /// definition, and `grad`, `kernel_grad` are the adjoints of `output`, `kernel`.
    fn identities<T: Transform>() {
        let lane = |v: f32| [v; LANES];
        let d: [L; 6] = std::array::from_fn(|i| lane([0.3, -1.2, 2.5, 0.7, -0.4, 1.9][i]));
        let g: [L; 3] = [lane(0.5), lane(-1.5), lane(2.0)];
        let (v, u) = (T::input(&d), T::kernel(&g));
        let prod: [L; 6] = std::array::from_fn(|i| {
            if i < T::A {
                std::array::from_fn(|k| v[i][k] * u[i][k])
            } else {
                ZERO
            }
        });
        let y = T::output(&prod);
        for k in 0..T::M {
            let want: f32 = (0..3).map(|j| d[k + j][0] * g[j][0]).sum();
            assert!(
                (y[k][0] - want).abs() < 1e-5,
                "y[{k}] {} vs {want}",
                y[k][0]
            );
        }
        // ⟨output(m), dy⟩ = ⟨m, grad(dy)⟩ and ⟨kernel(g), du⟩ = ⟨g, kernel_grad(du)⟩.
        let m: [L; 6] = std::array::from_fn(|i| lane(if i < T::A { i as f32 - 2.5 } else { 0.0 }));
        let dy: [L; 4] = std::array::from_fn(|i| lane(if i < T::M { 1.0 + i as f32 } else { 0.0 }));
        let (o, gr) = (T::output(&m), T::grad(&dy));
        let lhs: f32 = (0..T::M).map(|i| o[i][0] * dy[i][0]).sum();
        let rhs: f32 = (0..T::A).map(|i| m[i][0] * gr[i][0]).sum();
        assert!((lhs - rhs).abs() < 1e-4, "output/grad: {lhs} vs {rhs}");
        let du = m;
        let (k, kg) = (T::kernel(&g), T::kernel_grad(&du));
        let lhs: f32 = (0..T::A).map(|i| k[i][0] * du[i][0]).sum();
        let rhs: f32 = (0..3).map(|i| g[i][0] * kg[i][0]).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4,
            "kernel/kernel_grad: {lhs} vs {rhs}"
        );
    }

    #[test]
    fn f2_transforms_compute_a_correlation_and_their_adjoints() {
        identities::<F2>();
    }

    #[test]
    fn f4_transforms_compute_a_correlation_and_their_adjoints() {
        identities::<F4>();
    }
}
