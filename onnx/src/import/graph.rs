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
        "Reshape" if all.len() == 2 => {
            let c = all.first()?;
            // A known target gives the dimensions (PyTorch's pads arithmetic reshapes a
            // vector to [-1, 2] and slices its rows); the data stay in order.
            let dims = all[1]
                .ints()
                .and_then(|t| reshaped(&c.dims, c.data.len(), &t))
                .unwrap_or_else(|| vec![c.data.len()]);
            Some(Ok(Const {
                dims,
                ..(*c).clone()
            }))
        }
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
        "ConstantOfShape" => {
            let shape = all.first()?.ints()?;
            let dims: Vec<usize> = shape
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect::<Option<_>>()?;
            let len = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&l| l <= 4096)?;
            let v = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => match tensor(t).ok()?.scalar() {
                    Some(v) => v,
                    None => return err("ConstantOfShape whose value is not one number"),
                },
                None => 0.0,
            };
            Some(Ok(Const::new(dims, vec![v; len])))
        }
        "Transpose" => {
            let c = all.first()?;
            if !c.batch.is_empty() || c.data.len() > 4096 {
                return None;
            }
            let rank = c.dims.len();
            let perm: Vec<usize> = match ints_attr(n, "perm") {
                Some(p) => p
                    .iter()
                    .map(|&a| usize::try_from(a).ok().filter(|&a| a < rank))
                    .collect::<Option<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..rank).collect::<Vec<_>>() {
                return err("Transpose with a `perm` that is not a permutation of the axes");
            }
            let dims: Vec<usize> = perm.iter().map(|&a| c.dims[a]).collect();
            let strides = strides(&c.dims);
            let data = (0..c.data.len())
                .map(|i| {
                    let at: usize = index(i, &dims)
                        .iter()
                        .zip(&perm)
                        .map(|(&k, &a)| k * strides[a])
                        .sum();
                    c.data[at]
                })
                .collect();
            Some(Ok(Const::new(dims, data)))
        }
        "Slice" => {
            let c = all.first()?;
            if !c.batch.is_empty() || c.data.len() > 4096 || c.dims.is_empty() {
                return None;
            }
            let rank = c.dims.len() as i64;
            // PyTorch writes "to the end" as ±(2^63 - 1), which f64 holds only roughly:
            // the bounds saturate, as ONNX clamps them anyway.
            let bound = |c: &Const| -> Option<Vec<i64>> {
                (c.batch.is_empty() && c.data.iter().all(|v| v.fract() == 0.0))
                    .then(|| c.data.iter().map(|&v| v as i64).collect())
            };
            let starts = bound(all.get(1)?)?;
            let ends = bound(all.get(2)?)?;
            let axes = match all.get(3) {
                Some(a) => a.ints()?,
                None => (0..starts.len() as i64).collect(),
            };
            let steps = match all.get(4) {
                Some(s) => s.ints()?,
                None => vec![1; starts.len()],
            };
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return err("Slice with starts, ends, axes and steps of different lengths");
            }
            // Per axis: the indices kept, in order (ONNX's clamping rules).
            let mut keep: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
            for k in 0..starts.len() {
                let a = if axes[k] < 0 { axes[k] + rank } else { axes[k] };
                let (Ok(a), step) = (usize::try_from(a), steps[k]) else {
                    return err("Slice on an axis the constant does not have");
                };
                if a >= c.dims.len() || step == 0 {
                    return err("Slice on an axis the constant does not have, or by step 0");
                }
                let d = c.dims[a] as i64;
                let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (s, e) = (norm(starts[k]), norm(ends[k]));
                let mut idx = Vec::new();
                if step > 0 {
                    let (mut i, e) = (s.clamp(0, d), e.clamp(0, d));
                    while i < e {
                        idx.push(i as usize);
                        i += step;
                    }
                } else {
                    let (mut i, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
                    while i > e {
                        idx.push(i as usize);
                        i += step;
                    }
                }
                keep[a] = idx;
            }
            let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
            let strides = strides(&c.dims);
            let len: usize = dims.iter().product();
            let data = (0..len)
                .map(|i| {
                    let at: usize = index(i, &dims)
                        .iter()
                        .enumerate()
                        .map(|(a, &k)| keep[a][k] * strides[a])
                        .sum();
                    c.data[at]
                })
                .collect();
            Some(Ok(Const::new(dims, data)))
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

/// The dimensions a Reshape to `target` gives `len` values of dimensions `dims` (ONNX's
/// `0` copies, one `-1` is inferred); `None` when they do not fit.
fn reshaped(dims: &[usize], len: usize, target: &[i64]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => out.push(*dims.get(i)?),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            t => out.push(usize::try_from(t).ok()?),
        }
    }
    let known = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if let Some(i) = infer {
        if known == 0 || !len.is_multiple_of(known) {
            return None;
        }
        out[i] = len / known;
    }
    (out.iter().product::<usize>() == len).then_some(out)
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for a in (0..dims.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * dims[a + 1];
    }
    s
}

/// The multi-index of flat position `i` in `dims`.
fn index(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut at = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        if dims[a] > 0 {
            at[a] = i % dims[a];
            i /= dims[a];
        }
    }
    at
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
