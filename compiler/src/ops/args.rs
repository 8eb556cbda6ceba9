//! The op table: each op's arguments with their kinds and defaults, and the building of an
//! [`Op`] from arguments bound by the lowering.

use super::{Op, OpError, Pair, MAX_DIM};
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
    /// An integer ≥ 0.
    Index,
    /// One of the listed strings.
    Choice(&'static [&'static str]),
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
            Kind::Index => "a non-negative integer",
            Kind::Choice(_) => "one of the listed strings",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamDefault {
    Required,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
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
    /// Builds the op from its arguments (`invert` is built by the lowering, which knows
    /// the conv it inverts).
    pub build: fn(&Reader) -> Result<Op, OpError>,
}

pub(crate) const fn p(name: &'static str, kind: Kind, default: ParamDefault) -> Param {
    Param {
        name,
        kind,
        default,
    }
}

/// The losses, allowed only in `loss` lines: two tensor arguments each.
pub const LOSSES: &[&str] = &["ce", "mse", "l1", "bce"];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    super::all().iter().find(|s| s.name == name)
}

/// Arguments bound to an op's parameters (defaults not yet filled).
pub trait ArgSource {
    /// The value given for `name`, if any.
    fn get(&self, name: &str) -> Option<&Value>;
}

/// Reads a validated argument, falling back to its default.
pub struct Reader<'a> {
    pub spec: &'static OpSpec,
    args: &'a dyn ArgSource,
}

impl Reader<'_> {
    pub fn raw(&self, name: &'static str) -> Result<Value, OpError> {
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
            ParamDefault::Str(st) => Ok(Value::Str(st.to_string())),
            ParamDefault::Same(other) => self.raw(param_name(self.spec, other)),
            ParamDefault::Required => Err(OpError::new(format!(
                "`{}` needs the argument `{name}`",
                self.spec.name
            ))),
        }
    }

    pub fn size(&self, name: &'static str) -> Result<usize, OpError> {
        match self.raw(name)? {
            Value::Int(i) => int_in(i, 1, name),
            other => Err(wrong_kind(name, Kind::Size, &other)),
        }
    }

    pub fn pair(&self, name: &'static str, min: i64) -> Result<Pair, OpError> {
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

    /// An integer ≥ 0.
    pub fn index(&self, name: &'static str) -> Result<usize, OpError> {
        match self.raw(name)? {
            Value::Int(i) => int_in(i, 0, name),
            other => Err(wrong_kind(name, Kind::Index, &other)),
        }
    }

    /// One of the strings `kind` lists.
    pub fn choice(&self, name: &'static str, kind: Kind) -> Result<&'static str, OpError> {
        let Kind::Choice(options) = kind else {
            unreachable!("`choice` reads choice arguments")
        };
        let listed = options
            .iter()
            .map(|o| format!("\"{o}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        match self.raw(name)? {
            Value::Str(st) => options.iter().find(|o| **o == st).copied().ok_or_else(|| {
                OpError::new(format!("`{name}` must be {listed}, found \"{st}\"")).at(name)
            }),
            other => Err(OpError::new(format!(
                "`{name}` must be {listed}, found {}",
                other.describe()
            ))
            .at(name)),
        }
    }

    pub fn bool(&self, name: &'static str) -> Result<bool, OpError> {
        match self.raw(name)? {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_kind(name, Kind::Bool, &other)),
        }
    }

    pub fn float(&self, name: &'static str, kind: Kind) -> Result<f64, OpError> {
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
    (spec.build)(&Reader { spec, args })
}
