"""One conv layer, netc against PyTorch's CPU convolution (oneDNN), side by side.

    pip install torch
    python3 bench/conv_torch.py [BATCH C H W OUT K S P]     # default: 32 96 28 28 128 3 1 1

For 1 and 2 threads it times PyTorch's forward (no autograd) and forward + backward (input,
weight and bias gradients), median of repeated runs after a warm-up, then runs
`netc bench conv` with the same arguments and prints both and the ratio netc / PyTorch
(above 1: netc is faster). Not part of CI.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import torch

args = [int(a) for a in sys.argv[1:]] or [32, 96, 28, 28, 128, 3, 1, 1]
batch, c, h, w, out, k, s, p = args
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_seconds(fn, warm=0.3, timed=1.5, min_runs=5):
    start = time.perf_counter()
    while time.perf_counter() - start < warm:
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < timed or len(times) < min_runs:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_side(threads):
    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(c, out, k, stride=s, padding=p)
    x = torch.randn(batch, c, h, w)
    with torch.no_grad():
        fwd = median_seconds(lambda: conv(x))
    xg = x.clone().requires_grad_(True)
    dy = torch.randn_like(conv(x))

    def step():
        conv.zero_grad(set_to_none=True)
        xg.grad = None
        conv(xg).backward(dy)

    return fwd, median_seconds(step)


def netc_side(threads):
    cmd = ["cargo", "run", "--release", "--quiet", "--", "bench", "conv", *map(str, args),
           "--threads", str(threads), "--format", "json"]
    res = json.loads(subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout)[0]
    return res["forward_seconds"], res["forward_backward_seconds"], res["macs"]


print(f"conv {c}->{out}, {k}x{k}/{s} pad {p}, batch {batch}x{c}x{h}x{w}; torch {torch.__version__}, "
      f"oneDNN {torch.backends.mkldnn.is_available()}")
print(f"{'threads':>7}  {'pass':<8} {'netc ms':>9} {'torch ms':>9} {'netc GFLOP/s':>13} {'torch GFLOP/s':>14} {'netc/torch':>10}")
for threads in [1, 2]:
    nf, nfb, macs = netc_side(threads)
    tf, tfb = torch_side(threads)
    for name, n_s, t_s, flops in [("forward", nf, tf, 2 * macs), ("fwd+bwd", nfb, tfb, 6 * macs)]:
        print(f"{threads:>7}  {name:<8} {n_s * 1e3:>9.2f} {t_s * 1e3:>9.2f} {flops / n_s / 1e9:>13.1f} "
              f"{flops / t_s / 1e9:>14.1f} {t_s / n_s:>10.2f}")
