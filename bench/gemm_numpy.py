#!/usr/bin/env python3
"""numpy's float32 matmul (OpenBLAS sgemm) on the shapes of runtime/examples/gemm_bench.rs.

    pip install numpy threadpoolctl
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/gemm_numpy.py [--threads T] [M N K ...]

Times C = A @ B for A: M x K and B: K x N, both C-contiguous float32, writing into a
preallocated C: a warm-up, then the median of repeated runs, as the Rust benchmark does.
Without --threads it runs on 1 thread and then on every CPU. Prints the BLAS library, version
and the kernel (core type) that threadpoolctl reports, and warns if OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE is set, since both change which kernel and blocking OpenBLAS picks.
"""

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# GoogLeNet layers as im2col GEMMs, (M, N, K) = (out channels, output pixels, in*kh*kw).
SHAPES = [(128, 784, 864), (192, 3136, 576), (192, 196, 480), (64, 12544, 147), (1024, 1024, 1024)]
PEAK_GFLOPS_PER_CORE = 99.0
WARM_UP_S = 0.2
TIMED_S = 1.0


def bench(m, n, k, threads):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):

        def run():
            start = time.perf_counter()
            np.matmul(a, b, out=c)
            return time.perf_counter() - start

        fastest = run()
        start = time.perf_counter()
        while time.perf_counter() - start < WARM_UP_S:
            fastest = min(fastest, run())
        runs = min(max(int(TIMED_S / max(fastest, 1e-9)), 5), 1000)
        seconds = statistics.median(run() for _ in range(runs))
    return seconds, 2.0 * m * n * k / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("dims", type=int, nargs="*", help="M N K triples")
    args = parser.parse_args()
    if len(args.dims) % 3:
        parser.error("shapes are given as M N K triples")
    shapes = [tuple(args.dims[i : i + 3]) for i in range(0, len(args.dims), 3)] or SHAPES
    cpus = os.cpu_count() or 1
    threads = args.threads or ([1, cpus] if cpus > 1 else [1])

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; unset it for OpenBLAS's own choice")
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            print(
                f"numpy {np.__version__}: {lib.get('internal_api')} {lib.get('version')}, "
                f"kernel (core type) {lib.get('architecture')}, {lib.get('num_threads')} threads max"
            )
    print(f"peak {PEAK_GFLOPS_PER_CORE} GFLOP/s per core")
    print(f"{'M':>6} {'N':>6} {'K':>6} {'threads':>7} {'ms':>10} {'GFLOP/s':>9} {'% peak':>7}")
    for t in threads:
        for m, n, k in shapes:
            seconds, gflops = bench(m, n, k, t)
            peak = gflops / (PEAK_GFLOPS_PER_CORE * t) * 100
            print(f"{m:>6} {n:>6} {k:>6} {t:>7} {seconds * 1e3:>10.3f} {gflops:>9.1f} {peak:>6.1f}%")


if __name__ == "__main__":
    main()
