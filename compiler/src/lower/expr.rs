//! Values of expressions: consts (evaluated once, cycles reported), literals, lists and
//! integer arithmetic, which stays integer when exact so that sizes are never floored.

use super::*;

impl<'p> Lowerer<'p> {
    pub(super) fn const_named(&mut self, c: &'p ast::Const) -> Value {
        match self.consts.get(&c.name.name) {
            Some(ConstState::Done(v)) => return v.clone(),
            Some(ConstState::Busy) => {
                return self.error(
                    Diagnostic::error("cycle", format!("const `{}` depends on itself", c.name))
                        .label(c.name.span, "defined in terms of itself"),
                );
            }
            None => {}
        }
        self.consts.insert(c.name.name.clone(), ConstState::Busy);
        let v = self.const_expr(&c.value);
        let v = match v {
            Value::Tensor(_) => self.error(
                Diagnostic::error(
                    "not-constant",
                    "a const must be a number, string, bool or list",
                )
                .label(c.value.span, "not a constant"),
            ),
            v => v,
        };
        self.consts
            .insert(c.name.name.clone(), ConstState::Done(v.clone()));
        v
    }

    /// Evaluates an expression that may only use consts (input shapes, const values, train
    /// settings). Unlike bodies, these are not resolved beforehand, so names are checked here.
    pub(super) fn const_expr(&mut self, e: &'p Expr) -> Value {
        match &e.kind {
            ExprKind::Chain(c) => {
                let Some(id) = e.as_name() else {
                    return self.error(
                        Diagnostic::error("not-constant", "expected a constant value here")
                            .label(c.span, "layers cannot appear here"),
                    );
                };
                match self.defs.consts.get(id.name.as_str()) {
                    Some(c) => self.const_named(c),
                    None => {
                        let hint = did_you_mean(&id.name, self.defs.consts.keys().copied());
                        self.error(
                            Diagnostic::error("undefined", format!("undefined const `{id}`"))
                                .label(id.span, "not defined")
                                .maybe_help(hint),
                        )
                    }
                }
            }
            _ => self.expr_with(e, &mut |l, e| l.const_expr(e)),
        }
    }

    /// Evaluates an expression in body scope `s`; chains are named under `base`.
    pub(super) fn expr(&mut self, s: usize, e: &'p Expr, base: &str) -> Value {
        match &e.kind {
            ExprKind::Chain(c) => self.chain(s, c, base),
            _ => self.expr_with(e, &mut |l, e| l.expr(s, e, base)),
        }
    }

    /// Literals, lists and arithmetic, with `sub` for operands.
    pub(super) fn expr_with(
        &mut self,
        e: &'p Expr,
        sub: &mut dyn FnMut(&mut Self, &'p Expr) -> Value,
    ) -> Value {
        match &e.kind {
            ExprKind::Int(i) => Value::Int(*i),
            ExprKind::Float(f) => Value::Float(*f),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::List(items) => Value::List(items.iter().map(|i| sub(self, i)).collect()),
            ExprKind::Chain(_) => sub(self, e),
            ExprKind::Neg(a) => match sub(self, a) {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Float(f) => Value::Float(-f),
                Value::Poison => Value::Poison,
                v => self.error(
                    Diagnostic::error("arithmetic", format!("cannot negate {}", v.describe()))
                        .label(e.span, ""),
                ),
            },
            ExprKind::Binary(op, a, b) => {
                let x = sub(self, a);
                let y = sub(self, b);
                self.arith(*op, x, y, e.span, a.span, b.span)
            }
        }
    }

    pub(super) fn arith(
        &mut self,
        op: BinOp,
        x: Value,
        y: Value,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Value {
        use Value::{Float, Int};
        let f = |v: &Value| match v {
            Int(i) => Some(*i as f64),
            Float(f) => Some(*f),
            _ => None,
        };
        match (&x, &y) {
            (Value::Poison, _) | (_, Value::Poison) => Value::Poison,
            (Int(a), Int(b)) => {
                let r = match op {
                    BinOp::Add => a.checked_add(*b),
                    BinOp::Sub => a.checked_sub(*b),
                    BinOp::Mul => a.checked_mul(*b),
                    BinOp::Div if *b == 0 => {
                        return self.error(
                            Diagnostic::error("arithmetic", "division by zero")
                                .label(sb, "this is 0"),
                        )
                    }
                    // Integer arithmetic as in Rust: `7 / 2` is 3.
                    BinOp::Div => a.checked_div(*b),
                };
                match r {
                    Some(v) => Int(v),
                    None => self.error(
                        Diagnostic::error("arithmetic", "integer overflow")
                            .label(span, "too large"),
                    ),
                }
            }
            _ => match (f(&x), f(&y)) {
                (Some(a), Some(b)) => {
                    if op == BinOp::Div && b == 0.0 {
                        return self.error(
                            Diagnostic::error("arithmetic", "division by zero")
                                .label(sb, "this is 0"),
                        );
                    }
                    Float(match op {
                        BinOp::Add => a + b,
                        BinOp::Sub => a - b,
                        BinOp::Mul => a * b,
                        BinOp::Div => a / b,
                    })
                }
                _ => {
                    let (bad, bad_span) = if f(&x).is_none() { (&x, sa) } else { (&y, sb) };
                    let help = if matches!(bad, Value::Tensor(_)) && op == BinOp::Add {
                        Some("to add tensors elementwise, use `add(a, b)`".to_string())
                    } else {
                        None
                    };
                    let msg = format!("`{}` works on numbers, not {}", op.symbol(), bad.describe());
                    self.error(
                        Diagnostic::error("arithmetic", msg)
                            .label(bad_span, "not a number")
                            .maybe_help(help),
                    )
                }
            },
        }
    }

    // ---- chains, ops and blocks -----------------------------------------------------------
}
