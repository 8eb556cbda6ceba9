//! Channels-last regions: modules that permute an image to [N, H, W, C] and run layers over
//! the channels at each position (torchvision's ConvNeXt block: Permute, LayerNorm, Linear,
//! GELU, Linear, Permute back). The language computes in NCHW, and a per-position op does
//! not depend on which axis holds the channels, so the region is lowered on the NCHW tensor:
//! the Transpose [0, 2, 3, 1] that starts it and the Transpose [0, 3, 1, 2] that ends it are
//! no layer; a LayerNormalization over the last axis is `layernorm2d`; a MatMul by a constant
//! [C, C'] (and the Add of its constant [C'] bias) is `conv(C', k=1)`, its weight transposed
//! to [C', C, 1, 1]; a Mul by a constant [C] is `scale`; the pointwise activations (GELU's
//! op and its decompositions too) are themselves. Any other op on a channels-last tensor is
//! refused by name: its meaning would depend on the layout.
//!
//! A value of the region is a [`Val::Last`]. While one of its nodes is mapped, [`Cx::last`]
//! is set, so that the activations' mappers (which read with [`Cx::tensor`] and write with
//! [`Cx::layer`]) work unchanged on it.

use crate::build::{float_attr, int_attr, ints_attr};
use crate::proto::NodeProto;

use super::act::{self, close};
use super::graph::Const;
use super::lower::{Arg, Cx, Param, Val};
use super::{names, ops, tensor_ops, ImportError};

/// What a channels-last region may hold, for the errors.
pub(crate) const RULE: &str = "between a Transpose [0, 2, 3, 1] and the Transpose [0, 3, 1, 2] that ends the region, netc takes per-position ops only (LayerNormalization over the last axis, MatMul by a constant [C, C'] and the Add of its bias, pointwise activations, Mul by a constant [C], Add or Mul of two channels-last tensors)";

/// A weight given another shape than PyTorch's: the PyTorch module, and what it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reshaped {
    /// A Linear over the channels, now a 1×1 conv: [out, in] → [out, in, 1, 1].
    Linear,
    /// A factor per channel, now `scale`: [C] → [C, 1, 1].
    Scale,
}

fn first_out(n: &NodeProto) -> String {
    n.output.first().cloned().unwrap_or_default()
}

/// The region's first node when `n` reads a channels-last tensor.
pub(crate) fn reads_last(cx: &Cx, n: &NodeProto) -> Option<String> {
    n.input.iter().find_map(|s| match cx.vals.get(s) {
        Some(Val::Last { node, .. }) => Some(node.clone()),
        _ => None,
    })
}

/// A Transpose [0, 2, 3, 1] of an image starts a region: its output is the image, read
/// channels-last. `false`: not such a Transpose.
pub(crate) fn start(cx: &mut Cx, n: &NodeProto, out: &str) -> bool {
    let x = match n.input.first().and_then(|s| cx.vals.get(s)) {
        Some(Val::T(x)) if cx.shape(*x).len() == 3 => *x,
        _ => return false,
    };
    if ints_attr(n, "perm").as_deref() != Some(&[0, 2, 3, 1]) {
        return false;
    }
    let node = if n.name().is_empty() {
        "(unnamed)".to_string()
    } else {
        n.name().to_string()
    };
    cx.vals.insert(out.to_string(), Val::Last { x, node });
    true
}

/// Maps node `n`, which reads a tensor of the region that node `start` began.
pub(crate) fn map(
    cx: &mut Cx,
    i: usize,
    n: &NodeProto,
    out: &str,
    start: String,
) -> Result<(), ImportError> {
    cx.last = Some(start);
    let r = map_in(cx, i, n, out);
    cx.last = None;
    r
}

fn map_in(cx: &mut Cx, i: usize, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    match n.op_type() {
        "Transpose" => end(cx, n, out),
        "Identity" => {
            let x = cx.tensor(n, 0)?;
            let node = cx.last.clone().unwrap_or_default();
            cx.vals.insert(out.to_string(), Val::Last { x, node });
            Ok(())
        }
        "LayerNormalization" => layernorm(cx, n, out),
        "MatMul" => linear(cx, n, out),
        "Dropout" => ops::dropout(cx, n, out),
        "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Clip" | "HardSwish" | "HardSigmoid"
        | "Mish" | "Gelu" | "Elu" | "Softplus" | "Div" | "Erf" => act::act(cx, i, n, out),
        "Mul" if act::gelu_tanh(cx, n, out)? => Ok(()),
        "Mul" => mul(cx, n, out),
        "Add" | "Sum" => tensor_ops::add(cx, n, out),
        op => Err(ImportError::node(
            n,
            &format!("op `{op}` on a channels-last tensor; {RULE}"),
        )),
    }
}

/// The Transpose [0, 3, 1, 2] that ends the region: the NCHW tensor again, no layer.
fn end(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    // Without `perm`, Transpose reverses the axes.
    let perm = ints_attr(n, "perm").unwrap_or_else(|| vec![3, 2, 1, 0]);
    if perm != [0, 3, 1, 2] {
        return Err(ImportError::node(
            n,
            &format!("Transpose {perm:?} of a channels-last tensor; only [0, 3, 1, 2], back to NCHW, ends the region"),
        ));
    }
    cx.vals.insert(out.to_string(), Val::T(x));
    Ok(())
}

fn f32s(c: &Const) -> Vec<f32> {
    c.data.iter().map(|&v| v as f32).collect()
}

/// Whether constant `k` is a vector of `c` values broadcast over the last axis: dimensions
/// `[c]` after leading ones.
fn last_axis_vector(k: &Const, c: usize) -> bool {
    let trimmed: Vec<usize> = k.dims.iter().copied().skip_while(|&d| d == 1).collect();
    k.data.len() == c && (trimmed == [c] || (c == 1 && trimmed.is_empty()))
}

/// LayerNormalization over the last axis (the channels) → `layernorm2d`.
fn layernorm(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    let c = shape.first().copied().unwrap_or(0);
    let axis = int_attr(n, "axis", -1);
    if axis != -1 && axis != shape.len() as i64 {
        return Err(ImportError::node(
            n,
            &format!("LayerNormalization from axis {axis} of a channels-last tensor; netc normalizes over the channels (the last axis) only"),
        ));
    }
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ImportError::node(
            n,
            "the normalization's mean or inverse deviation is used",
        ));
    }
    let gamma = cx.need(n, 1, "the scale")?.clone();
    let beta = cx.konst(n, 2)?.cloned();
    let fits = |k: &Const| last_axis_vector(k, c);
    if !fits(&gamma) || beta.as_ref().is_some_and(|b| !fits(b)) {
        return Err(ImportError::node(
            n,
            &format!("the scale or bias is not {c} values, one per channel"),
        ));
    }
    // LayerNorm(bias=False) has no bias input: a zero bias is the same numerics.
    let beta = beta.map_or_else(|| vec![0.0; c], |b| f32s(&b));
    let eps = float_attr(n, "epsilon", 1e-5) as f64;
    let args = if close(eps, 1e-6) {
        vec![]
    } else {
        vec![("eps", Arg::Float(eps))]
    };
    let params: Vec<Param> = vec![("weight", vec![c], f32s(&gamma)), ("bias", vec![c], beta)];
    let name = n.input.get(1).cloned();
    cx.layer(
        n,
        out,
        "layernorm2d",
        args,
        vec![x],
        shape,
        params,
        name.as_deref(),
    );
    Ok(())
}

/// MatMul by a constant [C, C'] acting on the channels, and the Add of a constant [C']
/// bias that alone reads it (PyTorch's nn.Linear on a channels-last tensor) → `conv(C',
/// k=1)`, whose weight is the matrix transposed, [C', C, 1, 1].
fn linear(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    let c = shape.first().copied().unwrap_or(0);
    let wt = cx.need(n, 1, "the weight matrix")?.clone();
    let &[ci, co] = wt.dims.as_slice() else {
        return Err(ImportError::node(
            n,
            &format!("MatMul by a constant of dimensions {:?} on a channels-last tensor; netc takes a matrix [C, C'] over the channels (a Linear)", wt.dims),
        ));
    };
    if ci != c || co == 0 || wt.data.len() != ci * co {
        return Err(ImportError::node(
            n,
            &format!("MatMul by a [{ci}, {co}] matrix on a channels-last tensor of {c} channels"),
        ));
    }
    let mut bias = None;
    let mut out = out.to_string();
    if let Some((j, add)) = cx.next(&out, "Add") {
        if let Some((b_name, b)) = act::other(add, &out).and_then(|s| match cx.vals.get(s) {
            Some(Val::C(k)) if last_axis_vector(k, co) => Some((s.to_string(), k.clone())),
            _ => None,
        }) {
            bias = Some((b_name, b));
            out = first_out(add);
            cx.take(j);
        }
    }
    // [C, C'] row-major to [C', C, 1, 1]: w[o][i] = m[i][o].
    let mut w = vec![0f32; ci * co];
    for (k, &v) in wt.data.iter().enumerate() {
        let (i, o) = (k / co, k % co);
        w[o * ci + i] = v as f32;
    }
    let mut args = vec![("out", Arg::Int(co as i64)), ("k", Arg::Pair(1, 1))];
    let mut params: Vec<Param> = vec![("weight", vec![co, ci, 1, 1], w)];
    match &bias {
        Some((_, b)) => params.push(("bias", vec![co], f32s(b))),
        None => args.push(("bias", Arg::Bool(false))),
    }
    // PyTorch's exporter writes the transposed matrix as a new constant (`onnx::MatMul_67`),
    // so the module's path comes from the bias (`features.1.0.block.3.bias`) when it has
    // one, else from the matrix's name or the node's.
    let name = bias
        .as_ref()
        .map(|(s, _)| s.clone())
        .filter(|s| names::param_module(s).is_some())
        .or_else(|| n.input.get(1).cloned());
    cx.layer(
        n,
        &out,
        "conv",
        args,
        vec![x],
        [&[co][..], shape.get(1..).unwrap_or_default()].concat(),
        params,
        name.as_deref(),
    );
    reshaped(cx, Reshaped::Linear);
    Ok(())
}

/// Mul by a constant [C] (one factor per channel) → `scale`; of two channels-last tensors
/// → `mul`, as on NCHW tensors (both are laid out alike, so broadcasting agrees).
fn mul(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let k = match (cx.is_const(n, 0), cx.is_const(n, 1)) {
        (false, false) => return tensor_ops::mul(cx, n, out),
        (true, false) => 0,
        (false, true) => 1,
        (true, true) => return Err(ImportError::node(n, "Mul of two constants")),
    };
    let x = cx.tensor(n, 1 - k)?;
    let shape = cx.shape(x).to_vec();
    let c = shape.first().copied().unwrap_or(0);
    let f = cx.need(n, k, "the factor")?.clone();
    if !last_axis_vector(&f, c) {
        return Err(ImportError::node(
            n,
            &format!("Mul of a channels-last tensor of {c} channels by a constant of dimensions {:?}; netc's `scale` takes one factor per channel ([C])", f.dims),
        ));
    }
    let name = tensor_ops::scale_name(cx, &n.input[k]);
    let params: Vec<Param> = vec![("weight", vec![c, 1, 1], f32s(&f))];
    cx.layer(n, out, "scale", vec![], vec![x], shape, params, Some(&name));
    reshaped(cx, Reshaped::Scale);
    Ok(())
}

/// Records that the last layer's weight has another shape than PyTorch's.
fn reshaped(cx: &mut Cx, what: Reshaped) {
    if let Some(l) = cx.out.layers.last() {
        let path = l.path.join(".");
        cx.reshaped.push((path, what));
    }
}

/// The notes on the weights the regions reshaped, one per kind.
pub(crate) fn note(cx: &mut Cx) {
    if !cx.renamed.is_empty() {
        let shown = listed(&cx.renamed.iter().map(String::as_str).collect::<Vec<_>>());
        let many = cx.renamed.len() > 1;
        cx.notes.push(format!(
            "{} bare parameter used as a factor per channel is the weight of a `scale` layer of its name here (`P` is `P.weight`): {shown}",
            if many { "each" } else { "the" },
        ));
    }
    for (what, text) in [
        (Reshaped::Linear, "Linear over the channels of a channels-last tensor is a 1×1 conv here: its weight is [out, in, 1, 1] where PyTorch's is [out, in]"),
        (Reshaped::Scale, "factor per channel of a channels-last tensor is a `scale` here: its weight is [C, 1, 1] where PyTorch's is [C]"),
    ] {
        let paths: Vec<&str> = cx
            .reshaped
            .iter()
            .filter(|(_, w)| *w == what)
            .map(|(p, _)| p.as_str())
            .collect();
        if paths.is_empty() {
            continue;
        }
        let many = paths.len() > 1;
        cx.notes.push(format!(
            "{} {text} (the same numbers; a PyTorch state_dict needs the reshape): {}",
            if many { "each" } else { "the" },
            listed(&paths)
        ));
    }
}

/// The first three of `paths`, quoted, and how many more.
fn listed(paths: &[&str]) -> String {
    let mut shown: Vec<String> = paths.iter().take(3).map(|p| format!("`{p}`")).collect();
    if paths.len() > 3 {
        shown.push(format!("and {} more", paths.len() - 3));
    }
    shown.join(", ")
}
