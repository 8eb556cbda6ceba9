"""Builds the PyTorch network that a netc network describes, from `netc check --format json`.

    from torch_from_json import build, netc_json
    doc = netc_json("examples/lenet.net")          # runs `cargo run --release -- check ... --format json`
    net = build(doc)                               # an nn.Module with netc's parameter names
    loss, outputs = net.objective({"image": x, "label": y})

Every layer of the JSON (in its order, which is topological) becomes the same PyTorch op with
the same arguments; parameters live in modules nested by path, so `net.state_dict()` has
exactly netc's names (`i3a.b2.0.weight`, `conv1.bias`, `stem.1.running_mean`, ...) and
layouts. Dropout and stochastic depth are the identity (netc's deterministic gradient
semantics). Used to make the whole-network fixtures and, later, to benchmark side by side.

The ops of the modern CNN zoo (docs/language.md) are PyTorch's functions of the same name,
with the attributes of netc's export: `relu6`, `hardswish`, `hardsigmoid`, `silu`, `mish`,
`hardtanh` {min, max}, `gelu` {approximate}, `elu` {alpha}; `mul` (two inputs, the second
may be [C, 1, 1]); `scale` {init} (a learned factor `PATH.weight` [C, 1, 1]); `upsample`
{scale, mode, align_corners}; `adaptive_avgpool` {out}; `layernorm2d` {eps} (nn.LayerNorm
over the channels at each position, `PATH.weight` and `PATH.bias` [C]); `groupnorm`
{groups, eps}; `channel_shuffle` {groups}; `slice` {from, to} (channels); `stochastic_depth`
{p}. Losses: `ce` (with a `smoothing` attribute, PyTorch's label_smoothing), `mse`, `l1`, and
`bce` (sigmoid binary cross-entropy on logits).
"""

import json
import os
import subprocess

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def netc_json(path, network=None):
    cmd = ["cargo", "run", "--release", "--quiet", "--", "check", path, "--format", "json"]
    if network:
        cmd += ["--network", network]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _place(root, path, module):
    """Puts `module` at dotted `path` under `root`, creating containers on the way."""
    *parents, leaf = path.split(".")
    node = root
    for p in parents:
        if p not in node._modules:
            node.add_module(p, nn.Module())
        node = node._modules[p]
    old = node._modules.get(leaf)
    if old is not None:  # a container made earlier for a longer path: keep its children
        for name, child in old._modules.items():
            module.add_module(name, child)
    node.add_module(leaf, module)


class Scale(nn.Module):
    """netc's `scale`: a learned factor per channel, `weight` [C, 1, 1] (ConvNeXt's layer scale)."""

    def __init__(self, c, init):
        super().__init__()
        self.weight = nn.Parameter(torch.full((c, 1, 1), float(init)))

    def forward(self, x):
        return x * self.weight


class LayerNorm2d(nn.LayerNorm):
    """netc's `layernorm2d`: nn.LayerNorm over the channels at each position of an NCHW
    tensor (torchvision's LayerNorm2d of ConvNeXt); on [N, C] it is nn.LayerNorm itself."""

    def forward(self, x):
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def channel_shuffle(x, groups):
    """ShuffleNet's shuffle: channels as [groups, C/groups], transposed."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _get(root, path):
    node = root
    for p in path.split("."):
        node = node._modules[p]
    return node


class NetcNet(nn.Module):
    def __init__(self, doc):
        super().__init__()
        self.doc = doc
        shapes = {name: v for name, v in doc["inputs"].items()}
        out_shape = {}
        for name, v in shapes.items():
            out_shape[name] = v if isinstance(v, list) else None
        for layer in doc["layers"]:
            a, op, path = layer["attrs"], layer["op"], layer["path"]
            x = out_shape[layer["inputs"][0]] if layer["inputs"] else None
            m = None
            if op == "conv":
                m = nn.Conv2d(x[0], a["out"], a["k"], a["s"], a["p"], a["dil"], a["groups"], a["bias"])
            elif op in ("conv_t", "invert"):
                m = nn.ConvTranspose2d(x[0], a["out"], a["k"], a["s"], a["p"], a["op"], a["groups"], a["bias"], a["dil"])
            elif op == "linear":
                m = nn.Linear(x[0], a["out"], a["bias"])
            elif op == "batchnorm":
                cls = nn.BatchNorm2d if len(x) == 3 else nn.BatchNorm1d
                m = cls(x[0], eps=a["eps"], momentum=a["momentum"])
            elif op == "scale":
                m = Scale(x[0], a["init"])
            elif op == "layernorm2d":
                m = LayerNorm2d(x[0], eps=a["eps"])
            elif op == "groupnorm":
                m = nn.GroupNorm(a["groups"], x[0], eps=a["eps"])
            if m is not None:
                _place(self, path, m)
            out_shape[path] = layer["output"]

    def forward(self, feed):
        v = dict(feed)
        for layer in self.doc["layers"]:
            a, op, path = layer["attrs"], layer["op"], layer["path"]
            xs = [v[i] for i in layer["inputs"]]
            x = xs[0]
            if op in ("conv", "conv_t", "invert", "linear", "batchnorm", "scale", "layernorm2d", "groupnorm"):
                y = _get(self, path)(x)
            elif op == "maxpool":
                y = F.max_pool2d(x, a["k"], a["s"], a["p"], ceil_mode=a["ceil"])
            elif op == "avgpool":
                y = F.avg_pool2d(x, a["k"], a["s"], a["p"], ceil_mode=a["ceil"], count_include_pad=True)
            elif op == "global_avgpool":
                y = F.adaptive_avg_pool2d(x, 1)
            elif op == "relu":
                y = F.relu(x)
            elif op == "sigmoid":
                y = torch.sigmoid(x)
            elif op == "tanh":
                y = torch.tanh(x)
            elif op == "leaky_relu":
                y = F.leaky_relu(x, a["slope"])
            elif op == "lrn":
                y = F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
            elif op in ("dropout", "stochastic_depth"):
                y = x
            elif op == "relu6":
                y = F.relu6(x)
            elif op == "hardtanh":
                y = F.hardtanh(x, a["min"], a["max"])
            elif op == "hardswish":
                y = F.hardswish(x)
            elif op == "hardsigmoid":
                y = F.hardsigmoid(x)
            elif op == "silu":
                y = F.silu(x)
            elif op == "mish":
                y = F.mish(x)
            elif op == "gelu":
                y = F.gelu(x, approximate=a["approximate"])
            elif op == "elu":
                y = F.elu(x, a["alpha"])
            elif op == "mul":
                y = xs[0] * xs[1]
            elif op == "upsample":
                bilinear = a["mode"] == "bilinear"
                y = F.interpolate(x, scale_factor=a["scale"], mode=a["mode"],
                                  align_corners=a["align_corners"] if bilinear else None)
            elif op == "adaptive_avgpool":
                y = F.adaptive_avg_pool2d(x, _pair(a["out"]))
            elif op == "channel_shuffle":
                y = channel_shuffle(x, a["groups"])
            elif op == "slice":
                y = x[:, a["from"]:a["to"]]
            elif op == "flatten":
                y = x.flatten(1)
            elif op == "concat":
                y = torch.cat(xs, dim=1)
            elif op == "add":
                y = xs[0]
                for other in xs[1:]:
                    y = y + other
            elif op == "softmax":
                y = F.softmax(x, dim=1)
            else:
                raise ValueError(f"op {op} of {path}")
            v[path] = y
        return v

    def objective(self, feed):
        """The weighted sum of the loss terms, and the outputs by name."""
        v = self.forward(feed)
        loss = 0.0
        for term in self.doc["losses"]:
            a, b = (v[i] for i in term["inputs"])
            op, attrs = term["op"], term.get("attrs", {})
            if op == "ce":
                smoothing = attrs.get("smoothing", term.get("smoothing", 0.0))
                value = F.cross_entropy(a, b, label_smoothing=smoothing)
            elif op == "mse":
                value = F.mse_loss(a, b)
            elif op == "l1":
                value = F.l1_loss(a, b)
            elif op == "bce":
                value = F.binary_cross_entropy_with_logits(a, b)
            else:
                raise ValueError(f"loss {op}")
            loss = loss + term["weight"] * value
        return loss, {name: v[node] for name, node in self.doc["output_nodes"].items()}


def build(doc):
    return NetcNet(doc)
