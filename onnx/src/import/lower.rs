//! From ONNX nodes to the language's layers: a walk over the nodes in their (topological)
//! order that folds constants, maps each node, or a known pattern of nodes, to one layer
//! with its arguments, weights and output shape, and refuses the rest by node and op.

use std::collections::HashMap;

use crate::proto::NodeProto;

use super::graph::{constant_node, fold, shape_of, Const, Model};
use super::{act, channels_last, names, norms, ops, pools, tensor_ops, ImportError};

/// An argument of a layer, as the text will show it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    /// `[h, w]`; printed as one integer when both are equal.
    Pair(i64, i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
}

/// A weight of a layer: its suffix (`weight`, `running_mean`), PyTorch dims and values.
pub(crate) type Param = (&'static str, Vec<usize>, Vec<f32>);

/// One layer of the imported network.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    /// The language's op.
    pub op: &'static str,
    /// Named arguments that differ from the op's defaults, in the op's order.
    pub args: Vec<(&'static str, Arg)>,
    /// Value ids: the piped input first.
    pub inputs: Vec<usize>,
    pub output: usize,
    pub params: Vec<Param>,
    /// The module path (PyTorch's, from the weights' names or the node's name).
    pub path: Vec<String>,
    /// The node (the first of a pattern), for messages.
    pub node: String,
}

/// The layers and values of a graph.
#[derive(Debug, Default)]
pub(crate) struct Lowered {
    pub layers: Vec<Layer>,
    /// Per-sample shape of every value id.
    pub shapes: Vec<Vec<usize>>,
    /// Graph inputs: name, value id.
    pub inputs: Vec<(String, usize)>,
    /// Graph outputs: name, value id.
    pub outputs: Vec<(String, usize)>,
    /// What the reader should know about the lowering (weights reshaped from PyTorch's).
    pub notes: Vec<String>,
}

/// What a tensor name stands for.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// A value id (a graph input or a layer's output).
    T(usize),
    C(Const),
    /// Channel shuffle half done: `x` reshaped to [N, g, C/g, H, W] by node `node`, and
    /// transposed to [N, C/g, g, H, W] when `transposed`.
    Shuffle {
        x: usize,
        g: i64,
        transposed: bool,
        node: String,
    },
    /// Image value `x` (NCHW) read channels-last: the output of Transpose [0, 2, 3, 1] node
    /// `node`, or of a per-position op inside the region it starts (see [`channels_last`]).
    ///
    /// [`channels_last`]: super::channels_last
    Last {
        x: usize,
        node: String,
    },
}

/// The walk's state.
pub(crate) struct Cx<'m> {
    pub nodes: &'m [NodeProto],
    pub vals: HashMap<String, Val>,
    consumers: HashMap<String, Vec<usize>>,
    /// Tensor name → the node that writes it.
    producers: HashMap<String, usize>,
    graph_outputs: Vec<String>,
    /// Nodes a pattern has taken (mapped with an earlier node).
    pub taken: Vec<bool>,
    /// While a per-position op inside a channels-last region is mapped: the region's first
    /// node. Then [`Cx::tensor`] reads channels-last values (and only those) and
    /// [`Cx::layer`] writes its output channels-last, so that the activations' mappers serve
    /// both layouts.
    pub last: Option<String>,
    pub out: Lowered,
    /// The layers whose weight has another shape than PyTorch's: path, and why.
    pub reshaped: Vec<(String, channels_last::Reshaped)>,
    /// Bare parameters made the weight of a `scale` layer of their name.
    pub renamed: Vec<String>,
    /// Notes of the lowering, made from `reshaped` and `renamed` at the end.
    pub notes: Vec<String>,
}

impl<'m> Cx<'m> {
    /// The value id of input `i` of `n`, which must be a tensor (not a constant).
    pub fn tensor(&self, n: &NodeProto, i: usize) -> Result<usize, ImportError> {
        let name = n.input.get(i).map(String::as_str).unwrap_or("");
        match (self.vals.get(name), &self.last) {
            (Some(Val::T(v)), None) | (Some(Val::Last { x: v, .. }), Some(_)) => Ok(*v),
            (Some(Val::T(_)), Some(start)) => Err(ImportError::node(
                n,
                &format!("input {i} (`{name}`) is NCHW, and another is channels-last (after node `{start}`); netc combines tensors of one layout"),
            )),
            (Some(Val::Last { node, .. }), None) => Err(ImportError::node(
                n,
                &format!("reads `{name}`, a channels-last tensor (after node `{node}`); {}", super::channels_last::RULE),
            )),
            (Some(Val::C(_)), _) => Err(ImportError::node(
                n,
                &format!("input {i} (`{name}`) is a constant where netc needs a computed tensor"),
            )),
            (Some(Val::Shuffle { node, .. }), _) => Err(ImportError::node(
                n,
                &format!("reads `{name}`, the 5-D reshape of node `{node}`, which is not channel shuffle's (Reshape [N, g, C/g, H, W], Transpose [0, 2, 1, 3, 4], Reshape [N, C, H, W])"),
            )),
            (None, _) if name.is_empty() => Err(ImportError::node(n, &format!("input {i} is missing"))),
            (None, _) => Err(ImportError::node(
                n,
                &format!("input `{name}` is not produced by any node, initializer or graph input"),
            )),
        }
    }

    /// Input `i` of `n` as a constant; `None` when the node does not have that input.
    pub fn konst(&self, n: &NodeProto, i: usize) -> Result<Option<&Const>, ImportError> {
        let name = match n.input.get(i) {
            Some(s) if !s.is_empty() => s.as_str(),
            _ => return Ok(None),
        };
        match self.vals.get(name) {
            Some(Val::C(c)) => Ok(Some(c)),
            Some(Val::T(_)) | Some(Val::Shuffle { .. }) | Some(Val::Last { .. }) => Err(ImportError::node(
                n,
                &format!("input {i} (`{name}`) is computed from the input; netc needs a constant there (an initializer or a Constant)"),
            )),
            None => Err(ImportError::node(
                n,
                &format!("input `{name}` is not produced by any node, initializer or graph input (a missing initializer?)"),
            )),
        }
    }

    /// Input `i` as a constant that must be there.
    pub fn need(&self, n: &NodeProto, i: usize, what: &str) -> Result<&Const, ImportError> {
        self.konst(n, i)?
            .ok_or_else(|| ImportError::node(n, &format!("{what} (input {i}) is missing")))
    }

    /// Whether input `i` of `n` is a constant.
    pub fn is_const(&self, n: &NodeProto, i: usize) -> bool {
        matches!(
            n.input.get(i).and_then(|s| self.vals.get(s)),
            Some(Val::C(_))
        )
    }

    pub fn shape(&self, v: usize) -> &[usize] {
        &self.out.shapes[v]
    }

    /// The node that alone reads tensor `name` (not a graph output), and its index.
    pub fn sole_consumer(&self, name: &str) -> Option<(usize, &'m NodeProto)> {
        if self.graph_outputs.iter().any(|o| o == name) {
            return None;
        }
        match self.consumers.get(name).map(Vec::as_slice) {
            Some([i]) if !self.taken[*i] => Some((*i, &self.nodes[*i])),
            _ => None,
        }
    }

    /// The node that alone reads `name`, when it is a `op`.
    pub fn next(&self, name: &str, op: &str) -> Option<(usize, &'m NodeProto)> {
        self.sole_consumer(name).filter(|(_, n)| n.op_type() == op)
    }

    /// The constant tensor `name` holds, folding now the shape arithmetic that computes it:
    /// a pattern reads constants (a Reshape's target, a Pad's amounts) whose nodes come
    /// later in the graph than the pattern's first node. `None`: not a constant, or not one
    /// that folds (then the pattern does not apply).
    pub fn eval(&self, name: &str) -> Option<Const> {
        // Shape arithmetic is a few dozen nodes; the budget bounds a hostile graph's DAG.
        let mut budget = 4096;
        self.eval_in(name, &mut budget)
    }

    fn eval_in(&self, name: &str, budget: &mut usize) -> Option<Const> {
        match self.vals.get(name) {
            Some(Val::C(c)) => return Some(c.clone()),
            Some(_) => return None,
            None => {}
        }
        *budget = budget.checked_sub(1)?;
        let n = &self.nodes[*self.producers.get(name)?];
        if n.op_type() == "Shape" {
            return match self.vals.get(n.input.first()?) {
                Some(Val::T(v)) => Some(shape_of(self.shape(*v))),
                _ => None,
            };
        }
        if n.output.first().map(String::as_str) != Some(name) {
            return None;
        }
        let mut ins = Vec::new();
        for i in &n.input {
            ins.push(self.eval_in(i, budget)?);
        }
        let refs: Vec<Option<&Const>> = ins.iter().map(Some).collect();
        fold(n, &refs)?.ok()
    }

    /// A new value of `shape`.
    pub fn value(&mut self, shape: Vec<usize>) -> usize {
        self.out.shapes.push(shape);
        self.out.shapes.len() - 1
    }

    /// Adds a layer made from node `n` whose output is the tensor `out_name`.
    #[allow(clippy::too_many_arguments)]
    pub fn layer(
        &mut self,
        n: &NodeProto,
        out_name: &str,
        op: &'static str,
        args: Vec<(&'static str, Arg)>,
        inputs: Vec<usize>,
        shape: Vec<usize>,
        params: Vec<Param>,
        weight_name: Option<&str>,
    ) -> usize {
        let v = self.value(shape);
        let path = weight_name
            .and_then(names::param_module)
            .unwrap_or_else(|| names::node_path(n));
        self.out.layers.push(Layer {
            op,
            args,
            inputs,
            output: v,
            params,
            path,
            node: n.name().to_string(),
        });
        let val = match &self.last {
            None => Val::T(v),
            Some(node) => Val::Last {
                x: v,
                node: node.clone(),
            },
        };
        self.vals.insert(out_name.to_string(), val);
        v
    }

    /// The value id tensor `name` holds in the current layout (see [`Cx::last`]).
    pub fn tensor_named(&self, name: &str) -> Option<usize> {
        match (self.vals.get(name), &self.last) {
            (Some(Val::T(v)), None) | (Some(Val::Last { x: v, .. }), Some(_)) => Some(*v),
            _ => None,
        }
    }

    /// Marks node `i` as mapped by a pattern.
    pub fn take(&mut self, i: usize) {
        self.taken[i] = true;
    }
}

/// Maps every node of `m`.
pub(crate) fn lower(m: &Model) -> Result<Lowered, ImportError> {
    let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
    let mut producers: HashMap<String, usize> = HashMap::new();
    for (i, n) in m.nodes.iter().enumerate() {
        for input in &n.input {
            consumers.entry(input.clone()).or_default().push(i);
        }
        for o in &n.output {
            producers.entry(o.clone()).or_insert(i);
        }
    }
    let mut cx = Cx {
        nodes: &m.nodes,
        vals: m
            .consts
            .iter()
            .map(|(k, c)| (k.clone(), Val::C(c.clone())))
            .collect(),
        consumers,
        producers,
        graph_outputs: m.outputs.clone(),
        taken: vec![false; m.nodes.len()],
        last: None,
        out: Lowered::default(),
        reshaped: Vec::new(),
        renamed: Vec::new(),
        notes: Vec::new(),
    };
    for (name, shape) in &m.inputs {
        let v = cx.value(shape.clone());
        cx.vals.insert(name.clone(), Val::T(v));
        cx.out.inputs.push((name.clone(), v));
    }
    // Constants first: a pattern looks ahead at nodes whose constants come later.
    for n in &m.nodes {
        if n.op_type() == "Constant" {
            let c = constant_node(n)?;
            bind_const(&mut cx, n, c);
        }
    }
    for (i, n) in m.nodes.iter().enumerate() {
        if cx.taken[i] || n.op_type() == "Constant" {
            continue;
        }
        if n.domain
            .as_deref()
            .is_some_and(|d| !d.is_empty() && d != "ai.onnx")
        {
            return Err(ImportError::node(
                n,
                &format!(
                    "op `{}` of domain `{}` is not an ONNX op netc knows",
                    n.op_type(),
                    n.domain()
                ),
            ));
        }
        if n.op_type() == "Shape" {
            let v = cx.tensor(n, 0)?;
            let c = shape_of(cx.shape(v));
            bind_const(&mut cx, n, c);
            continue;
        }
        let ins: Vec<Option<&Const>> = n
            .input
            .iter()
            .map(|s| match cx.vals.get(s) {
                Some(Val::C(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !ins.is_empty() && ins.iter().all(Option::is_some) {
            if let Some(c) = fold(n, &ins) {
                let c = c?;
                bind_const(&mut cx, n, c);
                continue;
            }
            return Err(ImportError::node(
                n,
                &format!(
                    "op `{}` on constants only, which netc does not evaluate",
                    n.op_type()
                ),
            ));
        }
        map(&mut cx, i, n)?;
    }
    for name in &m.outputs {
        match cx.vals.get(name) {
            Some(Val::T(v)) => cx.out.outputs.push((name.clone(), *v)),
            Some(Val::C(_)) | Some(Val::Shuffle { .. }) => {
                return Err(ImportError::new(format!(
                    "graph output `{name}` is a constant, not computed from the input"
                )))
            }
            Some(Val::Last { node, .. }) => {
                return Err(ImportError::new(format!(
                    "graph output `{name}` is channels-last (after node `{node}`), with no Transpose [0, 3, 1, 2] back; netc's tensors are NCHW"
                )))
            }
            None => {
                return Err(ImportError::new(format!(
                    "graph output `{name}` is not produced by any node"
                )))
            }
        }
    }
    channels_last::note(&mut cx);
    cx.out.notes = cx.notes;
    Ok(cx.out)
}

fn bind_const(cx: &mut Cx, n: &NodeProto, c: Const) {
    if let Some(o) = n.output.first() {
        cx.vals.insert(o.clone(), Val::C(c));
    }
}

/// Maps one node (and the nodes of a pattern it starts) to a layer, or refuses it.
fn map(cx: &mut Cx, i: usize, n: &NodeProto) -> Result<(), ImportError> {
    let Some(out) = n.output.first().filter(|o| !o.is_empty()) else {
        return Err(ImportError::node(n, "the node has no output"));
    };
    let out = out.clone();
    if let Some(start) = channels_last::reads_last(cx, n) {
        return channels_last::map(cx, i, n, &out, start);
    }
    match n.op_type() {
        "Identity" => {
            let v = cx.tensor(n, 0)?;
            cx.vals.insert(out, Val::T(v));
            Ok(())
        }
        "Conv" => ops::conv(cx, n, &out),
        "ConvTranspose" => ops::conv_t(cx, n, &out),
        "MaxPool" | "AveragePool" => pools::pool(cx, n, &out),
        "Pad" => pools::pad_avgpool(cx, n, &out),
        "GlobalAveragePool" => ops::global_avgpool(cx, n, &out),
        "BatchNormalization" => ops::batchnorm(cx, n, &out),
        "LRN" => ops::lrn(cx, n, &out),
        "Gemm" => ops::gemm(cx, n, &out),
        "MatMul" => ops::matmul(cx, i, n, &out),
        "Dropout" => ops::dropout(cx, n, &out),
        "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Clip" | "HardSwish" | "HardSigmoid"
        | "Mish" | "Gelu" | "Elu" | "Softplus" | "Div" | "Erf" => act::act(cx, i, n, &out),
        "Reshape" if norms::groupnorm(cx, n, &out)? || pools::adaptive(cx, n, &out)? => Ok(()),
        "Flatten" | "Reshape" => tensor_ops::reshape(cx, i, n, &out),
        "Concat" => tensor_ops::concat(cx, n, &out),
        "Add" | "Sum" => tensor_ops::add(cx, n, &out),
        "Mul" if norms::lrn(cx, n, &out)? || act::gelu_tanh(cx, n, &out)? => Ok(()),
        "Mul" => tensor_ops::mul(cx, n, &out),
        "Softmax" => tensor_ops::softmax(cx, n, &out),
        "Resize" | "Upsample" => tensor_ops::resize(cx, n, &out),
        "Slice" => tensor_ops::slice(cx, n, &out),
        "Split" => tensor_ops::split(cx, n),
        "ReduceMean" => tensor_ops::reduce_mean(cx, n, &out),
        "Transpose" if norms::layernorm2d(cx, n, &out)? || channels_last::start(cx, n, &out) => {
            Ok(())
        }
        "Transpose" => tensor_ops::transpose(cx, n, &out),
        op => Err(ImportError::node(
            n,
            &format!("op `{op}` has no counterpart in netc's language"),
        )),
    }
}
