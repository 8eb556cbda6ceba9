//! Lowering: from the AST of one network to the graph. Blocks are expanded (each call an
//! instance with its own path prefix), `a -> f(args)` becomes `f(a, args)`, consts and
//! integer arithmetic are evaluated, names get the dotted paths of docs/language.md "Names",
//! and every node's shape is inferred as it is made, so a mistake is reported at the stage
//! that makes it.
//!
//! Bindings are evaluated on demand, so they may be written in any order; a binding that
//! needs itself is a cycle and an error. Every binding is evaluated, used or not, so every
//! line is checked.

mod block_args;
mod call;
mod chain;

use chain::stage_names;
mod expr;
mod loss;
mod repeat;

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

/// How many stages (op and block calls) lowering one network may evaluate. GoogLeNet needs
/// about 200; the limit stops a block that calls another twice, thirty levels down, from
/// expanding to 2^30 layers.
const MAX_STAGES: usize = 250_000;

/// How many bindings may wait on one another (a binding written before those it uses).
const MAX_FORCE_DEPTH: usize = 2_000;

/// The value of every const of a program, evaluated once, used or not, so that every const
/// is checked and each mistake in one is reported once.
#[derive(Clone, Debug, Default)]
pub struct Consts(HashMap<String, Value>);

impl Consts {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// Evaluates every const of the program, in source order.
pub fn consts(defs: &Defs, diags: &mut Vec<Diagnostic>) -> Consts {
    let mut l = Lowerer::new(defs, &Consts::default(), "");
    let mut all: Vec<&ast::Const> = defs.consts.values().copied().collect();
    all.sort_by_key(|c| c.span);
    for c in all {
        l.const_named(c);
    }
    diags.append(&mut l.diags);
    Consts(
        l.consts
            .into_iter()
            .filter_map(|(name, st)| match st {
                ConstState::Done(v) => Some((name, v)),
                ConstState::Busy => None,
            })
            .collect(),
    )
}

/// Lowers `net` to a graph. Errors and warnings go to `diags`; the graph is meaningful only
/// if no error was pushed.
pub fn network(
    defs: &Defs,
    consts: &Consts,
    net: &ast::Network,
    diags: &mut Vec<Diagnostic>,
) -> Graph {
    let mut l = Lowerer::new(defs, consts, &net.name.name);
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
    /// The names `prefix=` gave repetitions here, with the span of the `prefix=` value.
    repeated: HashMap<String, Span>,
}

enum ConstState {
    Busy,
    Done(Value),
}

struct Lowerer<'p> {
    defs: &'p Defs<'p>,
    consts: HashMap<String, ConstState>,
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
    /// Stages evaluated so far, against [`MAX_STAGES`].
    stages: usize,
    /// Loss terms lowered so far (over every `loss` line), for their paths.
    loss_terms: usize,
    /// The count of each `repeat` stage evaluated, by its span, for the report's rows.
    repeat_counts: HashMap<Span, usize>,
    /// The block calls being expanded, outermost first: where each was called, and how to
    /// say so ("in this call of `unit`", "in repetition 7 of 8"). An error inside a block
    /// names them, since the body alone does not say which call went wrong.
    sites: Vec<(Span, String)>,
    /// Errors inside blocks already given (span, message): one in a block's body that every
    /// call makes (a recursive call, in each of 1000 repetitions) is reported at the first.
    sited: HashSet<(Span, String)>,
    /// The `repeat`s being expanded, outermost first, for the error at the stage limit.
    repeats: Vec<RepeatFrame>,
}

/// A `repeat` being expanded: which repetition, and the stages counted so far.
struct RepeatFrame {
    /// The count's span, where an expansion past the stage limit is reported.
    at: Span,
    block: String,
    n: usize,
    /// The repetition being made (from 0).
    k: usize,
    /// [`Lowerer::stages`] before the first repetition and before repetition `k`.
    before: usize,
    before_k: usize,
    /// How many [`Lowerer::sites`] enclose the repeat.
    sites: usize,
}

/// How many enclosing calls an error names; deeper ones are counted in a note.
const MAX_SITES: usize = 4;

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
    fn new(defs: &'p Defs<'p>, consts: &Consts, name: &str) -> Lowerer<'p> {
        Lowerer {
            defs,
            consts: consts
                .0
                .iter()
                .map(|(k, v)| (k.clone(), ConstState::Done(v.clone())))
                .collect(),
            graph: Graph::new(name),
            diags: Vec::new(),
            scopes: Vec::new(),
            row: None,
            paths: HashMap::new(),
            instances: Vec::new(),
            forcing: Vec::new(),
            referenced: HashSet::new(),
            warned: HashSet::new(),
            stages: 0,
            loss_terms: 0,
            repeat_counts: HashMap::new(),
            sites: Vec::new(),
            sited: HashSet::new(),
            repeats: Vec::new(),
        }
    }

    /// Reports an error, naming the block calls it happened in.
    fn error(&mut self, d: Diagnostic) -> Value {
        self.error_within(d, self.sites.len())
    }

    /// Reports an error, naming the outermost `depth` block calls being expanded.
    fn error_within(&mut self, mut d: Diagnostic, depth: usize) -> Value {
        if depth > 0 {
            let key = (d.span().unwrap_or_default(), d.message.clone());
            if !self.sited.insert(key) {
                return Value::Poison;
            }
        }
        let sites = &self.sites[..depth];
        for (span, what) in sites.iter().rev().take(MAX_SITES) {
            d = d.label(*span, what.clone());
        }
        if sites.len() > MAX_SITES {
            d = d.note(format!(
                "and {} more enclosing calls",
                sites.len() - MAX_SITES
            ));
        }
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
            repeated: HashMap::new(),
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
                    stages: Vec::new(),
                    output: None,
                });
            }
        }
        self.scopes.push(scope);
        for i in 0..self.scopes[0].binds.len() {
            self.force_unique(0, i);
        }
        for (i, row) in self.graph.rows.iter_mut().enumerate() {
            let bind = self.scopes[0].binds[i];
            row.stages = stage_names(self.defs, &bind.chain, &self.repeat_counts);
            let name = &bind.name.name;
            if let Some(Value::Tensor(n)) = self.scopes[0].values.get(name) {
                row.output = Some(*n);
            }
        }

        let mut seen_train: Option<Span> = None;
        for s in &net.stmts {
            match s {
                Stmt::Bind(_) => {}
                Stmt::Output(o) => self.outputs(o),
                // Several `loss` lines add up to one objective.
                Stmt::Loss(l) => self.loss(l),
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
                        net.name
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
                            format!("input `{}` has {elements} elements per sample, more than netc handles", input.name),
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
                                format!("`{name}` is an output twice"),
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
                                "an output must be a tensor, but `{name}` is {}",
                                other.describe()
                            ),
                        )
                        .label(name.span, "not a tensor"),
                    );
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
                    format!(
                        "`{}` reaches neither an output nor a loss",
                        ast::source_name(&row.name)
                    ),
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
        let scope = &self.scopes[s];
        if let Some(&i) = scope.bind_of.get(name).or_else(|| scope.alias_of.get(name)) {
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
                let cycle: Vec<_> = names.iter().map(|n| ast::source_name(n)).collect();
                let cycle = cycle.join(" → ");
                self.error(
                    Diagnostic::error("cycle", format!("`{}` depends on itself", bind.name))
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
        if self.forcing.len() >= MAX_FORCE_DEPTH {
            self.error(
                Diagnostic::error(
                    "nesting",
                    format!("more than {MAX_FORCE_DEPTH} bindings wait on one another"),
                )
                .label(bind.name.span, "")
                .help("write bindings before the bindings that use them"),
            );
            self.scopes[s]
                .values
                .insert(bind.name.name.clone(), Value::Poison);
            return;
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
}

fn add_bind<'p>(scope: &mut Scope<'p>, b: &'p ast::Bind) {
    let i = scope.binds.len();
    scope.binds.push(b);
    scope.state.push(State::Todo);
    let names = std::iter::once(&b.name.name).chain(b.chain.aliases().into_iter().map(|a| &a.name));
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
