//! Op calls and block instances: one stage of a chain, its arguments bound to an op's
//! parameters or a block's, each layer named and its shape inferred as it is made.

use netc_dsl::ast::source_name;

use super::*;

impl<'p> Lowerer<'p> {
    /// Applies one stage to the piped value (if any); the result is named `path`.
    pub(super) fn stage(
        &mut self,
        s: usize,
        st: &'p ast::Stage,
        piped: Option<(Value, Span)>,
        path: String,
    ) -> Value {
        if !self.count_stage(st.span) {
            return Value::Poison;
        }
        let (callee, args): (&ast::Ident, &'p [ast::Arg]) = match &st.target {
            Target::Name(id) => (id, &[]),
            Target::Call(c) => (&c.callee, &c.args),
        };
        let first = usize::from(piped.is_some());
        let mut vals: Vec<ArgVal> = Vec::new();
        if let Some((v, span)) = piped {
            vals.push(ArgVal {
                name: None,
                value: v,
                span,
            });
        }
        // An argument that is a chain is named after the parameter it fills.
        let spec = ops::lookup(&callee.name);
        let block = self.defs.blocks.get(callee.name.as_str()).copied();
        let param_of = |pos: usize| -> Option<&'p str> {
            match (spec, block) {
                (Some(spec), _) if spec.arity == Arity::One && pos > 0 => {
                    spec.params.get(pos - 1).map(|p| p.name)
                }
                (_, Some(block)) => block.params.get(pos).map(|p| p.name.name.as_str()),
                _ => None,
            }
        };
        vals.extend(self.args(s, args.iter(), &path, first, &param_of));
        let v = if let Some(spec) = spec {
            self.op(spec, st.span, vals, &path, first == 0)
        } else if let Some(block) = block {
            let site = format!("in this call of `{}`", source_name(&block.name.name));
            self.instantiate(block, callee, (st.span, site), vals, &path)
        } else {
            Value::Poison // unknown op or a loss used as a layer: reported by resolve
        };
        if let Some(a) = &st.alias {
            self.scopes[s].values.insert(a.name.clone(), v.clone());
        }
        v
    }

    /// Evaluates call arguments. An argument that is itself a chain is named as if bound to
    /// `PATH.NAME`, NAME being the parameter it fills (given by name, or by `param_of` for
    /// its position, the piped value being position 0), or `PATH.POSITION` for an op's input
    /// tensors. (Naming by position alone would collide with the stages of a block's
    /// `return` chain, which are `PATH.0`, `PATH.1`, ...)
    pub(super) fn args(
        &mut self,
        s: usize,
        args: impl IntoIterator<Item = &'p ast::Arg>,
        path: &str,
        first: usize,
        param_of: &dyn Fn(usize) -> Option<&'p str>,
    ) -> Vec<ArgVal<'p>> {
        let mut pos = first;
        args.into_iter()
            .map(|a| {
                let base = match &a.name {
                    Some(n) => format!("{path}.{}", n.name),
                    None => {
                        pos += 1;
                        match param_of(pos - 1) {
                            Some(name) => format!("{path}.{name}"),
                            None => format!("{path}.{}", pos - 1),
                        }
                    }
                };
                let value = self.expr(s, &a.value, &base);
                ArgVal {
                    name: a.name.as_ref(),
                    value,
                    span: a.value.span,
                }
            })
            .collect()
    }

    pub(super) fn op(
        &mut self,
        spec: &'static OpSpec,
        span: Span,
        args: Vec<ArgVal<'p>>,
        path: &str,
        at_head: bool,
    ) -> Value {
        let (positional, named): (Vec<ArgVal>, Vec<ArgVal>) =
            args.into_iter().partition(|a| a.name.is_none());
        let name = spec.name;
        let n_inputs = match spec.arity {
            Arity::One => 1,
            Arity::Many => positional.len(),
        };
        if positional.is_empty() {
            return self.error(
                Diagnostic::error("missing-input", format!("`{name}` has no input"))
                    .label(span, "nothing flows into this")
                    .help(format!(
                        "pipe a value into it (`x -> {name}`) or pass it first (`{name}(x, ..)`)"
                    )),
            );
        }
        if spec.arity == Arity::Many && positional.len() < 2 {
            return self.error(
                Diagnostic::error("arity", format!("`{name}` needs two or more inputs"))
                    .label(span, "only one input"),
            );
        }
        // Bind the remaining positional arguments, then the named ones, to parameters.
        let mut bound = Bound {
            values: HashMap::new(),
        };
        let mut poisoned = false;
        for (i, a) in positional.iter().enumerate().skip(n_inputs) {
            let Some(param) = spec.params.get(i - n_inputs) else {
                let help = if spec.params.is_empty() {
                    format!("`{name}` takes no arguments besides its input")
                } else {
                    format!("`{name}` takes {}", param_list(spec))
                };
                return self.error(
                    Diagnostic::error(
                        "too-many-arguments",
                        format!("too many arguments to `{name}`"),
                    )
                    .label(a.span, "extra argument")
                    .help(help),
                );
            };
            poisoned |= a.value.is_poison();
            bound.values.insert(param.name, (a.value.clone(), a.span));
        }
        for a in &named {
            let id = a.name.expect("named");
            let Some(param) = spec.params.iter().find(|p| p.name == id.name) else {
                let help = did_you_mean(&id.name, spec.params.iter().map(|p| p.name))
                    .unwrap_or_else(|| {
                        if spec.params.is_empty() {
                            format!("`{name}` takes no arguments besides its input")
                        } else {
                            format!("`{name}` takes {}", param_list(spec))
                        }
                    });
                return self.error(
                    Diagnostic::error(
                        "unknown-argument",
                        format!("`{name}` has no argument `{id}`"),
                    )
                    .label(id.span, "unknown argument")
                    .help(help),
                );
            };
            if let Some((_, first)) = bound.values.get(param.name) {
                let first = *first;
                return self.error(
                    Diagnostic::error(
                        "duplicate",
                        format!("argument `{}` is given twice", param.name),
                    )
                    .label(id.span, "given again here")
                    .label(first, "first given here"),
                );
            }
            poisoned |= a.value.is_poison();
            bound.values.insert(param.name, (a.value.clone(), a.span));
        }
        let inputs = &positional[..n_inputs];
        if poisoned || inputs.iter().any(|a| a.value.is_poison()) {
            return Value::Poison;
        }
        let mut nodes = Vec::new();
        for a in inputs {
            match a.value {
                Value::Tensor(n) => {
                    if let Op::Input(InputKind::Class(_)) = self.graph.node(n).op {
                        return self.error(
                            Diagnostic::error(
                                "label-as-tensor",
                                format!(
                                    "`{}` is a class label; only `ce` reads labels",
                                    self.graph.node(n).path
                                ),
                            )
                            .label(a.span, "a class label"),
                        );
                    }
                    nodes.push(n);
                }
                ref other => {
                    let what = if inputs.len() == 1 {
                        "its input"
                    } else {
                        "every input"
                    };
                    let mut d = Diagnostic::error(
                        "not-a-tensor",
                        format!(
                            "`{name}` needs a tensor as {what}, found {}",
                            other.describe()
                        ),
                    )
                    .label(a.span, "not a tensor");
                    if at_head && spec.arity == Arity::One && !spec.params.is_empty() {
                        d = d.help(format!(
                            "pipe the input in: `x -> {name}(..)`, or pass it first: `{name}(x, ..)`"
                        ));
                    }
                    return self.error(d);
                }
            }
        }

        let op_result = if name == "invert" {
            self.invert(&bound, nodes[0])
        } else {
            ops::build(spec, &bound)
        };
        let op = match op_result {
            Ok(op) => op,
            Err(e) => return self.op_error(e, &bound, span),
        };
        let shapes: Vec<Shape> = nodes
            .iter()
            .map(|&n| self.graph.node(n).shape.clone())
            .collect();
        let shape = match op.infer(&shapes.iter().collect::<Vec<_>>()) {
            Ok(s) => s,
            Err(e) => return self.op_error(e, &bound, span),
        };
        self.window_warning(&op, &shapes[0], path, span);
        self.add_node(path, op, shape, span, &nodes)
    }

    pub(super) fn invert(&mut self, bound: &Bound, input: NodeIndex) -> Result<Op, OpError> {
        let bias = match bound.values.get("bias") {
            None => true,
            Some((Value::Bool(b), _)) => *b,
            Some((other, _)) => {
                return Err(OpError {
                    message: format!(
                        "`bias` must be `true` or `false`, found {}",
                        other.describe()
                    ),
                    arg: Some("bias"),
                    help: None,
                })
            }
        };
        let of = match bound.values.get("of") {
            Some((Value::Tensor(n), _)) => *n,
            Some((other, _)) => {
                return Err(OpError {
                    message: format!(
                        "`invert` needs `of` = a conv's output, found {}",
                        other.describe()
                    ),
                    arg: Some("of"),
                    help: None,
                })
            }
            None => {
                return Err(OpError {
                    message: "`invert` needs the argument `of`: the conv to invert".into(),
                    arg: None,
                    help: Some("`x -> invert(of=e1)` where `e1 = image -> conv(..);`".into()),
                })
            }
        };
        let node = self.graph.node(of);
        let Op::Conv(conv) = &node.op else {
            return Err(OpError {
                message: format!(
                    "`invert` needs a conv's output, but `{}` is the output of `{}`",
                    node.path,
                    node.op.name()
                ),
                arg: Some("of"),
                help: Some(
                    "bind the conv on its own (`e1 = x -> conv(..);`) or name it with `as`, and invert that"
                        .into(),
                ),
            });
        };
        let of_in = self.graph.node(self.graph.inputs_of(of)[0]).shape.clone();
        let of_out = node.shape.clone();
        let x = &self.graph.node(input).shape;
        if x.len() == 3 && x[1..] != of_out[1..] {
            return Err(OpError {
                message: format!(
                    "`invert(of={})` maps {}×{} back to {}×{}, but its input is {}",
                    node.path,
                    of_out[1],
                    of_out[2],
                    of_in[1],
                    of_in[2],
                    shape_str(x)
                ),
                arg: None,
                help: Some(format!(
                    "its input must have the spatial size of `{}`'s output",
                    node.path
                )),
            });
        }
        ops::invert(conv, &of_in, &of_out, &node.path, bias)
    }

    pub(super) fn op_error(&mut self, e: OpError, bound: &Bound, span: Span) -> Value {
        let at = e
            .arg
            .and_then(|a| bound.values.get(a).map(|(_, s)| *s))
            .unwrap_or(span);
        let d = Diagnostic::error("op", e.message)
            .label(at, "")
            .maybe_help(e.help);
        self.error(d)
    }

    /// Warns when a floor-mode window never reads the last rows or columns of its input
    /// (not of its padding: GoogLeNet's 7×7/2 conv with padding 3 skips only a padding row).
    pub(super) fn window_warning(&mut self, op: &Op, x: &Shape, path: &str, span: Span) {
        let (k, s, p, dil) = match op {
            Op::Conv(c) => (c.k, c.s, c.p, c.dil),
            Op::Pool(pl) if !pl.ceil => (pl.k, pl.s, pl.p, [1, 1]),
            _ => return,
        };
        if x.len() != 3 {
            return;
        }
        let rows = ops::unread_input(x[1], k[0], s[0], p[0], dil[0]);
        let cols = ops::unread_input(x[2], k[1], s[1], p[1], dil[1]);
        if rows == 0 && cols == 0 {
            return;
        }
        let plural = |n: usize, w: &str| match n {
            1 => format!("the last {w}"),
            n => format!("the last {n} {w}s"),
        };
        let lost = match (rows, cols) {
            (r, 0) => plural(r, "row"),
            (0, c) => plural(c, "column"),
            (1, 1) => "the last row and column".to_string(),
            (r, c) => format!("{} and {}", plural(r, "row"), plural(c, "column")),
        };
        let window = op.window().unwrap_or_default();
        let fix = match op {
            Op::Conv(_) => "adjust the padding or the input size",
            _ => "adjust the padding, or use `ceil=true`",
        };
        self.warn(
            Diagnostic::warning(
                "window-drops",
                format!(
                    "`{path}` ({} {window}) never reads {lost} of its {}×{} input",
                    op.name(),
                    x[1],
                    x[2]
                ),
            )
            .label(span, format!("loses {lost}"))
            .help(format!(
                "the stride does not divide (d + 2p - k), and the padding does not cover what is left; {fix}"
            )),
        );
    }

    pub(super) fn add_node(
        &mut self,
        path: &str,
        op: Op,
        shape: Shape,
        span: Span,
        inputs: &[NodeIndex],
    ) -> Value {
        if let Some(&first) = self.paths.get(path) {
            let scope = self.scopes.last().expect("layers are made inside a scope");
            let local = path
                .strip_prefix(&scope.prefix)
                .unwrap_or(path)
                .trim_start_matches('.');
            if scope.dups.contains(local) {
                return Value::Poison; // the name clash was reported by resolution
            }
            return self.error(
                Diagnostic::error("duplicate-path", format!("two layers are named `{path}`"))
                    .label(span, "this layer")
                    .label(first, "has the same path as this one")
                    .help("rename one of them with `as`, or rename a binding"),
            );
        }
        self.paths.insert(path.to_string(), span);
        let instance = self.scopes.last().and_then(|s| s.instance);
        let node = Node {
            path: path.to_string(),
            op,
            shape,
            span,
            row: self.row,
            instance,
        };
        Value::Tensor(self.graph.add(node, inputs))
    }

    pub(super) fn instantiate(
        &mut self,
        block: &'p ast::Block,
        callee: &ast::Ident,
        (span, site): (Span, String),
        args: Vec<ArgVal<'p>>,
        path: &str,
    ) -> Value {
        let name = block.name.name.as_str();
        if self.instances.contains(&name) {
            let mut chain: Vec<&str> = self.instances.clone();
            chain.push(name);
            return self.error(
                Diagnostic::error("cycle", format!("block `{}` calls itself", block.name))
                    .label(callee.span, "recursive call")
                    .help(format!(
                        "{}; blocks are expanded, so they cannot recurse",
                        chain
                            .iter()
                            .map(|b| source_name(b))
                            .collect::<Vec<_>>()
                            .join(" → ")
                    )),
            );
        }
        if self.instances.len() >= MAX_INSTANCE_DEPTH {
            return self.error(
                Diagnostic::error(
                    "nesting",
                    format!("blocks nest more than {MAX_INSTANCE_DEPTH} deep"),
                )
                .label(callee.span, ""),
            );
        }
        let Some(values) = self.bind_block_args(block, span, args) else {
            return Value::Poison;
        };

        let parent = self.scopes.last().and_then(|s| s.instance);
        self.graph.instances.push(Instance {
            path: path.to_string(),
            block: name.to_string(),
            parent,
        });
        let mut scope = Scope {
            prefix: path.to_string(),
            instance: Some(self.graph.instances.len() - 1),
            values,
            binds: Vec::new(),
            bind_of: HashMap::new(),
            alias_of: HashMap::new(),
            state: Vec::new(),
            is_network: false,
            dups: HashSet::new(),
            repeated: HashMap::new(),
        };
        for b in &block.binds {
            add_bind(&mut scope, b);
        }
        self.scopes.push(scope);
        self.instances.push(name);
        self.sites.push((span, site));
        let s = self.scopes.len() - 1;
        for i in 0..block.binds.len() {
            self.force_unique(s, i);
        }
        let v = self.chain(s, &block.ret, path);
        self.sites.pop();
        self.instances.pop();
        self.scopes.pop();
        v
    }
}

fn param_list(spec: &OpSpec) -> String {
    spec.params
        .iter()
        .map(|p| match p.default {
            ops::ParamDefault::Required => format!("`{}`", p.name),
            _ => format!("`{}=`", p.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
