//! The arguments of a block call bound to its parameters: positional ones in order, then
//! those given by name, then the defaults of the parameters left out (docs/language.md
//! "Blocks"). A default is a constant expression of consts, evaluated where it is used.

use netc_dsl::ast::source_name;

use super::*;

impl<'p> Lowerer<'p> {
    /// Each parameter's value, or `None` after reporting why the call is wrong.
    pub(super) fn bind_block_args(
        &mut self,
        block: &'p ast::Block,
        span: Span,
        args: Vec<ArgVal<'p>>,
    ) -> Option<HashMap<String, Value>> {
        let mut values: HashMap<String, Value> = HashMap::new();
        let mut given: HashMap<&str, Span> = HashMap::new();
        let mut positional = 0;
        for a in &args {
            let param = match a.name {
                None => {
                    let Some(p) = block.params.get(positional) else {
                        self.error(
                            Diagnostic::error(
                                "too-many-arguments",
                                format!(
                                    "block `{}` takes {} arguments",
                                    block.name,
                                    block.params.len()
                                ),
                            )
                            .label(a.span, "extra argument")
                            .help(format!("its parameters are {}", block_params(block))),
                        );
                        return None;
                    };
                    positional += 1;
                    p
                }
                Some(id) => match block.params.iter().find(|p| p.name.name == id.name) {
                    Some(p) => p,
                    None => {
                        let names = block.params.iter().map(|p| p.name.name.as_str());
                        let help = did_you_mean(&id.name, names).unwrap_or_else(|| {
                            format!("its parameters are {}", block_params(block))
                        });
                        self.error(
                            Diagnostic::error(
                                "unknown-argument",
                                format!("block `{}` has no parameter `{id}`", block.name),
                            )
                            .label(id.span, "unknown parameter")
                            .help(help),
                        );
                        return None;
                    }
                },
            };
            if let Some(&first) = given.get(param.name.name.as_str()) {
                self.error(
                    Diagnostic::error("duplicate", format!("parameter `{param}` is given twice"))
                        .label(a.span, "given again here")
                        .label(first, "first given here"),
                );
                return None;
            }
            given.insert(&param.name.name, a.span);
            values.insert(param.name.name.clone(), a.value.clone());
        }
        let mut missing = Vec::new();
        for p in &block.params {
            if values.contains_key(&p.name.name) {
                continue;
            }
            match &p.default {
                Some(d) => {
                    let v = self.default_expr(d);
                    values.insert(p.name.name.clone(), v);
                }
                None => missing.push(format!("`{}`", source_name(&p.name.name))),
            }
        }
        if !missing.is_empty() {
            self.error(
                Diagnostic::error(
                    "missing-argument",
                    format!("block `{}` needs {}", block.name, missing.join(", ")),
                )
                .label(span, "missing arguments")
                .help(format!("its parameters are {}", block_params(block))),
            );
            return None;
        }
        Some(values)
    }

    /// The value of a default: consts and arithmetic only. A name that is no const was
    /// reported by resolution, and is poison here.
    fn default_expr(&mut self, e: &'p Expr) -> Value {
        match &e.kind {
            ExprKind::Chain(_) => {
                match e
                    .as_name()
                    .and_then(|id| self.defs.consts.get(id.name.as_str()))
                {
                    Some(c) => self.const_named(c),
                    None => Value::Poison,
                }
            }
            _ => self.expr_with(e, &mut |l, e| l.default_expr(e)),
        }
    }
}

/// A block's parameters for a hint: `` `x`, `c`, `k=` `` (those with a default end in `=`,
/// as the op hints write them).
pub(super) fn block_params(b: &ast::Block) -> String {
    b.params
        .iter()
        .map(|p| match p.default {
            Some(_) => format!("`{p}=`"),
            None => format!("`{p}`"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
