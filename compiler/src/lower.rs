//! Lowering: from the AST of one network to the graph. Blocks are expanded (each call an
//! instance with its own path prefix), `a -> f(args)` becomes `f(a, args)`, consts and
//! integer arithmetic are evaluated, names get the dotted paths of LANGUAGE.md "Names",
//! and every node's shape is inferred as it is made, so a mistake is reported at the stage
//! that makes it.
//!
//! Bindings are evaluated on demand, so they may be written in any order; a binding that
//! needs itself is a cycle and an error. Every binding is evaluated, used or not, so every
//! line is checked.

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use netc_dsl::ast::{self, BinOp, Chain, Expr, ExprKind, Stmt, Target};
use netc_dsl::diag::did_you_mean;
use netc_dsl::{Diagnostic, Span};

use crate::graph::{shape_str, Graph, Instance, LossKind, LossTerm, Node, Row, Shape};
use crate::load::Defs;
use crate::ops::{self, Arity, InputKind, Op, OpError, OpSpec};
use crate::value::Value;

/// How deeply block instances may nest.
const MAX_INSTANCE_DEPTH: usize = 48;

/// Lowers `net` to a graph. Errors and warnings go to `diags`; the graph is meaningful only
/// if no error was pushed.
pub fn network(defs: &Defs, net: &ast::Network, diags: &mut Vec<Diagnostic>) -> Graph {
    let mut l = Lowerer {
        defs,
        consts: HashMap::new(),
        graph: Graph::new(net.name.name.clone()),
        diags: Vec::new(),
        scopes: Vec::new(),
        row: None,
        paths: HashMap::new(),
        instances: Vec::new(),
        forcing: Vec::new(),
        referenced: HashSet::new(),
        warned: HashSet::new(),
    };
    l.network(net);
    diags.append(&mut l.diags);
    l.graph
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Todo,
    Busy,
    Done,
}

/// The names visible in a network or a block instance.
struct Scope<'p> {
    /// Path prefix of the instance ("" for the network).
    prefix: String,
    instance: Option<usize>,
    /// Inputs, parameters, and bindings and `as` names already evaluated.
    values: HashMap<String, Value>,
    binds: Vec<&'p ast::Bind>,
    bind_of: HashMap<&'p str, usize>,
    /// `as` name → the binding whose chain defines it.
    alias_of: HashMap<&'p str, usize>,
    state: Vec<State>,
    is_network: bool,
    /// Names declared twice (reported by resolution): their layers' paths clash too.
    dups: HashSet<String>,
}

enum ConstState {
    Busy,
    Done(Value),
}

struct Lowerer<'p> {
    defs: &'p Defs<'p>,
    consts: HashMap<&'p str, ConstState>,
    graph: Graph,
    diags: Vec<Diagnostic>,
    scopes: Vec<Scope<'p>>,
    /// The report row of the top-level binding being evaluated.
    row: Option<usize>,
    /// Every layer path made so far, for duplicates.
    paths: HashMap<String, Span>,
    /// Blocks being expanded, outermost first, for recursion.
    instances: Vec<&'p str>,
    /// Bindings being evaluated (scope, name), for cycles.
    forcing: Vec<(usize, &'p str)>,
    /// Network-level names that something refers to.
    referenced: HashSet<String>,
    /// Warnings already given (span, message): a block instantiated twice warns once.
    warned: HashSet<(Span, String)>,
}

/// An argument after evaluation.
#[derive(Clone, Debug)]
struct ArgVal<'p> {
    name: Option<&'p ast::Ident>,
    value: Value,
    span: Span,
}

/// Arguments bound to an op's parameters.
struct Bound {
    values: HashMap<&'static str, (Value, Span)>,
}

impl ops::ArgSource for Bound {
    fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).map(|(v, _)| v)
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl<'p> Lowerer<'p> {
    fn error(&mut self, d: Diagnostic) -> Value {
        self.diags.push(d);
        Value::Poison
    }

    fn warn(&mut self, d: Diagnostic) {
        let key = (d.span().unwrap_or_default(), d.message.clone());
        if self.warned.insert(key) {
            self.diags.push(d);
        }
    }

    // ---- the network ----------------------------------------------------------------------

    fn network(&mut self, net: &'p ast::Network) {
        let mut scope = Scope {
            prefix: String::new(),
            instance: None,
            values: HashMap::new(),
            binds: Vec::new(),
            bind_of: HashMap::new(),
            alias_of: HashMap::new(),
            state: Vec::new(),
            is_network: true,
            dups: HashSet::new(),
        };
        for input in &net.inputs {
            let (op, shape) = self.input_type(input);
            let node = Node {
                path: input.name.name.clone(),
                op: Op::Input(op),
                shape,
                span: input.name.span,
                row: None,
                instance: None,
            };
            self.paths.insert(input.name.name.clone(), input.name.span);
            let n = self.graph.add(node, &[]);
            self.graph.inputs.push((input.name.name.clone(), n));
            scope
                .values
                .insert(input.name.name.clone(), Value::Tensor(n));
        }
        for s in &net.stmts {
            if let Stmt::Bind(b) = s {
                add_bind(&mut scope, b);
                self.graph.rows.push(Row {
                    name: b.name.name.clone(),
                    span: b.span,
                    stages: stage_names(&b.chain),
                    output: None,
                });
            }
        }
        self.scopes.push(scope);
        for i in 0..self.scopes[0].binds.len() {
            self.force_unique(0, i);
        }
        for (i, row) in self.graph.rows.iter_mut().enumerate() {
            let name = &self.scopes[0].binds[i].name.name;
            if let Some(Value::Tensor(n)) = self.scopes[0].values.get(name) {
                row.output = Some(*n);
            }
        }

        let mut seen_loss: Option<Span> = None;
        let mut seen_train: Option<Span> = None;
        for s in &net.stmts {
            match s {
                Stmt::Bind(_) => {}
                Stmt::Output(o) => self.outputs(o),
                Stmt::Loss(l) => {
                    if let Some(first) = seen_loss {
                        self.error(
                            Diagnostic::error("duplicate", "the network has two `loss` lines")
                                .label(l.span, "second `loss` line")
                                .label(first, "first `loss` line")
                                .help("write one objective: `loss ce(a, y) + 0.3 * ce(b, y);`"),
                        );
                        continue;
                    }
                    seen_loss = Some(l.span);
                    self.loss(l);
                }
                Stmt::Train(t) => {
                    if let Some(first) = seen_train {
                        self.error(
                            Diagnostic::error("duplicate", "the network has two `train` sections")
                                .label(t.span, "second section")
                                .label(first, "first section"),
                        );
                        continue;
                    }
                    seen_train = Some(t.span);
                    let mut diags = Vec::new();
                    let cfg = crate::train::lower(t, &mut |e| self.const_expr(e), &mut diags);
                    // Errors in a setting's value were reported by `const_expr` already.
                    self.diags
                        .extend(diags.into_iter().filter(|d| d.code != "poison"));
                    self.graph.train = cfg;
                }
            }
        }
        // What follows judges the whole graph; after an error it would judge a broken one.
        if self.diags.iter().any(Diagnostic::is_error) {
            return;
        }
        let has_output_line = net.stmts.iter().any(|s| matches!(s, Stmt::Output(_)));
        if !has_output_line {
            self.warn(
                Diagnostic::warning(
                    "no-output",
                    format!(
                        "network `{}` has no `output`: its inference graph is empty",
                        net.name.name
                    ),
                )
                .label(net.name.span, "")
                .help("name what inference returns: `output logits;`"),
            );
        }
        self.dead_rows();
    }

    fn input_type(&mut self, input: &'p ast::Input) -> (InputKind, Shape) {
        match &input.kind {
            ast::InputKind::Shape(dims) => {
                let mut shape = Vec::new();
                for d in dims {
                    match self.const_expr(d) {
                        Value::Int(i) if (1..=ops::MAX_DIM).contains(&i) => shape.push(i as usize),
                        Value::Poison => shape.push(1),
                        v => {
                            self.error(
                                Diagnostic::error(
                                    "bad-size",
                                    format!(
                                        "a dimension must be a positive integer, found {}",
                                        v.describe()
                                    ),
                                )
                                .label(d.span, "not a size"),
                            );
                            shape.push(1);
                        }
                    }
                }
                let elements: u128 = shape.iter().map(|&d| d as u128).product();
                if elements > ops::MAX_ELEMENTS {
                    self.error(
                        Diagnostic::error(
                            "bad-size",
                            format!("input `{}` has {elements} elements per sample, more than netc handles", input.name.name),
                        )
                        .label(input.span, "too large"),
                    );
                    shape = vec![1; shape.len()];
                }
                if shape.len() != 1 && shape.len() != 3 {
                    self.error(
                        Diagnostic::error(
                            "bad-shape",
                            format!("an input is [C, H, W] or [F], found {} dimensions", shape.len()),
                        )
                        .label(input.span, "")
                        .help("the batch dimension is implicit: write `[3, 224, 224]`, not `[N, 3, 224, 224]`"),
                    );
                }
                (InputKind::Tensor, shape)
            }
            ast::InputKind::Class(n) => match self.const_expr(n) {
                Value::Int(i) if (1..=ops::MAX_DIM).contains(&i) => {
                    (InputKind::Class(i as usize), Vec::new())
                }
                Value::Poison => (InputKind::Class(1), Vec::new()),
                v => {
                    self.error(
                        Diagnostic::error(
                            "bad-size",
                            format!(
                                "the number of classes must be a positive integer, found {}",
                                v.describe()
                            ),
                        )
                        .label(n.span, "not a count"),
                    );
                    (InputKind::Class(1), Vec::new())
                }
            },
        }
    }

    fn outputs(&mut self, o: &'p ast::Output) {
        for name in &o.names {
            let v = self.lookup(0, &name.name);
            match v {
                Value::Tensor(n) => {
                    if self.graph.outputs.iter().any(|(x, _)| *x == name.name) {
                        self.warn(
                            Diagnostic::warning(
                                "duplicate",
                                format!("`{}` is an output twice", name.name),
                            )
                            .label(name.span, "again here"),
                        );
                    } else {
                        self.graph.outputs.push((name.name.clone(), n));
                    }
                }
                Value::Poison => {}
                other => {
                    self.error(
                        Diagnostic::error(
                            "not-a-tensor",
                            format!(
                                "an output must be a tensor, but `{}` is {}",
                                name.name,
                                other.describe()
                            ),
                        )
                        .label(name.span, "not a tensor"),
                    );
                }
            }
        }
    }

    fn loss(&mut self, l: &'p ast::Loss) {
        for (ti, t) in l.terms.iter().enumerate() {
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
            let args = self.args(0, &t.call.args, &base, 0);
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

    /// Warns about top-level bindings that reach neither an output nor a loss (those
    /// never referenced at all were already warned about by resolution).
    fn dead_rows(&mut self) {
        let live = self.graph.training_set();
        for row in self.graph.rows.clone() {
            let Some(n) = row.output else { continue };
            if live[n.index()] || !self.referenced.contains(&row.name) {
                continue;
            }
            if self.graph.outputs.iter().any(|(name, _)| *name == row.name) {
                continue;
            }
            self.warn(
                Diagnostic::warning(
                    "unused",
                    format!("`{}` reaches neither an output nor a loss", row.name),
                )
                .label(row.span, "computed but never used")
                .help("it is left out of training and inference"),
            );
        }
    }

    // ---- names and bindings ---------------------------------------------------------------

    /// The value of `name` in scope `s`, evaluating its binding if needed. Unknown names were
    /// reported by resolution and are poison here.
    fn lookup(&mut self, s: usize, name: &str) -> Value {
        if self.scopes[s].is_network {
            self.referenced.insert(name.to_string());
        }
        if let Some(v) = self.scopes[s].values.get(name) {
            return v.clone();
        }
        if let Some(&i) = self.scopes[s].bind_of.get(name) {
            self.force(s, i);
            return self.scopes[s]
                .values
                .get(name)
                .cloned()
                .unwrap_or(Value::Poison);
        }
        if let Some(&i) = self.scopes[s].alias_of.get(name) {
            self.force(s, i);
            return self.scopes[s]
                .values
                .get(name)
                .cloned()
                .unwrap_or(Value::Poison);
        }
        if let Some(c) = self.defs.consts.get(name) {
            return self.const_named(c);
        }
        Value::Poison
    }

    /// Evaluates binding `i` unless it repeats an earlier binding's name (which resolution
    /// reported); the repeat would only add a second error about the same line.
    fn force_unique(&mut self, s: usize, i: usize) {
        let name = self.scopes[s].binds[i].name.name.as_str();
        if self.scopes[s].bind_of.get(name) == Some(&i) {
            self.force(s, i);
        }
    }

    /// Evaluates binding `i` of scope `s` once.
    fn force(&mut self, s: usize, i: usize) {
        let bind = self.scopes[s].binds[i];
        match self.scopes[s].state[i] {
            State::Done => return,
            State::Busy => {
                let start = self
                    .forcing
                    .iter()
                    .position(|&(fs, name)| fs == s && name == bind.name.name)
                    .unwrap_or(0);
                let mut names: Vec<&str> = self.forcing[start..].iter().map(|&(_, n)| n).collect();
                names.push(&bind.name.name);
                let cycle = names.join(" → ");
                self.error(
                    Diagnostic::error("cycle", format!("`{}` depends on itself", bind.name.name))
                        .label(bind.name.span, "defined here in terms of itself")
                        .help(format!(
                            "the cycle is {cycle}; a network is a graph without cycles"
                        )),
                );
                self.scopes[s]
                    .values
                    .insert(bind.name.name.clone(), Value::Poison);
                return;
            }
            State::Todo => {}
        }
        self.scopes[s].state[i] = State::Busy;
        self.forcing.push((s, &bind.name.name));
        let saved_row = self.row;
        if self.scopes[s].is_network {
            self.row = Some(i);
        }
        let base = join(&self.scopes[s].prefix, &bind.name.name);
        let v = self.chain(s, &bind.chain, &base);
        self.row = saved_row;
        self.forcing.pop();
        self.scopes[s].state[i] = State::Done;
        // A cycle may have poisoned the name already; keep the first word.
        self.scopes[s]
            .values
            .entry(bind.name.name.clone())
            .or_insert(v);
    }

    fn const_named(&mut self, c: &'p ast::Const) -> Value {
        match self.consts.get(c.name.name.as_str()) {
            Some(ConstState::Done(v)) => return v.clone(),
            Some(ConstState::Busy) => {
                return self.error(
                    Diagnostic::error(
                        "cycle",
                        format!("const `{}` depends on itself", c.name.name),
                    )
                    .label(c.name.span, "defined in terms of itself"),
                );
            }
            None => {}
        }
        self.consts.insert(&c.name.name, ConstState::Busy);
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
            .insert(&c.name.name, ConstState::Done(v.clone()));
        v
    }

    /// Evaluates an expression that may only use consts (input shapes, const values, train
    /// settings). Unlike bodies, these are not resolved beforehand, so names are checked here.
    fn const_expr(&mut self, e: &'p Expr) -> Value {
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
                            Diagnostic::error(
                                "undefined",
                                format!("undefined const `{}`", id.name),
                            )
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
    fn expr(&mut self, s: usize, e: &'p Expr, base: &str) -> Value {
        match &e.kind {
            ExprKind::Chain(c) => self.chain(s, c, base),
            _ => self.expr_with(e, &mut |l, e| l.expr(s, e, base)),
        }
    }

    /// Literals, lists and arithmetic, with `sub` for operands.
    fn expr_with(
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

    fn arith(&mut self, op: BinOp, x: Value, y: Value, span: Span, sa: Span, sb: Span) -> Value {
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
                    // Exact integer division stays an integer; otherwise the result is a
                    // number, and using it as a size is an error rather than a silent floor.
                    BinOp::Div if a % b == 0 => a.checked_div(*b),
                    BinOp::Div => return Float(*a as f64 / *b as f64),
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

    /// Evaluates a chain bound to the path `base` in scope `s`.
    fn chain(&mut self, s: usize, chain: &'p Chain, base: &str) -> Value {
        let head_is_call = matches!(chain.head.target, Target::Call(_));
        let count = chain.stages.len() + usize::from(head_is_call);
        let path_of = |l: &Self, i: usize, st: &'p ast::Stage| match &st.alias {
            Some(a) => join(&l.scopes[s].prefix, &a.name),
            None if count == 1 => base.to_string(),
            None => format!("{base}.{i}"),
        };
        let mut cur = match &chain.head.target {
            Target::Name(id) => self.lookup(s, &id.name),
            Target::Call(_) => {
                let path = path_of(self, 0, &chain.head);
                self.stage(s, &chain.head, None, path)
            }
        };
        let mut cur_span = chain.head.span;
        for (j, st) in chain.stages.iter().enumerate() {
            let path = path_of(self, j + usize::from(head_is_call), st);
            cur = self.stage(s, st, Some((cur, cur_span)), path);
            cur_span = cur_span.to(st.span);
        }
        cur
    }

    /// Applies one stage to the piped value (if any); the result is named `path`.
    fn stage(
        &mut self,
        s: usize,
        st: &'p ast::Stage,
        piped: Option<(Value, Span)>,
        path: String,
    ) -> Value {
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
        vals.extend(self.args(s, args, &path, first));
        let v = if let Some(spec) = ops::lookup(&callee.name) {
            self.op(spec, st.span, vals, &path, first == 0)
        } else if let Some(block) = self.defs.blocks.get(callee.name.as_str()).copied() {
            self.instantiate(block, callee, st.span, vals, &path)
        } else {
            Value::Poison // unknown op or a loss used as a layer: reported by resolve
        };
        if let Some(a) = &st.alias {
            self.scopes[s].values.insert(a.name.clone(), v.clone());
        }
        v
    }

    /// Evaluates call arguments; an argument that is itself a chain is named
    /// `PATH.INDEX` (`PATH.NAME` when named), counting the piped value as argument 0.
    fn args(
        &mut self,
        s: usize,
        args: &'p [ast::Arg],
        path: &str,
        first: usize,
    ) -> Vec<ArgVal<'p>> {
        args.iter()
            .enumerate()
            .map(|(i, a)| {
                let base = match &a.name {
                    Some(n) => format!("{path}.{}", n.name),
                    None => format!("{path}.{}", i + first),
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

    fn op(
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
                        format!("`{name}` has no argument `{}`", id.name),
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
        let shape = match ops::infer(&op, &shapes.iter().collect::<Vec<_>>()) {
            Ok(s) => s,
            Err(e) => return self.op_error(e, &bound, span),
        };
        self.window_warning(&op, &shapes[0], path, span);
        self.add_node(path, op, shape, span, &nodes)
    }

    fn invert(&mut self, bound: &Bound, input: NodeIndex) -> Result<Op, OpError> {
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

    fn op_error(&mut self, e: OpError, bound: &Bound, span: Span) -> Value {
        let at = e
            .arg
            .and_then(|a| bound.values.get(a).map(|(_, s)| *s))
            .unwrap_or(span);
        let d = Diagnostic::error("op", e.message)
            .label(at, "")
            .maybe_help(e.help);
        self.error(d)
    }

    fn window_warning(&mut self, op: &Op, x: &Shape, path: &str, span: Span) {
        let (k, s, p, dil) = match op {
            Op::Conv(c) => (c.k, c.s, c.p, c.dil),
            Op::MaxPool(pl) | Op::AvgPool(pl) if !pl.ceil => (pl.k, pl.s, pl.p, [1, 1]),
            _ => return,
        };
        if x.len() != 3 {
            return;
        }
        let rows = ops::dropped(x[1], k[0], s[0], p[0], dil[0]);
        let cols = ops::dropped(x[2], k[1], s[1], p[1], dil[1]);
        if rows == 0 && cols == 0 {
            return;
        }
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let lost = match (rows, cols) {
            (r, 0) => plural(r, "row"),
            (0, c) => plural(c, "column"),
            (r, c) => format!("{} and {}", plural(r, "row"), plural(c, "column")),
        };
        let window = op.window().unwrap_or_default();
        self.warn(
            Diagnostic::warning(
                "window-drops",
                format!(
                    "`{}` ({} {window}) never reads the last {lost} of its padded {}×{} input",
                    path,
                    op.name(),
                    x[1] + 2 * p[0],
                    x[2] + 2 * p[1]
                ),
            )
            .label(span, format!("drops {lost}"))
            .help(if rows <= p[0] && cols <= p[1] {
                "only padding is dropped, no input is lost; (d + 2p - k) is not a multiple of the stride"
            } else {
                "(d + 2p - k) is not a multiple of the stride; adjust the padding, or use `ceil=true` on a pool"
            }),
        );
    }

    fn add_node(
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

    fn instantiate(
        &mut self,
        block: &'p ast::Block,
        callee: &ast::Ident,
        span: Span,
        args: Vec<ArgVal<'p>>,
        path: &str,
    ) -> Value {
        let name = block.name.name.as_str();
        if self.instances.contains(&name) {
            let mut chain: Vec<&str> = self.instances.clone();
            chain.push(name);
            return self.error(
                Diagnostic::error("cycle", format!("block `{name}` calls itself"))
                    .label(callee.span, "recursive call")
                    .help(format!(
                        "{}; blocks are expanded, so they cannot recurse",
                        chain.join(" → ")
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
        // Bind arguments to parameters: positional in order, then by name.
        let mut values: HashMap<String, Value> = HashMap::new();
        let mut given: HashMap<&str, Span> = HashMap::new();
        let mut positional = 0;
        for a in &args {
            let param = match a.name {
                None => {
                    let Some(p) = block.params.get(positional) else {
                        return self.error(
                            Diagnostic::error(
                                "too-many-arguments",
                                format!("block `{name}` takes {} arguments", block.params.len()),
                            )
                            .label(a.span, "extra argument")
                            .help(format!("its parameters are {}", block_params(block))),
                        );
                    };
                    positional += 1;
                    p
                }
                Some(id) => match block.params.iter().find(|p| p.name == id.name) {
                    Some(p) => p,
                    None => {
                        let help =
                            did_you_mean(&id.name, block.params.iter().map(|p| p.name.as_str()))
                                .unwrap_or_else(|| {
                                    format!("its parameters are {}", block_params(block))
                                });
                        return self.error(
                            Diagnostic::error(
                                "unknown-argument",
                                format!("block `{name}` has no parameter `{}`", id.name),
                            )
                            .label(id.span, "unknown parameter")
                            .help(help),
                        );
                    }
                },
            };
            if let Some(&first) = given.get(param.name.as_str()) {
                return self.error(
                    Diagnostic::error(
                        "duplicate",
                        format!("parameter `{}` is given twice", param.name),
                    )
                    .label(a.span, "given again here")
                    .label(first, "first given here"),
                );
            }
            given.insert(&param.name, a.span);
            values.insert(param.name.clone(), a.value.clone());
        }
        let missing: Vec<&str> = block
            .params
            .iter()
            .filter(|p| !values.contains_key(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return self.error(
                Diagnostic::error(
                    "missing-argument",
                    format!(
                        "block `{name}` needs {}",
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .label(span, "missing arguments")
                .help(format!("its parameters are {}", block_params(block))),
            );
        }

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
        };
        for b in &block.binds {
            add_bind(&mut scope, b);
        }
        self.scopes.push(scope);
        self.instances.push(name);
        let s = self.scopes.len() - 1;
        for i in 0..block.binds.len() {
            self.force_unique(s, i);
        }
        let v = self.chain(s, &block.ret, path);
        self.instances.pop();
        self.scopes.pop();
        v
    }
}

fn add_bind<'p>(scope: &mut Scope<'p>, b: &'p ast::Bind) {
    let i = scope.binds.len();
    scope.binds.push(b);
    scope.state.push(State::Todo);
    let names = std::iter::once(&b.name.name).chain(
        std::iter::once(&b.chain.head)
            .chain(&b.chain.stages)
            .filter_map(|st| st.alias.as_ref().map(|a| &a.name)),
    );
    for (j, name) in names.enumerate() {
        let seen =
            scope.bind_of.contains_key(name.as_str()) || scope.alias_of.contains_key(name.as_str());
        if seen {
            scope.dups.insert(name.clone());
        } else if j == 0 {
            scope.bind_of.insert(name, i);
        } else {
            scope.alias_of.insert(name, i);
        }
    }
}

/// The op or block name of each stage of a chain (the head only when it is a call).
fn stage_names(chain: &Chain) -> Vec<String> {
    let head = match &chain.head.target {
        Target::Call(c) => Some(c.callee.name.clone()),
        Target::Name(_) => None,
    };
    head.into_iter()
        .chain(chain.stages.iter().map(|s| s.target.ident().name.clone()))
        .collect()
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

fn block_params(b: &ast::Block) -> String {
    b.params
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}
