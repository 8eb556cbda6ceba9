"""Builds the PyTorch network that a netc network describes, from `netc check --format json`.

    from torch_from_json import build, netc_json
    doc = netc_json("examples/lenet.net")          # runs `cargo run --release -- check ... --format json`
    net = build(doc)                               # an nn.Module with netc's parameter names
    loss, outputs = net.objective({"image": x, "label": y})

Every layer of the JSON (in its order, which is topological) becomes the same PyTorch op with
the same arguments; parameters live in modules nested by path, so `net.state_dict()` has
exactly netc's names (`i3a.b2.0.weight`, `conv1.bias`, `stem.1.running_mean`, ...) and
layouts. Dropout is the identity (netc's deterministic gradient semantics). Used to make the
whole-network fixtures and, later, to benchmark side by side.
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
            if m is not None:
                _place(self, path, m)
            out_shape[path] = layer["output"]

    def forward(self, feed):
        v = dict(feed)
        for layer in self.doc["layers"]:
            a, op, path = layer["attrs"], layer["op"], layer["path"]
            xs = [v[i] for i in layer["inputs"]]
            x = xs[0]
            if op in ("conv", "conv_t", "invert", "linear", "batchnorm"):
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
            elif op == "dropout":
                y = x
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
            if term["op"] == "ce":
                loss = loss + term["weight"] * F.cross_entropy(a, b)
            else:
                loss = loss + term["weight"] * F.mse_loss(a, b)
        return loss, {name: v[node] for name, node in self.doc["output_nodes"].items()}


def build(doc):
    return NetcNet(doc)
