//! ONNX export: a network's inference graph (after `prune`, before any fusion, so that each
//! layer is still the op its user wrote) as an ONNX model of the default domain at opset 17.
//! The driver names values and wires layers together; each op writes its own nodes through
//! [`OnnxCx`] (`OpKind::onnx`, in the op's file), as one ONNX op where ONNX has it and as its
//! standard decomposition where it does not.
//!
//! Names are kept so that the model reads like the network: a layer's value and its (first)
//! node are named by its path, its parameters by their PyTorch names (`PATH.weight`), the
//! graph's inputs and outputs by the network's. The batch is the dimension named `N`.

use std::collections::{BTreeSet, HashMap};

use netc_onnx::build::{self as onnx, Dim};
use netc_onnx::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

use crate::graph::{Graph, Shape};
use crate::interp::Params;
use crate::ops::{Op, OpError};

/// What one layer's export sees and writes.
pub struct OnnxCx<'a> {
    /// The layer's path (its parameters are `PATH.suffix`).
    pub path: &'a str,
    /// The value names of its inputs, and their per-sample shapes (no batch dimension).
    pub ins: Vec<String>,
    pub shapes: Vec<&'a Shape>,
    /// The value name its last node must write, and its per-sample shape.
    pub y: String,
    pub y_shape: &'a Shape,
    params: &'a Params,
    out: &'a mut Builder,
    /// Set by [`OnnxCx::alias`]: the layer is the identity and wrote nothing.
    alias: Option<String>,
    nodes: usize,
}

/// The nodes and initializers written so far.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: BTreeSet<String>,
}

impl<'a> OnnxCx<'a> {
    /// The layer's parameter `PATH.suffix` as an initializer of its own shape; its name.
    pub fn param(&mut self, suffix: &str) -> String {
        let name = format!("{}.{suffix}", self.path);
        let t = self.tensor(&name);
        self.initializer(&name, &t.shape, &t.data)
    }

    /// The parameter `PATH.suffix` reshaped to `dims` (a per-channel `[C]` as `[C, 1, 1]`,
    /// to broadcast over a plane), under the name `PATH.suffix` when it is stored once so, or
    /// `PATH/suffix` beside the plain one.
    pub fn param_as(&mut self, suffix: &str, dims: &[usize]) -> String {
        let name = format!("{}.{suffix}", self.path);
        let t = self.tensor(&name);
        assert_eq!(dims.iter().product::<usize>(), t.data.len(), "{name}");
        if self.out.names.contains(&name) {
            let alt = format!("{}/{suffix}", self.path);
            return self.initializer(&alt, dims, &t.data);
        }
        self.initializer(&name, dims, &t.data)
    }

    /// The parameter `name`, borrowed from the caller's (not copied: a ResNet-152 is 240 MB).
    fn tensor(&self, name: &str) -> &'a crate::interp::Tensor {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("export: no parameter `{name}` (checked by the caller)"))
    }

    fn initializer(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        if self.out.names.insert(name.to_string()) {
            self.out
                .initializers
                .push(onnx::tensor_f32(name, dims, data));
        }
        name.to_string()
    }

    /// A float constant of the layer, named `PATH/label`.
    pub fn f32s(&mut self, label: &str, dims: &[usize], data: &[f32]) -> String {
        let name = format!("{}/{label}", self.path);
        self.initializer(&name, dims, data)
    }

    /// An int64 constant (a shape, axes, bounds), named `PATH/label`.
    pub fn i64s(&mut self, label: &str, data: &[i64]) -> String {
        let name = format!("{}/{label}", self.path);
        if self.out.names.insert(name.clone()) {
            self.out
                .initializers
                .push(onnx::tensor_i64(&name, &[data.len()], data));
        }
        name
    }

    /// The name of an intermediate value of the layer: `PATH/label`.
    pub fn tmp(&self, label: &str) -> String {
        format!("{}/{label}", self.path)
    }

    /// Appends a node. The first node of a layer is named by its path, the others by
    /// `PATH/OP` (numbered when an op repeats).
    pub fn node<I: AsRef<str>, O: AsRef<str>>(
        &mut self,
        op: &str,
        inputs: &[I],
        outputs: &[O],
        attrs: Vec<AttributeProto>,
    ) {
        let name = if self.nodes == 0 {
            self.path.to_string()
        } else {
            format!("{}/{op}_{}", self.path, self.nodes)
        };
        self.nodes += 1;
        self.out
            .nodes
            .push(onnx::node(op, &name, inputs, outputs, attrs));
    }

    /// The layer is the identity at inference (dropout): its value is its input's.
    pub fn alias(&mut self) {
        self.alias = Some(self.ins[0].clone());
    }

    /// Its one input and output names, for a layer of one node.
    pub fn io(&self) -> (String, String) {
        (self.ins[0].clone(), self.y.clone())
    }
}

/// Why a network cannot be exported.
#[derive(Debug, PartialEq)]
pub struct ExportError(pub String);

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The model of `g` (an inference graph: pruned, unfused) with parameters `params` (every
/// one `interp::param_shapes` lists, checked by the caller). `version` is netc's, recorded as
/// the producer's.
pub fn export(g: &Graph, params: &Params, version: &str) -> Result<ModelProto, ExportError> {
    for (name, shape) in crate::interp::param_shapes(g) {
        match params.get(&name) {
            Some(t) if t.shape == shape => {}
            Some(t) => {
                return Err(ExportError(format!(
                    "parameter `{name}` has shape {:?}, expected {shape:?}",
                    t.shape
                )))
            }
            None => return Err(ExportError(format!("parameter `{name}` is missing"))),
        }
    }
    let mut out = Builder::default();
    let mut value: HashMap<usize, String> = HashMap::new();
    let mut inputs = Vec::new();
    for (name, n) in &g.inputs {
        let node = g.node(*n);
        if !matches!(node.op, Op::Input(crate::ops::InputKind::Tensor)) {
            continue;
        }
        inputs.push(onnx::value_info(name, &dims(&node.shape)));
        value.insert(n.index(), name.clone());
    }
    for n in g.nodes() {
        let node = g.node(n);
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let preds = g.inputs_of(n);
        let ins: Vec<String> = preds
            .iter()
            .map(|p| value.get(&p.index()).cloned().expect("inputs come first"))
            .collect();
        let shapes: Vec<&Shape> = preds.iter().map(|&p| &g.node(p).shape).collect();
        let mut cx = OnnxCx {
            path: &node.path,
            ins,
            shapes,
            y: node.path.clone(),
            y_shape: &node.shape,
            params,
            out: &mut out,
            alias: None,
            nodes: 0,
        };
        node.op.kind().onnx(&mut cx).map_err(|e: OpError| {
            ExportError(format!(
                "layer `{}` ({}) cannot be exported to ONNX: {}",
                node.path,
                node.op.name(),
                e.message
            ))
        })?;
        let name = cx.alias.take().unwrap_or_else(|| node.path.clone());
        value.insert(n.index(), name);
    }
    let mut outputs = Vec::new();
    for (name, n) in &g.outputs {
        let v = value[&n.index()].clone();
        if &v != name {
            // The graph's output under the network's name (a layer's path need not be it).
            out.nodes.push(onnx::node(
                "Identity",
                &format!("output {name}"),
                &[&v],
                &[name],
                vec![],
            ));
        }
        outputs.push(onnx::value_info(name, &dims(&g.node(*n).shape)));
    }
    let graph = GraphProto {
        name: Some(g.name.clone()),
        node: out.nodes,
        initializer: out.initializers,
        input: inputs,
        output: outputs,
        ..Default::default()
    };
    Ok(onnx::model(graph, version))
}

/// The encoded model of network `g` (as checked: its training graph) with `params`: its
/// inference graph (after `prune`: no losses, no auxiliary heads, nothing fused) exported
/// and encoded. The same network and parameters give the same bytes.
pub fn model_bytes(g: &Graph, params: &Params, version: &str) -> Result<Vec<u8>, ExportError> {
    use netc_onnx::Message;
    let pruned = match crate::passes::after(g, "prune") {
        Some(Ok(p)) => p,
        Some(Err(d)) => return Err(ExportError(format!("internal error: {}", d.message))),
        None => return Err(ExportError("internal error: no pass `prune`".into())),
    };
    if pruned.outputs.is_empty() {
        return Err(ExportError(format!(
            "network `{}` has no `output`, so its ONNX model would compute nothing\n  help: mark what the model returns with `output NAME;`",
            g.name
        )));
    }
    let model = export(&pruned, params, version)?;
    // Protobuf messages end at 2 GiB; ONNX's way past it (tensors in files beside the model)
    // is not written here.
    let len = model.encoded_len();
    if len > i32::MAX as usize {
        return Err(ExportError(format!(
            "network `{}` would make an ONNX file of {len} bytes, past protobuf's 2 GiB limit (netc does not write ONNX's external-data form)",
            g.name
        )));
    }
    Ok(model.encode_to_vec())
}

/// A value's dimensions with the batch first.
fn dims(shape: &Shape) -> Vec<Dim> {
    std::iter::once(Dim::Named("N".into()))
        .chain(shape.iter().map(|&d| Dim::Fixed(d)))
        .collect()
}

/// A `Conv` or `ConvTranspose` node of the layer: its input, `weight` and, with `bias`, its
/// bias; the window's attributes, and `extra` (a transposed conv's output padding, which
/// goes after `pads`).
pub(crate) fn conv_node(
    cx: &mut OnnxCx,
    op: &str,
    bias: bool,
    [k, s, p, dil]: [[usize; 2]; 4],
    groups: usize,
    extra: Vec<AttributeProto>,
) {
    let (x, y) = cx.io();
    let mut ins = vec![x, cx.param("weight")];
    if bias {
        ins.push(cx.param("bias"));
    }
    let mut attrs = vec![
        onnx::attr_ints("kernel_shape", &ints(k)),
        onnx::attr_ints("strides", &ints(s)),
        onnx::attr_ints("pads", &pads(p)),
        onnx::attr_ints("dilations", &ints(dil)),
        onnx::attr_int("group", groups as i64),
    ];
    // After the padding it adds to.
    attrs.splice(3..3, extra);
    cx.node(op, &ins, &[y], attrs);
}

/// ONNX's `pads` for symmetric padding `[ph, pw]`: begins, then ends.
pub(crate) fn pads(p: [usize; 2]) -> Vec<i64> {
    vec![p[0] as i64, p[1] as i64, p[0] as i64, p[1] as i64]
}

/// `[a, b]` as ONNX's integer list.
pub(crate) fn ints(p: [usize; 2]) -> Vec<i64> {
    vec![p[0] as i64, p[1] as i64]
}
