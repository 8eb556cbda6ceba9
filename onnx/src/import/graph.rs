//! Reading a model: its one graph input's per-sample shape, its outputs, and every constant
//! (initializers, `Constant` nodes, and the shape arithmetic PyTorch writes before a
//! `Reshape`, folded here) so that the op mappings see numbers, not subgraphs.

use std::collections::HashMap;

use crate::build::{attr, dims_of, int_attr, ints_attr, tensor_values, Dim};
use crate::proto::{ModelProto, NodeProto, TensorProto};

use super::ImportError;

/// A constant tensor. `batch` lists the elements that stand for the batch size, which is
/// not known when importing (`Shape` of a tensor gives one): a shape vector may hold it,
/// any arithmetic on it is refused.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
    pub batch: Vec<usize>,
}

impl Const {
    pub fn new(dims: Vec<usize>, data: Vec<f64>) -> Const {
        Const {
            dims,
            data,
            batch: Vec::new(),
        }
    }

    /// The values as integers (shape vectors, axes), when all are known whole numbers.
    pub fn ints(&self) -> Option<Vec<i64>> {
        if !self.batch.is_empty() {
            return None;
        }
        self.data
            .iter()
            .map(|&v| (v.fract() == 0.0 && v.abs() < 9e15).then_some(v as i64))
            .collect()
    }

    /// The one value of a scalar (or one-element tensor).
    pub fn scalar(&self) -> Option<f64> {
        (self.data.len() == 1 && self.batch.is_empty()).then(|| self.data[0])
    }
}

/// The parts of a model the importer reads.
pub(crate) struct Model {
    pub nodes: Vec<NodeProto>,
    pub consts: HashMap<String, Const>,
    /// The graph's inputs (those that are not initializers) and their per-sample shapes.
    pub inputs: Vec<(String, Vec<usize>)>,
    pub outputs: Vec<String>,
}

/// Decodes `bytes` and reads its graph; the errors say what is missing or malformed.
pub(crate) fn read(bytes: &[u8]) -> Result<Model, ImportError> {
    use prost::Message;
    let model = ModelProto::decode(bytes).map_err(|e| {
        ImportError::new(format!(
            "not an ONNX model (the protobuf does not decode: {e})"
        ))
    })?;
    let graph = model
        .graph
        .ok_or_else(|| ImportError::new("the model has no graph".into()))?;
    let mut consts = HashMap::new();
    for t in &graph.initializer {
        consts.insert(t.name().to_string(), tensor(t)?);
    }
    let mut inputs = Vec::new();
    for v in &graph.input {
        if consts.contains_key(v.name()) {
            continue;
        }
        let dims = dims_of(v).ok_or_else(|| {
            ImportError::new(format!(
                "graph input `{}` is not a tensor of known rank",
                v.name()
            ))
        })?;
        let hint = "help: export with a fixed input size (only the batch may be dynamic), or set the shape with onnx.tools.update_model_dims";
        if dims.len() < 2 {
            return Err(ImportError::new(format!(
                "graph input `{}` has {} dimensions; netc takes [N, C, H, W] or [N, F]\n  {hint}",
                v.name(),
                dims.len()
            )));
        }
        let mut shape = Vec::new();
        for (i, d) in dims.iter().enumerate().skip(1) {
            match d {
                Some(Dim::Fixed(n)) if *n > 0 => shape.push(*n),
                _ => {
                    return Err(ImportError::new(format!(
                        "graph input `{}`: dimension {i} is not a known size ({}); netc needs every dimension but the batch\n  {hint}",
                        v.name(),
                        match d {
                            Some(Dim::Named(s)) => format!("it is named `{s}`"),
                            _ => "it is unset".into(),
                        }
                    )))
                }
            }
        }
        if shape.len() != 1 && shape.len() != 3 {
            return Err(ImportError::new(format!(
                "graph input `{}` has shape [N, {}]; netc takes images [N, C, H, W] and feature vectors [N, F]",
                v.name(),
                shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        inputs.push((v.name().to_string(), shape));
    }
    if inputs.is_empty() {
        return Err(ImportError::new("the graph has no input".into()));
    }
    let outputs: Vec<String> = graph.output.iter().map(|v| v.name().to_string()).collect();
    if outputs.is_empty() {
        return Err(ImportError::new("the graph has no output".into()));
    }
    Ok(Model {
        nodes: graph.node,
        consts,
        inputs,
        outputs,
    })
}

/// An initializer or a `Constant`'s tensor, its element count checked before it is read.
pub(crate) fn tensor(t: &TensorProto) -> Result<Const, ImportError> {
    let mut n: u64 = 1;
    for &d in &t.dims {
        n = u64::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .filter(|&n| n <= 1 << 34)
            .ok_or_else(|| {
                ImportError::new(format!(
                    "tensor `{}` has dimensions {:?}, which netc does not read",
                    t.name(),
                    t.dims
                ))
            })?;
    }
    let (dims, data) = tensor_values(t).map_err(ImportError::new)?;
    Ok(Const::new(dims, data))
}

/// The value of a `Constant` node (its `value`, or one of the `value_*` forms).
pub(crate) fn constant_node(n: &NodeProto) -> Result<Const, ImportError> {
    if let Some(t) = attr(n, "value").and_then(|a| a.t.as_ref()) {
        return tensor(t);
    }
    if let Some(a) = attr(n, "value_float").and_then(|a| a.f) {
        return Ok(Const::new(vec![], vec![a as f64]));
    }
    if let Some(a) = attr(n, "value_int").and_then(|a| a.i) {
        return Ok(Const::new(vec![], vec![a as f64]));
    }
    if let Some(v) = attr(n, "value_floats") {
        return Ok(Const::new(
            vec![v.floats.len()],
            v.floats.iter().map(|&f| f as f64).collect(),
        ));
    }
    if let Some(v) = ints_attr(n, "value_ints") {
        return Ok(Const::new(
            vec![v.len()],
            v.iter().map(|&i| i as f64).collect(),
        ));
    }
    Err(ImportError::node(
        n,
        "a Constant without a tensor, float or int value",
    ))
}

/// Folds a node whose inputs are all constant, for the ops of shape arithmetic. `None`:
/// not one of them (the node is then mapped as a layer, or refused).
pub(crate) fn fold(n: &NodeProto, ins: &[Option<&Const>]) -> Option<Result<Const, ImportError>> {
    let all: Option<Vec<&Const>> = ins.iter().copied().collect();
    let all = all?;
    let err = |why: &str| Some(Err(ImportError::node(n, why)));
    match n.op_type() {
        "Identity" | "Cast" => all.first().map(|c| Ok((*c).clone())),
        "Unsqueeze" | "Squeeze" | "Flatten" | "Reshape" => {
            let c = all.first()?;
            // Only a vector's shape changes here (a scalar to [1] and back); the data stay.
            let len = c.data.len();
            Some(Ok(Const {
                dims: if n.op_type() == "Squeeze" && len == 1 {
                    vec![]
                } else {
                    vec![len]
                },
                ..(*c).clone()
            }))
        }
        "Concat" => {
            let mut out = Const::new(vec![], vec![]);
            for c in &all {
                if c.dims.len() > 1 {
                    return err("Concat of constants of more than one dimension");
                }
                let at = out.data.len();
                out.batch.extend(c.batch.iter().map(|b| b + at));
                out.data.extend(&c.data);
            }
            out.dims = vec![out.data.len()];
            Some(Ok(out))
        }
        "Gather" => {
            let (c, idx) = (all.first()?, all.get(1)?);
            if c.dims.len() > 1 || int_attr(n, "axis", 0) != 0 {
                return err("Gather of a constant other than a vector");
            }
            let idx = idx.ints()?;
            let mut out = Const::new(
                if idx.len() == 1 && all[1].dims.is_empty() {
                    vec![]
                } else {
                    vec![idx.len()]
                },
                vec![],
            );
            for (j, &i) in idx.iter().enumerate() {
                let i = if i < 0 { i + c.data.len() as i64 } else { i };
                let Some(v) = usize::try_from(i)
                    .ok()
                    .and_then(|i| c.data.get(i).map(|v| (i, *v)))
                else {
                    return err("Gather index out of range");
                };
                if c.batch.contains(&v.0) {
                    out.batch.push(j);
                }
                out.data.push(v.1);
            }
            Some(Ok(out))
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (a, b) = (all.first()?, all.get(1)?);
            if !a.batch.is_empty() || !b.batch.is_empty() {
                return err("arithmetic on the batch size");
            }
            let len = a.data.len().max(b.data.len());
            if !(a.data.len() == len || a.data.len() == 1)
                || !(b.data.len() == len || b.data.len() == 1)
            {
                // Not shape arithmetic: left to the layer mappings.
                return None;
            }
            if len > 64 {
                return None;
            }
            let at = |c: &Const, i: usize| {
                if c.data.len() == 1 {
                    c.data[0]
                } else {
                    c.data[i]
                }
            };
            let data = (0..len)
                .map(|i| {
                    let (x, y) = (at(a, i), at(b, i));
                    match n.op_type() {
                        "Add" => x + y,
                        "Sub" => x - y,
                        "Mul" => x * y,
                        // Shape arithmetic divides integers (PyTorch's `c // 2`).
                        _ => (x / y).trunc(),
                    }
                })
                .collect();
            let dims = if a.dims.len() >= b.dims.len() {
                a.dims.clone()
            } else {
                b.dims.clone()
            };
            Some(Ok(Const::new(dims, data)))
        }
        _ => None,
    }
}

/// `Shape` of a tensor of per-sample shape `shape`: the batch, then the shape.
pub(crate) fn shape_of(shape: &[usize]) -> Const {
    let mut data = vec![0.0];
    data.extend(shape.iter().map(|&d| d as f64));
    Const {
        dims: vec![data.len()],
        data,
        batch: vec![0],
    }
}
