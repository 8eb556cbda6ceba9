"""The table of issue 15: whole networks in netc, PyTorch and onnxruntime on CPU, from one run.

    pip install torch onnxruntime onnx
    python3 bench/table.py                  # the whole table (~45 minutes on 2 idle cores)
    python3 bench/table.py --estimate       # the plan and its estimated time; nothing is timed
    python3 bench/table.py --quick          # a smoke run: LeNet, batch 8, 1 thread, 20 steps
    python3 bench/table.py --nets lenet resnet50 --batches 8 64 --threads 1 2 --json out.json

For each network, batch and thread count it measures images/s of
  - netc: a training step (forward with every loss, GoogLeNet's auxiliary heads included,
    backward, SGD with momentum) and inference, `netc bench FILE --batch B --threads T
    --steps N --format json`;
  - PyTorch: the same network built from netc's JSON by bench/torch_from_json.py, inference
    (eval mode, torch.inference_mode, only the layers that reach an output) and the same
    training step, with torch.set_num_threads(T);
  - onnxruntime: inference of that PyTorch model exported by torch.onnx.export with a dynamic
    batch, intra_op_num_threads=T, inter_op_num_threads=1, every graph optimization;
and prints markdown tables: images/s with the ratios netc/PyTorch and netc/onnxruntime (above
1: netc is faster), and the peak resident memory of each.

Each configuration's four measurements are processes of their own: netc's bench (training
and inference; its peak resident set from wait4), and this script as a worker for PyTorch's
inference, its training and onnxruntime's inference (`table.py torch ... --mode infer|train`,
`table.py ort ...`, which report their own peaks; `table.py onnx ...` exports a network).
Each pass warms up with one step, then times steps until `--seconds` have passed and at
least 3 steps were made (or exactly `--steps`); its figure is batch / the median step.
netc's bench takes a step count, so it gets the count that fills `--seconds` at the training
step time last measured (or estimated). Each of `--rounds` rounds visits every configuration
once, its four processes in a rotating order, and the table gives the median of the rounds.
A measurement estimated to take longer than `--max-seconds`, or to need more memory than is
free, is skipped and said so under the table. Every command is printed as it runs (from the
repository's root), so each number can be remade by hand. See bench/README.md.
"""

import argparse
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = {
    "googlenet": "examples/googlenet.net",
    "lenet": "examples/lenet.net",
    "resnet50": "examples/zoo/resnet50.net",
    "mobilenet_v2": "examples/zoo/mobilenet_v2.net",
    "efficientnet_b0": "examples/zoo/efficientnet_b0.net",
}
BATCHES = [1, 8, 32]
EXTRA_BATCHES = {"lenet": [64]}
MIN_STEPS = 3
# The figures, by the process that measures them: netc's bench times both of its own.
KINDS = {"netc": ["netc_train", "netc_infer"], "torch_infer": ["torch_infer"], "torch_train": ["torch_train"],
         "ort_infer": ["ort_infer"]}
NAMES = {"netc": "netc", "netc_train": "netc training", "netc_infer": "netc inference", "torch": "PyTorch",
         "torch_train": "PyTorch training", "torch_infer": "PyTorch inference", "ort": "onnxruntime",
         "ort_infer": "onnxruntime inference"}
# Until a configuration has been measured, step times are guessed from netc's at batch 1 on
# one thread: PyTorch trains ~1.2x and infers ~1.5x slower (on this 2-core machine GoogLeNet
# ~1.3x and ~1.8x, ResNet-50 ~0.9x and ~0.75x), onnxruntime infers as fast as netc, and T
# threads run T^0.7 times as fast as one.
GUESS = {"torch_train": 1.2, "torch_infer": 1.5}
# Seconds to start each process (PyTorch's import dominates).
STARTUP = {"netc": 0.2, "torch_infer": 3.5, "torch_train": 3.5, "ort_infer": 0.6}
# PyTorch's training memory against netc's planned bytes, and a library's resident set.
TORCH_MEMORY = 2.5
LIBRARY_BYTES = 600 << 20


# ---------------------------------------------------------------------------------------
# Workers: one measurement each, run as `python3 bench/table.py {torch,ort,onnx} ...`; each
# prints one JSON object.


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_steps(step, steps, seconds):
    """Seconds of each timed call of `step` after one warm-up call: exactly `steps` calls, or
    (steps None) calls until `seconds` have passed and MIN_STEPS were made."""
    step()
    times, began = [], time.perf_counter()

    def done():
        if steps is not None:
            return len(times) >= steps
        return len(times) >= MIN_STEPS and time.perf_counter() - began >= seconds

    while not done():
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def netc_doc(netc, file, plan_batch=None):
    """`netc check FILE --format json` (with `--plan --batch B`: the memory plan too)."""
    cmd = [str(netc), "check", str(file), "--format", "json"]
    if plan_batch is not None:
        cmd += ["--plan", "--batch", str(plan_batch)]
    return json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)


def inference_doc(doc):
    """The document pruned to the layers that reach an output (no auxiliary heads)."""
    return dict(doc, layers=[layer for layer in doc["layers"] if layer["inference"]])


class Freeing:
    """A NetcNet's inference run one layer at a time, each value dropped after its last use,
    as a PyTorch model written by hand would do. NetcNet.forward holds every layer's output
    until it returns, which grows the resident set of ResNet-50's inference at batch 8 by
    1.3 GiB where this grows it by 0.3 GiB, at the same speed. (In training autograd keeps
    nearly every output anyway: freeing changes GoogLeNet's peak by 1%, so training runs
    NetcNet as it is.)"""

    def __init__(self, net, doc):
        self.net, self.doc = net, doc
        self.layers = [dict(doc, layers=[layer]) for layer in doc["layers"]]
        self.last = {x: i for i, layer in enumerate(doc["layers"]) for x in layer["inputs"]}
        self.keep = set(doc["output_nodes"].values())

    def forward(self, feed):
        values = dict(feed)
        try:
            for i, one in enumerate(self.layers):
                self.net.doc = one
                values = self.net.forward(values)
                for x in one["layers"][0]["inputs"]:
                    if self.last[x] == i and x not in self.keep:
                        values.pop(x, None)
        finally:
            self.net.doc = self.doc
        return values


def worker_torch(a):
    """PyTorch: inference, or a training step (every loss, backward, SGD with momentum)."""
    import torch
    sys.path.insert(0, str(ROOT / "bench"))
    from torch_from_json import build

    base = rss_bytes()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    doc = netc_doc(a.netc_binary, a.file)
    feed = {name: torch.randint(0, spec["classes"], (a.batch,)) if isinstance(spec, dict)
            else torch.rand(a.batch, *spec) for name, spec in doc["inputs"].items()}
    if a.mode == "infer":
        pruned = inference_doc(doc)
        run = Freeing(build(pruned).eval(), pruned)

        def step():
            with torch.inference_mode():
                run.forward(feed)
    else:
        net = build(doc)
        opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, _ = net.objective(feed)
            loss.backward()
            opt.step()

    times = time_steps(step, a.steps, a.seconds)
    return {"img_s": a.batch / statistics.median(times), "peak_rss": peak_rss_bytes(), "base_rss": base,
            "version": torch.__version__}


def worker_ort(a):
    """onnxruntime: inference of an exported model at batch `a.batch`."""
    import numpy as np
    import onnxruntime as ort

    base = rss_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(a.model), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {i.name: rng.random((a.batch, *i.shape[1:]), dtype=np.float32) for i in sess.get_inputs()}
    times = time_steps(lambda: sess.run(None, feed), a.steps, a.seconds)
    return {"img_s": a.batch / statistics.median(times), "peak_rss": peak_rss_bytes(), "base_rss": base,
            "version": ort.__version__}


def worker_onnx(a):
    """Exports the network's inference (its outputs only) to ONNX with a dynamic batch, and
    checks onnxruntime's outputs against PyTorch's at another batch."""
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch
    sys.path.insert(0, str(ROOT / "bench"))
    from torch_from_json import build

    # The TorchScript exporter needs no onnxscript; its deprecation notices are noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    doc = inference_doc(netc_doc(a.netc_binary, a.file))
    net = build(doc).eval()
    inputs = [name for name, spec in doc["inputs"].items() if not isinstance(spec, dict)]
    outputs = doc["output_nodes"]

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, *xs):
            v = self.net.forward(dict(zip(inputs, xs)))
            return tuple(v[node] for node in outputs.values())

    model = Outputs()
    sample = lambda n: tuple(torch.rand(n, *doc["inputs"][name]) for name in inputs)  # noqa: E731
    with torch.no_grad():
        torch.onnx.export(model, sample(2), str(a.out), input_names=inputs, output_names=list(outputs),
                          dynamic_axes={name: {0: "batch"} for name in inputs + list(outputs)}, dynamo=False)
        xs = sample(3)
        want = [y.numpy() for y in model(*xs)]
    sess = ort.InferenceSession(str(a.out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {name: x.numpy() for name, x in zip(inputs, xs)})
    err = max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12)) for g, w in zip(got, want))
    return {"max_rel_err": err, "torch": torch.__version__, "onnxruntime": ort.__version__}


WORKERS = {"torch": worker_torch, "ort": worker_ort, "onnx": worker_onnx}


def worker_main(argv):
    worker = WORKERS[argv[0]]
    ap = argparse.ArgumentParser(prog="table.py " + argv[0], description=worker.__doc__)
    if argv[0] == "ort":
        ap.add_argument("model", type=Path)
    else:
        ap.add_argument("file", type=Path)
        ap.add_argument("--netc-binary", type=Path, required=True)
    if argv[0] == "onnx":
        ap.add_argument("out", type=Path)
    else:
        ap.add_argument("--batch", type=int, required=True)
        ap.add_argument("--threads", type=int, required=True)
        ap.add_argument("--steps", type=int)
        ap.add_argument("--seconds", type=float, default=1.0)
    if argv[0] == "torch":
        ap.add_argument("--mode", choices=["infer", "train"], required=True)
    print(json.dumps(worker(ap.parse_args(argv[1:]))))


# ---------------------------------------------------------------------------------------
# The table: prepare, plan, measure, print.


@dataclass(frozen=True)
class Config:
    net: str
    file: str
    batch: int
    threads: int

    def __str__(self):
        return f"{self.net} batch {self.batch}, {self.threads} thread{'s' if self.threads > 1 else ''}"


def run(cmd):
    """Runs `cmd` in the repository, printing it: its JSON output and peak resident set (the
    largest of the process and its waited-for children, from wait4), or an error."""
    print("$ " + shlex.join(cmd), flush=True)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
            return None, None, f"exit {proc.returncode}: " + " | ".join(tail)
    return json.loads(out), usage.ru_maxrss * 1024, None


def mib(nbytes):
    v = nbytes / 2**20
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"


def python():
    """This Python, as `python3` when that is the one on the PATH (shorter commands)."""
    on_path = shutil.which("python3")
    return "python3" if on_path and Path(on_path).resolve() == Path(sys.executable).resolve() else sys.executable


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


class Bench:
    def __init__(self, args, netc):
        self.args, self.netc = args, netc
        self.work = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve() / "bench-table"
        self.per_image = {}  # net -> netc's (train, infer) seconds per image, batch 1, 1 thread
        self.planned = {}  # (net, batch) -> netc's planned bytes of a training step
        self.values = {}  # (config, quantity) -> values over the rounds (img/s, bytes)
        self.skipped = {}  # (config, kind) -> why
        self.failed = {}  # (config, process) -> why
        self.log = []  # every measurement: command, output, peak RSS, error
        self.versions = {}

    def rel(self, path):
        path = Path(path).resolve()
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

    def onnx(self, net):
        return self.work / f"{net}.onnx"

    # -- preparing and planning -------------------------------------------------------------

    def prepare(self, nets):
        """Per network: netc's bench built and timed once at batch 1 on one thread (the basis
        of the estimates), and the ONNX model exported (not for --estimate)."""
        self.work.mkdir(parents=True, exist_ok=True)
        for net, file in nets:
            cmd = [self.rel(self.netc), "bench", file, "--batch", "1", "--threads", "1", "--steps", "3",
                   "--format", "json"]
            out, _, err = run(cmd)
            if err:
                sys.exit(f"table.py: {err}")
            self.per_image[net] = (1 / out["train_img_s"], 1 / out["infer_img_s"])
            if not self.args.estimate:
                out, _, err = run([python(), self.rel(__file__), "onnx", file, "--netc-binary",
                                   self.rel(self.netc), self.rel(self.onnx(net))])
                if err:
                    sys.exit(f"table.py: {err}")
                print(f"  onnxruntime's outputs against PyTorch's: max relative error {out['max_rel_err']:.1e}")

    def step(self, cfg, kind):
        """Seconds of one step of `kind`: the median measured so far, else a guess."""
        if (cfg, kind) in self.values:
            return cfg.batch / statistics.median(self.values[(cfg, kind)])
        train, infer = self.per_image[cfg.net]
        netc = train if kind.endswith("train") else infer
        return netc * GUESS.get(kind, 1.0) * cfg.batch / cfg.threads ** 0.7

    def netc_steps(self, cfg):
        return self.args.steps or max(MIN_STEPS, math.ceil(self.args.seconds / self.step(cfg, "netc_train")))

    def duration(self, cfg, kind):
        """Estimated seconds of one pass of `kind`, warm-up included (start-up not)."""
        step = self.step(cfg, kind)
        if kind.startswith("netc"):
            return (1 + self.netc_steps(cfg)) * step
        return step + (self.args.steps * step if self.args.steps else max(self.args.seconds, MIN_STEPS * step))

    def memory(self, cfg, kind):
        """Estimated peak bytes of a pass of `kind` (netc's bench: its training)."""
        key = (cfg.net, cfg.batch)
        if key not in self.planned:
            plan = netc_doc(self.netc, cfg.file, plan_batch=cfg.batch)["plan"]
            self.planned[key] = plan["training_bytes"] + plan["param_bytes"]  # and momentum
        if kind.startswith("netc"):
            return self.planned[key]
        # Inference keeps fewer buffers than training: netc's training plan bounds it.
        return (TORCH_MEMORY if kind == "torch_train" else 1) * self.planned[key] + LIBRARY_BYTES

    def plan(self, configs):
        """Decides what to skip, and prints each configuration's estimated seconds a round and
        the total."""
        free, total, a = mem_available(), 0.0, self.args
        print(f"\nplan: {a.rounds} round(s), estimated seconds a round (from netc at batch 1 on one thread)")
        for cfg in configs:
            row = []
            for process, kinds in KINDS.items():
                secs = STARTUP[process] + sum(self.duration(cfg, k) for k in kinds)
                need = max(self.memory(cfg, k) for k in kinds)
                if secs > a.max_seconds:
                    why = f"estimated {secs:.0f} s > --max-seconds {a.max_seconds:g}"
                elif free and need > 0.8 * free:
                    why = f"estimated {need / 2**30:.1f} GiB > 80% of the {free / 2**30:.1f} GiB free"
                else:
                    total += secs
                    row.append(f"{process} {secs:.0f}")
                    continue
                self.skipped.update({(cfg, k): why for k in kinds})
                row.append(f"{process} skipped")
            print(f"  {cfg}: " + ", ".join(row))
        print(f"estimated total: {total * a.rounds / 60:.0f} min\n", flush=True)

    # -- measuring --------------------------------------------------------------------------

    def command(self, cfg, process):
        """The command of one measurement."""
        netc, a = self.rel(self.netc), self.args
        size = ["--batch", str(cfg.batch), "--threads", str(cfg.threads)]
        if process == "netc":
            return [netc, "bench", cfg.file, *size, "--steps", str(self.netc_steps(cfg)), "--format", "json"]
        size += ["--steps", str(a.steps)] if a.steps else ["--seconds", f"{a.seconds:g}"]
        if process == "ort_infer":
            return [python(), self.rel(__file__), "ort", self.rel(self.onnx(cfg.net)), *size]
        return [python(), self.rel(__file__), "torch", cfg.file, "--netc-binary", netc, *size,
                "--mode", process.split("_")[1]]

    def measure(self, cfg, process):
        cmd = self.command(cfg, process)
        out, rss, err = run(cmd)
        self.log.append({"config": cfg.__dict__, "process": process, "command": cmd, "output": out,
                         "peak_rss": rss, "error": err})
        if err:
            print(f"  failed: {err}")
            self.failed[(cfg, process)] = err
            return
        if process == "netc":
            img_s = {"netc_train": out["train_img_s"], "netc_infer": out["infer_img_s"]}
            self.record(cfg, "netc_planned", out["peak_bytes"])
        else:
            # The worker's own peak: at its exit, Python's teardown grows PyTorch's resident
            # set by some 100 MiB, which wait4's figure would count.
            img_s, rss = {process: out["img_s"]}, out["peak_rss"]
            self.record(cfg, process + "_base_rss", out["base_rss"])
            self.versions[NAMES[process.split("_")[0]]] = out["version"]
        self.record(cfg, process + "_rss", rss)
        for kind, v in img_s.items():
            self.record(cfg, kind, v)
        print("  " + ", ".join(f"{NAMES[k]} {v:,.1f} img/s" for k, v in img_s.items())
              + f"; peak RSS {mib(rss)} MiB", flush=True)

    def record(self, cfg, quantity, value):
        self.values.setdefault((cfg, quantity), []).append(value)

    # -- the table --------------------------------------------------------------------------

    def median(self, cfg, quantity):
        values = self.values.get((cfg, quantity))
        return statistics.median(values) if values else None

    def missing(self, cfg, kind):
        if (cfg, kind) in self.skipped:
            return "skipped"
        process = "netc" if kind.startswith("netc") else kind
        return "failed" if (cfg, process) in self.failed else "—"

    def cell(self, cfg, kind):
        v = self.median(cfg, kind)
        if v is None:
            return self.missing(cfg, kind)
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

    def ratio(self, cfg, a, b):
        x, y = self.median(cfg, a), self.median(cfg, b)
        return f"{x / y:.2f}" if x and y else "—"

    def memory_cell(self, cfg, kind):
        """The largest peak RSS of `kind`'s passes, and in brackets how far the worker grew
        past what it held once its library was imported."""
        peaks = self.values.get((cfg, kind + "_rss"))
        if not peaks:
            return self.missing(cfg, kind)
        base = statistics.median(self.values[(cfg, kind + "_base_rss")])
        return f"{mib(max(peaks))} (+{mib(max(peaks) - base)})"

    def table(self, configs, load_began):
        print("Images/s, median of the rounds; ratios above 1: netc is faster.\n")
        print("| network | batch | threads | netc train | PyTorch train | netc/PyTorch train "
              "| netc infer | PyTorch infer | ORT infer | netc/PyTorch infer | netc/ORT infer |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in configs:
            print(f"| {c.net} | {c.batch} | {c.threads} | {self.cell(c, 'netc_train')} "
                  f"| {self.cell(c, 'torch_train')} | {self.ratio(c, 'netc_train', 'torch_train')} "
                  f"| {self.cell(c, 'netc_infer')} | {self.cell(c, 'torch_infer')} | {self.cell(c, 'ort_infer')} "
                  f"| {self.ratio(c, 'netc_infer', 'torch_infer')} | {self.ratio(c, 'netc_infer', 'ort_infer')} |")
        print("\nPeak resident memory, MiB. netc: its bench's process, which runs the training steps and then "
              "inference, and in brackets what it plans (buffers, parameters, gradients, momentum). PyTorch "
              "and onnxruntime: the worker's peak, and in brackets its growth past what it held once the library "
              "was imported.\n")
        print("| network | batch | threads | netc | PyTorch infer | PyTorch train | ORT infer |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for c in configs:
            planned = self.median(c, "netc_planned")
            netc = self.values.get((c, "netc_rss"))
            netc = f"{mib(max(netc))} ({mib(planned)})" if netc else self.missing(c, "netc_train")
            print(f"| {c.net} | {c.batch} | {c.threads} | {netc} | {self.memory_cell(c, 'torch_infer')} "
                  f"| {self.memory_cell(c, 'torch_train')} | {self.memory_cell(c, 'ort_infer')} |")
        self.notes(configs, load_began)

    def notes(self, configs, load_began):
        notes = []
        if float(load_began.split()[0]) >= 0.5:
            notes.append(f"The machine was busy (load average {load_began} at the start, on {os.cpu_count()} CPUs): "
                         f"figures on more threads than the idle cores, PyTorch's most, are unreliable.")
        for process in ["torch_infer", "ort_infer"]:
            base = [v for c in configs for v in self.values.get((c, process + "_base_rss"), [])]
            if base:
                library = NAMES[process.split("_")[0]]
                notes.append(f"A worker holds {mib(statistics.median(base))} MiB once {library} is imported.")
        for (cfg, kind), why in self.skipped.items():
            notes.append(f"{cfg}, {NAMES[kind]}: skipped, {why}.")
        for (cfg, process), why in self.failed.items():
            notes.append(f"{cfg}, {NAMES[process]}: failed ({why}).")
        for (cfg, kind), values in self.values.items():
            if kind in NAMES and len(values) > 1:
                spread = (max(values) - min(values)) / statistics.median(values)
                if spread > 0.1:
                    notes.append(f"{cfg}, {NAMES[kind]}: the rounds spread {100 * spread:.0f}% "
                                 f"({', '.join(f'{v:,.1f}' for v in values)}).")
        if notes:
            print()
            for n in notes:
                print("- " + n)

    def rows(self, configs):
        """The raw numbers, for --json."""
        return [{**c.__dict__, **{q: v for (cc, q), v in self.values.items() if cc == c},
                 "skipped": {k: why for (cc, k), why in self.skipped.items() if cc == c},
                 "failed": {p: why for (cc, p), why in self.failed.items() if cc == c}} for c in configs]


def netc_binary(given):
    """The netc to run: as given, else `cargo build --release` of this checkout."""
    if given:
        return given.resolve()
    cmd = ["cargo", "build", "--release"]
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve() / "release" / "netc"


def configurations(args):
    nets = []
    for n in args.nets:
        file = NETS.get(n, n)
        if not (ROOT / file).is_file():
            sys.exit(f"table.py: no network {n} (one of {', '.join(NETS)}, or a .net file)")
        nets.append((Path(file).stem, file))
    configs = [Config(net, file, b, t) for net, file in nets
               for b in (args.batches or BATCHES + EXTRA_BATCHES.get(net, []))
               for t in args.threads]
    return nets, configs


def cpu_name():
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return names[0] if names else platform.machine()


def load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Workers: table.py torch|ort|onnx --help.")
    ap.add_argument("--nets", nargs="+", default=list(NETS), metavar="NET",
                    help=f"names ({', '.join(NETS)}) or .net files (default: all five)")
    ap.add_argument("--batches", nargs="+", type=int, help="default: 1 8 32, and 64 for LeNet")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    when = ap.add_mutually_exclusive_group()
    when.add_argument("--seconds", type=float, default=1.0,
                      help="timed seconds per pass, at least 3 steps (default 1)")
    when.add_argument("--steps", type=int, help="exactly this many timed steps per pass instead")
    ap.add_argument("--rounds", type=int, default=3, help="repeats of every measurement, the median (default 3)")
    ap.add_argument("--max-seconds", type=float, default=90.0,
                    help="skip a measurement estimated to take longer (default 90)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: --nets lenet --batches 8 --threads 1 --steps 20 --rounds 2")
    ap.add_argument("--estimate", action="store_true", help="print the plan and its estimated time, and stop")
    ap.add_argument("--json", type=Path, metavar="OUT", help="save the raw numbers and every command")
    ap.add_argument("--netc-binary", type=Path, metavar="PATH",
                    help="default: `cargo build --release`, then target/release/netc")
    args = ap.parse_args()
    if args.quick:
        args.nets, args.batches, args.threads, args.steps, args.rounds = ["lenet"], [8], [1], 20, 2
    if args.steps is not None and args.steps < 1 or args.rounds < 1:
        ap.error("--steps and --rounds must be positive")

    began, load_began = time.time(), load()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"netc {commit}; {cpu_name()}, {os.cpu_count()} CPUs; load average at start {load_began}", flush=True)
    bench = Bench(args, netc_binary(args.netc_binary))
    nets, configs = configurations(args)
    bench.prepare(nets)
    bench.plan(configs)
    if args.estimate:
        return
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds} (load average {load()})", flush=True)
        for i, cfg in enumerate(configs):
            order = [p for p in KINDS if (cfg, KINDS[p][0]) not in bench.skipped]
            shift = (r + i) % len(order) if order else 0
            for process in order[shift:] + order[:shift]:
                bench.measure(cfg, process)
    minutes, load_ended = (time.time() - began) / 60, load()
    versions = "; ".join(f"{k} {v}" for k, v in sorted(bench.versions.items()))
    print(f"\nnetc {commit}; {versions}; {cpu_name()}; {minutes:.1f} min; "
          f"load average at start {load_began}, at end {load_ended}\n")
    bench.table(configs, load_began)
    if args.json:
        args.json.write_text(json.dumps({
            "commit": commit, "cpu": cpu_name(), "versions": bench.versions,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "load_average": {"start": load_began, "end": load_ended}, "minutes": minutes,
            "rows": bench.rows(configs), "measurements": bench.log}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in WORKERS:
        worker_main(sys.argv[1:])
    else:
        main()
