//! Running a layer on the calling thread alone: while a [`OneThread`] guard lives,
//! [`Context::global`](super::Context::global) on this thread is a one-thread context with
//! the same kernel and no pool, so every kernel that asks it (GEMMs, im2col, pools,
//! batchnorm, activations, direct and Winograd convolutions) stays on this thread.
//!
//! A layer is several kernel calls, and a small one pays the pool's wake-ups in each: the
//! compiler's plan says, per layer, below which batch the layer is better off on one
//! thread, and the generated layer function opens with [`one_thread_if`]. The flag is a
//! thread-local `Cell`: setting it costs no allocation and no lock. Results do not change:
//! every kernel splits its work over outputs only, so one thread computes the same bits as
//! many.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    /// Whether this thread's kernels run on it alone.
    static ONE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// While alive, this thread's kernels run on it alone; dropped, the flag is what it was
/// before (guards nest). Not `Send`: the flag belongs to the thread that set it.
#[must_use = "the flag is cleared when the guard is dropped"]
#[derive(Debug)]
pub struct OneThread {
    was: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for OneThread {
    fn drop(&mut self) {
        ONE_THREAD.with(|f| f.set(self.was));
    }
}

/// Runs this thread's kernels on it alone until the guard is dropped.
pub fn one_thread() -> OneThread {
    one_thread_if(true)
}

/// [`one_thread`] when `alone`; otherwise a guard that changes nothing (an enclosing guard
/// stays in force). Generated code opens a layer with
/// `let _threads = rt::gemm::one_thread_if(ws.batch < B);`, `B` the layer's crossover
/// batch from the plan.
pub fn one_thread_if(alone: bool) -> OneThread {
    let was = ONE_THREAD.with(|f| f.replace(f.get() || alone));
    OneThread {
        was,
        _not_send: PhantomData,
    }
}

/// `f()` with this thread's kernels on it alone.
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let _alone = one_thread();
    f()
}

/// Whether this thread's kernels run on it alone (a [`OneThread`] guard is alive).
pub fn is_one_thread() -> bool {
    ONE_THREAD.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::super::{sgemm, Context, Epilogue};
    use super::*;

    #[test]
    fn guards_nest_and_restore() {
        assert!(!is_one_thread());
        {
            let _a = one_thread_if(false);
            assert!(!is_one_thread());
            let _b = one_thread();
            assert!(is_one_thread());
            {
                // A guard that asks for nothing keeps the enclosing one in force.
                let _c = one_thread_if(false);
                assert!(is_one_thread());
                let _d = one_thread_if(true);
                assert!(is_one_thread());
            }
            assert!(is_one_thread());
        }
        assert!(!is_one_thread());
        assert!(serial(is_one_thread));
        assert!(!is_one_thread());
    }

    #[test]
    fn the_flag_is_per_thread() {
        let _alone = one_thread();
        assert!(!std::thread::spawn(is_one_thread).join().unwrap());
        assert_eq!(Context::global().threads(), 1);
    }

    /// A GEMM large enough to split gives the same bits on a two-thread context as on the
    /// calling thread alone, and under the guard the global context has one thread and the
    /// same kernel.
    #[test]
    fn a_gemm_under_the_guard_gives_the_same_bits() {
        let (m, n, k) = (96, 640, 300);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let two = Context::new(2);
        let mut c2 = vec![0.0; m * n];
        two.sgemm(
            m,
            n,
            k,
            1.0,
            &a,
            k as isize,
            1,
            &b,
            n as isize,
            1,
            0.0,
            &mut c2,
            n as isize,
            1,
            Epilogue::NONE,
        );
        let mut c1 = vec![0.0; m * n];
        serial(|| {
            let global = Context::global();
            assert_eq!(global.threads(), 1);
            assert_eq!(global.kernel(), two.kernel());
            sgemm(
                m,
                n,
                k,
                1.0,
                &a,
                k as isize,
                1,
                &b,
                n as isize,
                1,
                0.0,
                &mut c1,
                n as isize,
                1,
                Epilogue::NONE,
            );
        });
        assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
