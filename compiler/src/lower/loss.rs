//! Lowering of the `loss` line: each term's kind, weight and arguments, checked against
//! what the loss reads (`ce`: logits `[C]` and a `class(C)` label, and its `smoothing`;
//! `mse`, `l1` and `bce`: two tensors of one shape).

use super::*;

impl<'p> Lowerer<'p> {
    pub(super) fn loss(&mut self, l: &'p ast::Loss) {
        for t in &l.terms {
            let ti = self.loss_terms;
            self.loss_terms += 1;
            let kind = match t.call.callee.name.as_str() {
                "ce" => LossKind::Ce,
                "mse" => LossKind::Mse,
                "l1" => LossKind::L1,
                "bce" => LossKind::Bce,
                _ => continue, // reported by resolve
            };
            let weight = match &t.weight {
                None => 1.0,
                Some(ast::LossWeight::Number(w, _)) => *w,
                Some(ast::LossWeight::Name(id)) => match self.lookup(0, &id.name) {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    Value::Poison => continue,
                    other => {
                        self.error(
                            Diagnostic::error(
                                "bad-weight",
                                format!(
                                    "a loss weight must be a number, found {}",
                                    other.describe()
                                ),
                            )
                            .label(id.span, "not a number"),
                        );
                        continue;
                    }
                },
            };
            if !weight.is_finite() {
                self.error(
                    Diagnostic::error("bad-weight", "a loss weight must be a finite number")
                        .label(t.span, ""),
                );
                continue;
            }
            let base = format!("loss.{ti}");
            let mut args = self.args(0, &t.call.args, &base, 0, &|_| None);
            let mut smoothing = 0.0;
            if let Some(i) = args
                .iter()
                .position(|a| kind == LossKind::Ce && a.name.is_some_and(|n| n.name == "smoothing"))
            {
                let a = args.remove(i);
                match a.value {
                    Value::Int(v) if v == 0 || v == 1 => smoothing = v as f64,
                    Value::Float(v) if (0.0..=1.0).contains(&v) => smoothing = v,
                    Value::Poison => continue,
                    other => {
                        self.error(
                            Diagnostic::error(
                                "bad-argument",
                                format!(
                                    "`ce`'s `smoothing` must be a number from 0 to 1, found {}",
                                    other.describe()
                                ),
                            )
                            .label(a.span, "here"),
                        );
                        continue;
                    }
                }
            }
            if let Some(a) = args.iter().find(|a| a.name.is_some()) {
                let takes = match kind {
                    LossKind::Ce => "two positional arguments and `smoothing`",
                    _ => "two positional arguments",
                };
                self.error(
                    Diagnostic::error(
                        "unknown-argument",
                        format!("`{}` takes {takes}", kind.name()),
                    )
                    .label(a.span, "named argument")
                    .help(kind.usage()),
                );
                continue;
            }
            if args.len() != 2 {
                self.error(
                    Diagnostic::error(
                        "arity",
                        format!(
                            "`{}` takes two arguments, found {}",
                            kind.name(),
                            args.len()
                        ),
                    )
                    .label(t.call.span, "")
                    .help(kind.usage()),
                );
                continue;
            }
            if args.iter().any(|a| a.value.is_poison()) {
                continue;
            }
            let (Value::Tensor(a), Value::Tensor(b)) = (&args[0].value, &args[1].value) else {
                let bad = args
                    .iter()
                    .find(|a| !matches!(a.value, Value::Tensor(_)))
                    .unwrap();
                self.error(
                    Diagnostic::error(
                        "not-a-tensor",
                        format!(
                            "`{}` compares tensors, found {}",
                            kind.name(),
                            bad.value.describe()
                        ),
                    )
                    .label(bad.span, "not a tensor"),
                );
                continue;
            };
            let (a, b) = (*a, *b);
            let (na, nb) = (self.graph.node(a), self.graph.node(b));
            let ok = match kind {
                LossKind::Ce => match (&na.op, &nb.op) {
                    (Op::Input(InputKind::Class(_)), _) => Err((
                        args[0].span,
                        "the logits come first: `ce(logits, label)`".to_string(),
                    )),
                    (_, Op::Input(InputKind::Class(c))) => {
                        if na.shape == [*c] {
                            Ok(())
                        } else {
                            Err((
                                args[0].span,
                                format!(
                                    "`ce` needs logits [{c}] for `{}` (class({c})), found {}",
                                    nb.path,
                                    shape_str(&na.shape)
                                ),
                            ))
                        }
                    }
                    _ => Err((
                        args[1].span,
                        "the second argument of `ce` must be a `class(N)` input".to_string(),
                    )),
                },
                LossKind::Mse | LossKind::L1 | LossKind::Bce => {
                    let label = |n: &Node| matches!(n.op, Op::Input(InputKind::Class(_)));
                    let name = kind.name();
                    if label(na) || label(nb) {
                        Err((
                            t.call.span,
                            format!("`{name}` compares tensors, not class labels"),
                        ))
                    } else if na.shape != nb.shape {
                        Err((
                            t.call.span,
                            format!(
                                "`{name}` needs two tensors of one shape, found {} and {}",
                                shape_str(&na.shape),
                                shape_str(&nb.shape)
                            ),
                        ))
                    } else {
                        Ok(())
                    }
                }
            };
            match ok {
                Ok(()) => self.graph.losses.push(LossTerm {
                    kind,
                    weight,
                    smoothing,
                    inputs: [a, b],
                    span: t.span,
                }),
                Err((span, msg)) => {
                    self.error(Diagnostic::error("shape", msg).label(span, "here"));
                }
            }
        }
    }
}
