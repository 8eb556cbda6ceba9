//! The op table: each op's arguments with their kinds and defaults, and the building of an
//! [`Op`] from arguments bound by the lowering.

use super::{pair_str, Conv, ConvT, Op, OpError, Pair, Pool, MAX_DIM};
use crate::value::Value;

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
    /// A probability in `[0, 1]` (PyTorch accepts a dropout of 1).
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
            Kind::Prob => "a probability in [0, 1]",
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

/// Every built-in op, in docs/language.md's order.
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
                Kind::Prob => (0.0..=1.0).contains(&v),
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
                relu: false,
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
            relu: false,
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
