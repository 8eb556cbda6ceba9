"""Where the time goes, layer by layer: netc's generated code beside PyTorch on CPU.

    pip install torch
    python3 bench/profile_layers.py examples/zoo/resnet50.net [--batch 8] [--threads 1] [--steps 5] [--top 25]

netc's side is `netc bench FILE --format json`, which times each layer function of a training
step (a layer with a fused ReLU, or the first conv of a merged group, includes them). PyTorch's
side is the same network built from netc's JSON by bench/torch_from_json.py: each layer's
forward is timed around its call, and its backward around the run of the autograd node that
made its output (node pre- and post-hooks; the other nodes a layer makes, views and
transposes, are not counted). Layers PyTorch computes but netc fused away (a ReLU after a
conv) are added to the layer that absorbed them. Prints each layer's milliseconds, median of
`--steps` after a warm-up, sorted by PyTorch's total, the ratio (above 1: netc is faster),
and the totals; `--json` writes the table as JSON. Used to aim the work of issue 15.
"""

import argparse
import json
import os
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
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--top", type=int, default=25)
ap.add_argument("--json", action="store_true")
args = ap.parse_args()

doc = netc_json(args.file)


def netc_side():
    cmd = ["cargo", "run", "--release", "--quiet", "--", "bench", args.file, "--batch", str(args.batch),
           "--threads", str(args.threads), "--steps", str(args.steps), "--format", "json"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def torch_side():
    """Each layer's forward and backward milliseconds, median over the steps."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build(doc)
    net.train()
    feed = {}
    for name, spec in doc["inputs"].items():
        if isinstance(spec, dict):
            feed[name] = torch.randint(0, spec["classes"], (args.batch,))
        else:
            feed[name] = torch.rand(args.batch, *spec)
    layers = doc["layers"]
    fwd_runs, bwd_runs = {}, {}

    def step():
        values, fwd = dict(feed), {}
        began, ended = {}, {}

        def hooks(node, path):
            # The autograd node that made the layer's output: its own run is the layer's
            # backward (the other nodes a layer makes, views and transposes, are small).
            def pre(_grads):
                began[path] = time.perf_counter()

            def post(_grads_in, _grads_out):
                ended[path] = time.perf_counter()

            node.register_prehook(pre)
            node.register_hook(post)

        # Forward, a layer at a time, through the builder's own forward of a one-layer document.
        for layer in layers:
            one = dict(net.doc)
            one["layers"] = [layer]
            net.doc = one
            start = time.perf_counter()
            out = net.forward(values)
            fwd[layer["path"]] = time.perf_counter() - start
            net.doc = doc
            values[layer["path"]] = out[layer["path"]]
            y = values[layer["path"]]
            if y.grad_fn is not None:
                hooks(y.grad_fn, layer["path"])
        loss = 0.0
        for term in doc["losses"]:
            a, b = (values[i] for i in term["inputs"])
            F = torch.nn.functional
            if term["op"] == "ce":
                smoothing = term.get("attrs", {}).get("smoothing", 0.0)
                value = F.cross_entropy(a, b, label_smoothing=smoothing)
            elif term["op"] == "l1":
                value = F.l1_loss(a, b)
            elif term["op"] == "bce":
                value = F.binary_cross_entropy_with_logits(a, b)
            else:
                value = F.mse_loss(a, b)
            loss = loss + term["weight"] * value
        net.zero_grad(set_to_none=True)
        loss.backward()
        bwd = {p: ended[p] - began[p] for p in began if p in ended}
        return fwd, bwd

    step()  # warm-up
    for _ in range(args.steps):
        fwd, bwd = step()
        for p, t in fwd.items():
            fwd_runs.setdefault(p, []).append(t)
        for p, t in bwd.items():
            bwd_runs.setdefault(p, []).append(t)
    med = lambda runs: {p: 1e3 * statistics.median(v) for p, v in runs.items()}  # noqa: E731
    return med(fwd_runs), med(bwd_runs)


n = netc_side()
t_fwd, t_bwd = torch_side()
ours = {l["path"]: (l["forward_ms"], l["backward_ms"]) for l in n["layers"]}
# PyTorch's layers that netc folded into another (a ReLU into the conv before it) count
# with the layer that absorbed them: the nearest earlier layer netc timed.
rows = {}
owner = None
for layer in doc["layers"]:
    p = layer["path"]
    if p in ours:
        owner = p
    if owner is None:
        continue
    r = rows.setdefault(owner, [ours[owner][0], ours[owner][1], 0.0, 0.0])
    r[2] += t_fwd.get(p, 0.0)
    r[3] += t_bwd.get(p, 0.0)

table = sorted(rows.items(), key=lambda kv: -(kv[1][2] + kv[1][3]))
total = [sum(r[i] for _, r in table) for i in range(4)]
if args.json:
    print(json.dumps({"network": doc["network"], "batch": args.batch, "threads": args.threads,
                      "torch": torch.__version__,
                      "layers": [{"path": p, "netc_forward_ms": r[0], "netc_backward_ms": r[1],
                                  "torch_forward_ms": r[2], "torch_backward_ms": r[3]} for p, r in table]}))
    sys.exit(0)
print(f"{doc['network']}, batch {args.batch}, {args.threads} thread(s); torch {torch.__version__}; "
      f"milliseconds per training step, median of {args.steps}")
print(f"{'layer':<28} {'netc fwd':>9} {'torch fwd':>9} {'netc bwd':>9} {'torch bwd':>9} {'netc/torch':>10}")
for p, (nf, nb, tf, tb) in table[: args.top]:
    ratio = (tf + tb) / (nf + nb) if nf + nb > 0 else float("inf")
    print(f"{p:<28} {nf:>9.3f} {tf:>9.3f} {nb:>9.3f} {tb:>9.3f} {ratio:>10.2f}")
nf, nb, tf, tb = total
print(f"{'all ' + str(len(table)) + ' layers':<28} {nf:>9.3f} {tf:>9.3f} {nb:>9.3f} {tb:>9.3f} {(tf + tb) / (nf + nb):>10.2f}")
