//! The pointwise activations, and the patterns exporters write for those ONNX (at opset
//! 17) lacks: `x * Sigmoid(x)` is silu, `x * HardSigmoid(x)` hardswish, `x *
//! Tanh(Softplus(x))` mish, `x * (Erf(x / √2) + 1) * 0.5` (PyTorch's GELU) gelu, and
//! `x * (Tanh(√(2/π) (x + 0.044715 x³)) + 1) * 0.5` gelu(approximate="tanh").

use crate::build::{float_attr, string_attr};
use crate::proto::NodeProto;

use super::lower::{Arg, Cx, Val};
use super::ImportError;

/// The node that alone reads `name`, when it is a `op`.
fn next<'m>(cx: &Cx<'m>, name: &str, op: &str) -> Option<(usize, &'m NodeProto)> {
    cx.next(name, op)
}

/// The input of binary node `n` other than `name`.
pub(super) fn other<'n>(n: &'n NodeProto, name: &str) -> Option<&'n str> {
    match n.input.as_slice() {
        [a, b] if a == name => Some(b),
        [a, b] if b == name => Some(a),
        _ => None,
    }
}

/// The constant scalar tensor `name` holds.
pub(super) fn scalar(cx: &Cx, name: &str) -> Option<f64> {
    match cx.vals.get(name) {
        Some(Val::C(c)) => c.scalar(),
        _ => None,
    }
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Maps an activation node (or the pattern it starts) to one layer.
pub(crate) fn act(cx: &mut Cx, _i: usize, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let x_name = n.input[0].clone();
    let shape = cx.shape(x).to_vec();
    let mut out = out.to_string();
    // `x * f(x)`: the Mul that alone reads f's output and multiplies it by x.
    let times_x = |cx: &Cx, out: &str| -> Option<(usize, String)> {
        let (j, m) = next(cx, out, "Mul")?;
        (other(m, out)? == x_name).then(|| (j, m.output.first().cloned().unwrap_or_default()))
    };
    let (op, args): (&'static str, Vec<(&'static str, Arg)>) = match n.op_type() {
        "Relu" => ("relu", vec![]),
        "Tanh" => ("tanh", vec![]),
        "HardSwish" => ("hardswish", vec![]),
        "Mish" => ("mish", vec![]),
        "Sigmoid" => match times_x(cx, &out) {
            Some((j, o)) => {
                cx.take(j);
                out = o;
                ("silu", vec![])
            }
            None => ("sigmoid", vec![]),
        },
        "HardSigmoid" => {
            let (alpha, beta) = (
                float_attr(n, "alpha", 0.2) as f64,
                float_attr(n, "beta", 0.5) as f64,
            );
            if !(close(alpha, 1.0 / 6.0) && close(beta, 0.5)) {
                return Err(ImportError::node(
                    n,
                    &format!("HardSigmoid with alpha={alpha}, beta={beta}; netc's hardsigmoid is PyTorch's (alpha=1/6, beta=0.5)"),
                ));
            }
            match times_x(cx, &out) {
                Some((j, o)) => {
                    cx.take(j);
                    out = o;
                    ("hardswish", vec![])
                }
                None => ("hardsigmoid", vec![]),
            }
        }
        "LeakyRelu" => {
            let slope = float_attr(n, "alpha", 0.01) as f64;
            let args = if close(slope, 0.01) {
                vec![]
            } else {
                vec![("slope", Arg::Float(slope))]
            };
            ("leaky_relu", args)
        }
        "Elu" => {
            let alpha = float_attr(n, "alpha", 1.0) as f64;
            let args = if close(alpha, 1.0) {
                vec![]
            } else {
                vec![("alpha", Arg::Float(alpha))]
            };
            ("elu", args)
        }
        "Gelu" => match string_attr(n, "approximate", "none").as_str() {
            "none" => ("gelu", vec![]),
            "tanh" => ("gelu", vec![("approximate", Arg::Str("tanh"))]),
            a => return Err(ImportError::node(n, &format!("Gelu approximate=`{a}`"))),
        },
        "Clip" => clip(cx, n)?,
        "Softplus" => {
            let why =
                "Softplus outside mish's pattern (x * Tanh(Softplus(x))); netc has no softplus";
            let (j, t) = next(cx, &out, "Tanh").ok_or_else(|| ImportError::node(n, why))?;
            let t_out = t.output.first().cloned().unwrap_or_default();
            let (k, o) = times_x(cx, &t_out).ok_or_else(|| ImportError::node(n, why))?;
            cx.take(j);
            cx.take(k);
            out = o;
            ("mish", vec![])
        }
        "Div" => {
            out = gelu_erf(cx, n, &x_name, &out)?;
            ("gelu", vec![])
        }
        _ => {
            return Err(ImportError::node(
                n,
                &format!(
                    "{} outside GELU's erf pattern (x * (Erf(x / √2) + 1) * 0.5)",
                    n.op_type()
                ),
            ))
        }
    };
    cx.layer(n, &out, op, args, vec![x], shape, vec![], None);
    Ok(())
}

/// `Clip(0, 6)` is relu6, `Clip(0, ∞)` relu, other bounds hardtanh.
/// An op and its arguments.
type Mapped = (&'static str, Vec<(&'static str, Arg)>);

fn clip(cx: &Cx, n: &NodeProto) -> Result<Mapped, ImportError> {
    // Opset 11 and later give the bounds as inputs, older opsets as attributes.
    let bound = |i: usize, attr: &str| -> Result<Option<f64>, ImportError> {
        match cx.konst(n, i)? {
            Some(c) => c
                .scalar()
                .map(Some)
                .ok_or_else(|| ImportError::node(n, "a Clip bound that is not a scalar")),
            None => Ok(crate::build::attr(n, attr)
                .and_then(|a| a.f)
                .map(|v| v as f64)),
        }
    };
    let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
    match (lo, hi) {
        (Some(l), Some(h)) if l == 0.0 && h == 6.0 => Ok(("relu6", vec![])),
        (Some(0.0), None) => Ok(("relu", vec![])),
        (Some(l), Some(h)) if l < h && l.is_finite() && h.is_finite() => {
            Ok(("hardtanh", vec![("min", Arg::Float(l)), ("max", Arg::Float(h))]))
        }
        _ => Err(ImportError::node(
            n,
            &format!("Clip with bounds {lo:?}..{hi:?}; netc has relu6 (0..6), relu (0..) and hardtanh (finite min < max)"),
        )),
    }
}

/// Follows PyTorch's erf form of GELU from its `Div` by √2; returns the last `Mul`'s output.
fn gelu_erf(cx: &mut Cx, n: &NodeProto, x: &str, out: &str) -> Result<String, ImportError> {
    let why = |step: &str| {
        ImportError::node(
            n,
            &format!("Div on a tensor is not in netc's language; it starts no known pattern (GELU's x * (Erf(x / √2) + 1) * 0.5 stops at {step})"),
        )
    };
    let d = n.input.get(1).and_then(|s| scalar(cx, s));
    if !d.is_some_and(|d| close(d, std::f64::consts::SQRT_2)) {
        return Err(why("the divisor, which is not √2"));
    }
    let (je, erf) = next(cx, out, "Erf").ok_or_else(|| why("Erf"))?;
    let e_out = erf.output.first().cloned().unwrap_or_default();
    let (ja, add) = next(cx, &e_out, "Add").ok_or_else(|| why("Add 1"))?;
    if !other(add, &e_out)
        .and_then(|s| scalar(cx, s))
        .is_some_and(|v| close(v, 1.0))
    {
        return Err(why("Add 1"));
    }
    let a_out = add.output.first().cloned().unwrap_or_default();
    let (jm, mul) = next(cx, &a_out, "Mul").ok_or_else(|| why("Mul by x"))?;
    if other(mul, &a_out) != Some(x) {
        return Err(why("Mul by x"));
    }
    let m_out = mul.output.first().cloned().unwrap_or_default();
    let (jh, half) = next(cx, &m_out, "Mul").ok_or_else(|| why("Mul by 0.5"))?;
    if !other(half, &m_out)
        .and_then(|s| scalar(cx, s))
        .is_some_and(|v| close(v, 0.5))
    {
        return Err(why("Mul by 0.5"));
    }
    let h_out = half.output.first().cloned().unwrap_or_default();
    for j in [je, ja, jm, jh] {
        cx.take(j);
    }
    Ok(h_out)
}

/// GELU's tanh form from its `Mul(x, x)`, in the order of netc's export or PyTorch's (each
/// constant on either side): x², x³, 0.044715 x³, x + that, √(2/π) times it, Tanh, + 1,
/// times x, times 0.5. `Ok(false)`: the Mul starts no such pattern.
pub(crate) fn gelu_tanh(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<bool, ImportError> {
    if n.input.len() != 2 || n.input[0] != n.input[1] {
        return Ok(false);
    }
    let Some(x) = cx.tensor_named(&n.input[0]) else {
        return Ok(false);
    };
    let x_name = n.input[0].clone();
    // Each step: the op that alone reads the value so far, and what its other input is.
    enum Other {
        X,
        K(f64),
        None,
    }
    let steps = [
        ("Mul", Other::X),
        ("Mul", Other::K(0.044715)),
        ("Add", Other::X),
        ("Mul", Other::K((2.0 / std::f64::consts::PI).sqrt())),
        ("Tanh", Other::None),
        ("Add", Other::K(1.0)),
        ("Mul", Other::X),
        ("Mul", Other::K(0.5)),
    ];
    let mut at = out.to_string();
    let mut taken = Vec::new();
    for (op, want) in steps {
        let Some((j, m)) = next(cx, &at, op) else {
            return Ok(false);
        };
        let ok = match want {
            Other::X => other(m, &at) == Some(x_name.as_str()),
            Other::K(k) => other(m, &at)
                .and_then(|s| scalar(cx, s))
                .is_some_and(|v| (v - k).abs() <= 1e-6 * k),
            Other::None => m.input.len() == 1,
        };
        if !ok {
            return Ok(false);
        }
        taken.push(j);
        at = m.output.first().cloned().unwrap_or_default();
    }
    for j in taken {
        cx.take(j);
    }
    let shape = cx.shape(x).to_vec();
    cx.layer(
        n,
        &at,
        "gelu",
        vec![("approximate", Arg::Str("tanh"))],
        vec![x],
        shape,
        vec![],
        None,
    );
    Ok(true)
}
