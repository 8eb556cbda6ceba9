//! The normalizations ONNX (at opset 17) has no op for, as exporters decompose them:
//! group normalization (Reshape [N, G, -1], InstanceNormalization with unit scale and zero
//! bias, Reshape back, Mul γ, Add β), a layer normalization over the channels of an image
//! (Transpose [0, 2, 3, 1], LayerNormalization on the last axis, Transpose [0, 3, 1, 2]), and
//! local response normalization of any window (x², a Reshape that puts the channels on a
//! spatial axis, Pad, AveragePool over `size` channels, Reshape back, Mul α, Add k, Pow β,
//! Div) — netc's export writes it so for even sizes, PyTorch's for every `nn.LocalResponseNorm`.
//! Each function returns `Ok(false)` when its node does not start the pattern.

use crate::build::{float_attr, int_attr, ints_attr, string_attr};
use crate::proto::NodeProto;

use super::act::{close, other, scalar};
use super::graph::Const;
use super::lower::{Arg, Cx, Param, Val};
use super::ImportError;

/// The image shape of tensor input `i` of `n`, if it is one.
fn image_in(cx: &Cx, n: &NodeProto, i: usize) -> Option<(usize, [usize; 3])> {
    match n.input.get(i).and_then(|s| cx.vals.get(s)) {
        Some(Val::T(v)) => match *cx.shape(*v) {
            [c, h, w] => Some((*v, [c, h, w])),
            _ => None,
        },
        _ => None,
    }
}

fn first_out(n: &NodeProto) -> String {
    n.output.first().cloned().unwrap_or_default()
}

/// Whether shape vector `t` is `[N, rest...]`: the batch (or `0`) first, then `rest`, where
/// `None` in `rest` accepts any entry (a `-1`).
fn batch_then(t: &Const, rest: &[Option<f64>]) -> bool {
    t.data.len() == rest.len() + 1
        && (t.batch.contains(&0) || t.data.first() == Some(&0.0))
        && t.batch.iter().all(|&b| b == 0)
        && rest
            .iter()
            .zip(&t.data[1..])
            .all(|(want, got)| want.is_none_or(|w| w == *got) || *got == -1.0)
}

/// The constant input of binary node `m` other than `name`, with its name.
fn const_other(cx: &Cx, m: &NodeProto, name: &str) -> Option<(String, Const)> {
    let o = other(m, name)?;
    match cx.vals.get(o) {
        Some(Val::C(c)) => Some((o.to_string(), c.clone())),
        _ => None,
    }
}

/// A per-channel constant: `c` values shaped `[C]`, `[C, 1, 1]` or `[1, C, 1, 1]`.
fn per_channel(k: &Const, c: usize) -> bool {
    let trimmed: Vec<usize> = k.dims.iter().copied().skip_while(|&d| d == 1).collect();
    k.data.len() == c && (trimmed == [c] || trimmed == [c, 1, 1] || c == 1)
}

fn f32s(c: &Const) -> Vec<f32> {
    c.data.iter().map(|&v| v as f32).collect()
}

/// Group normalization, from its first Reshape.
pub(crate) fn groupnorm(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<bool, ImportError> {
    let Some((x, [c, h, w])) = image_in(cx, n, 0) else {
        return Ok(false);
    };
    let Some(t) = n.input.get(1).and_then(|s| cx.eval(s)) else {
        return Ok(false);
    };
    let Some(g) = t
        .data
        .get(1)
        .copied()
        .filter(|&g| g >= 1.0 && g.fract() == 0.0)
    else {
        return Ok(false);
    };
    let gu = g as usize;
    if !c.is_multiple_of(gu) || !batch_then(&t, &[Some(g), Some((c / gu * h * w) as f64)]) {
        return Ok(false);
    }
    let Some((j1, inorm)) = cx.next(out, "InstanceNormalization") else {
        return Ok(false);
    };
    let unit = |i: usize, v: f64| {
        inorm
            .input
            .get(i)
            .and_then(|s| cx.eval(s))
            .is_some_and(|k| k.data.len() == gu && k.data.iter().all(|&d| d == v))
    };
    if !unit(1, 1.0) || !unit(2, 0.0) {
        return Ok(false);
    }
    let Some((j2, back)) = cx.next(&first_out(inorm), "Reshape") else {
        return Ok(false);
    };
    let fits = back
        .input
        .get(1)
        .and_then(|s| cx.eval(s))
        .is_some_and(|t| batch_then(&t, &[Some(c as f64), Some(h as f64), Some(w as f64)]));
    if !fits {
        return Ok(false);
    }
    let b_out = first_out(back);
    let Some((j3, mul)) = cx.next(&b_out, "Mul") else {
        return Ok(false);
    };
    let Some((w_name, gamma)) = const_other(cx, mul, &b_out).filter(|(_, k)| per_channel(k, c))
    else {
        return Ok(false);
    };
    let m_out = first_out(mul);
    let Some((j4, add)) = cx.next(&m_out, "Add") else {
        return Ok(false);
    };
    let Some((_, beta)) = const_other(cx, add, &m_out).filter(|(_, k)| per_channel(k, c)) else {
        return Ok(false);
    };
    for j in [j1, j2, j3, j4] {
        cx.take(j);
    }
    let mut args = vec![("groups", Arg::Int(g as i64))];
    let eps = float_attr(inorm, "epsilon", 1e-5) as f64;
    if !close(eps, 1e-5) {
        args.push(("eps", Arg::Float(eps)));
    }
    let params: Vec<Param> = vec![
        ("weight", vec![c], f32s(&gamma)),
        ("bias", vec![c], f32s(&beta)),
    ];
    cx.layer(
        n,
        &first_out(add),
        "groupnorm",
        args,
        vec![x],
        vec![c, h, w],
        params,
        Some(&w_name),
    );
    Ok(true)
}

/// A layer normalization over an image's channels, from its first Transpose.
pub(crate) fn layernorm2d(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<bool, ImportError> {
    let Some((x, [c, h, w])) = image_in(cx, n, 0) else {
        return Ok(false);
    };
    if ints_attr(n, "perm").as_deref() != Some(&[0, 2, 3, 1]) {
        return Ok(false);
    }
    let Some((j1, ln)) = cx.next(out, "LayerNormalization") else {
        return Ok(false);
    };
    if !matches!(int_attr(ln, "axis", -1), -1 | 3)
        || ln.output.iter().skip(1).any(|o| !o.is_empty())
    {
        return Ok(false);
    }
    let k = |i: usize| {
        ln.input
            .get(i)
            .and_then(|s| cx.eval(s))
            .filter(|k| k.data.len() == c)
    };
    let (Some(gamma), Some(beta)) = (k(1), k(2)) else {
        return Ok(false);
    };
    let Some((j2, back)) = cx.next(&first_out(ln), "Transpose") else {
        return Ok(false);
    };
    if ints_attr(back, "perm").as_deref() != Some(&[0, 3, 1, 2]) {
        return Ok(false);
    }
    cx.take(j1);
    cx.take(j2);
    let eps = float_attr(ln, "epsilon", 1e-5) as f64;
    let args = if close(eps, 1e-6) {
        vec![]
    } else {
        vec![("eps", Arg::Float(eps))]
    };
    let params: Vec<Param> = vec![
        ("weight", vec![c], f32s(&gamma)),
        ("bias", vec![c], f32s(&beta)),
    ];
    let w_name = ln.input.get(1).cloned();
    // The path: the weights' module (PyTorch's `ln.weight`), else the LayerNormalization's
    // node (the Transpose may belong to the parent module's forward).
    let first = if w_name
        .as_deref()
        .and_then(super::names::param_module)
        .is_some()
    {
        n
    } else {
        ln
    };
    cx.layer(
        first,
        &first_out(back),
        "layernorm2d",
        args,
        vec![x],
        vec![c, h, w],
        params,
        w_name.as_deref(),
    );
    Ok(true)
}

/// Local response normalization, from its `Mul(x, x)`.
pub(crate) fn lrn(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<bool, ImportError> {
    if n.input.len() != 2 || n.input[0] != n.input[1] {
        return Ok(false);
    }
    let Some((x, [c, h, w])) = image_in(cx, n, 0) else {
        return Ok(false);
    };
    let x_name = n.input[0].clone();
    let mut taken = Vec::new();
    // The squares with the channels on a spatial axis: netc's [N, 1, C, H·W], PyTorch's
    // [N, 1, C, H, W].
    let Some((j, rows)) = cx.next(out, "Reshape") else {
        return Ok(false);
    };
    taken.push(j);
    let Some(t) = rows.input.get(1).and_then(|s| cx.eval(s)) else {
        return Ok(false);
    };
    let (cf, hf, wf) = (c as f64, h as f64, w as f64);
    let rank = if batch_then(&t, &[Some(1.0), Some(cf), Some(hf * wf)]) {
        4
    } else if batch_then(&t, &[Some(1.0), Some(cf), Some(hf), Some(wf)]) {
        5
    } else {
        return Ok(false);
    };
    let Some((j, pad)) = cx.next(&first_out(rows), "Pad") else {
        return Ok(false);
    };
    taken.push(j);
    if string_attr(pad, "mode", "constant") != "constant"
        || !pad
            .input
            .get(2)
            .is_none_or(|s| s.is_empty() || scalar(cx, s) == Some(0.0))
        || pad.input.get(3).is_some_and(|s| !s.is_empty())
    {
        return Ok(false);
    }
    let Some(amounts) = pad
        .input
        .get(1)
        .and_then(|s| cx.eval(s))
        .and_then(|k| k.ints())
    else {
        return Ok(false);
    };
    if amounts.len() != 2 * rank
        || amounts
            .iter()
            .enumerate()
            .any(|(i, &a)| i % rank != 2 && a != 0)
    {
        return Ok(false);
    }
    let (before, after) = (amounts[2], amounts[rank + 2]);
    let Some((j, pool)) = cx.next(&first_out(pad), "AveragePool") else {
        return Ok(false);
    };
    taken.push(j);
    let size = before + after + 1;
    let mut kernel = vec![1; rank - 2];
    kernel[0] = size;
    if ints_attr(pool, "kernel_shape") != Some(kernel)
        || ints_attr(pool, "strides").is_some_and(|s| s.iter().any(|&s| s != 1))
        || ints_attr(pool, "pads").is_some_and(|p| p.iter().any(|&p| p != 0))
        || int_attr(pool, "ceil_mode", 0) != 0
        || string_attr(pool, "auto_pad", "NOTSET") != "NOTSET"
        || before != size / 2
        || after != (size - 1) / 2
    {
        return Ok(false);
    }
    let Some((j, back)) = reshape_back(cx, &first_out(pool), &mut taken) else {
        return Ok(false);
    };
    taken.push(j);
    let fits = back
        .input
        .get(1)
        .and_then(|s| cx.eval(s))
        .is_some_and(|t| batch_then(&t, &[Some(cf), Some(hf), Some(wf)]));
    if !fits {
        return Ok(false);
    }
    // (k + α · mean)^β, then x divided by it.
    let mut at = first_out(back);
    let mut factors = Vec::new();
    for op in ["Mul", "Add", "Pow"] {
        let Some((j, m)) = cx.next(&at, op) else {
            return Ok(false);
        };
        // Pow's exponent is its second input; Mul and Add take the constant either side.
        let v = match op {
            "Pow" if m.input.first() == Some(&at) => m.input.get(1).and_then(|s| scalar(cx, s)),
            "Pow" => None,
            _ => other(m, &at).and_then(|s| scalar(cx, s)),
        };
        let Some(v) = v else {
            return Ok(false);
        };
        factors.push(v);
        taken.push(j);
        at = first_out(m);
    }
    let Some((j, div)) = cx.next(&at, "Div") else {
        return Ok(false);
    };
    if div.input.as_slice() != [x_name, at] {
        return Ok(false);
    }
    taken.push(j);
    for j in taken {
        cx.take(j);
    }
    let mut args = vec![("size", Arg::Int(size))];
    for ((name, default), v) in [("alpha", 1e-4), ("k", 1.0), ("beta", 0.75)]
        .into_iter()
        .zip(factors)
    {
        if !close(v, default) {
            args.push((name, Arg::Float(v)));
        }
    }
    // The op's order: size, alpha, beta, k.
    args.sort_by_key(|(name, _)| {
        ["size", "alpha", "beta", "k"]
            .iter()
            .position(|n| n == name)
    });
    cx.layer(
        n,
        &first_out(div),
        "lrn",
        args,
        vec![x],
        vec![c, h, w],
        vec![],
        None,
    );
    Ok(true)
}

/// The Reshape that takes the pooled squares back to [N, C, H, W]: the pool's sole
/// consumer (netc), or the one after PyTorch's `squeeze(1)` — `Shape`, `Gather`, `Equal` and
/// an `If` whose branches squeeze or pass on the pooled tensor, whose nodes join `taken`.
fn reshape_back<'m>(
    cx: &Cx<'m>,
    pooled: &str,
    taken: &mut Vec<usize>,
) -> Option<(usize, &'m NodeProto)> {
    if let Some(r) = cx.next(pooled, "Reshape") {
        return Some(r);
    }
    let mut at = pooled.to_string();
    for op in ["Shape", "Gather", "Equal", "If"] {
        let (j, m) = cx.next(&at, op)?;
        taken.push(j);
        at = first_out(m);
        if op == "If" {
            let passes = |g: Option<&crate::proto::GraphProto>| {
                g.is_some_and(|g| {
                    g.node.iter().all(|b| match b.op_type() {
                        "Constant" => true,
                        "Squeeze" | "Identity" => {
                            b.input.first().map(String::as_str) == Some(pooled)
                                || g.node.iter().any(|c| c.output.first() == b.input.first())
                        }
                        _ => false,
                    })
                })
            };
            let branch = |name: &str| crate::build::attr(m, name).and_then(|a| a.g.as_ref());
            if !passes(branch("then_branch")) || !passes(branch("else_branch")) {
                return None;
            }
        }
    }
    cx.next(&at, "Reshape")
}
