//! Lowering of the `loss` line: each term's kind, weight and arguments, checked against
//! what the loss reads (`ce`: logits `[C]` and a `class(C)` label; `mse`: two equal shapes).

use super::*;

impl<'p> Lowerer<'p> {
    pub(super) fn loss(&mut self, l: &'p ast::Loss) {
        for t in &l.terms {
            let ti = self.loss_terms;
            self.loss_terms += 1;
            let kind = match t.call.callee.name.as_str() {
                "ce" => LossKind::Ce,
                "mse" => LossKind::Mse,
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
            let args = self.args(0, &t.call.args, &base, 0, &|_| None);
            if let Some(a) = args.iter().find(|a| a.name.is_some()) {
                self.error(
                    Diagnostic::error(
                        "unknown-argument",
                        format!("`{}` takes two positional arguments", kind.name()),
                    )
                    .label(a.span, "named argument"),
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
                    .help(match kind {
                        LossKind::Ce => "`ce(logits, label)`",
                        LossKind::Mse => "`mse(prediction, target)`",
                    }),
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
                LossKind::Mse => {
                    let label = |n: &Node| matches!(n.op, Op::Input(InputKind::Class(_)));
                    if label(na) || label(nb) {
                        Err((
                            t.call.span,
                            "`mse` compares tensors, not class labels".to_string(),
                        ))
                    } else if na.shape != nb.shape {
                        Err((
                            t.call.span,
                            format!(
                                "`mse` needs two tensors of one shape, found {} and {}",
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
