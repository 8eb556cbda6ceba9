//! The built-in ops of LANGUAGE.md: their arguments (names, kinds, defaults), how each turns
//! input shapes into an output shape, and what each costs in parameters and
//! multiply-accumulates. One table, so that the parser's "did you mean", the shape checker
//! and the report all agree.

use serde_json::{json, Map, Value as Json};

use crate::graph::{shape_str, Shape};
use crate::value::Value;

/// Largest accepted size of one dimension or argument.
pub const MAX_DIM: i64 = 1 << 31;
/// Largest accepted number of elements in one per-sample tensor or weight.
pub const MAX_ELEMENTS: u128 = 1 << 40;

/// A pair `[h, w]`; an integer argument `k=3` means `[3, 3]`.
pub type Pair = [usize; 2];

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub out: usize,
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub dil: Pair,
    pub groups: usize,
    pub bias: bool,
}

/// A transposed convolution; `inverts` names the conv it was made from by `invert(of=..)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvT {
    pub out: usize,
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub op: Pair,
    pub dil: Pair,
    pub groups: usize,
    pub bias: bool,
    pub inverts: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub ceil: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An image or feature tensor.
    Tensor,
    /// An integer class label in `0..N`.
    Class(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Input(InputKind),
    Conv(Conv),
    ConvT(ConvT),
    MaxPool(Pool),
    AvgPool(Pool),
    GlobalAvgPool,
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu {
        slope: f64,
    },
    BatchNorm {
        eps: f64,
        momentum: f64,
    },
    Lrn {
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    Dropout {
        p: f64,
    },
    Flatten,
    Linear {
        out: usize,
        bias: bool,
    },
    Concat,
    Add,
    Softmax,
}

/// How many tensors an op reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    One,
    /// Two or more, all positional.
    Many,
}

/// What an argument accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer ≥ 1.
    Size,
    /// An integer ≥ 1, or `[h, w]`.
    Pair,
    /// An integer ≥ 0, or `[h, w]`.
    PairZ,
    /// An integer ≥ 0, `[h, w]`, or `"same"`.
    Pad,
    Bool,
    /// Any number.
    Float,
    /// A number > 0.
    Positive,
    /// A number in `[0, 1]`.
    Unit,
    /// A number in `[0, 1)`.
    Prob,
    /// A value produced by a `conv`.
    Tensor,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Size => "a positive integer",
            Kind::Pair => "a positive integer or `[h, w]`",
            Kind::PairZ => "a non-negative integer or `[h, w]`",
            Kind::Pad => "a non-negative integer, `[h, w]` or `\"same\"`",
            Kind::Bool => "`true` or `false`",
            Kind::Float => "a number",
            Kind::Positive => "a positive number",
            Kind::Unit => "a number from 0 to 1",
            Kind::Prob => "a probability in [0, 1)",
            Kind::Tensor => "a conv's output",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamDefault {
    Required,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The value of another argument (a pool's stride defaults to its window).
    Same(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: ParamDefault,
}

#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    pub name: &'static str,
    pub arity: Arity,
    pub params: &'static [Param],
}

const fn p(name: &'static str, kind: Kind, default: ParamDefault) -> Param {
    Param {
        name,
        kind,
        default,
    }
}

use ParamDefault::{Bool as B, Float as F, Int as I, Required as R};

const CONV: &[Param] = &[
    p("out", Kind::Size, R),
    p("k", Kind::Pair, R),
    p("s", Kind::Pair, I(1)),
    p("p", Kind::Pad, I(0)),
    p("dil", Kind::Pair, I(1)),
    p("groups", Kind::Size, I(1)),
    p("bias", Kind::Bool, B(true)),
];
const CONV_T: &[Param] = &[
    p("out", Kind::Size, R),
    p("k", Kind::Pair, R),
    p("s", Kind::Pair, I(1)),
    p("p", Kind::PairZ, I(0)),
    p("op", Kind::PairZ, I(0)),
    p("dil", Kind::Pair, I(1)),
    p("groups", Kind::Size, I(1)),
    p("bias", Kind::Bool, B(true)),
];
const INVERT: &[Param] = &[p("of", Kind::Tensor, R), p("bias", Kind::Bool, B(true))];
const POOL: &[Param] = &[
    p("k", Kind::Pair, R),
    p("s", Kind::Pair, ParamDefault::Same("k")),
    p("p", Kind::PairZ, I(0)),
    p("ceil", Kind::Bool, B(false)),
];
const NONE: &[Param] = &[];

/// Every built-in op, in LANGUAGE.md's order.
pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "conv",
        arity: Arity::One,
        params: CONV,
    },
    OpSpec {
        name: "conv_t",
        arity: Arity::One,
        params: CONV_T,
    },
    OpSpec {
        name: "invert",
        arity: Arity::One,
        params: INVERT,
    },
    OpSpec {
        name: "maxpool",
        arity: Arity::One,
        params: POOL,
    },
    OpSpec {
        name: "avgpool",
        arity: Arity::One,
        params: POOL,
    },
    OpSpec {
        name: "global_avgpool",
        arity: Arity::One,
        params: NONE,
    },
    OpSpec {
        name: "relu",
        arity: Arity::One,
        params: NONE,
    },
    OpSpec {
        name: "sigmoid",
        arity: Arity::One,
        params: NONE,
    },
    OpSpec {
        name: "tanh",
        arity: Arity::One,
        params: NONE,
    },
    OpSpec {
        name: "leaky_relu",
        arity: Arity::One,
        params: &[p("slope", Kind::Float, F(0.01))],
    },
    OpSpec {
        name: "batchnorm",
        arity: Arity::One,
        params: &[
            p("eps", Kind::Positive, F(1e-5)),
            p("momentum", Kind::Unit, F(0.1)),
        ],
    },
    OpSpec {
        name: "lrn",
        arity: Arity::One,
        params: &[
            p("size", Kind::Size, I(5)),
            p("alpha", Kind::Float, F(1e-4)),
            p("beta", Kind::Float, F(0.75)),
            p("k", Kind::Float, F(1.0)),
        ],
    },
    OpSpec {
        name: "dropout",
        arity: Arity::One,
        params: &[p("p", Kind::Prob, R)],
    },
    OpSpec {
        name: "flatten",
        arity: Arity::One,
        params: NONE,
    },
    OpSpec {
        name: "linear",
        arity: Arity::One,
        params: &[p("out", Kind::Size, R), p("bias", Kind::Bool, B(true))],
    },
    OpSpec {
        name: "concat",
        arity: Arity::Many,
        params: NONE,
    },
    OpSpec {
        name: "add",
        arity: Arity::Many,
        params: NONE,
    },
    OpSpec {
        name: "softmax",
        arity: Arity::One,
        params: NONE,
    },
];

/// The losses, allowed only in `loss` lines: two tensor arguments each.
pub const LOSSES: &[&str] = &["ce", "mse"];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    OPS.iter().find(|s| s.name == name)
}

/// Arguments bound to an op's parameters (defaults not yet filled).
pub trait ArgSource {
    /// The value given for `name`, if any.
    fn get(&self, name: &str) -> Option<&Value>;
}

/// A mistake in an op's arguments or input shapes. `arg` names the argument to point at,
/// when one is to blame; otherwise the whole stage is.
#[derive(Clone, Debug, PartialEq)]
pub struct OpError {
    pub message: String,
    pub arg: Option<&'static str>,
    pub help: Option<String>,
}

impl OpError {
    fn new(message: impl Into<String>) -> OpError {
        OpError {
            message: message.into(),
            arg: None,
            help: None,
        }
    }

    fn at(mut self, arg: &'static str) -> OpError {
        self.arg = Some(arg);
        self
    }

    fn help(mut self, help: impl Into<String>) -> OpError {
        self.help = Some(help.into());
        self
    }
}

/// Reads a validated argument, falling back to its default.
struct Reader<'a> {
    spec: &'static OpSpec,
    args: &'a dyn ArgSource,
}

impl Reader<'_> {
    fn raw(&self, name: &'static str) -> Result<Value, OpError> {
        if let Some(v) = self.args.get(name) {
            return Ok(v.clone());
        }
        let param = self
            .spec
            .params
            .iter()
            .find(|p| p.name == name)
            .expect("argument is in the spec");
        match param.default {
            ParamDefault::Int(i) => Ok(Value::Int(i)),
            ParamDefault::Float(f) => Ok(Value::Float(f)),
            ParamDefault::Bool(b) => Ok(Value::Bool(b)),
            ParamDefault::Same(other) => self.raw(param_name(self.spec, other)),
            ParamDefault::Required => Err(OpError::new(format!(
                "`{}` needs the argument `{name}`",
                self.spec.name
            ))),
        }
    }

    fn size(&self, name: &'static str) -> Result<usize, OpError> {
        match self.raw(name)? {
            Value::Int(i) => int_in(i, 1, name),
            other => Err(wrong_kind(name, Kind::Size, &other)),
        }
    }

    fn pair(&self, name: &'static str, min: i64) -> Result<Pair, OpError> {
        let kind = if min == 0 { Kind::PairZ } else { Kind::Pair };
        match self.raw(name)? {
            Value::Int(i) => {
                let v = int_in(i, min, name)?;
                Ok([v, v])
            }
            Value::List(items) if items.len() == 2 => {
                let mut out = [0; 2];
                for (o, item) in out.iter_mut().zip(&items) {
                    match item {
                        Value::Int(i) => *o = int_in(*i, min, name)?,
                        other => return Err(wrong_kind(name, kind, other)),
                    }
                }
                Ok(out)
            }
            other => Err(wrong_kind(name, kind, &other)),
        }
    }

    fn bool(&self, name: &'static str) -> Result<bool, OpError> {
        match self.raw(name)? {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_kind(name, Kind::Bool, &other)),
        }
    }

    fn float(&self, name: &'static str, kind: Kind) -> Result<f64, OpError> {
        let v = match self.raw(name)? {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            other => return Err(wrong_kind(name, kind, &other)),
        };
        let ok = v.is_finite()
            && match kind {
                Kind::Positive => v > 0.0,
                Kind::Unit => (0.0..=1.0).contains(&v),
                Kind::Prob => (0.0..1.0).contains(&v),
                _ => true,
            };
        if ok {
            Ok(v)
        } else {
            Err(OpError::new(format!("`{name}` must be {}, found {v}", kind.describe())).at(name))
        }
    }
}

fn param_name(spec: &'static OpSpec, name: &str) -> &'static str {
    spec.params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.name)
        .expect("default refers to a parameter of the same op")
}

fn int_in(i: i64, min: i64, name: &'static str) -> Result<usize, OpError> {
    if i < min {
        let what = if min == 1 { "positive" } else { "non-negative" };
        Err(OpError::new(format!("`{name}` must be {what}, found {i}")).at(name))
    } else if i > MAX_DIM {
        Err(OpError::new(format!("`{name}` = {i} is too large (at most {MAX_DIM})")).at(name))
    } else {
        Ok(i as usize)
    }
}

fn wrong_kind(name: &'static str, kind: Kind, found: &Value) -> OpError {
    OpError::new(format!(
        "`{name}` must be {}, found {}",
        kind.describe(),
        found.describe()
    ))
    .at(name)
}

/// Builds an op from its bound arguments. `invert` is not built here: it needs the conv
/// it inverts (see [`invert`]).
pub fn build(spec: &'static OpSpec, args: &dyn ArgSource) -> Result<Op, OpError> {
    build_op(spec, args).map_err(|mut e| {
        // "`k` must be positive" → "`conv`'s `k` must be positive"
        if let Some(arg) = e.arg {
            if e.message.starts_with(&format!("`{arg}`")) {
                e.message = format!("`{}`'s {}", spec.name, e.message);
            }
        }
        e
    })
}

fn build_op(spec: &'static OpSpec, args: &dyn ArgSource) -> Result<Op, OpError> {
    let r = Reader { spec, args };
    Ok(match spec.name {
        "conv" => {
            let k = r.pair("k", 1)?;
            let dil = r.pair("dil", 1)?;
            let s = r.pair("s", 1)?;
            let p = match r.raw("p")? {
                Value::Str(ref st) if st == "same" => {
                    if s != [1, 1] || k[0] % 2 == 0 || k[1] % 2 == 0 {
                        return Err(OpError::new(format!(
                            "`p=\"same\"` needs stride 1 and an odd kernel, found k={} s={}",
                            pair_str(k),
                            pair_str(s)
                        ))
                        .at("p")
                        .help("give the padding as a number"));
                    }
                    [dil[0] * (k[0] - 1) / 2, dil[1] * (k[1] - 1) / 2]
                }
                Value::Str(other) => {
                    return Err(OpError::new(format!(
                        "`p` must be {}, found \"{other}\"",
                        Kind::Pad.describe()
                    ))
                    .at("p"))
                }
                _ => r.pair("p", 0)?,
            };
            Op::Conv(Conv {
                out: r.size("out")?,
                k,
                s,
                p,
                dil,
                groups: r.size("groups")?,
                bias: r.bool("bias")?,
            })
        }
        "conv_t" => Op::ConvT(ConvT {
            out: r.size("out")?,
            k: r.pair("k", 1)?,
            s: r.pair("s", 1)?,
            p: r.pair("p", 0)?,
            op: r.pair("op", 0)?,
            dil: r.pair("dil", 1)?,
            groups: r.size("groups")?,
            bias: r.bool("bias")?,
            inverts: None,
        }),
        "maxpool" | "avgpool" => {
            let pool = Pool {
                k: r.pair("k", 1)?,
                s: r.pair("s", 1)?,
                p: r.pair("p", 0)?,
                ceil: r.bool("ceil")?,
            };
            if spec.name == "maxpool" {
                Op::MaxPool(pool)
            } else {
                Op::AvgPool(pool)
            }
        }
        "global_avgpool" => Op::GlobalAvgPool,
        "relu" => Op::Relu,
        "sigmoid" => Op::Sigmoid,
        "tanh" => Op::Tanh,
        "leaky_relu" => Op::LeakyRelu {
            slope: r.float("slope", Kind::Float)?,
        },
        "batchnorm" => Op::BatchNorm {
            eps: r.float("eps", Kind::Positive)?,
            momentum: r.float("momentum", Kind::Unit)?,
        },
        "lrn" => Op::Lrn {
            size: r.size("size")?,
            alpha: r.float("alpha", Kind::Float)?,
            beta: r.float("beta", Kind::Float)?,
            k: r.float("k", Kind::Float)?,
        },
        "dropout" => Op::Dropout {
            p: r.float("p", Kind::Prob)?,
        },
        "flatten" => Op::Flatten,
        "linear" => Op::Linear {
            out: r.size("out")?,
            bias: r.bool("bias")?,
        },
        "concat" => Op::Concat,
        "add" => Op::Add,
        "softmax" => Op::Softmax,
        other => unreachable!("op `{other}` has a spec but no builder"),
    })
}

/// `invert(of=c)`: the transposed convolution that undoes conv `c`'s shape change. `of` is
/// the conv, `of_in` its input shape, `of_out` its output shape, `of_path` its path.
pub fn invert(
    of: &Conv,
    of_in: &[usize],
    of_out: &[usize],
    of_path: &str,
    bias: bool,
) -> Result<Op, OpError> {
    let mut op = [0; 2];
    for i in 0..2 {
        let (d, o) = (of_in[i + 1], of_out[i + 1]);
        // (o-1)s - 2p + dil(k-1) + 1 + op = d; the conv's floor makes 0 <= op < s.
        let base = (o - 1) * of.s[i] + of.dil[i] * (of.k[i] - 1) + 1;
        op[i] = d + 2 * of.p[i] - base;
    }
    Ok(Op::ConvT(ConvT {
        out: of_in[0],
        k: of.k,
        s: of.s,
        p: of.p,
        op,
        dil: of.dil,
        groups: 1,
        bias,
        inverts: Some(of_path.to_string()),
    }))
}

impl Op {
    /// The name a user writes for this op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Conv(_) => "conv",
            Op::ConvT(t) if t.inverts.is_some() => "invert",
            Op::ConvT(_) => "conv_t",
            Op::MaxPool(_) => "maxpool",
            Op::AvgPool(_) => "avgpool",
            Op::GlobalAvgPool => "global_avgpool",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Lrn { .. } => "lrn",
            Op::Dropout { .. } => "dropout",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Concat => "concat",
            Op::Add => "add",
            Op::Softmax => "softmax",
        }
    }

    /// Layers that count toward depth, as Table 1 counts them.
    pub fn is_weighted_layer(&self) -> bool {
        matches!(self, Op::Conv(_) | Op::ConvT(_) | Op::Linear { .. })
    }

    /// `7×7/2` for windowed ops.
    pub fn window(&self) -> Option<String> {
        let (k, s) = match self {
            Op::Conv(c) => (c.k, c.s),
            Op::ConvT(c) => (c.k, c.s),
            Op::MaxPool(p) | Op::AvgPool(p) => (p.k, p.s),
            _ => return None,
        };
        let s = if s[0] == s[1] {
            s[0].to_string()
        } else {
            pair_str(s)
        };
        Some(format!("{}×{}/{}", k[0], k[1], s))
    }

    /// Every argument, defaults filled in, as JSON (enough to rebuild the layer elsewhere).
    pub fn attrs(&self) -> Map<String, Json> {
        let v = match self {
            Op::Input(InputKind::Tensor) => json!({}),
            Op::Input(InputKind::Class(n)) => json!({ "classes": n }),
            Op::Conv(c) => json!({
                "out": c.out, "k": c.k, "s": c.s, "p": c.p, "dil": c.dil,
                "groups": c.groups, "bias": c.bias,
            }),
            Op::ConvT(c) => {
                let mut v = json!({
                    "out": c.out, "k": c.k, "s": c.s, "p": c.p, "op": c.op, "dil": c.dil,
                    "groups": c.groups, "bias": c.bias,
                });
                if let Some(of) = &c.inverts {
                    v["of"] = json!(of);
                }
                v
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                json!({ "k": p.k, "s": p.s, "p": p.p, "ceil": p.ceil })
            }
            Op::LeakyRelu { slope } => json!({ "slope": slope }),
            Op::BatchNorm { eps, momentum } => json!({ "eps": eps, "momentum": momentum }),
            Op::Lrn {
                size,
                alpha,
                beta,
                k,
            } => {
                json!({ "size": size, "alpha": alpha, "beta": beta, "k": k })
            }
            Op::Dropout { p } => json!({ "p": p }),
            Op::Linear { out, bias } => json!({ "out": out, "bias": bias }),
            _ => json!({}),
        };
        match v {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }
}

pub fn pair_str(p: Pair) -> String {
    format!("[{}, {}]", p[0], p[1])
}

/// One output size of a window op: `floor((d + 2p - dil(k-1) - 1) / s) + 1`, or with `ceil`
/// PyTorch's ceil mode, which drops a last window that would start past the input and its
/// left padding. `None` when the window does not fit.
pub fn window_out(d: usize, k: usize, s: usize, p: usize, dil: usize, ceil: bool) -> Option<usize> {
    let span = dil * (k - 1) + 1;
    let padded = d + 2 * p;
    if padded < span {
        return None;
    }
    let room = padded - span;
    if !ceil {
        return Some(room / s + 1);
    }
    let mut o = room.div_ceil(s) + 1;
    if (o - 1) * s >= d + p {
        o -= 1;
    }
    Some(o)
}

/// Rows (or columns) of the padded input that a floor-mode window never reaches.
pub fn dropped(d: usize, k: usize, s: usize, p: usize, dil: usize) -> usize {
    (d + 2 * p).saturating_sub(dil * (k - 1) + 1) % s
}

fn expect_image(op: &str, x: &Shape) -> Result<(), OpError> {
    if x.len() == 3 {
        return Ok(());
    }
    let mut e = OpError::new(format!(
        "`{op}` expects an image [C, H, W], found {}",
        shape_str(x)
    ));
    if x.len() == 1 {
        e = e.help(format!(
            "`{op}` works on images; this value is a feature vector"
        ));
    }
    Err(e)
}

fn checked_shape(shape: Shape) -> Result<Shape, OpError> {
    let n: u128 = shape.iter().map(|&d| d as u128).product();
    if n > MAX_ELEMENTS {
        return Err(OpError::new(format!(
            "output {} has {n} elements per sample, more than netc handles ({MAX_ELEMENTS})",
            shape_str(&shape)
        )));
    }
    Ok(shape)
}

/// A window's geometry, per dimension.
struct Window {
    k: Pair,
    s: Pair,
    p: Pair,
    dil: Pair,
    ceil: bool,
}

fn window_shape(op: &str, x: &Shape, out_c: usize, w: Window) -> Result<Shape, OpError> {
    let Window { k, s, p, dil, ceil } = w;
    let mut out = vec![out_c, 0, 0];
    for i in 0..2 {
        let span = dil[i] * (k[i] - 1) + 1;
        out[i + 1] = window_out(x[i + 1], k[i], s[i], p[i], dil[i], ceil).ok_or_else(|| {
            OpError::new(format!(
                "`{op}`'s {} window does not fit its input {} (padding {})",
                if dil[i] > 1 {
                    format!("{}-wide (dilated)", span)
                } else {
                    format!("{}×{}", k[0], k[1])
                },
                shape_str(x),
                pair_str(p)
            ))
            .at("k")
            .help("use a smaller kernel or more padding, or remove a downsampling layer before it")
        })?;
    }
    checked_shape(out)
}

/// The output shape of `op` applied to inputs of shapes `ins`.
pub fn infer(op: &Op, ins: &[&Shape]) -> Result<Shape, OpError> {
    let x = ins[0];
    match op {
        Op::Input(_) => Ok(x.clone()),
        Op::Conv(c) => {
            expect_image("conv", x)?;
            if x[0] % c.groups != 0 || c.out % c.groups != 0 {
                return Err(OpError::new(format!(
                    "`groups={}` must divide both the input channels ({}) and `out` ({})",
                    c.groups, x[0], c.out
                ))
                .at("groups"));
            }
            weights_fit(c.out as u128 * (x[0] / c.groups) as u128 * (c.k[0] * c.k[1]) as u128)?;
            window_shape(
                "conv",
                x,
                c.out,
                Window {
                    k: c.k,
                    s: c.s,
                    p: c.p,
                    dil: c.dil,
                    ceil: false,
                },
            )
        }
        Op::ConvT(c) => {
            let name = op.name();
            expect_image(name, x)?;
            if x[0] % c.groups != 0 || c.out % c.groups != 0 {
                return Err(OpError::new(format!(
                    "`groups={}` must divide both the input channels ({}) and `out` ({})",
                    c.groups, x[0], c.out
                ))
                .at("groups"));
            }
            for i in 0..2 {
                if c.op[i] >= c.s[i].max(c.dil[i]) {
                    return Err(OpError::new(format!(
                        "output padding `op={}` must be smaller than the stride ({}) or the dilation ({})",
                        pair_str(c.op),
                        pair_str(c.s),
                        pair_str(c.dil)
                    ))
                    .at("op"));
                }
            }
            weights_fit(x[0] as u128 * (c.out / c.groups) as u128 * (c.k[0] * c.k[1]) as u128)?;
            let mut out = vec![c.out, 0, 0];
            for i in 0..2 {
                // (H-1)s - 2p + dil(k-1) + op + 1
                let full = (x[i + 1] as u128 - 1) * c.s[i] as u128
                    + (c.dil[i] * (c.k[i] - 1)) as u128
                    + c.op[i] as u128
                    + 1;
                let crop = 2 * c.p[i] as u128;
                if full <= crop {
                    return Err(OpError::new(format!(
                        "`{name}` on {} with k={} s={} p={} has no output: padding crops everything",
                        shape_str(x),
                        pair_str(c.k),
                        pair_str(c.s),
                        pair_str(c.p)
                    ))
                    .at("p"));
                }
                out[i + 1] = usize::try_from(full - crop).unwrap_or(usize::MAX);
            }
            checked_shape(out)
        }
        Op::MaxPool(pl) | Op::AvgPool(pl) => {
            let name = op.name();
            expect_image(name, x)?;
            for i in 0..2 {
                if 2 * pl.p[i] > pl.k[i] {
                    return Err(OpError::new(format!(
                        "`{name}`'s padding {} is more than half its window {}",
                        pair_str(pl.p),
                        pair_str(pl.k)
                    ))
                    .at("p")
                    .help(
                        "PyTorch requires pad ≤ k/2: a window made only of padding has no value",
                    ));
                }
            }
            window_shape(
                name,
                x,
                x[0],
                Window {
                    k: pl.k,
                    s: pl.s,
                    p: pl.p,
                    dil: [1, 1],
                    ceil: pl.ceil,
                },
            )
        }
        Op::GlobalAvgPool => {
            expect_image("global_avgpool", x)?;
            Ok(vec![x[0], 1, 1])
        }
        Op::Lrn { .. } => {
            expect_image("lrn", x)?;
            Ok(x.clone())
        }
        Op::BatchNorm { .. } => {
            if x.len() != 3 && x.len() != 1 {
                return Err(OpError::new(format!(
                    "`batchnorm` expects [C, H, W] or [F], found {}",
                    shape_str(x)
                )));
            }
            Ok(x.clone())
        }
        Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::LeakyRelu { .. }
        | Op::Dropout { .. }
        | Op::Softmax => Ok(x.clone()),
        Op::Flatten => {
            let n: usize = x.iter().product();
            Ok(vec![n])
        }
        Op::Linear { out, .. } => {
            if x.len() != 1 {
                let mut e = OpError::new(format!(
                    "`linear` expects a feature vector [F], found {}",
                    shape_str(x)
                ));
                if x.len() == 3 {
                    e = e.help("flatten it first: `-> flatten -> linear(..)`");
                }
                return Err(e);
            }
            weights_fit(x[0] as u128 * *out as u128)?;
            Ok(vec![*out])
        }
        Op::Concat => {
            let rank = x.len();
            for (i, y) in ins.iter().enumerate().skip(1) {
                let same = y.len() == rank && (rank != 3 || y[1..] == x[1..]);
                if !same {
                    return Err(OpError::new(format!(
                        "`concat` joins along channels, so every input needs the same H and W; input 1 is {} but input {} is {}",
                        shape_str(x),
                        i + 1,
                        shape_str(y)
                    ))
                    .help("check the strides and padding of the branches"));
                }
            }
            let mut out = x.clone();
            out[0] = ins.iter().map(|s| s[0]).sum();
            checked_shape(out)
        }
        Op::Add => {
            for (i, y) in ins.iter().enumerate().skip(1) {
                if *y != x {
                    return Err(OpError::new(format!(
                        "`add` needs inputs of one shape; input 1 is {} but input {} is {}",
                        shape_str(x),
                        i + 1,
                        shape_str(y)
                    ))
                    .help("project the shortcut with a 1×1 conv of matching channels and stride"));
                }
            }
            Ok(x.clone())
        }
    }
}

fn weights_fit(n: u128) -> Result<(), OpError> {
    if n > MAX_ELEMENTS {
        Err(OpError::new(format!(
            "this layer would have {n} weights, more than netc handles ({MAX_ELEMENTS})"
        )))
    } else {
        Ok(())
    }
}

/// What a layer costs per sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Trainable weights, biases excluded (batchnorm: γ).
    pub weights: u64,
    /// Trainable biases (batchnorm: β).
    pub biases: u64,
    /// Multiply-accumulates per sample.
    pub macs: u64,
}

impl Cost {
    pub fn params(&self) -> u64 {
        self.weights + self.biases
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.weights = self.weights.saturating_add(o.weights);
        self.biases = self.biases.saturating_add(o.biases);
        self.macs = self.macs.saturating_add(o.macs);
    }
}

/// Parameters and MACs of `op` with input shape `x` and output shape `y` (LANGUAGE.md
/// "Meaning": a conv costs `weights·Ho·Wo`, a conv_t `weights·H·W`, a linear `F·out`).
pub fn cost(op: &Op, x: &Shape, y: &Shape) -> Cost {
    let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    match op {
        Op::Conv(c) => {
            let w = c.out as u128 * (x[0] / c.groups) as u128 * (c.k[0] * c.k[1]) as u128;
            Cost {
                weights: sat(w),
                biases: if c.bias { c.out as u64 } else { 0 },
                macs: sat(w * (y[1] * y[2]) as u128),
            }
        }
        Op::ConvT(c) => {
            let w = x[0] as u128 * (c.out / c.groups) as u128 * (c.k[0] * c.k[1]) as u128;
            Cost {
                weights: sat(w),
                biases: if c.bias { c.out as u64 } else { 0 },
                macs: sat(w * (x[1] * x[2]) as u128),
            }
        }
        Op::Linear { out, bias } => {
            let w = x[0] as u128 * *out as u128;
            Cost {
                weights: sat(w),
                biases: if *bias { *out as u64 } else { 0 },
                macs: sat(w),
            }
        }
        Op::BatchNorm { .. } => Cost {
            weights: x[0] as u64,
            biases: x[0] as u64,
            macs: 0,
        },
        _ => Cost::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_out_matches_pytorch_floor_and_ceil() {
        // GoogLeNet's pools: 112 -> 56 with k=3 s=2 p=1.
        assert_eq!(window_out(112, 3, 2, 1, 1, false), Some(56));
        // Caffe-style ceil pools: 112 -> 56 with p=0.
        assert_eq!(window_out(112, 3, 2, 0, 1, true), Some(56));
        // Ceil mode drops a last window starting in the right padding: d=4 k=2 s=2 p=1
        // gives ceil(4/2)+1 = 3 windows starting at -1, 1, 3; all start inside d+p = 5.
        assert_eq!(window_out(4, 2, 2, 1, 1, true), Some(3));
        // d=5 k=2 s=2 p=1: ceil(5/2)+1 = 4 windows, starting at 0, 2, 4, 6 of the padded
        // input; the last starts at 6 >= d + p = 6, past the input, and is dropped.
        assert_eq!(window_out(5, 2, 2, 1, 1, true), Some(3));
        // d=6 k=3 s=3 p=1: ceil(5/3)+1 = 3, third starts at 6-1=5 < 7 -> 3.
        assert_eq!(window_out(6, 3, 3, 1, 1, true), Some(3));
        // d=5 k=3 s=2 p=1: floor 3, ceil 3.
        assert_eq!(window_out(5, 3, 2, 1, 1, true), Some(3));
        // d=2 k=2 s=2 p=1: ceil(2/2)+1 = 2; second starts at 2 >= d+p=3? no, keep 2.
        assert_eq!(window_out(2, 2, 2, 1, 1, true), Some(2));
        // d=1 k=1 s=2 p=0 ceil: room 0 -> 1 window.
        assert_eq!(window_out(1, 1, 2, 0, 1, true), Some(1));
        // The dropping rule: d=3 k=1 s=2 p=0... use d=2,k=1,s=2: ceil((2-1)/2)+1 = 2, the
        // second starts at 2 >= d+p = 2 -> dropped.
        assert_eq!(window_out(2, 1, 2, 0, 1, true), Some(1));
        // Dilation: 3x3 dil 2 spans 5.
        assert_eq!(window_out(7, 3, 1, 0, 2, false), Some(3));
        assert_eq!(window_out(4, 3, 1, 0, 2, false), None);
    }

    #[test]
    fn dropped_counts_unreached_rows() {
        assert_eq!(dropped(224, 7, 2, 3, 1), 1);
        assert_eq!(dropped(14, 5, 3, 0, 1), 0);
        assert_eq!(dropped(28, 3, 1, 1, 1), 0);
    }
}
