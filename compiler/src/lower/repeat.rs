//! `repeat(n, BLOCK, args.., index=NAME)`: `n` calls of `BLOCK(args..)` in a row, the `k`-th
//! (from 0) given `NAME = k`. Each call is made exactly as the written-out stage would be
//! (the same paths, argument names and checks), so a repeat and its expansion lower to the
//! same graph. `n` is checked against the stage budget before anything is expanded, so a
//! huge count is an error at the call, not a long wait.

use netc_dsl::ast::source_name;

use crate::repeat::RepeatCall;

use super::*;

/// How a `repeat` expands: `n` calls, named by chain position or by `prefix=` and `start=`.
pub(super) struct Expansion<'p> {
    pub n: usize,
    /// The count's span.
    pub at: Span,
    /// `prefix="NAME", start=K`: the calls are `NAME{K}`, `NAME{K+1}`, .. in the scope.
    pub names: Option<(&'p str, i64)>,
}

/// What already has a name that `prefix=` would give a repetition, and where it is named.
#[derive(Clone, Copy)]
enum Taken {
    Binding(Span),
    Alias(Span),
    Input(Span),
    /// A repetition named by another `repeat` of the scope, at its `prefix=` value.
    Repetition(Span),
}

impl<'p> Lowerer<'p> {
    /// The call, if the stage is a `repeat`.
    pub(super) fn repeat_of(&self, st: &'p ast::Stage) -> Option<&'p ast::Call> {
        match &st.target {
            Target::Call(c) if self.defs.is_repeat(&c.callee.name) => Some(c),
            _ => None,
        }
    }

    /// How a `repeat` expands, or `None` after an error.
    pub(super) fn repeat_expansion(&mut self, s: usize, c: &'p ast::Call) -> Option<Expansion<'p>> {
        let n = self.repeat_count(s, c);
        let names = self.repeat_names(s, c);
        let (n, names) = (n?, names?);
        if let (Some((prefix, start)), Some(p)) = (names, RepeatCall::split(c, self.defs).prefix) {
            if !self.repeat_names_free(s, p.value.span, prefix, start, n) {
                return None;
            }
        }
        let at = RepeatCall::split(c, self.defs).n?.value.span;
        Some(Expansion { n, at, names })
    }

    /// Whether the names `prefix{start}`, `prefix{start + 1}`, .. of `n` repetitions are free
    /// in scope `s`: no binding, `as` name, input or other repetition of the scope has one
    /// (it would be a second layer at that path). Reports the first that is taken, at the
    /// `prefix=` value (`at`), and keeps the names of free ones for the repeats after it.
    fn repeat_names_free(
        &mut self,
        s: usize,
        at: Span,
        prefix: &str,
        start: i64,
        n: usize,
    ) -> bool {
        let mut names = Vec::with_capacity(n);
        for k in 0..n {
            let name = format!("{prefix}{}", i128::from(start) + k as i128);
            let Some(taken) = self.layer_named(s, &name) else {
                names.push(name);
                continue;
            };
            let shown = source_name(&name);
            let (what, span, label) = match taken {
                Taken::Binding(span) => (
                    "is already the name of a binding",
                    span,
                    format!("the binding `{shown}`"),
                ),
                Taken::Alias(span) => (
                    "is already the name `as` gives a layer",
                    span,
                    format!("`as {shown}` names a layer here"),
                ),
                Taken::Input(span) => (
                    "is already the name of an input",
                    span,
                    format!("the input `{shown}`"),
                ),
                Taken::Repetition(span) => (
                    "an earlier `prefix=` gives a repetition too",
                    span,
                    format!("also names `{shown}`"),
                ),
            };
            let rename = match taken {
                Taken::Repetition(_) => String::new(),
                _ => format!(", or rename `{shown}`"),
            };
            self.error(
                Diagnostic::error(
                    "duplicate-path",
                    format!("`prefix=\"{prefix}\"` names a repetition `{shown}`, which {what}"),
                )
                .label(at, format!("names repetition {} `{shown}`", k + 1))
                .label(span, label)
                .help(format!(
                    "`prefix=` names the repetitions in the scope, as `as` names a layer: choose another prefix{rename}"
                )),
            );
            return false;
        }
        let repeated = &mut self.scopes[s].repeated;
        repeated.extend(names.into_iter().map(|name| (name, at)));
        true
    }

    /// What in scope `s` has the name `name` and a layer at its path, if anything.
    fn layer_named(&self, s: usize, name: &str) -> Option<Taken> {
        let scope = &self.scopes[s];
        if let Some(&i) = scope.bind_of.get(name) {
            return Some(Taken::Binding(scope.binds[i].name.span));
        }
        if let Some(&i) = scope.alias_of.get(name) {
            let aliases = scope.binds[i].chain.aliases();
            return aliases
                .iter()
                .find(|a| a.name == name)
                .map(|a| Taken::Alias(a.span));
        }
        if let Some(&span) = scope.repeated.get(name) {
            return Some(Taken::Repetition(span));
        }
        // A block's parameters are values without a path: only the network's are layers.
        if scope.is_network && scope.values.contains_key(name) {
            return self.paths.get(name).map(|&span| Taken::Input(span));
        }
        None
    }

    /// `prefix=` and `start=`: `Some(None)` without a prefix, `None` after an error (a prefix
    /// that is not a name's beginning was reported by resolution).
    fn repeat_names(&mut self, s: usize, c: &'p ast::Call) -> Option<Option<(&'p str, i64)>> {
        let r = RepeatCall::split(c, self.defs);
        let Some(p) = r.prefix else {
            return Some(None);
        };
        let ExprKind::Str(prefix) = &p.value.kind else {
            return None;
        };
        let Some(k) = r.start else {
            return Some(Some((prefix, 0)));
        };
        let span = k.value.span;
        match self.count_expr(s, &k.value) {
            Value::Int(k) if k >= 0 => Some(Some((prefix, k))),
            Value::Int(k) => {
                self.error(
                    Diagnostic::error(
                        "repeat",
                        format!("`start=` numbers the names from 0 up, found {k}"),
                    )
                    .label(span, "negative")
                    .help(format!("`start=0` names `{prefix}0`, `{prefix}1`, ..")),
                );
                None
            }
            Value::Poison => None,
            other => {
                self.error(
                    Diagnostic::error(
                        "not-constant",
                        format!("`start=` needs a whole number, found {}", other.describe()),
                    )
                    .label(span, "not an integer")
                    .help("the start is a constant expression: a number, a const, or a parameter of the enclosing block"),
                );
                None
            }
        }
    }

    /// How many times a `repeat` calls its block, or `None` after an error (a problem with
    /// the block or `index=` was reported by resolution).
    fn repeat_count(&mut self, s: usize, c: &'p ast::Call) -> Option<usize> {
        let r = RepeatCall::split(c, self.defs);
        let n_arg = r.n?;
        let block = r.block_name()?;
        let block = self.defs.blocks.get(block.name.as_str())?;
        if r.index.is_some() {
            // `index=` must name a parameter other than the input (reported by resolution).
            let name = r.index_name()?;
            let at = block.params.iter().position(|p| p.name.name == name.name);
            if !matches!(at, Some(i) if i > 0) {
                return None;
            }
        }
        let span = n_arg.value.span;
        match self.count_expr(s, &n_arg.value) {
            Value::Int(n) if n < 1 => {
                self.error(
                    Diagnostic::error(
                        "repeat",
                        format!("`repeat` needs a count of at least 1, found {n}"),
                    )
                    .label(span, "fewer than one")
                    .help("to repeat nothing, leave the stage out"),
                );
                None
            }
            Value::Int(n) => {
                let room = MAX_STAGES.saturating_sub(self.stages);
                if n as u64 > room as u64 {
                    self.error(
                        Diagnostic::error(
                            "too-large",
                            format!(
                                "`repeat({n}, {}, ..)` expands past the limit of {MAX_STAGES} layer calls",
                                block.name
                            ),
                        )
                        .label(span, format!("{room} more fit"))
                        .help("see \"Limits\" in docs/language.md"),
                    );
                    return None;
                }
                Some(n as usize)
            }
            Value::Poison => None,
            other => {
                self.error(
                    Diagnostic::error(
                        "not-constant",
                        format!(
                            "`repeat` needs a whole number of times, found {}",
                            other.describe()
                        ),
                    )
                    .label(span, "not an integer")
                    .help("the count is a constant expression: a number, a const, or a parameter of the enclosing block"),
                );
                None
            }
        }
    }

    /// The value of a count: numbers, consts and the scope's parameters, with arithmetic. A
    /// chain that is more than a name would make layers, so it is refused before it does.
    fn count_expr(&mut self, s: usize, e: &'p Expr) -> Value {
        match &e.kind {
            ExprKind::Chain(c) => match e.as_name() {
                Some(id) => self.lookup(s, &id.name),
                None => self.error(
                    Diagnostic::error("not-constant", "expected a constant value here")
                        .label(c.span, "layers cannot appear here"),
                ),
            },
            _ => self.expr_with(e, &mut |l, e| l.count_expr(s, e)),
        }
    }

    /// The `k`-th of the `n` calls of a repeat's block, on the piped value, named `path`.
    pub(super) fn repeat_stage(
        &mut self,
        s: usize,
        st: &'p ast::Stage,
        c: &'p ast::Call,
        (k, n): (usize, usize),
        piped: (Value, Span),
        path: String,
    ) -> Value {
        if !self.count_stage(st.span) {
            return Value::Poison;
        }
        let r = RepeatCall::split(c, self.defs);
        let Some(id) = r.block_name() else {
            return Value::Poison;
        };
        let Some(block) = self.defs.blocks.get(id.name.as_str()).copied() else {
            return Value::Poison;
        };
        let mut vals = vec![ArgVal {
            name: None,
            value: piped.0,
            span: piped.1,
        }];
        let param_of = |pos: usize| block.params.get(pos).map(|p| p.name.name.as_str());
        vals.extend(self.args(s, r.rest.iter().copied(), &path, 1, &param_of));
        if let Some(index) = r.index {
            let Some(name) = r.index_name() else {
                return Value::Poison; // reported by resolution
            };
            vals.push(ArgVal {
                name: Some(name),
                value: Value::Int(k as i64),
                span: index.span,
            });
        }
        let site = format!("in repetition {} of {n}", k + 1);
        self.instantiate(block, id, (st.span, site), vals, &path)
    }
}
