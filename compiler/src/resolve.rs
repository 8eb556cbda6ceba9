//! Name resolution, before anything is evaluated: every name a block or network body refers
//! to must be one of its parameters, inputs, bindings or `as` names, or a const; every op
//! called must be built in or a block. Checking bodies statically means a block is checked
//! even when no network instantiates it, and lowering can treat an unknown name as already
//! reported. Unused parameters, inputs and bindings are warnings.

use std::collections::{HashMap, HashSet};

use netc_dsl::ast::{self, source_name, Chain, Expr, ExprKind, Stmt, Target};
use netc_dsl::diag::did_you_mean;
use netc_dsl::{Diagnostic, Span};

use crate::load::Defs;
use crate::ops;
use crate::repeat::RepeatCall;

mod repeat;

/// What a body declares, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Param,
    Input,
    Bind,
    Alias,
}

struct Body<'a, 'u> {
    defs: &'a Defs<'a>,
    /// Consts and blocks referred to anywhere, for "never used" warnings.
    globals: &'u mut HashSet<String>,
    declared: HashMap<&'a str, (Kind, Span)>,
    used: HashMap<&'a str, usize>,
    diags: Vec<Diagnostic>,
}

/// Records the consts that a const's value refers to (consts are checked when evaluated).
pub fn constant(c: &ast::Const, globals: &mut HashSet<String>) {
    let mut names = Vec::new();
    expr_names(&c.value, &mut names);
    globals.extend(names);
}

fn expr_names(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Chain(c) => {
            if let Target::Name(id) = &c.head.target {
                out.push(id.name.clone());
            }
        }
        ExprKind::List(items) => items.iter().for_each(|i| expr_names(i, out)),
        ExprKind::Binary(_, a, b) => {
            expr_names(a, out);
            expr_names(b, out);
        }
        ExprKind::Neg(a) => expr_names(a, out),
        _ => {}
    }
}

/// Resolves a block's body.
pub fn block(defs: &Defs, b: &ast::Block, globals: &mut HashSet<String>) -> Vec<Diagnostic> {
    let mut body = Body::new(defs, globals);
    let mut first_default: Option<&ast::Param> = None;
    for p in &b.params {
        body.declare(&p.name.name, Kind::Param, p.name.span);
        match (&p.default, first_default) {
            (Some(d), _) => {
                first_default = first_default.or(Some(p));
                body.default(b, d);
            }
            (None, Some(first)) => body.diags.push(
                Diagnostic::error(
                    "default-order",
                    format!("parameter `{p}` has no default, but comes after `{first}`, which has one"),
                )
                .label(p.span, "needs a default")
                .label(first.span, "the first parameter with a default")
                .help(format!(
                    "parameters with defaults come after those without: move `{p}` before `{first}`, or give it a default"
                )),
            ),
            (None, None) => {}
        }
    }
    for bind in &b.binds {
        body.declare(&bind.name.name, Kind::Bind, bind.name.span);
    }
    // `as` names in the return chain name layers only: nothing can refer to them.
    for bind in &b.binds {
        body.declare_aliases(&bind.chain);
    }
    for bind in &b.binds {
        body.chain(&bind.chain);
    }
    body.chain(&b.ret);
    for p in &b.params {
        if body.unused(&p.name.name) {
            body.diags.push(
                Diagnostic::warning(
                    "unused",
                    format!("parameter `{p}` of block `{}` is never used", b.name),
                )
                .label(p.name.span, "unused parameter"),
            );
        }
    }
    for bind in &b.binds {
        if body.unused(&bind.name.name) {
            body.diags.push(
                Diagnostic::warning("unused", format!("`{}` is never used", bind.name))
                    .label(bind.name.span, "bound here")
                    .help(format!(
                        "use it in another binding or in `return` of block `{}`",
                        b.name
                    )),
            );
        }
    }
    body.diags
}

/// Resolves a network's body.
pub fn network(defs: &Defs, n: &ast::Network, globals: &mut HashSet<String>) -> Vec<Diagnostic> {
    let mut body = Body::new(defs, globals);
    for i in &n.inputs {
        body.declare(&i.name.name, Kind::Input, i.name.span);
        // Input sizes are consts, checked when evaluated; here they only count as used.
        let mut names = Vec::new();
        match &i.kind {
            ast::InputKind::Shape(dims) => dims.iter().for_each(|d| expr_names(d, &mut names)),
            ast::InputKind::Class(c) => expr_names(c, &mut names),
        }
        body.globals.extend(names);
    }
    for s in &n.stmts {
        if let Stmt::Bind(b) = s {
            body.declare(&b.name.name, Kind::Bind, b.name.span);
        }
    }
    for s in &n.stmts {
        if let Stmt::Bind(b) = s {
            body.declare_aliases(&b.chain);
        }
    }
    for s in &n.stmts {
        match s {
            Stmt::Bind(b) => body.chain(&b.chain),
            Stmt::Output(o) => {
                for name in &o.names {
                    body.name(name);
                }
            }
            Stmt::Loss(l) => {
                for t in &l.terms {
                    if let Some(ast::LossWeight::Name(id)) = &t.weight {
                        body.name(id);
                    }
                    if !ops::LOSSES.contains(&t.call.callee.name.as_str()) {
                        body.diags.push(unknown_loss(&t.call.callee));
                    }
                    for a in &t.call.args {
                        body.expr(&a.value);
                    }
                }
            }
            Stmt::Train(t) => {
                // Settings are words (`xavier`) or numbers; consts they name are used.
                for e in &t.entries {
                    let mut names = Vec::new();
                    expr_names(&e.value, &mut names);
                    body.globals.extend(names);
                }
            }
        }
    }
    for i in &n.inputs {
        if body.unused(&i.name.name) {
            body.diags.push(
                Diagnostic::warning("unused", format!("input `{}` is never used", i.name))
                    .label(i.name.span, "declared here"),
            );
        }
    }
    for s in &n.stmts {
        if let Stmt::Bind(b) = s {
            if body.unused(&b.name.name) {
                body.diags.push(
                    Diagnostic::warning("unused", format!("`{}` is never used", b.name))
                        .label(b.name.span, "bound here")
                        .help("it reaches neither an output nor a loss; name it in `output`, a `loss`, or another binding"),
                );
            }
        }
    }
    body.diags
}

/// The hint for a block's name where a value was expected.
fn block_not_a_value(b: &ast::Block) -> String {
    let call = if b.params.len() > 1 {
        format!("{}(..)", b.name)
    } else {
        b.name.to_string()
    };
    format!(
        "`{}` is a block, not a value: apply it to a value with `x -> {call}`",
        b.name
    )
}

fn unknown_loss(callee: &ast::Ident) -> Diagnostic {
    Diagnostic::error("unknown-loss", format!("unknown loss `{callee}`"))
        .label(callee.span, "not a loss")
        .help(
            did_you_mean(&callee.name, ops::LOSSES.iter().copied())
                .unwrap_or_else(|| "the losses are `ce` and `mse`".to_string()),
        )
}

impl<'a, 'u> Body<'a, 'u> {
    fn new(defs: &'a Defs<'a>, globals: &'u mut HashSet<String>) -> Body<'a, 'u> {
        Body {
            defs,
            globals,
            declared: HashMap::new(),
            used: HashMap::new(),
            diags: Vec::new(),
        }
    }

    fn declare(&mut self, name: &'a str, kind: Kind, span: Span) {
        if let Some(&(_, first)) = self.declared.get(name) {
            self.diags.push(
                Diagnostic::error(
                    "duplicate",
                    format!("`{}` is defined twice", source_name(name)),
                )
                .label(span, "defined again here")
                .label(first, "first defined here"),
            );
            return;
        }
        self.declared.insert(name, (kind, span));
    }

    fn declare_aliases(&mut self, chain: &'a Chain) {
        for a in chain.aliases() {
            self.declare(&a.name, Kind::Alias, a.span);
        }
    }

    fn unused(&self, name: &str) -> bool {
        !self.used.contains_key(name)
    }

    /// A name in value position.
    fn name(&mut self, id: &'a ast::Ident) {
        if self.declared.contains_key(id.name.as_str()) {
            *self.used.entry(&id.name).or_default() += 1;
            return;
        }
        if self.defs.consts.contains_key(id.name.as_str()) {
            self.globals.insert(id.name.clone());
            return;
        }
        let mut d = Diagnostic::error("undefined", format!("undefined name `{id}`"))
            .label(id.span, "not defined here");
        if ops::lookup(&id.name).is_some() {
            d = d.help(format!(
                "`{id}` is an op: apply it to a value with `x -> {id}`"
            ));
        } else if let Some(b) = self.defs.blocks.get(id.name.as_str()) {
            self.globals.insert(id.name.clone()); // misused, but not unused
            d = d.help(block_not_a_value(b));
        } else {
            let candidates = self
                .declared
                .keys()
                .copied()
                .chain(self.defs.consts.keys().copied());
            d = d.maybe_help(did_you_mean(&id.name, candidates));
        }
        self.diags.push(d);
    }

    fn callee(&mut self, id: &'a ast::Ident) {
        let name = id.name.as_str();
        if ops::lookup(name).is_some() {
            return;
        }
        if self.defs.blocks.contains_key(name) {
            self.globals.insert(name.to_string());
            return;
        }
        if ops::LOSSES.contains(&name) {
            self.diags.push(
                Diagnostic::error("misplaced-loss", format!("`{name}` is a loss, not a layer"))
                    .label(id.span, "used as a layer")
                    .help(format!(
                        "losses go in the `loss` line: `loss {name}(a, b);`"
                    )),
            );
            return;
        }
        let candidates = ops::all()
            .iter()
            .map(|s| s.name)
            .chain(self.defs.blocks.keys().copied());
        let mut d = Diagnostic::error("unknown-op", format!("unknown op `{id}`"))
            .label(id.span, "not an op or block");
        d = match did_you_mean(name, candidates) {
            Some(h) => d.help(h),
            None if self.declared.contains_key(name) => d.help(format!(
                "`{id}` is a value; a stage after `->` must be an op or block"
            )),
            None => d.help("see the op table in docs/language.md, or define a `block`"),
        };
        self.diags.push(d);
    }

    fn chain(&mut self, chain: &'a Chain) {
        if let Target::Call(c) = &chain.head.target {
            if self.defs.is_repeat(&c.callee.name) {
                // `repeat(x, 3, u)`: a value passed first, as to an op, was meant to be piped.
                let piped = c.args.first().filter(|a| a.name.is_none()).and_then(|a| {
                    let id = a.value.as_name()?;
                    self.declared.contains_key(id.name.as_str()).then_some(id)
                });
                let mut d =
                    Diagnostic::error("misplaced-repeat", "`repeat` needs a value piped into it")
                        .label(c.callee.span, "nothing flows into this");
                let mut args: Vec<&'a ast::Arg> = c.args.iter().collect();
                d = match piped {
                    Some(id) => {
                        self.name(id);
                        args.remove(0);
                        d.label(id.span, "a value passed as an argument").help(format!(
                            "`repeat` is a stage: pipe `{id}` into it and leave it out of the arguments: `{id} -> repeat(n, block, ..)`"
                        ))
                    }
                    None => d.help("`repeat` is a stage: `x -> repeat(n, block, ..)`"),
                };
                self.diags.push(d);
                // The rest is checked as at a stage, so that it reports nothing more.
                self.repeat(&chain.head, c, RepeatCall::split_args(&args, self.defs));
                return;
            }
        }
        match &chain.head.target {
            Target::Name(id) => {
                self.name(id);
                if let Some(a) = &chain.head.alias {
                    self.diags.push(
                        Diagnostic::error(
                            "misplaced-as",
                            "`as` names a layer, but this is a value",
                        )
                        .label(a.span, "nothing to name")
                        .help(format!("put `as {a}` after an op: `{id} -> relu as {a}`")),
                    );
                }
            }
            Target::Call(c) => self.call(c),
        }
        for st in &chain.stages {
            match &st.target {
                Target::Name(id) if self.defs.is_repeat(&id.name) => {
                    self.diags.push(
                        Diagnostic::error("repeat", "`repeat` needs a count and a block")
                            .label(id.span, "nothing to repeat")
                            .help("`x -> repeat(3, block, args..)` calls `block(args..)` 3 times in a row"),
                    );
                }
                Target::Name(id) => self.callee(id),
                Target::Call(c) if self.defs.is_repeat(&c.callee.name) => {
                    self.repeat(st, c, RepeatCall::split(c, self.defs))
                }
                Target::Call(c) => self.call(c),
            }
        }
    }

    fn call(&mut self, c: &'a ast::Call) {
        self.callee(&c.callee);
        // A block named `repeat` hides repetition: `repeat(3, u, 8)` passes the block `u` to
        // it as a value, which deserves more than "undefined name".
        let hiding = match self.defs.blocks.get(c.callee.name.as_str()) {
            Some(b) if c.callee.name == "repeat" => Some(*b),
            _ => None,
        };
        for a in &c.args {
            let block = a
                .value
                .as_name()
                .filter(|id| self.is_block_only(id))
                .and_then(|id| Some((id, self.defs.blocks.get(id.name.as_str())?)));
            match (hiding, block) {
                (Some(repeat), Some((id, _))) => {
                    self.globals.insert(id.name.clone());
                    self.diags.push(
                        Diagnostic::error("undefined", format!("undefined name `{id}`"))
                            .label(id.span, "a block, not a value")
                            .label(repeat.name.span, "this block `repeat` hides repetition")
                            .help(format!(
                                "`repeat(..)` calls the block named `repeat`, which takes `{id}` as a value; to repeat `{id}`, rename that block"
                            )),
                    );
                }
                _ => self.expr(&a.value),
            }
        }
    }

    /// Whether `id` names a block and nothing that is a value here.
    fn is_block_only(&self, id: &ast::Ident) -> bool {
        let name = id.name.as_str();
        self.defs.blocks.contains_key(name)
            && !self.declared.contains_key(name)
            && !self.defs.consts.contains_key(name)
    }

    /// A default value: a constant expression, of consts only, so that it means the same in
    /// every call (it cannot see the block's other parameters).
    fn default(&mut self, b: &'a ast::Block, e: &'a Expr) {
        match &e.kind {
            ExprKind::Chain(c) => {
                let Some(id) = e.as_name() else {
                    self.diags.push(
                        Diagnostic::error("not-constant", "a default must be a constant")
                            .label(c.span, "layers cannot appear here")
                            .help("a default is a number, string, bool, list or const"),
                    );
                    return;
                };
                if self.defs.consts.contains_key(id.name.as_str()) {
                    self.globals.insert(id.name.clone());
                    return;
                }
                let mut d = Diagnostic::error(
                    "not-constant",
                    format!("a default may refer only to consts, and `{id}` is not one"),
                )
                .label(id.span, "not a const");
                d = if b.params.iter().any(|p| p.name.name == id.name) {
                    d.help(format!(
                        "defaults cannot use the block's parameters; pass `{id}` at the call instead"
                    ))
                } else {
                    d.maybe_help(did_you_mean(&id.name, self.defs.consts.keys().copied()))
                };
                self.diags.push(d);
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.default(b, i)),
            ExprKind::Binary(_, x, y) => {
                self.default(b, x);
                self.default(b, y);
            }
            ExprKind::Neg(x) => self.default(b, x),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
        }
    }

    fn expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Chain(c) => self.chain(c),
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Neg(a) => self.expr(a),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
        }
    }
}
