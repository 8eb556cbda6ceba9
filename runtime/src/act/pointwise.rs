//! One kernel for every elementwise activation: an op is a [`Pointwise`] value (its function
//! and derivative), and [`forward`], [`backward`] and their in-place forms are generic over it,
//! so a new activation is a dozen lines of math and every loop, length check and thread split
//! is written once. Monomorphization inlines the op into the loop, so `Relu` compiles to the
//! same branch-free code as a hand-written kernel.

use rayon::prelude::*;

use crate::gemm::Context;
use crate::tensor::Slot;

/// Elements per task when a large tensor goes to the runtime's threads; elements are
/// independent, so the result does not depend on the thread count.
const CHUNK: usize = 1 << 16;

/// Below this many elements an op stays on the calling thread: on two cores a ReLU over 1M
/// elements (in cache) took as long on two threads as on one, waking them costing what it
/// saved.
const PARALLEL_MIN: usize = 1 << 20;

/// Runs `f` over `(index, chunk)` for the `CHUNK`-element chunks of `buf`, on the runtime's
/// threads when `buf` is large.
fn for_chunks(buf: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if buf.len() >= PARALLEL_MIN {
        let ctx = Context::global();
        if ctx.threads() > 1 {
            ctx.install(|| {
                buf.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(i, c)| f(i, c))
            });
            return;
        }
    }
    buf.chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i, c));
}

/// An elementwise function with PyTorch's numerics, and its derivative.
pub trait Pointwise: Copy + Send + Sync {
    /// Whether `df` can be computed from the output alone (then the op may run in place and
    /// its backward needs only y).
    const FROM_OUTPUT: bool;

    /// `y = f(x)`.
    fn f(&self, x: f32) -> f32;

    /// dy/dx at input `x` with output `y = f(x)`; ops with FROM_OUTPUT read only `y`.
    fn df(&self, x: f32, y: f32) -> f32;

    /// The gradient of one element, `dy · df(x, y)`. Ops whose PyTorch backward is a select
    /// (`where(inside, dy, 0)`, as ReLU's `threshold_backward`) override it, so that a zero
    /// derivative gives 0 even for an infinite or NaN `dy`, as PyTorch does.
    #[inline]
    fn grad(&self, x: f32, y: f32, dy: f32) -> f32 {
        dy * self.df(x, y)
    }
}

/// The op's type name without its module path, for panic messages.
fn name<F>() -> &'static str {
    let full = std::any::type_name::<F>();
    full.rsplit("::").next().unwrap_or(full)
}

/// `y = f(x)` elementwise.
pub fn forward<F: Pointwise>(f: F, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "{}: lengths", name::<F>());
    for_chunks(y, |i, ys| {
        for (o, &v) in ys.iter_mut().zip(&x[i * CHUNK..]) {
            *o = f.f(v);
        }
    });
}

/// `x ← f(x)`: the op shares its input's buffer. Any op may run so at inference; in training
/// only a FROM_OUTPUT op may, since the input is gone when the backward pass needs it.
pub fn forward_inplace<F: Pointwise>(f: F, x: &mut [f32]) {
    for_chunks(x, |_, xs| {
        for v in xs {
            *v = f.f(*v);
        }
    });
}

/// dx = dy * df(x, y) (overwrites dx)
pub fn backward<F: Pointwise>(f: F, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == y.len() && y.len() == dy.len() && dy.len() == dx.len(),
        "{}: lengths",
        name::<F>()
    );
    for_chunks(dx, |i, ds| {
        let at = i * CHUNK;
        let inputs = x[at..].iter().zip(&y[at..]).zip(&dy[at..]);
        for (d, ((&xv, &yv), &g)) in ds.iter_mut().zip(inputs) {
            *d = f.grad(xv, yv, g);
        }
    });
}

/// dy <- dy * df(y, y); only for FROM_OUTPUT ops (assert it): the backward of an op run in
/// place or fused into a GEMM epilogue.
pub fn backward_inplace<F: Pointwise>(f: F, y: &[f32], dy: &mut [f32]) {
    assert!(
        F::FROM_OUTPUT,
        "{}: its derivative needs the input, so it has no in-place backward",
        name::<F>()
    );
    assert_eq!(y.len(), dy.len(), "{}: lengths", name::<F>());
    for_chunks(dy, |i, ds| {
        for (d, &yv) in ds.iter_mut().zip(&y[i * CHUNK..]) {
            *d = f.grad(yv, yv, *d);
        }
    });
}

/// [`backward_inplace`] on `n` images of `len` elements at `slot` of `y` and `dy`: the
/// backward of an op fused into a layer that writes its slice of a concat in place (only for
/// FROM_OUTPUT ops).
pub fn backward_inplace_slot<F: Pointwise>(
    f: F,
    n: usize,
    len: usize,
    slot: Slot,
    y: &[f32],
    dy: &mut [f32],
) {
    assert!(
        F::FROM_OUTPUT,
        "{}: its derivative needs the input, so it has no in-place backward",
        name::<F>()
    );
    slot.check(n, len, y.len().min(dy.len()), name::<F>());
    for i in 0..n {
        let r = slot.image(i, len);
        backward_inplace(f, &y[r.clone()], &mut dy[r]);
    }
}
