"""A whole network, netc's generated code against PyTorch on CPU, side by side.

    pip install torch                  # and, for the onnxruntime column: pip install onnxruntime onnx
    python3 bench/net_torch.py examples/googlenet.net [--batch 8] [--threads 1 2] [--steps 5]

PyTorch runs the same network, built from netc's JSON by bench/torch_from_json.py (dropout as
the identity, batchnorm in training mode), timing inference (no autograd) and a training step
(forward, backward, SGD with momentum), median of `--steps` after a warm-up. netc's side is
`netc bench FILE --format json`. Prints both and the ratio (above 1: netc is faster), and
the peak memory of each: netc's buffers, parameters, gradients and momentum as allocated, and
how far PyTorch's resident set grew over the run (first thread count only). When onnxruntime
is installed, the same network exported to ONNX (the outputs only; onnxruntime's graph
optimizations on) gives a third inference figure.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_from_json import ROOT, build, netc_json  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
ap.add_argument("--steps", type=int, default=5)
args = ap.parse_args()

doc = netc_json(args.file)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def torch_side(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = rss_bytes()
    net = build(doc)
    feed = {}
    for name, spec in doc["inputs"].items():
        if isinstance(spec, dict):
            feed[name] = torch.randint(0, spec["classes"], (args.batch,))
        else:
            feed[name] = torch.rand(args.batch, *spec)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    def train():
        opt.zero_grad(set_to_none=True)
        loss, _ = net.objective(feed)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net.eval()
            net.forward(feed)
            net.train()

    out = {}
    for name, fn in [("train", train), ("infer", infer)]:
        fn()
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = args.batch / statistics.median(times)
    # The peak resident set (Linux: KiB) less what the process held before the network was
    # built: the parameters, gradients, momentum and every tensor of the steps. Only the
    # first call's figure is clean, since the peak never goes down.
    out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return out


def ort_side(threads):
    """Inference img/s of the network in onnxruntime, or None without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import tempfile
    import warnings

    # The TorchScript exporter needs no onnxscript; its deprecation notice and constant
    # folding remarks are noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)

    torch.manual_seed(0)
    net = build(doc).eval()
    names = [n for n, spec in doc["inputs"].items() if not isinstance(spec, dict)]
    outputs = list(doc["output_nodes"].values())

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, *xs):
            v = self.net.forward(dict(zip(names, xs)))
            return tuple(v[o] for o in outputs)

    xs = tuple(torch.rand(args.batch, *doc["inputs"][n]) for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.onnx")
        with torch.no_grad():
            torch.onnx.export(Outputs(), xs, path, input_names=names, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, xs)}
    sess.run(None, feed)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return args.batch / statistics.median(times)


def netc_side(threads):
    cmd = ["cargo", "run", "--release", "--quiet", "--", "bench", args.file, "--batch", str(args.batch),
           "--threads", str(threads), "--steps", str(args.steps), "--format", "json"]
    return json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)


print(f"{doc['network']}, batch {args.batch}; torch {torch.__version__}")
print(f"{'threads':>7}  {'pass':<9} {'netc img/s':>10} {'torch img/s':>11} {'netc/torch':>10}")
for i, threads in enumerate(args.threads):
    n = netc_side(threads)
    t = torch_side(threads)
    for name, key in [("inference", "infer"), ("training", "train")]:
        ours = n[f"{key}_img_s"]
        print(f"{threads:>7}  {name:<9} {ours:>10.2f} {t[key]:>11.2f} {ours / t[key]:>10.2f}")
    o = ort_side(threads)
    if o is not None:
        ours = n["infer_img_s"]
        print(f"{threads:>7}  inference: onnxruntime {o:.2f} img/s, netc / onnxruntime {ours / o:.2f}")
    print(f"{threads:>7}  netc training {n['train_gflops']:.1f} GFLOP/s ({100 * n['peak_fraction']:.0f}% of peak), "
          f"peak memory {n['peak_bytes'] / 2**20:.0f} MiB")
    if i == 0:
        print(f"{threads:>7}  torch peak resident memory of the run {t['peak_bytes'] / 2**20:.0f} MiB "
              f"(netc / torch {n['peak_bytes'] / t['peak_bytes']:.2f})")
