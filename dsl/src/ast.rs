//! The abstract syntax tree of a `.net` file. Every node keeps the span of the text it came
//! from, so that any later phase can point at the user's tokens.

use std::borrow::Cow;
use std::fmt;

use crate::span::Span;

/// The keywords of the language (`keyword` in `net.pest`). A name that is one is written as a
/// raw identifier: `r#block`.
pub const KEYWORDS: &[&str] = &[
    "network", "block", "const", "use", "return", "loss", "output", "train", "as", "class", "true",
    "false",
];

/// A name, with where it was written. `name` is the name itself: a raw identifier `r#block`
/// is the name `block` (its span still covers the `r#`).
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// How source text must spell the name `name`: `r#block` for a keyword, else the name.
/// Diagnostics quote names this way, so that a quoted name can be written back as it is.
pub fn source_name(name: &str) -> Cow<'_, str> {
    if KEYWORDS.contains(&name) {
        Cow::Owned(format!("r#{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The name as source spells it ([`source_name`]).
impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&source_name(&self.name))
    }
}

/// One parsed source file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Use(Use),
    Const(Const),
    Block(Block),
    Network(Network),
}

/// `use "path.net";`: the blocks and consts of another file.
#[derive(Clone, Debug, PartialEq)]
pub struct Use {
    pub path: String,
    pub path_span: Span,
    pub span: Span,
}

/// `const NAME = value;`
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `block NAME(params) { binds return chain; }`
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub name: Ident,
    pub params: Vec<Param>,
    pub binds: Vec<Bind>,
    pub ret: Chain,
    pub span: Span,
}

/// A block parameter, `c` or `k=3`: a parameter with a default may be left out of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
    pub span: Span,
}

/// The parameter's name as source spells it.
impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.name.fmt(f)
    }
}

/// `network NAME(inputs) { statements }`
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub name: Ident,
    pub inputs: Vec<Input>,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

/// `image: [3, 224, 224]` or `label: class(1000)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub name: Ident,
    pub kind: InputKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InputKind {
    /// A per-sample tensor shape.
    Shape(Vec<Expr>),
    /// An integer class label in `0..N`.
    Class(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Bind(Bind),
    Loss(Loss),
    Output(Output),
    Train(Train),
}

/// `NAME = chain;`
#[derive(Clone, Debug, PartialEq)]
pub struct Bind {
    pub name: Ident,
    pub chain: Chain,
    pub span: Span,
}

/// `loss w1 * f(..) + f(..);`
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub terms: Vec<LossTerm>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LossTerm {
    pub weight: Option<LossWeight>,
    pub call: Call,
    pub span: Span,
}

/// The factor in front of a loss term: a number, or (an extension) a const's name.
#[derive(Clone, Debug, PartialEq)]
pub enum LossWeight {
    Number(f64, Span),
    Name(Ident),
}

/// `output a, b;`
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub names: Vec<Ident>,
    pub span: Span,
}

/// `train { key = value; ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct Train {
    pub entries: Vec<TrainEntry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainEntry {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `head -> stage -> stage ...`. `a -> f(args)` means `f(a, args)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub head: Stage,
    pub stages: Vec<Stage>,
    pub span: Span,
}

impl Chain {
    /// Every `as NAME` in the chain, in its stages and in chains inside their arguments.
    pub fn aliases(&self) -> Vec<&Ident> {
        let mut out = Vec::new();
        self.collect_aliases(&mut out);
        out
    }

    fn collect_aliases<'a>(&'a self, out: &mut Vec<&'a Ident>) {
        for st in std::iter::once(&self.head).chain(&self.stages) {
            if let Some(a) = &st.alias {
                out.push(a);
            }
            if let Target::Call(c) = &st.target {
                for arg in &c.args {
                    arg.value.collect_aliases(out);
                }
            }
        }
    }
}

impl Expr {
    fn collect_aliases<'a>(&'a self, out: &mut Vec<&'a Ident>) {
        match &self.kind {
            ExprKind::Chain(c) => c.collect_aliases(out),
            ExprKind::List(items) => items.iter().for_each(|i| i.collect_aliases(out)),
            ExprKind::Binary(_, a, b) => {
                a.collect_aliases(out);
                b.collect_aliases(out);
            }
            ExprKind::Neg(a) => a.collect_aliases(out),
            _ => {}
        }
    }
}

/// One link of a chain: a bare name (a value at the head, an op or block without arguments
/// after `->`) or a call, optionally renamed with `as NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub target: Target,
    pub alias: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Name(Ident),
    Call(Call),
}

impl Target {
    /// The name that is called or referred to.
    pub fn ident(&self) -> &Ident {
        match self {
            Target::Name(id) => id,
            Target::Call(call) => &call.callee,
        }
    }
}

/// `f(arg, name = arg, ...)`
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub callee: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `[a, b, ...]`: a shape, or a pair such as `k=[1, 7]`.
    List(Vec<Expr>),
    /// A chain in value position; a bare name is a chain with only a head.
    Chain(Box<Chain>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

impl Expr {
    /// The name this expression is, if it is nothing but a name.
    pub fn as_name(&self) -> Option<&Ident> {
        match &self.kind {
            ExprKind::Chain(chain) if chain.stages.is_empty() && chain.head.alias.is_none() => {
                match &chain.head.target {
                    Target::Name(id) => Some(id),
                    Target::Call(_) => None,
                }
            }
            _ => None,
        }
    }
}
