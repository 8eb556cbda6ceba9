//! The built-in ops of docs/language.md: their arguments (names, kinds, defaults), how each turns
//! input shapes into an output shape, and what each costs in parameters and
//! multiply-accumulates. One table, so that the parser's "did you mean", the shape checker
//! and the report all agree: `spec` holds the table and builds ops from arguments, `shape`
//! infers output shapes, `cost` counts parameters and MACs.

mod cost;
mod shape;
mod spec;

pub use cost::{cost, Cost};
pub use shape::{dropped, infer, unread_input, window_out};
pub use spec::{
    build, invert, lookup, ArgSource, Arity, Kind, OpSpec, Param, ParamDefault, LOSSES, OPS,
};

use serde_json::{json, Map, Value as Json};

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
    /// ReLU applied in the GEMM's epilogue (set by the `epilogue` pass, never by users).
    pub relu: bool,
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
        /// ReLU fused into the GEMM's epilogue by the `epilogue` pass.
        relu: bool,
    },
    Concat,
    Add,
    Softmax,
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
    pub(crate) fn new(message: impl Into<String>) -> OpError {
        OpError {
            message: message.into(),
            arg: None,
            help: None,
        }
    }

    pub(crate) fn at(mut self, arg: &'static str) -> OpError {
        self.arg = Some(arg);
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> OpError {
        self.help = Some(help.into());
        self
    }
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
            Op::Conv(c) => {
                let mut v = json!({
                    "out": c.out, "k": c.k, "s": c.s, "p": c.p, "dil": c.dil,
                    "groups": c.groups, "bias": c.bias,
                });
                if c.relu {
                    v["relu"] = json!(true);
                }
                v
            }
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
            Op::Linear { out, bias, relu } => {
                let mut v = json!({ "out": out, "bias": bias });
                if *relu {
                    v["relu"] = json!(true);
                }
                v
            }
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

/// The product of sizes, saturating: callers compare it with [`MAX_ELEMENTS`], so an
/// overflow must read as "too large", never wrap around.
pub(crate) fn product(sizes: &[usize]) -> u128 {
    sizes
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128))
}
