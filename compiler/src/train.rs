//! The `train { }` section: defaults for the generated trainer (optimizer, batch, epochs,
//! init, seed, schedule), checked here so that a typo is an error at compile time rather
//! than a surprise at run time.

use netc_dsl::ast::{self, ExprKind, Target};
use netc_dsl::diag::did_you_mean;
use netc_dsl::{Diagnostic, Span};
use serde_json::{json, Value as Json};

use crate::value::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    /// Adam; `decoupled` is AdamW (weight decay applied to the weights, not the gradient).
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    He,
    Xavier,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Step { every: u64, gamma: f64 },
    Cosine,
}

/// What `train { }` says; `None` where it is silent (the trainer's defaults apply).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Option<Optimizer>,
    pub batch: Option<u64>,
    pub epochs: Option<u64>,
    pub init: Option<Init>,
    pub seed: Option<u64>,
    pub schedule: Option<Schedule>,
}

/// The settings a `train { }` section may give.
pub const KEYS: &[&str] = &["optimizer", "batch", "epochs", "init", "seed", "schedule"];

impl TrainConfig {
    pub fn to_json(&self) -> Json {
        let mut m = serde_json::Map::new();
        if let Some(o) = &self.optimizer {
            m.insert(
                "optimizer".into(),
                match o {
                    Optimizer::Sgd {
                        lr,
                        momentum,
                        weight_decay,
                        nesterov,
                    } => json!({"name": "sgd", "lr": lr, "momentum": momentum,
                                "weight_decay": weight_decay, "nesterov": nesterov}),
                    Optimizer::Adam {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        decoupled,
                    } => json!({"name": if *decoupled { "adamw" } else { "adam" }, "lr": lr,
                                "beta1": beta1, "beta2": beta2, "eps": eps,
                                "weight_decay": weight_decay}),
                },
            );
        }
        if let Some(b) = self.batch {
            m.insert("batch".into(), json!(b));
        }
        if let Some(e) = self.epochs {
            m.insert("epochs".into(), json!(e));
        }
        if let Some(i) = self.init {
            m.insert(
                "init".into(),
                json!(match i {
                    Init::He => "he",
                    Init::Xavier => "xavier",
                }),
            );
        }
        if let Some(s) = self.seed {
            m.insert("seed".into(), json!(s));
        }
        if let Some(s) = &self.schedule {
            m.insert(
                "schedule".into(),
                match s {
                    Schedule::Step { every, gamma } => {
                        json!({"name": "step", "every": every, "gamma": gamma})
                    }
                    Schedule::Cosine => json!({"name": "cosine"}),
                },
            );
        }
        Json::Object(m)
    }
}

/// Reads a `train { }` section. `eval` evaluates a constant expression (consts allowed).
pub fn lower<'a>(
    train: &'a ast::Train,
    eval: &mut dyn FnMut(&'a ast::Expr) -> Value,
    diags: &mut Vec<Diagnostic>,
) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for e in &train.entries {
        let key = e.key.name.as_str();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            diags.push(
                Diagnostic::error("duplicate", format!("`{key}` is set twice in `train`"))
                    .label(e.key.span, "set again here")
                    .label(*first, "first set here"),
            );
            continue;
        }
        seen.push((key, e.key.span));
        let r = match key {
            "optimizer" => optimizer(&e.value, eval).map(|o| cfg.optimizer = Some(o)),
            "batch" => count(key, &e.value, eval, 1).map(|v| cfg.batch = Some(v)),
            "epochs" => count(key, &e.value, eval, 1).map(|v| cfg.epochs = Some(v)),
            "seed" => count(key, &e.value, eval, 0).map(|v| cfg.seed = Some(v)),
            "init" => match word(&e.value) {
                Some("he") => Ok(Init::He),
                Some("xavier") => Ok(Init::Xavier),
                _ => Err(choice(&e.value, "init", &["he", "xavier"])),
            }
            .map(|i| cfg.init = Some(i)),
            "schedule" => schedule(&e.value, eval).map(|s| cfg.schedule = Some(s)),
            _ => Err(Diagnostic::error(
                "unknown-setting",
                format!(
                    "unknown training setting `{}`",
                    netc_dsl::ast::source_name(key)
                ),
            )
            .label(e.key.span, "not a setting")
            .help(
                did_you_mean(key, KEYS.iter().copied())
                    .unwrap_or_else(|| format!("the settings are {}", quoted(KEYS))),
            )),
        };
        if let Err(d) = r {
            diags.push(d);
        }
    }
    cfg
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bare word an expression is (`xavier`, `cosine`; `xavier()` too).
fn word(e: &ast::Expr) -> Option<&str> {
    match call_of(e) {
        Some((id, [])) => Some(id.name.as_str()),
        _ => None,
    }
}

fn choice(e: &ast::Expr, key: &str, options: &[&str]) -> Diagnostic {
    let name = word(e).or_else(|| call_of(e).map(|(c, _)| c.name.as_str()));
    let found = name
        .map(|w| format!("`{w}`"))
        .unwrap_or_else(|| "something else".to_string());
    Diagnostic::error(
        "bad-setting",
        format!("`{key}` must be one of {}, found {found}", quoted(options)),
    )
    .label(e.span, "not an option")
    .maybe_help(name.and_then(|w| did_you_mean(w, options.iter().copied())))
}

fn count<'a>(
    key: &str,
    e: &'a ast::Expr,
    eval: &mut dyn FnMut(&'a ast::Expr) -> Value,
    min: i64,
) -> Result<u64, Diagnostic> {
    match eval(e) {
        Value::Int(i) if i >= min => Ok(i as u64),
        Value::Poison => Err(Diagnostic::error("poison", "")),
        v => Err(Diagnostic::error(
            "bad-setting",
            format!(
                "`{key}` must be {} integer, found {}",
                if min == 0 {
                    "a non-negative"
                } else {
                    "a positive"
                },
                v.describe()
            ),
        )
        .label(e.span, "here")),
    }
}

/// The call a setting is (`sgd(lr=0.1)`), or a bare word as a call without arguments.
fn call_of(e: &ast::Expr) -> Option<(&ast::Ident, &[ast::Arg])> {
    match &e.kind {
        ExprKind::Chain(c) if c.stages.is_empty() => match &c.head.target {
            Target::Call(call) => Some((&call.callee, &call.args)),
            Target::Name(id) => Some((id, &[])),
        },
        _ => None,
    }
}

/// What a setting's argument accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    /// A number > 0 (learning rates, eps, gamma).
    Positive,
    /// A number >= 0 (weight decay).
    NonNeg,
    /// A number in [0, 1) (momentum, Adam's betas).
    Unit,
    /// A whole number >= 1.
    Count,
    Bool,
}

impl Range {
    fn describe(self) -> &'static str {
        match self {
            Range::Positive => "a positive number",
            Range::NonNeg => "a non-negative number",
            Range::Unit => "a number in [0, 1)",
            Range::Count => "a positive integer",
            Range::Bool => "`true` or `false`",
        }
    }

    /// The value as a number (a bool as 0 or 1), if it is in range.
    fn check(self, v: &Value) -> Option<f64> {
        let x = match (self, v) {
            (Range::Bool, Value::Bool(b)) => return Some(f64::from(u8::from(*b))),
            (Range::Bool, _) | (_, Value::Bool(_)) => return None,
            (Range::Count, Value::Int(i)) => return (*i >= 1).then_some(*i as f64),
            (Range::Count, _) => return None,
            (_, Value::Int(i)) => *i as f64,
            (_, Value::Float(f)) => *f,
            _ => return None,
        };
        let ok = x.is_finite()
            && match self {
                Range::Positive => x > 0.0,
                Range::NonNeg => x >= 0.0,
                Range::Unit => (0.0..1.0).contains(&x),
                Range::Count | Range::Bool => true,
            };
        ok.then_some(x)
    }
}

/// One argument of a setting's call: its name, what it accepts, its default (`None`:
/// required).
type Setting<'s> = (&'s str, Range, Option<f64>);

/// Binds the arguments of a setting's call to `params` and checks each against its range.
fn settings<'a>(
    callee: &ast::Ident,
    args: &'a [ast::Arg],
    params: &[Setting],
    eval: &mut dyn FnMut(&'a ast::Expr) -> Value,
) -> Result<Vec<f64>, Diagnostic> {
    let names: Vec<&str> = params.iter().map(|p| p.0).collect();
    let mut vals: Vec<Option<(Value, Span)>> = vec![None; params.len()];
    for (i, a) in args.iter().enumerate() {
        let slot = match &a.name {
            Some(n) => names.iter().position(|p| *p == n.name).ok_or_else(|| {
                Diagnostic::error(
                    "unknown-argument",
                    format!("`{}` has no argument `{}`", callee.name, n.name),
                )
                .label(n.span, "unknown argument")
                .help(
                    did_you_mean(&n.name, names.iter().copied())
                        .unwrap_or_else(|| format!("its arguments are {}", quoted(&names))),
                )
            })?,
            None if i < params.len() => i,
            None => {
                return Err(Diagnostic::error(
                    "too-many-arguments",
                    format!("`{}` takes at most {} arguments", callee.name, params.len()),
                )
                .label(a.span, "extra argument"))
            }
        };
        if vals[slot].is_some() {
            return Err(Diagnostic::error(
                "duplicate",
                format!("`{}` is given twice", names[slot]),
            )
            .label(a.span, "given again here"));
        }
        vals[slot] = Some((eval(&a.value), a.value.span));
    }
    let mut out = Vec::new();
    for (&(name, range, default), v) in params.iter().zip(vals) {
        let x = match (v, default) {
            (Some((Value::Poison, _)), _) => return Err(Diagnostic::error("poison", "")),
            (Some((v, span)), _) => range.check(&v).ok_or_else(|| {
                Diagnostic::error(
                    "bad-setting",
                    format!(
                        "`{}`'s `{name}` must be {}, found {}",
                        callee.name,
                        range.describe(),
                        v.describe()
                    ),
                )
                .label(span, "out of range")
            })?,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(Diagnostic::error(
                    "missing-argument",
                    format!("`{}` needs the argument `{name}`", callee.name),
                )
                .label(callee.span, format!("`{name}` missing")))
            }
        };
        out.push(x);
    }
    Ok(out)
}

fn optimizer<'a>(
    e: &'a ast::Expr,
    eval: &mut dyn FnMut(&'a ast::Expr) -> Value,
) -> Result<Optimizer, Diagnostic> {
    let options = ["sgd", "adam", "adamw"];
    let Some((callee, args)) = call_of(e) else {
        return Err(choice(e, "optimizer", &options));
    };
    match callee.name.as_str() {
        "sgd" => {
            let v = settings(
                callee,
                args,
                &[
                    ("lr", Range::Positive, None),
                    ("momentum", Range::Unit, Some(0.0)),
                    ("weight_decay", Range::NonNeg, Some(0.0)),
                    ("nesterov", Range::Bool, Some(0.0)),
                ],
                eval,
            )?;
            Ok(Optimizer::Sgd {
                lr: v[0],
                momentum: v[1],
                weight_decay: v[2],
                nesterov: v[3] != 0.0,
            })
        }
        "adam" | "adamw" => {
            let decoupled = callee.name == "adamw";
            let v = settings(
                callee,
                args,
                &[
                    ("lr", Range::Positive, None),
                    ("beta1", Range::Unit, Some(0.9)),
                    ("beta2", Range::Unit, Some(0.999)),
                    ("eps", Range::Positive, Some(1e-8)),
                    (
                        "weight_decay",
                        Range::NonNeg,
                        Some(if decoupled { 0.01 } else { 0.0 }),
                    ),
                ],
                eval,
            )?;
            Ok(Optimizer::Adam {
                lr: v[0],
                beta1: v[1],
                beta2: v[2],
                eps: v[3],
                weight_decay: v[4],
                decoupled,
            })
        }
        _ => Err(choice(e, "optimizer", &options)),
    }
}

fn schedule<'a>(
    e: &'a ast::Expr,
    eval: &mut dyn FnMut(&'a ast::Expr) -> Value,
) -> Result<Schedule, Diagnostic> {
    let options = ["step", "cosine"];
    let Some((callee, args)) = call_of(e) else {
        return Err(choice(e, "schedule", &options));
    };
    match callee.name.as_str() {
        "cosine" => {
            settings(callee, args, &[], eval)?;
            Ok(Schedule::Cosine)
        }
        "step" => {
            let v = settings(
                callee,
                args,
                &[
                    ("every", Range::Count, None),
                    ("gamma", Range::Positive, None),
                ],
                eval,
            )?;
            Ok(Schedule::Step {
                every: v[0] as u64,
                gamma: v[1],
            })
        }
        _ => Err(choice(e, "schedule", &options)),
    }
}
