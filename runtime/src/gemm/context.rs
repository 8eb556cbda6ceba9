//! The entry point of a GEMM: check the arguments, pick the kernel, split C among threads
//! and run the loop nest on each part.
//!
//! Threads split C into a grid of rectangles aligned to the kernel's tile, never the
//! reduction over k, and each rectangle runs the same loop nest as a single thread would: so
//! every element of C is computed by the same operations in the same order whatever the
//! thread count, and results are bitwise identical.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use super::kernel::{KernelKind, TileBias};
use super::{run_serial, BSource, Bias, Epilogue, Problem};

/// Work (2·m·n·k flops) below which a GEMM stays on the calling thread; also the least work
/// worth one more thread. At ~90 GFLOP/s this is ~25 µs of compute, against a few µs to hand
/// a task to a pool thread.
const MIN_FLOPS_PER_THREAD: f64 = 2.0 * 1024.0 * 1024.0;

/// What packing one element of A or B costs, in flops of kernel time (a packed element takes
/// about half a cycle, in which two FMA pipes do 16 flops). Splitting C by rows makes every
/// part pack all of B, by columns all of A: this weighs that duplicate work.
const PACK_COST_FLOPS: f64 = 16.0;

/// A kernel and a thread pool: everything a GEMM needs besides its operands.
///
/// The free function [`sgemm`](super::sgemm) uses a global context (see [`set_num_threads`]);
/// code that wants its own pool or kernel makes a `Context`.
pub struct Context {
    kernel: KernelKind,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("kernel", &self.kernel)
            .field("threads", &self.threads)
            .finish()
    }
}

static GLOBAL: RwLock<Option<Arc<Context>>> = RwLock::new(None);

/// The context [`Context::global`] is under a [`OneThread`](super::OneThread) guard: the
/// detected kernel (every global context's) on one thread, made once.
fn single() -> Arc<Context> {
    static SINGLE: OnceLock<Arc<Context>> = OnceLock::new();
    SINGLE
        .get_or_init(|| {
            Arc::new(Context {
                kernel: KernelKind::detect(),
                threads: 1,
                pool: None,
            })
        })
        .clone()
}

/// At most this many threads per available CPU: more only adds switching between threads
/// (a GEMM splits C into at most one part per thread), and a count like 100 000 would spend
/// seconds or fail starting them.
pub const MAX_THREADS_PER_CPU: usize = 4;

/// Sets the number of threads of the global context (0: one per available CPU). Builds a new
/// pool; GEMMs already running finish on the old one.
///
/// # Panics
/// With the message of [`try_set_num_threads`] when it refuses `threads` (above
/// [`MAX_THREADS_PER_CPU`] per CPU) or the pool cannot start. Code that takes the count from a
/// user should call [`try_set_num_threads`] and report its error instead.
pub fn set_num_threads(threads: usize) {
    let threads = if threads == 0 { cpus() } else { threads };
    if let Err(e) = try_set_num_threads(threads) {
        panic!("{e}");
    }
}

/// Sets the number of threads of the global context, as [`set_num_threads`] does, and returns
/// it; or says why not: `threads` is 0, it is more than [`MAX_THREADS_PER_CPU`] per available
/// CPU, or the pool's threads cannot start. On an error the global context is unchanged.
pub fn try_set_num_threads(threads: usize) -> Result<usize, String> {
    let context = Arc::new(Context::try_new(threads)?);
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(context);
    Ok(threads)
}

/// The CPUs this process may run on (1 if the system cannot tell).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The number of threads of the global context (1 while a [`OneThread`](super::OneThread)
/// guard lives on this thread).
pub fn num_threads() -> usize {
    Context::global().threads()
}

impl Context {
    /// The fastest available kernel on `threads` threads (0: one per available CPU). More than
    /// one thread starts a dedicated pool that lives as long as the context.
    ///
    /// # Panics
    /// With the message of [`Context::try_new`] when it refuses `threads`.
    pub fn new(threads: usize) -> Context {
        let threads = if threads == 0 { cpus() } else { threads };
        Context::try_new(threads).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The fastest available kernel on `threads` threads, or why not: `threads` is 0, it is
    /// more than [`MAX_THREADS_PER_CPU`] per available CPU, or the pool cannot start (the
    /// system refuses a thread).
    pub fn try_new(threads: usize) -> Result<Context, String> {
        if threads == 0 {
            return Err("0 threads: a GEMM needs at least one".into());
        }
        let cpus = cpus();
        let cap = cpus.saturating_mul(MAX_THREADS_PER_CPU);
        if threads > cap {
            let has = if cpus == 1 {
                "1 CPU".to_string()
            } else {
                format!("{cpus} CPUs")
            };
            return Err(format!(
                "{threads} threads are more than {MAX_THREADS_PER_CPU} per CPU (this machine \
                 has {has}: at most {cap})"
            ));
        }
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("netc-gemm-{i}"))
                .build()
                .map_err(|e| format!("cannot start a pool of {threads} GEMM threads: {e}"))?;
            Some(pool)
        } else {
            None
        };
        Ok(Context {
            kernel: KernelKind::detect(),
            threads,
            pool,
        })
    }

    /// The same context with another kernel, or `None` if this CPU cannot run it.
    pub fn with_kernel(self, kernel: KernelKind) -> Option<Context> {
        kernel.is_available().then_some(Context { kernel, ..self })
    }

    /// The global context used by [`sgemm`](super::sgemm), made on first use with one thread
    /// per available CPU unless [`set_num_threads`] said otherwise; while a
    /// [`OneThread`](super::OneThread) guard lives on this thread, a context with the same
    /// kernel and one thread (no pool).
    pub fn global() -> Arc<Context> {
        if super::is_one_thread() {
            return single();
        }
        if let Some(context) = &*GLOBAL.read().unwrap_or_else(PoisonError::into_inner) {
            return context.clone();
        }
        GLOBAL
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| Arc::new(Context::new(0)))
            .clone()
    }

    /// Runs `f` in this context's pool, so that rayon's parallel iterators inside it use the
    /// context's threads (and no others). Without a pool (one thread), `f` runs here; callers
    /// check [`Context::threads`] and stay serial then.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// The micro-kernel this context runs.
    pub fn kernel(&self) -> KernelKind {
        self.kernel
    }

    /// The number of threads this context uses for large GEMMs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// [`sgemm`](super::sgemm) on this context: same arguments, same contract.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
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
        let ab_used = k > 0 && alpha != 0.0;
        let (a_at, b_at) = if ab_used {
            (
                origin("A", a.len(), m, k, rsa, csa),
                origin("B", b.len(), k, n, rsb, csb),
            )
        } else {
            (0, 0)
        };
        let c_at = origin("C", c.len(), m, n, rsc, csc);
        check_no_alias(m, n, rsc, csc);
        check_bias(m, n, epilogue);
        if m == 0 || n == 0 {
            return;
        }
        if !ab_used {
            return scale_only(m, n, beta, c, c_at, rsc, csc, epilogue);
        }

        let problem = Problem {
            m,
            n,
            k,
            alpha,
            // The origins were checked to be inside their slices.
            a: a[a_at..].as_ptr(),
            rsa,
            csa,
            b: b[b_at..].as_ptr(),
            rsb,
            csb,
            beta,
            c: c[c_at..].as_mut_ptr(),
            rsc,
            csc,
            bias: tile_bias(epilogue),
            clamp: epilogue.act.clamp_hi(),
            source: None,
            j0: 0,
        };
        // SAFETY: the problem was checked above.
        unsafe { self.run(&problem) };
    }

    /// [`sgemm_source`](super::sgemm_source) on this context: same arguments, same contract.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_source(
        &self,
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
        assert_eq!(b.shape(), (k, n), "sgemm: the shape of the generated B");
        let ab_used = k > 0 && alpha != 0.0;
        let a_at = if ab_used {
            origin("A", a.len(), m, k, rsa, csa)
        } else {
            0
        };
        let c_at = origin("C", c.len(), m, n, rsc, 1);
        check_no_alias(m, n, rsc, 1);
        check_bias(m, n, epilogue);
        if m == 0 || n == 0 {
            return;
        }
        if !ab_used {
            return scale_only(m, n, beta, c, c_at, rsc, 1, epilogue);
        }
        let problem = Problem {
            m,
            n,
            k,
            alpha,
            a: a[a_at..].as_ptr(),
            rsa,
            csa,
            b: std::ptr::null(),
            rsb: 0,
            csb: 0,
            beta,
            c: c[c_at..].as_mut_ptr(),
            rsc,
            csc: 1,
            bias: tile_bias(epilogue),
            clamp: epilogue.act.clamp_hi(),
            source: Some(b),
            j0: 0,
        };
        // SAFETY: the problem was checked above.
        unsafe { self.run(&problem) };
    }

    /// Splits a checked problem among the pool's threads and runs it.
    ///
    /// # Safety
    /// `problem` was built from checked arguments whose borrows outlive the call.
    unsafe fn run(&self, problem: &Problem) {
        let (m, n, k) = (problem.m, problem.n, problem.k);
        let super::Blocking { mr, nr, .. } = self.kernel.blocking();
        let (tm, tn) = split(m, n, k, mr, nr, self.threads);
        let kernel = self.kernel;
        match &self.pool {
            Some(pool) if tm * tn > 1 => {
                let mut tasks = Vec::with_capacity(tm * tn);
                for rows in parts(m, mr, tm) {
                    for cols in parts(n, nr, tn) {
                        // SAFETY: `parts` yields ranges inside 0..m and 0..n.
                        tasks.push(unsafe { problem.sub(rows.clone(), cols) });
                    }
                }
                pool.scope(move |scope| {
                    let (first, rest) = tasks.split_first().expect("at least two tasks");
                    for &task in rest {
                        // SAFETY: the tasks cover disjoint rectangles of C, whose strides do
                        // not alias, and the scope ends before the borrowed slices do.
                        scope.spawn(move |_| unsafe { run_serial(kernel, &task) });
                    }
                    // SAFETY: as above.
                    unsafe { run_serial(kernel, first) };
                });
            }
            // SAFETY: the problem was checked (caller); the kernel is available (it was
            // detected or checked by `with_kernel`).
            _ => unsafe { run_serial(kernel, problem) },
        }
    }
}

/// The tile epilogue's bias for a checked epilogue.
fn tile_bias(epilogue: Epilogue) -> TileBias {
    match epilogue.bias {
        Bias::None => TileBias::None,
        Bias::PerRow(bias) => TileBias::Row(bias.as_ptr()),
        Bias::PerCol(bias) => TileBias::Col(bias.as_ptr()),
    }
}

/// Panics unless the bias has m values (per row) or n (per column).
fn check_bias(m: usize, n: usize, epilogue: Epilogue) {
    match epilogue.bias {
        Bias::None => {}
        Bias::PerRow(bias) => assert_eq!(bias.len(), m, "sgemm: a bias per row needs m values"),
        Bias::PerCol(bias) => {
            assert_eq!(bias.len(), n, "sgemm: a bias per column needs n values")
        }
    }
}

/// `C = epilogue(beta·C)`: the whole GEMM when A·B contributes nothing (k = 0 or alpha = 0).
#[allow(clippy::too_many_arguments)]
fn scale_only(
    m: usize,
    n: usize,
    beta: f32,
    c: &mut [f32],
    c_at: usize,
    rsc: isize,
    csc: isize,
    epilogue: Epilogue,
) {
    for i in 0..m {
        for j in 0..n {
            let x = &mut c[(c_at as isize + i as isize * rsc + j as isize * csc) as usize];
            let mut v = if beta == 0.0 { 0.0 } else { beta * *x };
            match epilogue.bias {
                Bias::None => {}
                Bias::PerRow(bias) => v += bias[i],
                Bias::PerCol(bias) => v += bias[j],
            }
            if let Some(hi) = epilogue.act.clamp_hi() {
                v = super::generic::clamp(v, hi);
            }
            *x = v;
        }
    }
}

/// The index of element (0, 0) in a slice of length `len` that holds a `rows × cols` matrix
/// with strides `(rs, cs)`: with negative strides the slice starts at the element of lowest
/// address. Panics if the slice is too short.
fn origin(name: &str, len: usize, rows: usize, cols: usize, rs: isize, cs: isize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    let reach_r = (rows - 1) as i128 * rs as i128;
    let reach_c = (cols - 1) as i128 * cs as i128;
    let low = reach_r.min(0) + reach_c.min(0);
    let high = reach_r.max(0) + reach_c.max(0);
    let span = high - low + 1;
    assert!(
        span <= len as i128,
        "sgemm: {name} is {rows}x{cols} with strides ({rs}, {cs}), which spans {span} \
         elements, but its slice has {len}"
    );
    (-low) as usize
}

/// Panics unless the strides of C map distinct elements to distinct memory (a sufficient
/// condition: sorted by stride, each dimension steps over the whole extent of the smaller).
fn check_no_alias(m: usize, n: usize, rsc: isize, csc: isize) {
    if m == 0 || n == 0 {
        return;
    }
    let mut dims = [(rsc.unsigned_abs(), m), (csc.unsigned_abs(), n)];
    dims.sort();
    let [(inner, inner_len), (outer, outer_len)] = dims;
    let ok = match (inner_len > 1, outer_len > 1) {
        (true, true) => inner >= 1 && outer as u128 >= inner as u128 * inner_len as u128,
        (true, false) => inner >= 1,
        (false, true) => outer >= 1,
        (false, false) => true,
    };
    assert!(
        ok,
        "sgemm: C is {m}x{n} with strides ({rsc}, {csc}), under which elements of C overlap"
    );
}

/// The grid `(tm, tn)` of parts C is split into: the one that minimizes the time of the
/// slowest part (its flops plus its packing), using at most `threads` parts and no part with
/// less than [`MIN_FLOPS_PER_THREAD`] of work.
pub(crate) fn split(
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    nr: usize,
    threads: usize,
) -> (usize, usize) {
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let max_parts = threads.min((flops / MIN_FLOPS_PER_THREAD) as usize).max(1);
    let (m_tiles, n_tiles) = (m.div_ceil(mr), n.div_ceil(nr));
    let mut best = (1, 1);
    let mut best_cost = f64::INFINITY;
    for parts in 1..=max_parts {
        for tm in (1..=parts).filter(|tm| parts % tm == 0) {
            let tn = parts / tm;
            if tm > m_tiles || tn > n_tiles {
                continue;
            }
            let rows = (m_tiles.div_ceil(tm) * mr).min(m) as f64;
            let cols = (n_tiles.div_ceil(tn) * nr).min(n) as f64;
            let cost = 2.0 * rows * cols * k as f64 + PACK_COST_FLOPS * k as f64 * (rows + cols);
            if cost < best_cost {
                (best, best_cost) = ((tm, tn), cost);
            }
        }
    }
    best
}

/// `0..len` cut into `count` ranges of whole units (the last one may end early), as equal as
/// whole units allow.
pub(crate) fn parts(
    len: usize,
    unit: usize,
    count: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let units = len.div_ceil(unit);
    (0..count).map(move |q| {
        let start = (q * units / count * unit).min(len);
        let end = ((q + 1) * units / count * unit).min(len);
        start..end
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_in_whole_units() {
        let all = |len, unit, count| parts(len, unit, count).collect::<Vec<_>>();
        assert_eq!(all(128, 6, 2), vec![0..66, 66..128]);
        assert_eq!(all(784, 16, 2), vec![0..384, 384..784]);
        assert_eq!(all(10, 16, 1), vec![0..10]);
    }

    #[test]
    fn split_prefers_duplicating_the_smaller_operand() {
        // conv shapes: few rows (channels), many columns (pixels): split the columns.
        assert_eq!(split(64, 12544, 147, 6, 16, 2), (1, 2));
        assert_eq!(split(128, 784, 864, 6, 16, 2), (1, 2));
        // many rows, few columns: split the rows.
        assert_eq!(split(3136, 64, 576, 6, 16, 2), (2, 1));
        // the sizes of the determinism test in tests/gemm.rs do split, for both kernels.
        for (mr, nr) in [(6, 16), (4, 8)] {
            assert_eq!(split(70, 1000, 300, mr, nr, 2), (1, 2));
            assert_eq!(split(1000, 40, 300, mr, nr, 2), (2, 1));
            assert_ne!(split(129, 300, 600, mr, nr, 2), (1, 1));
        }
        // too small to be worth a second thread.
        assert_eq!(split(32, 32, 32, 6, 16, 2), (1, 1));
        assert_eq!(split(1000, 1000, 1000, 6, 16, 1), (1, 1));
    }

    #[test]
    fn origin_accounts_for_negative_strides() {
        assert_eq!(origin("A", 6, 2, 3, 3, 1), 0);
        assert_eq!(origin("A", 6, 2, 3, -3, 1), 3);
        assert_eq!(origin("A", 6, 2, 3, -3, -1), 5);
        assert_eq!(origin("A", 0, 0, 3, 3, 1), 0);
    }

    #[test]
    #[should_panic(
        expected = "sgemm: A is 2x3 with strides (3, 1), which spans 6 elements, but its slice has 5"
    )]
    fn short_slices_are_rejected() {
        origin("A", 5, 2, 3, 3, 1);
    }

    #[test]
    #[should_panic(
        expected = "sgemm: C is 3x3 with strides (2, 1), under which elements of C overlap"
    )]
    fn aliasing_c_is_rejected() {
        check_no_alias(3, 3, 2, 1);
    }

    #[test]
    fn non_aliasing_strides_are_accepted() {
        check_no_alias(3, 3, 3, 1);
        check_no_alias(3, 3, 1, 3);
        check_no_alias(3, 3, -1, 3);
        check_no_alias(1, 5, 0, 1);
        check_no_alias(5, 1, 1, 0);
        check_no_alias(4, 2, 2, 9);
        check_no_alias(3, 0, 0, 1);
    }
}
