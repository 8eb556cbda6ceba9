//! The layers with weights or windows: Conv, ConvTranspose, GlobalAveragePool, BatchNormalization,
//! LRN, Gemm and MatMul (+ Add), and Dropout. Each checks what the language can say (square
//! or `[h, w]` windows, symmetric padding, PyTorch's conventions) and names what it cannot.

use crate::build::{float_attr, int_attr, ints_attr, string_attr};
use crate::proto::NodeProto;

use super::graph::Const;
use super::lower::{Arg, Cx, Param};
use super::ImportError;

/// An image's shape, or the error that names the node.
pub(super) fn image(cx: &Cx, n: &NodeProto, v: usize) -> Result<[usize; 3], ImportError> {
    match *cx.shape(v) {
        [c, h, w] => Ok([c, h, w]),
        ref s => Err(ImportError::node(
            n,
            &format!("expects an image [N, C, H, W], found [N, {}]", dims(s)),
        )),
    }
}

pub(crate) fn dims(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A two-element attribute (`[h, w]`), or `default`.
pub(super) fn pair(n: &NodeProto, name: &str, default: i64) -> Result<[i64; 2], ImportError> {
    match ints_attr(n, name).as_deref() {
        None => Ok([default, default]),
        // Bounded as the language bounds integers, so that no arithmetic on them overflows.
        Some(&[h, w]) if (0..=1 << 31).contains(&h) && (0..=1 << 31).contains(&w) => Ok([h, w]),
        Some(v) => Err(ImportError::node(
            n,
            &format!("`{name}` is {v:?}; netc takes 2-D windows ([h, w], from 0 to 2^31)"),
        )),
    }
}

/// The symmetric padding of a window op: `pads` (begin == end on each axis) or `auto_pad`.
pub(super) fn pads(
    n: &NodeProto,
    hw: [usize; 2],
    k: [i64; 2],
    s: [i64; 2],
    dil: [i64; 2],
) -> Result<[i64; 2], ImportError> {
    let auto = string_attr(n, "auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" | "" => match ints_attr(n, "pads").as_deref() {
            None => Ok([0, 0]),
            Some(&[hb, wb, he, we])
                if hb == he && wb == we && (0..=1 << 31).contains(&hb) && (0..=1 << 31).contains(&wb) =>
            {
                Ok([hb, wb])
            }
            Some(p) => Err(ImportError::node(
                n,
                &format!("asymmetric padding {p:?} ([top, left, bottom, right]); netc pads both sides of an axis alike"),
            )),
        },
        "VALID" => Ok([0, 0]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0; 2];
            for a in 0..2 {
                let d = hw[a] as i64;
                let o = (d + s[a] - 1) / s[a];
                let total = ((o - 1) * s[a] + dil[a] * (k[a] - 1) + 1 - d).max(0);
                if total % 2 != 0 {
                    return Err(ImportError::node(
                        n,
                        &format!("auto_pad {auto} pads {total} rows or columns on axis {a}, which is asymmetric; netc pads both sides of an axis alike"),
                    ));
                }
                p[a] = total / 2;
            }
            Ok(p)
        }
        other => Err(ImportError::node(n, &format!("auto_pad `{other}` is not an ONNX setting"))),
    }
}

/// The window rule of docs/language.md, with PyTorch's ceil mode.
pub(super) fn window(
    n: &NodeProto,
    d: usize,
    k: i64,
    s: i64,
    p: i64,
    dil: i64,
    ceil: bool,
) -> Result<usize, ImportError> {
    let span = d as i64 + 2 * p - dil * (k - 1) - 1;
    if k < 1 || s < 1 || dil < 1 || span < 0 {
        return Err(ImportError::node(
            n,
            &format!("a window of {k} (stride {s}, padding {p}, dilation {dil}) does not fit an input of {d}"),
        ));
    }
    let mut o = if ceil {
        (span + s - 1) / s + 1
    } else {
        span / s + 1
    };
    if ceil && (o - 1) * s >= d as i64 + p {
        o -= 1;
    }
    Ok(o as usize)
}

fn f32s(c: &Const) -> Vec<f32> {
    c.data.iter().map(|&v| v as f32).collect()
}

fn input_name(n: &NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str)
}

/// `Conv` → `conv`.
pub(crate) fn conv(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let [c, h, w] = image(cx, n, x)?;
    let wt = cx.need(n, 1, "the weight")?.clone();
    let &[co, ci, kh, kw] = wt.dims.as_slice() else {
        return Err(ImportError::node(
            n,
            &format!(
                "the weight has dimensions {:?}; netc's conv is 2-D ([out, in/groups, kh, kw])",
                wt.dims
            ),
        ));
    };
    let groups = int_attr(n, "group", 1).clamp(0, 1 << 31);
    if groups < 1 || ci as i64 * groups != c as i64 || co as i64 % groups != 0 {
        return Err(ImportError::node(
            n,
            &format!(
                "{groups} groups and a weight of {:?} do not fit {c} input channels",
                wt.dims
            ),
        ));
    }
    let k = [kh as i64, kw as i64];
    if let Some(ks) = ints_attr(n, "kernel_shape") {
        if ks != k {
            return Err(ImportError::node(
                n,
                &format!("kernel_shape {ks:?} is not the weight's {k:?}"),
            ));
        }
    }
    let s = pair(n, "strides", 1)?;
    let dil = pair(n, "dilations", 1)?;
    let p = pads(n, [h, w], k, s, dil)?;
    let ho = window(n, h, k[0], s[0], p[0], dil[0], false)?;
    let wo = window(n, w, k[1], s[1], p[1], dil[1], false)?;
    let bias = cx.konst(n, 2)?.cloned();
    if let Some(b) = &bias {
        if b.data.len() != co {
            return Err(ImportError::node(
                n,
                &format!(
                    "the bias has {} values for {co} output channels",
                    b.data.len()
                ),
            ));
        }
    }
    let mut args = vec![("out", Arg::Int(co as i64)), ("k", Arg::Pair(k[0], k[1]))];
    pair_arg(&mut args, "s", s, [1, 1]);
    pair_arg(&mut args, "p", p, [0, 0]);
    pair_arg(&mut args, "dil", dil, [1, 1]);
    if groups != 1 {
        args.push(("groups", Arg::Int(groups)));
    }
    let mut params: Vec<Param> = vec![("weight", wt.dims.clone(), f32s(&wt))];
    match &bias {
        Some(b) => params.push(("bias", vec![co], f32s(b))),
        None => args.push(("bias", Arg::Bool(false))),
    }
    let name = input_name(n, 1).map(str::to_string);
    cx.layer(
        n,
        out,
        "conv",
        args,
        vec![x],
        vec![co, ho, wo],
        params,
        name.as_deref(),
    );
    Ok(())
}

/// `ConvTranspose` → `conv_t`.
pub(crate) fn conv_t(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let [c, h, w] = image(cx, n, x)?;
    let wt = cx.need(n, 1, "the weight")?.clone();
    let &[ci, cog, kh, kw] = wt.dims.as_slice() else {
        return Err(ImportError::node(
            n,
            &format!(
                "the weight has dimensions {:?}; netc's conv_t is 2-D ([in, out/groups, kh, kw])",
                wt.dims
            ),
        ));
    };
    let groups = int_attr(n, "group", 1).clamp(0, 1 << 31);
    if groups < 1 || ci != c || c as i64 % groups != 0 {
        return Err(ImportError::node(
            n,
            &format!(
                "{groups} groups and a weight of {:?} do not fit {c} input channels",
                wt.dims
            ),
        ));
    }
    if ints_attr(n, "output_shape").is_some() {
        return Err(ImportError::node(
            n,
            "`output_shape` is set; netc's conv_t takes `pads` and `output_padding`",
        ));
    }
    let co = cog * groups as usize;
    let k = [kh as i64, kw as i64];
    let s = pair(n, "strides", 1)?;
    let dil = pair(n, "dilations", 1)?;
    let op = pair(n, "output_padding", 0)?;
    if string_attr(n, "auto_pad", "NOTSET") != "NOTSET" {
        return Err(ImportError::node(
            n,
            "auto_pad on ConvTranspose; netc takes explicit symmetric `pads`",
        ));
    }
    let p = pads(n, [h, w], k, s, dil)?;
    let size =
        |d: usize, a: usize| (d as i64 - 1) * s[a] - 2 * p[a] + dil[a] * (k[a] - 1) + op[a] + 1;
    let (ho, wo) = (size(h, 0), size(w, 1));
    if ho < 1 || wo < 1 || op[0] >= s[0] || op[1] >= s[1] {
        return Err(ImportError::node(n, "the transposed convolution's output size is not positive, or its output padding is not below its stride"));
    }
    let bias = cx.konst(n, 2)?.cloned();
    let mut args = vec![("out", Arg::Int(co as i64)), ("k", Arg::Pair(k[0], k[1]))];
    pair_arg(&mut args, "s", s, [1, 1]);
    pair_arg(&mut args, "p", p, [0, 0]);
    pair_arg(&mut args, "op", op, [0, 0]);
    pair_arg(&mut args, "dil", dil, [1, 1]);
    if groups != 1 {
        args.push(("groups", Arg::Int(groups)));
    }
    let mut params: Vec<Param> = vec![("weight", wt.dims.clone(), f32s(&wt))];
    match &bias {
        Some(b) if b.data.len() == co => params.push(("bias", vec![co], f32s(b))),
        Some(b) => {
            return Err(ImportError::node(
                n,
                &format!(
                    "the bias has {} values for {co} output channels",
                    b.data.len()
                ),
            ))
        }
        None => args.push(("bias", Arg::Bool(false))),
    }
    let name = input_name(n, 1).map(str::to_string);
    cx.layer(
        n,
        out,
        "conv_t",
        args,
        vec![x],
        vec![co, ho as usize, wo as usize],
        params,
        name.as_deref(),
    );
    Ok(())
}

/// `GlobalAveragePool` → `global_avgpool`.
pub(crate) fn global_avgpool(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let [c, _, _] = image(cx, n, x)?;
    cx.layer(
        n,
        out,
        "global_avgpool",
        vec![],
        vec![x],
        vec![c, 1, 1],
        vec![],
        None,
    );
    Ok(())
}

/// `BatchNormalization` (inference form) → `batchnorm`.
pub(crate) fn batchnorm(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    if int_attr(n, "training_mode", 0) != 0 || n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ImportError::node(
            n,
            "batch normalization in training mode; export the model in eval mode",
        ));
    }
    let c = shape[0];
    let mut params: Vec<Param> = Vec::new();
    for (i, suffix) in [
        (1, "weight"),
        (2, "bias"),
        (3, "running_mean"),
        (4, "running_var"),
    ] {
        let t = cx.need(n, i, suffix)?;
        if t.data.len() != c {
            return Err(ImportError::node(
                n,
                &format!("{suffix} has {} values for {c} channels", t.data.len()),
            ));
        }
        params.push((suffix, vec![c], f32s(t)));
    }
    let mut args = Vec::new();
    let eps = float_attr(n, "epsilon", 1e-5) as f64;
    if (eps - 1e-5).abs() > 1e-11 {
        args.push(("eps", Arg::Float(eps)));
    }
    // ONNX's momentum weighs the running value, PyTorch's (and netc's) the batch's.
    let momentum = 1.0 - float_attr(n, "momentum", 0.9) as f64;
    if (momentum - 0.1).abs() > 1e-6 {
        args.push(("momentum", Arg::Float(momentum)));
    }
    let name = input_name(n, 1).map(str::to_string);
    cx.layer(
        n,
        out,
        "batchnorm",
        args,
        vec![x],
        shape,
        params,
        name.as_deref(),
    );
    Ok(())
}

/// `LRN` → `lrn` (ONNX's window is netc's and PyTorch's for odd sizes).
pub(crate) fn lrn(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = image(cx, n, x)?.to_vec();
    let size = int_attr(n, "size", 0);
    if size < 1 || size % 2 == 0 {
        return Err(ImportError::node(
            n,
            &format!("LRN of size {size}; netc's window agrees with ONNX's for odd sizes only"),
        ));
    }
    let mut args = vec![("size", Arg::Int(size))];
    for (name, onnx, default) in [
        ("alpha", "alpha", 1e-4),
        ("beta", "beta", 0.75),
        ("k", "bias", 1.0),
    ] {
        let v = float_attr(n, onnx, default as f32) as f64;
        if (v - default).abs() > 1e-7 * default.abs().max(1e-3) {
            args.push((name, Arg::Float(v)));
        }
    }
    cx.layer(n, out, "lrn", args, vec![x], shape, vec![], None);
    Ok(())
}

/// A linear layer from a `[F, out]` or `[out, F]` weight and an optional bias.
#[allow(clippy::too_many_arguments)]
fn linear(
    cx: &mut Cx,
    n: &NodeProto,
    out: &str,
    x: usize,
    wt: &Const,
    transposed: bool,
    bias: Option<Const>,
    name: Option<&str>,
) -> Result<(), ImportError> {
    let f = match *cx.shape(x) {
        [f] => f,
        ref s => {
            return Err(ImportError::node(
                n,
                &format!(
                    "expects a feature vector [N, F], found [N, {}]; flatten first",
                    dims(s)
                ),
            ))
        }
    };
    let &[a, b] = wt.dims.as_slice() else {
        return Err(ImportError::node(
            n,
            &format!("the weight has dimensions {:?}, not a matrix", wt.dims),
        ));
    };
    let (o, fi) = if transposed { (a, b) } else { (b, a) };
    if fi != f {
        return Err(ImportError::node(
            n,
            &format!("the weight {:?} does not fit {f} input features", wt.dims),
        ));
    }
    // netc's (and PyTorch's) layout is [out, F].
    let data: Vec<f32> = if transposed {
        f32s(wt)
    } else {
        (0..o)
            .flat_map(|j| (0..f).map(move |i| (i, j)))
            .map(|(i, j)| wt.data[i * o + j] as f32)
            .collect()
    };
    let mut args = vec![("out", Arg::Int(o as i64))];
    let mut params: Vec<Param> = vec![("weight", vec![o, f], data)];
    match bias {
        Some(b) if b.data.len() == o => params.push(("bias", vec![o], f32s(&b))),
        Some(b) => {
            return Err(ImportError::node(
                n,
                &format!("the bias has {} values for {o} outputs", b.data.len()),
            ))
        }
        None => args.push(("bias", Arg::Bool(false))),
    }
    cx.layer(n, out, "linear", args, vec![x], vec![o], params, name);
    Ok(())
}

/// `Gemm` (PyTorch's nn.Linear: transB=1, alpha = beta = 1) → `linear`.
pub(crate) fn gemm(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let (alpha, beta) = (float_attr(n, "alpha", 1.0), float_attr(n, "beta", 1.0));
    if int_attr(n, "transA", 0) != 0 || alpha != 1.0 || beta != 1.0 {
        return Err(ImportError::node(n, &format!("Gemm with transA={}, alpha={alpha}, beta={beta}; netc's linear is transA=0, alpha=beta=1", int_attr(n, "transA", 0))));
    }
    let wt = cx.need(n, 1, "the weight")?.clone();
    let bias = cx.konst(n, 2)?.cloned();
    let name = input_name(n, 1).map(str::to_string);
    linear(
        cx,
        n,
        out,
        x,
        &wt,
        int_attr(n, "transB", 0) != 0,
        bias,
        name.as_deref(),
    )
}

/// `MatMul` by a constant matrix, and the `Add` of a constant bias after it → `linear`.
pub(crate) fn matmul(cx: &mut Cx, _i: usize, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let wt = cx
        .konst(n, 1)?
        .cloned()
        .ok_or_else(|| ImportError::node(n, "MatMul without a constant weight matrix"))?;
    let mut bias = None;
    let mut out = out.to_string();
    if let Some((j, add)) = cx.sole_consumer(&out) {
        if add.op_type() == "Add" {
            let other = usize::from(add.input.first() == Some(&out));
            if let Some(b) = add.input.get(other).and_then(|s| match cx.vals.get(s) {
                Some(super::lower::Val::C(c)) => Some(c.clone()),
                _ => None,
            }) {
                bias = Some(b);
                out = add.output.first().cloned().unwrap_or_default();
                cx.take(j);
            }
        }
    }
    let name = input_name(n, 1).map(str::to_string);
    linear(cx, n, &out, x, &wt, false, bias, name.as_deref())
}

/// `Dropout` → `dropout(p)`: the identity at inference, kept so that the network trains as
/// the original did.
pub(crate) fn dropout(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ImportError::node(n, "the dropout's mask output is used"));
    }
    let p = match cx.konst(n, 1)? {
        Some(c) => c
            .scalar()
            .ok_or_else(|| ImportError::node(n, "the ratio is not a scalar"))?,
        None => float_attr(n, "ratio", 0.5) as f64,
    };
    if let Some(t) = cx.konst(n, 2)? {
        if t.scalar() != Some(0.0) {
            return Err(ImportError::node(
                n,
                "dropout in training mode; export the model in eval mode",
            ));
        }
    }
    let shape = cx.shape(x).to_vec();
    cx.layer(
        n,
        out,
        "dropout",
        vec![("p", Arg::Float(p))],
        vec![x],
        shape,
        vec![],
        None,
    );
    Ok(())
}

/// `name=[h, w]` among a layer's arguments, unless it is the op's default (the text leaves
/// defaults out, as a person would).
pub(super) fn pair_arg(
    args: &mut Vec<(&'static str, Arg)>,
    name: &'static str,
    v: [i64; 2],
    default: [i64; 2],
) {
    if v != default {
        args.push((name, Arg::Pair(v[0], v[1])));
    }
}
