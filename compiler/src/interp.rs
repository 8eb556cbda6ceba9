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

use crate::graph::{Graph, LossKind, Shape};
use crate::ops::{Init, InputKind, Op, ParamDecl};

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

impl Feed {
    /// The batch size: the first tensor's first dimension, or the number of labels.
    pub fn batch(&self) -> usize {
        self.tensors
            .values()
            .map(|t| t.shape[0])
            .chain(self.labels.values().map(Vec::len))
            .next()
            .unwrap_or(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batchnorm on running statistics, dropout the identity.
    Infer,
    /// Batchnorm on batch statistics (updating the running ones), dropout as configured.
    Train,
}

/// The first input's shape of node `n` (empty for an input).
fn in_shapes(g: &Graph, n: NodeIndex) -> Vec<&Shape> {
    g.inputs_of(n)
        .into_iter()
        .map(|i| &g.node(i).shape)
        .collect()
}

/// Every parameter and state tensor of `g`, by name, in node order.
pub fn param_decls(g: &Graph) -> Vec<(String, ParamDecl)> {
    let mut out = Vec::new();
    for n in g.layers() {
        let node = g.node(n);
        for d in node.op.kind().params(&in_shapes(g, n)) {
            out.push((format!("{}.{}", node.path, d.suffix), d));
        }
    }
    out
}

/// The shapes of the trainable parameters and state of `g`, by name, in node order.
pub fn param_shapes(g: &Graph) -> Vec<(String, Vec<usize>)> {
    param_decls(g)
        .into_iter()
        .map(|(name, d)| (name, d.shape))
        .collect()
}

/// Fresh parameters: weights from `init` (PyTorch's uniform bounds), every other tensor its
/// op's constant (biases 0, a norm's γ 1, running variances 1). Drawn in node order from
/// one seeded stream.
pub fn init_params(g: &Graph, init: rt::init::Init, seed: u64) -> Params {
    let mut rng = rt::rng::Rng::new(seed);
    let mut params = Params::new();
    for (name, d) in param_decls(g) {
        let mut t = Tensor::zeros(&d.shape);
        match d.init {
            Init::Random => rt::init::init_weight(init, &d.shape, &mut rng, &mut t.data),
            Init::Const(v) => t.data.fill(v),
        }
        params.insert(name, t);
    }
    params
}

/// What the forward pass of a training step keeps for backward, by the letter of
/// [`crate::ops::SavedDecl`]: `f32` buffers and `u32` ones (argmaxes).
#[derive(Default)]
pub struct Saved {
    pub f: BTreeMap<char, Vec<f32>>,
    pub u: BTreeMap<char, Vec<u32>>,
}

/// What an op's forward reads.
pub struct Fwd<'a> {
    pub batch: usize,
    pub mode: Mode,
    /// The layer's path: its parameters are `PATH.suffix`.
    pub path: &'a str,
    /// The inputs' values (batch-major) and per-sample shapes.
    pub xs: Vec<&'a [f32]>,
    pub shapes: Vec<&'a Shape>,
    pub y_shape: &'a Shape,
    pub(crate) params: &'a Params,
    /// Whether dropout and stochastic depth draw (training, with a generator).
    pub drop: bool,
}

impl Fwd<'_> {
    /// The layer's parameter or state tensor `PATH.suffix`.
    pub fn param(&self, suffix: &str) -> &[f32] {
        param(self.params, &format!("{}.{suffix}", self.path))
    }

    /// Parameter or state tensor `path.suffix` of another layer (the batchnorm a conv
    /// folds in).
    pub fn param_of(&self, path: &str, suffix: &str) -> &[f32] {
        param(self.params, &format!("{path}.{suffix}"))
    }

    /// The layer's parameter `PATH.suffix`, if it has it (an optional bias).
    pub fn maybe(&self, suffix: &str, has: bool) -> Option<&[f32]> {
        has.then(|| self.param(suffix))
    }

    pub fn train(&self) -> bool {
        self.mode == Mode::Train
    }
}

/// What an op's forward writes.
pub struct FwdOut<'r> {
    /// The output, zeroed, batch-major.
    pub y: Vec<f32>,
    pub saved: Saved,
    /// New values of state tensors (running statistics), by suffix.
    pub state: Vec<(&'static str, Vec<f32>)>,
    /// The generator of dropout masks, when the run drops.
    pub rng: Option<&'r mut rt::rng::Rng>,
}

/// What an op's backward reads.
pub struct Bwd<'a> {
    pub batch: usize,
    pub path: &'a str,
    pub xs: Vec<&'a [f32]>,
    pub shapes: Vec<&'a Shape>,
    pub y: &'a [f32],
    pub y_shape: &'a Shape,
    /// The gradient of the output (a fused ReLU already applied).
    pub dy: &'a [f32],
    pub(crate) params: &'a Params,
    pub saved: &'a Saved,
    /// Whether each input takes a gradient (a network input does not).
    pub wants: Vec<bool>,
}

impl Bwd<'_> {
    pub fn param(&self, suffix: &str) -> &[f32] {
        param(self.params, &format!("{}.{suffix}", self.path))
    }

    /// A zeroed buffer the size of input `i`.
    pub fn zeros_like(&self, i: usize) -> Vec<f32> {
        vec![0.0; self.xs[i].len()]
    }
}

/// What an op's backward writes: a gradient per input that wants one, and the parameters'.
#[derive(Default)]
pub struct BwdOut {
    pub dxs: Vec<Option<Vec<f32>>>,
    pub grads: Vec<(&'static str, Vec<f32>)>,
}

impl BwdOut {
    /// The gradient of input `i`.
    pub fn dx(&mut self, i: usize, dx: Vec<f32>) {
        if self.dxs.len() <= i {
            self.dxs.resize(i + 1, None);
        }
        self.dxs[i] = Some(dx);
    }

    /// The gradient of parameter `PATH.suffix`.
    pub fn grad(&mut self, suffix: &'static str, g: Vec<f32>) {
        self.grads.push((suffix, g));
    }
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

fn param<'a>(params: &'a Params, name: &str) -> &'a [f32] {
    &params
        .get(name)
        .unwrap_or_else(|| panic!("missing parameter `{name}`"))
        .data
}

/// Runs the graph forward on `feed` (batch size from the first input). In training mode the
/// loss terms are evaluated and batchnorm state in `params` is updated. Dropout is the
/// identity here (the deterministic semantics of `netc run --grads`); [`forward_dropping`]
/// draws its masks.
pub fn forward(g: &Graph, params: &mut Params, feed: &Feed, mode: Mode) -> Forward {
    forward_dropping(g, params, feed, mode, None)
}

/// [`forward`], where in training dropout and stochastic depth draw their masks from `rng`
/// when one is given, in node order.
pub fn forward_dropping(
    g: &Graph,
    params: &mut Params,
    feed: &Feed,
    mode: Mode,
    mut rng: Option<&mut rt::rng::Rng>,
) -> Forward {
    let batch = feed.batch();
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
        let out_len = batch * node.shape.iter().product::<usize>();
        let mut out = FwdOut {
            y: vec![0.0f32; out_len],
            saved: Saved::default(),
            state: Vec::new(),
            rng: rng.as_deref_mut(),
        };
        match &node.op {
            Op::Input(InputKind::Tensor) => out.y.copy_from_slice(&feed.tensors[&node.path].data),
            Op::Input(InputKind::Class(_)) => {}
            op => {
                let ins = g.inputs_of(n);
                let cx = Fwd {
                    batch,
                    mode,
                    path: &node.path,
                    xs: ins.iter().map(|i| &f.values[i][..]).collect(),
                    shapes: ins.iter().map(|&i| &g.node(i).shape).collect(),
                    y_shape: &node.shape,
                    params,
                    drop: mode == Mode::Train && out.rng.is_some(),
                };
                op.kind().forward(&cx, &mut out);
                // An activation fused into the layer by the `epilogue` pass.
                if let Some(f) = op.fused() {
                    f.forward_inplace(&mut out.y);
                }
            }
        }
        for (suffix, v) in out.state {
            params
                .get_mut(&format!("{}.{suffix}", node.path))
                .expect("state tensors exist")
                .data = v;
        }
        f.values.insert(n, out.y);
        f.saved.insert(n, out.saved);
    }
    if mode == Mode::Train {
        for term in &g.losses {
            let [a, b] = term.inputs;
            let (l, da, db) = loss_term(g, term, &f.values[&a], &f.values[&b], feed);
            if let Some(db) = db {
                seed(&mut f.seeds, b, db);
            }
            f.loss += term.weight as f32 * l;
            seed(&mut f.seeds, a, da);
        }
    }
    f
}

/// One loss term on its inputs' values `va` and `vb`: the unweighted loss, the gradient of
/// the weighted term with respect to `va`, and with respect to `vb` unless `vb` is a label.
pub(crate) fn loss_term(
    g: &Graph,
    term: &crate::graph::LossTerm,
    va: &[f32],
    vb: &[f32],
    feed: &Feed,
) -> (f32, Vec<f32>, Option<Vec<f32>>) {
    let w = term.weight as f32;
    let (mut da, mut db) = (vec![0.0; va.len()], vec![0.0; vb.len()]);
    let [a, b] = term.inputs;
    let l = match term.kind {
        LossKind::Ce => {
            let labels = &feed.labels[&g.node(b).path];
            let classes = g.node(a).shape[0];
            let s = term.smoothing as f32;
            let l = rt::loss::softmax_ce_smooth(classes, va, labels, s, w, &mut da);
            return (l, da, None);
        }
        LossKind::Mse => rt::loss::mse(va, vb, w, Some(&mut da), Some(&mut db)),
        LossKind::L1 => rt::loss::l1(va, vb, w, Some(&mut da), Some(&mut db)),
        LossKind::Bce => rt::loss::bce_logits(va, vb, w, Some(&mut da), Some(&mut db)),
    };
    (l, da, Some(db))
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
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let ins = g.inputs_of(n);
        // An activation fused into the layer: its gradient first, on the layer's own output.
        if let Some(act) = node.op.fused() {
            act.backward_inplace(&f.values[&n], &mut dy);
        }
        let cx = Bwd {
            batch,
            path: &node.path,
            xs: ins.iter().map(|i| &f.values[i][..]).collect(),
            shapes: ins.iter().map(|&i| &g.node(i).shape).collect(),
            y: &f.values[&n],
            y_shape: &node.shape,
            dy: &dy,
            params,
            saved: &f.saved[&n],
            wants: ins
                .iter()
                .map(|&i| !matches!(g.node(i).op, Op::Input(_)))
                .collect(),
        };
        let mut o = BwdOut::default();
        node.op.kind().backward(&cx, &mut o);
        for (suffix, grad) in o.grads {
            let name = format!("{}.{suffix}", node.path);
            let shape = params[&name].shape.clone();
            out.insert(name, Tensor { shape, data: grad });
        }
        for (i, dx) in o.dxs.into_iter().enumerate() {
            if let Some(dx) = dx.filter(|_| cx.wants[i]) {
                seed(&mut grads, ins[i], dx);
            }
        }
    }
    out
}

/// `((7919 i + 31 (i² mod 65521) + 104729 phase) mod 2001 − 1000) / 1000`: exact integers
/// and one division, so that another language (the scripts that make test fixtures) gets
/// the same values bit for bit; values in [−1, 1] of no low rank along any axis (a sine
/// linear in `i` would make every weight tensor rank 2).
pub fn formula(n: usize, phase: u64) -> impl Iterator<Item = f64> {
    (0..n as u64).map(move |i| {
        let k = (7919 * i + 31 * ((i * i) % 65521) + 104729 * phase) % 2001;
        (k as f64 - 1000.0) / 1000.0
    })
}

/// Parameters for tests that compare two implementations on one network: drawn weights
/// `f · sqrt(6 / fan_in)` (He's bound, so that activations keep their scale through deep
/// networks), running variances `1 + f/2`, every other tensor its initial constant `+ f/5`
/// (so that no bias, γ or running mean is the trivial one), `f` the [`formula`] with the
/// tensor's position as its phase.
pub fn formula_params(g: &Graph) -> Params {
    param_decls(g)
        .into_iter()
        .enumerate()
        .map(|(phase, (name, d))| {
            let n = d.shape.iter().product();
            let data = formula(n, phase as u64)
                .map(|f| match d.init {
                    Init::Random => {
                        let fan_in: usize = d.shape[1..].iter().product();
                        (f * (6.0 / fan_in as f64).sqrt()) as f32
                    }
                    Init::Const(_) if d.suffix == "running_var" => (f * 0.5 + 1.0) as f32,
                    Init::Const(c) => (f * 0.2 + c as f64) as f32,
                })
                .collect();
            (
                name,
                Tensor {
                    shape: d.shape,
                    data,
                },
            )
        })
        .collect()
}

/// `batch` samples of every tensor input, by the [`formula`] with phase 9999 + the input's
/// position.
pub fn formula_feed(g: &Graph, batch: usize) -> Feed {
    let mut feed = Feed::default();
    for (pos, (name, n)) in g.inputs.iter().enumerate() {
        let node = g.node(*n);
        if !matches!(node.op, Op::Input(InputKind::Tensor)) {
            continue;
        }
        let mut shape = vec![batch];
        shape.extend(&node.shape);
        let data = formula(shape.iter().product(), 9999 + pos as u64)
            .map(|v| v as f32)
            .collect();
        feed.tensors.insert(name.clone(), Tensor { shape, data });
    }
    feed
}
