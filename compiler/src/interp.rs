//! The reference interpreter: runs a checked graph, unfused, node by node, with the runtime's
//! kernels, forward (inference or training) and backward, where every op's gradient rule is
//! written once and fan-out gradients are summed. It is the oracle that generated code is
//! compared with, and what `netc run --interp` executes.
//!
//! Tensors are batch-major NCHW `f32`; parameters use PyTorch's names and layouts
//! (`PATH.weight`, `PATH.bias`, `PATH.running_mean`, `PATH.running_var`).

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use netc_runtime as rt;
use rt::conv::Conv2d;
use rt::conv_t::ConvT2d;
use rt::pool::Pool2d;

use crate::graph::{Graph, LossKind};
use crate::ops::{self, InputKind, Op};

/// A named tensor: shape (batch first for activations) and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }
}

/// Parameters and state (batchnorm running statistics) by PyTorch name, in a stable order.
pub type Params = BTreeMap<String, Tensor>;

/// What a network is fed: tensors by input name, and labels for `class(N)` inputs.
#[derive(Clone, Debug, Default)]
pub struct Feed {
    pub tensors: BTreeMap<String, Tensor>,
    pub labels: BTreeMap<String, Vec<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batchnorm on running statistics, dropout the identity.
    Infer,
    /// Batchnorm on batch statistics (updating the running ones), dropout as configured.
    Train,
}

/// The shapes of the trainable parameters and state of `g`, by name, in node order.
pub fn param_shapes(g: &Graph) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for n in g.layers() {
        let node = g.node(n);
        let x = g
            .inputs_of(n)
            .first()
            .map(|&i| g.node(i).shape.clone())
            .unwrap_or_default();
        let p = &node.path;
        match &node.op {
            Op::Conv(c) => {
                out.push((
                    format!("{p}.weight"),
                    vec![c.out, x[0] / c.groups, c.k[0], c.k[1]],
                ));
                if c.bias {
                    out.push((format!("{p}.bias"), vec![c.out]));
                }
            }
            Op::ConvT(c) => {
                out.push((
                    format!("{p}.weight"),
                    vec![x[0], c.out / c.groups, c.k[0], c.k[1]],
                ));
                if c.bias {
                    out.push((format!("{p}.bias"), vec![c.out]));
                }
            }
            Op::Linear { out: o, bias, .. } => {
                out.push((format!("{p}.weight"), vec![*o, x[0]]));
                if *bias {
                    out.push((format!("{p}.bias"), vec![*o]));
                }
            }
            Op::BatchNorm { .. } => {
                for name in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{p}.{name}"), vec![x[0]]));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether a parameter name is state (updated by the forward pass) rather than trained.
pub fn is_state(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// Fresh parameters: weights from `init` (PyTorch's uniform bounds), biases zero, batchnorm
/// γ = 1, β = 0, running mean 0 and variance 1. Drawn in node order from one seeded stream.
pub fn init_params(g: &Graph, init: rt::init::Init, seed: u64) -> Params {
    let mut rng = rt::rng::Rng::new(seed);
    let mut params = Params::new();
    for (name, shape) in param_shapes(g) {
        let mut t = Tensor::zeros(&shape);
        let is_bn = |suffix: &str| name.ends_with(suffix) && shape.len() == 1;
        if name.ends_with(".weight") && shape.len() > 1 {
            rt::init::init_weight(init, &shape, &mut rng, &mut t.data);
        } else if is_bn(".weight") || is_bn(".running_var") {
            t.data.fill(1.0);
        }
        params.insert(name, t);
    }
    params
}

/// What the forward pass keeps for the backward pass, per node.
#[derive(Default)]
struct Saved {
    argmax: Vec<u32>,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    lrn_scale: Vec<f32>,
}

/// The result of a forward pass: every node's output, what backward needs, and the loss.
pub struct Forward {
    batch: usize,
    values: BTreeMap<NodeIndex, Vec<f32>>,
    saved: BTreeMap<NodeIndex, Saved>,
    /// The weighted training objective (0 when the graph has no loss or in inference).
    pub loss: f32,
    /// ∂loss/∂(node output) seeded by the loss terms.
    seeds: BTreeMap<NodeIndex, Vec<f32>>,
}

impl Forward {
    /// The output of node `n` (batch-major).
    pub fn value(&self, n: NodeIndex) -> &[f32] {
        &self.values[&n]
    }

    /// The network's outputs by name.
    pub fn outputs(&self, g: &Graph) -> BTreeMap<String, Tensor> {
        g.outputs
            .iter()
            .map(|(name, n)| {
                let mut shape = vec![self.batch];
                shape.extend(&g.node(*n).shape);
                (
                    name.clone(),
                    Tensor {
                        shape,
                        data: self.values[n].clone(),
                    },
                )
            })
            .collect()
    }
}

fn conv_geometry(c: &ops::Conv, x: &[usize]) -> Conv2d {
    Conv2d {
        c: x[0],
        h: x[1],
        w: x[2],
        out: c.out,
        kh: c.k[0],
        kw: c.k[1],
        sh: c.s[0],
        sw: c.s[1],
        ph: c.p[0],
        pw: c.p[1],
        dh: c.dil[0],
        dw: c.dil[1],
        groups: c.groups,
    }
}

fn conv_t_geometry(c: &ops::ConvT, x: &[usize]) -> ConvT2d {
    ConvT2d {
        c: x[0],
        h: x[1],
        w: x[2],
        out: c.out,
        kh: c.k[0],
        kw: c.k[1],
        sh: c.s[0],
        sw: c.s[1],
        ph: c.p[0],
        pw: c.p[1],
        oph: c.op[0],
        opw: c.op[1],
        dh: c.dil[0],
        dw: c.dil[1],
        groups: c.groups,
    }
}

/// The im2col buffer a conv layer needs (for generated code's workspace).
pub fn conv_col_len(c: &ops::Conv, x: &[usize]) -> usize {
    conv_geometry(c, x).col_len()
}

/// The col2im buffer a transposed conv layer needs.
pub fn conv_t_col_len(c: &ops::ConvT, x: &[usize]) -> usize {
    conv_t_geometry(c, x).col_len()
}

fn pool_geometry(p: &ops::Pool, x: &[usize]) -> Pool2d {
    Pool2d {
        c: x[0],
        h: x[1],
        w: x[2],
        kh: p.k[0],
        kw: p.k[1],
        sh: p.s[0],
        sw: p.s[1],
        ph: p.p[0],
        pw: p.p[1],
        ceil: p.ceil,
    }
}

/// Channels and the size of one channel's plane (1 for a feature vector).
fn channels(shape: &[usize]) -> (usize, usize) {
    (shape[0], shape[1..].iter().product())
}

fn param<'a>(params: &'a Params, name: &str) -> &'a [f32] {
    &params
        .get(name)
        .unwrap_or_else(|| panic!("missing parameter `{name}`"))
        .data
}

/// Runs the graph forward on `feed` (batch size from the first input). In training mode the
/// loss terms are evaluated and batchnorm state in `params` is updated. Dropout is the
/// identity here (the deterministic semantics of `netc run --grads`).
pub fn forward(g: &Graph, params: &mut Params, feed: &Feed, mode: Mode) -> Forward {
    let batch = feed
        .tensors
        .values()
        .map(|t| t.shape[0])
        .chain(feed.labels.values().map(Vec::len))
        .next()
        .unwrap_or(1);
    let needed = match mode {
        Mode::Infer => g.inference_set(),
        Mode::Train => g.training_set(),
    };
    let mut f = Forward {
        batch,
        values: BTreeMap::new(),
        saved: BTreeMap::new(),
        loss: 0.0,
        seeds: BTreeMap::new(),
    };
    for n in g.nodes() {
        if !needed[n.index()] {
            continue;
        }
        let node = g.node(n);
        let ins = g.inputs_of(n);
        let xs = ins
            .first()
            .map(|&i| g.node(i).shape.clone())
            .unwrap_or_default();
        let out_len = batch * node.shape.iter().product::<usize>();
        let mut y = vec![0.0f32; out_len];
        let mut saved = Saved::default();
        let p = &node.path;
        match &node.op {
            Op::Input(InputKind::Tensor) => {
                let t = &feed.tensors[&node.path];
                y.copy_from_slice(&t.data);
            }
            Op::Input(InputKind::Class(_)) => {}
            Op::Conv(c) => {
                let geo = conv_geometry(c, &xs);
                let mut col = vec![0.0; geo.col_len()];
                let bias = c.bias.then(|| param(params, &format!("{p}.bias")));
                let w = param(params, &format!("{p}.weight"));
                rt::conv::conv2d_forward(
                    &geo,
                    batch,
                    &f.values[&ins[0]],
                    w,
                    bias,
                    c.relu,
                    &mut y,
                    &mut col,
                );
            }
            Op::ConvT(c) => {
                let geo = conv_t_geometry(c, &xs);
                let mut col = vec![0.0; geo.col_len()];
                let bias = c.bias.then(|| param(params, &format!("{p}.bias")));
                let w = param(params, &format!("{p}.weight"));
                rt::conv_t::conv_t2d_forward(
                    &geo,
                    batch,
                    &f.values[&ins[0]],
                    w,
                    bias,
                    &mut y,
                    &mut col,
                );
            }
            Op::MaxPool(pl) => {
                saved.argmax = vec![0; out_len];
                rt::pool::maxpool2d_forward(
                    &pool_geometry(pl, &xs),
                    batch,
                    &f.values[&ins[0]],
                    &mut y,
                    &mut saved.argmax,
                );
            }
            Op::AvgPool(pl) => rt::pool::avgpool2d_forward(
                &pool_geometry(pl, &xs),
                batch,
                &f.values[&ins[0]],
                &mut y,
            ),
            Op::GlobalAvgPool => {
                rt::pool::global_avgpool_forward(xs[1] * xs[2], &f.values[&ins[0]], &mut y)
            }
            Op::Relu => rt::act::relu_forward(&f.values[&ins[0]], &mut y),
            Op::Sigmoid => rt::act::sigmoid_forward(&f.values[&ins[0]], &mut y),
            Op::Tanh => rt::act::tanh_forward(&f.values[&ins[0]], &mut y),
            Op::LeakyRelu { slope } => {
                rt::act::leaky_relu_forward(*slope as f32, &f.values[&ins[0]], &mut y)
            }
            Op::Softmax => {
                let (c, plane) = channels(&xs);
                rt::act::softmax_forward(c, plane, &f.values[&ins[0]], &mut y)
            }
            Op::Dropout { .. } | Op::Flatten => y.copy_from_slice(&f.values[&ins[0]]),
            Op::BatchNorm { eps, momentum } => {
                let (c, plane) = channels(&xs);
                let (gamma, beta) = (
                    param(params, &format!("{p}.weight")).to_vec(),
                    param(params, &format!("{p}.bias")).to_vec(),
                );
                if mode == Mode::Train {
                    let mut rm = params[&format!("{p}.running_mean")].data.clone();
                    let mut rv = params[&format!("{p}.running_var")].data.clone();
                    saved.mean = vec![0.0; c];
                    saved.rstd = vec![0.0; c];
                    rt::norm::batchnorm_train_forward(
                        batch,
                        c,
                        plane,
                        *eps as f32,
                        *momentum as f32,
                        &f.values[&ins[0]],
                        &gamma,
                        &beta,
                        &mut rm,
                        &mut rv,
                        &mut y,
                        &mut saved.mean,
                        &mut saved.rstd,
                    );
                    params.get_mut(&format!("{p}.running_mean")).unwrap().data = rm;
                    params.get_mut(&format!("{p}.running_var")).unwrap().data = rv;
                } else {
                    rt::norm::batchnorm_eval_forward(
                        batch,
                        c,
                        plane,
                        *eps as f32,
                        &f.values[&ins[0]],
                        &gamma,
                        &beta,
                        param(params, &format!("{p}.running_mean")),
                        param(params, &format!("{p}.running_var")),
                        &mut y,
                    );
                }
            }
            Op::Lrn {
                size,
                alpha,
                beta,
                k,
            } => {
                let (c, plane) = channels(&xs);
                saved.lrn_scale = vec![0.0; out_len];
                rt::norm::lrn_forward(
                    batch,
                    c,
                    plane,
                    *size,
                    *alpha as f32,
                    *beta as f32,
                    *k as f32,
                    &f.values[&ins[0]],
                    &mut y,
                    &mut saved.lrn_scale,
                );
            }
            Op::Linear { out, bias, relu } => {
                let b = bias.then(|| param(params, &format!("{p}.bias")));
                rt::linear::linear_forward(
                    batch,
                    xs[0],
                    *out,
                    &f.values[&ins[0]],
                    param(params, &format!("{p}.weight")),
                    b,
                    *relu,
                    &mut y,
                );
            }
            Op::Concat => {
                let (cy, plane) = channels(&node.shape);
                let mut c0 = 0;
                for &i in &ins {
                    let cx = g.node(i).shape[0];
                    rt::tensor::concat_channels(batch, plane, cx, c0, cy, &f.values[&i], &mut y);
                    c0 += cx;
                }
            }
            Op::Add => {
                let xs: Vec<&[f32]> = ins.iter().map(|i| &f.values[i][..]).collect();
                rt::tensor::add_forward(&xs, &mut y);
            }
        }
        f.values.insert(n, y);
        f.saved.insert(n, saved);
    }
    if mode == Mode::Train {
        for term in &g.losses {
            let [a, b] = term.inputs;
            let w = term.weight as f32;
            let mut da = vec![0.0; f.values[&a].len()];
            let l = match term.kind {
                LossKind::Ce => {
                    let label = &g.node(b).path;
                    let labels = &feed.labels[label];
                    rt::loss::softmax_ce(g.node(a).shape[0], &f.values[&a], labels, w, &mut da)
                }
                LossKind::Mse => {
                    let mut db = vec![0.0; f.values[&b].len()];
                    let l = rt::loss::mse(
                        &f.values[&a],
                        &f.values[&b],
                        w,
                        Some(&mut da),
                        Some(&mut db),
                    );
                    seed(&mut f.seeds, b, db);
                    l
                }
            };
            f.loss += w * l;
            seed(&mut f.seeds, a, da);
        }
    }
    f
}

fn seed(seeds: &mut BTreeMap<NodeIndex, Vec<f32>>, n: NodeIndex, g: Vec<f32>) {
    match seeds.get_mut(&n) {
        Some(acc) => rt::tensor::accumulate(&g, acc),
        None => {
            seeds.insert(n, g);
        }
    }
}

/// The gradient of the training objective with respect to every trained parameter (state
/// excluded), by name. `f` must come from [`forward`] in [`Mode::Train`] with the same
/// parameters.
pub fn backward(g: &Graph, params: &Params, f: &Forward) -> Params {
    let batch = f.batch;
    let mut grads: BTreeMap<NodeIndex, Vec<f32>> = f.seeds.clone();
    let mut out = Params::new();
    // Reverse creation order is a reverse topological order: every consumer of a node is
    // done before the node itself, so its gradient is complete when it is read.
    for n in g.nodes().into_iter().rev() {
        let Some(mut dy) = grads.remove(&n) else {
            continue;
        };
        let node = g.node(n);
        let ins = g.inputs_of(n);
        let xs = ins
            .first()
            .map(|&i| g.node(i).shape.clone())
            .unwrap_or_default();
        let p = &node.path;
        let saved = &f.saved[&n];
        // Gradients of the inputs; an input of the network needs none.
        let wants = |i: NodeIndex| !matches!(g.node(i).op, Op::Input(_));
        let x_len = |i: NodeIndex| f.values[&i].len();
        let mut dxs: Vec<(NodeIndex, Vec<f32>)> = Vec::new();
        let mut param_grad = |name: String, grad: Vec<f32>| {
            let shape = params[&name].shape.clone();
            out.insert(name, Tensor { shape, data: grad });
        };
        // A ReLU fused into the layer: its gradient first, on the layer's own output.
        if matches!(&node.op, Op::Conv(c) if c.relu)
            || matches!(node.op, Op::Linear { relu: true, .. })
        {
            rt::act::relu_backward_inplace(&f.values[&n], &mut dy);
        }
        match &node.op {
            Op::Input(_) => {}
            Op::Conv(c) => {
                let geo = conv_geometry(c, &xs);
                let mut col = vec![0.0; geo.col_len()];
                let w = param(params, &format!("{p}.weight"));
                let mut dw = vec![0.0; w.len()];
                let mut db = vec![0.0; c.out];
                let x = &f.values[&ins[0]];
                if wants(ins[0]) {
                    let mut dx = vec![0.0; x.len()];
                    rt::conv::conv2d_backward(
                        &geo,
                        batch,
                        x,
                        w,
                        &dy,
                        &mut dx,
                        &mut dw,
                        Some(&mut db),
                        &mut col,
                    );
                    dxs.push((ins[0], dx));
                } else {
                    rt::conv::conv2d_backward_weight(
                        &geo,
                        batch,
                        x,
                        &dy,
                        &mut dw,
                        Some(&mut db),
                        &mut col,
                    );
                }
                param_grad(format!("{p}.weight"), dw);
                if c.bias {
                    param_grad(format!("{p}.bias"), db);
                }
            }
            Op::ConvT(c) => {
                let geo = conv_t_geometry(c, &xs);
                let mut col = vec![0.0; geo.col_len()];
                let w = param(params, &format!("{p}.weight"));
                let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; c.out]);
                let x = &f.values[&ins[0]];
                rt::conv_t::conv_t2d_backward_weight(
                    &geo,
                    batch,
                    x,
                    &dy,
                    &mut dw,
                    Some(&mut db),
                    &mut col,
                );
                if wants(ins[0]) {
                    let mut dx = vec![0.0; x.len()];
                    rt::conv_t::conv_t2d_backward_data(&geo, batch, w, &dy, &mut dx, &mut col);
                    dxs.push((ins[0], dx));
                }
                param_grad(format!("{p}.weight"), dw);
                if c.bias {
                    param_grad(format!("{p}.bias"), db);
                }
            }
            Op::MaxPool(pl) => {
                let mut dx = vec![0.0; x_len(ins[0])];
                rt::pool::maxpool2d_backward(
                    &pool_geometry(pl, &xs),
                    batch,
                    &dy,
                    &saved.argmax,
                    &mut dx,
                );
                dxs.push((ins[0], dx));
            }
            Op::AvgPool(pl) => {
                let mut dx = vec![0.0; x_len(ins[0])];
                rt::pool::avgpool2d_backward(&pool_geometry(pl, &xs), batch, &dy, &mut dx);
                dxs.push((ins[0], dx));
            }
            Op::GlobalAvgPool => {
                let mut dx = vec![0.0; x_len(ins[0])];
                rt::pool::global_avgpool_backward(xs[1] * xs[2], &dy, &mut dx);
                dxs.push((ins[0], dx));
            }
            Op::Relu | Op::Sigmoid | Op::Tanh | Op::LeakyRelu { .. } | Op::Softmax => {
                let (x, y) = (&f.values[&ins[0]], &f.values[&n]);
                let mut dx = vec![0.0; x.len()];
                match &node.op {
                    Op::Relu => rt::act::relu_backward(y, &dy, &mut dx),
                    Op::Sigmoid => rt::act::sigmoid_backward(y, &dy, &mut dx),
                    Op::Tanh => rt::act::tanh_backward(y, &dy, &mut dx),
                    Op::LeakyRelu { slope } => {
                        rt::act::leaky_relu_backward(*slope as f32, x, &dy, &mut dx)
                    }
                    _ => {
                        let (c, plane) = channels(&xs);
                        rt::act::softmax_backward(c, plane, y, &dy, &mut dx)
                    }
                }
                dxs.push((ins[0], dx));
            }
            Op::Dropout { .. } | Op::Flatten => dxs.push((ins[0], dy.clone())),
            Op::BatchNorm { .. } => {
                let (c, plane) = channels(&xs);
                let x = &f.values[&ins[0]];
                let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
                rt::norm::batchnorm_train_backward(
                    batch,
                    c,
                    plane,
                    x,
                    param(params, &format!("{p}.weight")),
                    &saved.mean,
                    &saved.rstd,
                    &dy,
                    &mut dx,
                    &mut dg,
                    &mut db,
                );
                param_grad(format!("{p}.weight"), dg);
                param_grad(format!("{p}.bias"), db);
                dxs.push((ins[0], dx));
            }
            Op::Lrn {
                size, alpha, beta, ..
            } => {
                let (c, plane) = channels(&xs);
                let x = &f.values[&ins[0]];
                let mut dx = vec![0.0; x.len()];
                let mut scratch = vec![0.0; c * plane];
                rt::norm::lrn_backward(
                    batch,
                    c,
                    plane,
                    *size,
                    *alpha as f32,
                    *beta as f32,
                    x,
                    &saved.lrn_scale,
                    &dy,
                    &mut dx,
                    &mut scratch,
                );
                dxs.push((ins[0], dx));
            }
            Op::Linear { out: o, bias, .. } => {
                let x = &f.values[&ins[0]];
                let w = param(params, &format!("{p}.weight"));
                let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; *o]);
                rt::linear::linear_backward_weight(
                    batch,
                    xs[0],
                    *o,
                    x,
                    &dy,
                    &mut dw,
                    Some(&mut db),
                );
                if wants(ins[0]) {
                    let mut dx = vec![0.0; x.len()];
                    rt::linear::linear_backward_data(batch, xs[0], *o, w, &dy, &mut dx);
                    dxs.push((ins[0], dx));
                }
                param_grad(format!("{p}.weight"), dw);
                if *bias {
                    param_grad(format!("{p}.bias"), db);
                }
            }
            Op::Concat => {
                let (cy, plane) = channels(&node.shape);
                let mut c0 = 0;
                for &i in &ins {
                    let cx = g.node(i).shape[0];
                    let mut dx = vec![0.0; x_len(i)];
                    rt::tensor::slice_channels(batch, plane, cx, c0, cy, &dy, &mut dx);
                    dxs.push((i, dx));
                    c0 += cx;
                }
            }
            Op::Add => {
                for &i in &ins {
                    dxs.push((i, dy.clone()));
                }
            }
        }
        for (i, dx) in dxs {
            if wants(i) {
                seed(&mut grads, i, dx);
            }
        }
    }
    out
}
