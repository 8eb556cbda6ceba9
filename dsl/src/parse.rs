//! Parsing: the pest grammar (`net.pest`) turns text into pairs, and one function per rule
//! turns pairs into the AST. A parse error becomes a [`Diagnostic`] that says, in prose, what
//! was expected and what was found.

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::span::{FileId, Span};

#[derive(Parser)]
#[grammar = "net.pest"]
pub(crate) struct NetParser;

/// How deeply brackets may nest. Real networks nest a few levels; the limit keeps the
/// recursive parser and the phases after it far from the end of the stack on hostile input.
pub const MAX_NESTING: usize = 64;

/// Parses one `.net` source text. `file` is the id its spans will carry.
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    check_lexical(file, text)?;
    pest::set_error_detail(true);
    let mut pairs = NetParser::parse(Rule::file, text)
        .map_err(|e| crate::syntax_error::from_pest(file, text, e))?;
    let top = pairs
        .next()
        .expect("the file rule always produces one pair");
    let cx = Cx {
        file,
        error: std::cell::RefCell::new(None),
    };
    let ast = cx.file(top);
    match cx.error.into_inner() {
        Some(d) => Err(d),
        None => Ok(ast),
    }
}

/// How many operands one expression may chain (`a + b + ...`), and how many `-` may stand
/// before one operand. Expressions become left-deep trees that later phases walk
/// recursively; real programs use a handful.
pub const MAX_OPERANDS: usize = 256;

struct Cx {
    file: FileId,
    /// The first limit exceeded while building the AST.
    error: std::cell::RefCell<Option<Diagnostic>>,
}

impl Cx {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    /// A name; a raw identifier `r#NAME` is the name NAME, and its span keeps the `r#`.
    fn ident(&self, pair: Pair<Rule>) -> Ident {
        debug_assert_eq!(pair.as_rule(), Rule::ident);
        let text = pair.as_str();
        Ident {
            name: text.strip_prefix("r#").unwrap_or(text).to_string(),
            span: self.span(&pair),
        }
    }

    fn file(&self, pair: Pair<Rule>) -> File {
        let span = self.span(&pair);
        let items = pair
            .into_inner()
            .filter_map(|p| match p.as_rule() {
                Rule::use_item => Some(Item::Use(self.use_item(p))),
                Rule::const_item => Some(Item::Const(self.const_item(p))),
                Rule::block_item => Some(Item::Block(self.block_item(p))),
                Rule::network_item => Some(Item::Network(self.network_item(p))),
                _ => None, // EOI
            })
            .collect();
        File { items, span }
    }

    fn use_item(&self, pair: Pair<Rule>) -> Use {
        let span = self.span(&pair);
        let string = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .expect("use has a string");
        Use {
            path: unescape(string.as_str()),
            path_span: self.span(&string),
            span,
        }
    }

    fn const_item(&self, pair: Pair<Rule>) -> Const {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1); // kw_const
        let name = self.ident(inner.next().unwrap());
        let value = self.expr(inner.next().unwrap());
        Const { name, value, span }
    }

    fn block_item(&self, pair: Pair<Rule>) -> Block {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1); // kw_block
        let name = self.ident(inner.next().unwrap());
        let params = inner
            .next()
            .unwrap()
            .into_inner()
            .map(|p| self.param(p))
            .collect();
        let mut binds = Vec::new();
        let mut ret = None;
        for p in inner {
            match p.as_rule() {
                Rule::bind => binds.push(self.bind(p)),
                Rule::return_stmt => {
                    let chain = p.into_inner().nth(1).unwrap();
                    ret = Some(self.chain(chain));
                }
                _ => unreachable!("block body: {:?}", p.as_rule()),
            }
        }
        Block {
            name,
            params,
            binds,
            ret: ret.expect("the grammar requires a return"),
            span,
        }
    }

    fn param(&self, pair: Pair<Rule>) -> Param {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().unwrap());
        let default = inner.next().map(|e| self.expr(e));
        Param {
            name,
            default,
            span,
        }
    }

    fn network_item(&self, pair: Pair<Rule>) -> Network {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1); // kw_network
        let name = self.ident(inner.next().unwrap());
        let inputs = inner
            .next()
            .unwrap()
            .into_inner()
            .map(|p| self.input(p))
            .collect();
        let stmts = inner
            .map(|p| match p.as_rule() {
                Rule::bind => Stmt::Bind(self.bind(p)),
                Rule::loss_stmt => Stmt::Loss(self.loss(p)),
                Rule::output_stmt => Stmt::Output(self.output(p)),
                Rule::train_stmt => Stmt::Train(self.train(p)),
                r => unreachable!("network body: {r:?}"),
            })
            .collect();
        Network {
            name,
            inputs,
            stmts,
            span,
        }
    }

    fn input(&self, pair: Pair<Rule>) -> Input {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().unwrap());
        let ty = inner.next().unwrap();
        let kind = match ty.as_rule() {
            Rule::shape => InputKind::Shape(ty.into_inner().map(|p| self.expr(p)).collect()),
            Rule::class_type => InputKind::Class(self.expr(ty.into_inner().nth(1).unwrap())),
            r => unreachable!("input type: {r:?}"),
        };
        Input { name, kind, span }
    }

    fn bind(&self, pair: Pair<Rule>) -> Bind {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().unwrap());
        let chain = self.chain(inner.next().unwrap());
        Bind { name, chain, span }
    }

    fn loss(&self, pair: Pair<Rule>) -> Loss {
        let span = self.span(&pair);
        let terms = pair
            .into_inner()
            .skip(1) // kw_loss
            .map(|t| {
                let span = self.span(&t);
                let mut weight = None;
                let mut call = None;
                for p in t.into_inner() {
                    match p.as_rule() {
                        Rule::loss_weight => {
                            let w = p.into_inner().next().unwrap();
                            weight = Some(match w.as_rule() {
                                Rule::number => {
                                    let s = self.span(&w);
                                    let v = match self.number(w) {
                                        ExprKind::Int(i) => i as f64,
                                        ExprKind::Float(f) => f,
                                        _ => unreachable!(),
                                    };
                                    LossWeight::Number(v, s)
                                }
                                _ => LossWeight::Name(self.ident(w)),
                            });
                        }
                        Rule::call => call = Some(self.call(p)),
                        r => unreachable!("loss term: {r:?}"),
                    }
                }
                LossTerm {
                    weight,
                    call: call.unwrap(),
                    span,
                }
            })
            .collect();
        Loss { terms, span }
    }

    fn output(&self, pair: Pair<Rule>) -> Output {
        let span = self.span(&pair);
        let names = pair.into_inner().skip(1).map(|p| self.ident(p)).collect();
        Output { names, span }
    }

    fn train(&self, pair: Pair<Rule>) -> Train {
        let span = self.span(&pair);
        let entries = pair
            .into_inner()
            .skip(1) // kw_train
            .map(|e| {
                let span = self.span(&e);
                let mut inner = e.into_inner();
                let key = self.ident(inner.next().unwrap());
                let value = self.expr(inner.next().unwrap());
                TrainEntry { key, value, span }
            })
            .collect();
        Train { entries, span }
    }

    fn chain(&self, pair: Pair<Rule>) -> Chain {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let head = self.stage(inner.next().unwrap());
        let stages = inner.map(|p| self.stage(p)).collect();
        Chain { head, stages, span }
    }

    /// `head` and `stage` have the same form.
    fn stage(&self, pair: Pair<Rule>) -> Stage {
        let span = self.span(&pair);
        let mut target = None;
        let mut alias = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::call => target = Some(Target::Call(self.call(p))),
                Rule::ident => target = Some(Target::Name(self.ident(p))),
                Rule::alias => alias = Some(self.ident(p.into_inner().nth(1).unwrap())),
                r => unreachable!("stage: {r:?}"),
            }
        }
        Stage {
            target: target.unwrap(),
            alias,
            span,
        }
    }

    fn call(&self, pair: Pair<Rule>) -> Call {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let callee = self.ident(inner.next().unwrap());
        let args = inner
            .map(|a| {
                let span = self.span(&a);
                let mut name = None;
                let mut value = None;
                for p in a.into_inner() {
                    match p.as_rule() {
                        Rule::arg_name => name = Some(self.ident(p.into_inner().next().unwrap())),
                        Rule::expr => value = Some(self.expr(p)),
                        r => unreachable!("arg: {r:?}"),
                    }
                }
                Arg {
                    name,
                    value: value.unwrap(),
                    span,
                }
            })
            .collect();
        Call { callee, args, span }
    }

    fn expr(&self, pair: Pair<Rule>) -> Expr {
        debug_assert_eq!(pair.as_rule(), Rule::expr);
        self.binary(pair, Rule::product)
    }

    /// `expr` and `product`: operands separated by left-associative operators.
    fn too_long(&self, span: Span) {
        let mut e = self.error.borrow_mut();
        if e.is_none() {
            *e = Some(
                Diagnostic::error(
                    "nesting",
                    format!("an expression may have at most {MAX_OPERANDS} operands or signs"),
                )
                .label(span, "too long")
                .help("split it into consts"),
            );
        }
    }

    fn binary(&self, pair: Pair<Rule>, operand: Rule) -> Expr {
        if pair.clone().into_inner().count() > 2 * MAX_OPERANDS {
            self.too_long(self.span(&pair));
            return Expr {
                kind: ExprKind::Int(0),
                span: self.span(&pair),
            };
        }
        let mut inner = pair.into_inner();
        let first = inner.next().unwrap();
        let mut acc = self.operand(first, operand);
        while let Some(op) = inner.next() {
            let op = match op.as_str().trim() {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                other => unreachable!("operator {other:?}"),
            };
            let rhs = self.operand(inner.next().unwrap(), operand);
            let span = acc.span.to(rhs.span);
            acc = Expr {
                kind: ExprKind::Binary(op, Box::new(acc), Box::new(rhs)),
                span,
            };
        }
        acc
    }

    fn operand(&self, pair: Pair<Rule>, rule: Rule) -> Expr {
        match rule {
            Rule::product => self.binary(pair, Rule::unary),
            _ => self.unary(pair),
        }
    }

    fn unary(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut negs = 0;
        let mut atom = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::neg => negs += 1,
                _ => atom = Some(self.atom(p)),
            }
        }
        let mut e = atom.unwrap();
        if negs > MAX_OPERANDS {
            self.too_long(span);
            return e;
        }
        for _ in 0..negs {
            e = Expr {
                kind: ExprKind::Neg(Box::new(e)),
                span,
            };
        }
        e
    }

    fn atom(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => self.number(pair),
            Rule::string => ExprKind::Str(unescape(pair.as_str())),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::shape => ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
            Rule::chain => ExprKind::Chain(Box::new(self.chain(pair))),
            Rule::expr => return self.expr(pair),
            r => unreachable!("atom: {r:?}"),
        };
        Expr { kind, span }
    }

    fn number(&self, pair: Pair<Rule>) -> ExprKind {
        let inner = pair.into_inner().next().unwrap();
        let text: String = inner.as_str().chars().filter(|&c| c != '_').collect();
        match inner.as_rule() {
            // Too large for i64: kept as a float so that the size check reports it.
            Rule::int => text
                .parse::<i64>()
                .map(ExprKind::Int)
                .unwrap_or_else(|_| ExprKind::Float(text.parse().unwrap_or(f64::INFINITY))),
            _ => ExprKind::Float(text.parse().unwrap_or(f64::INFINITY)),
        }
    }
}

/// The value of a string literal (the grammar only admits `\"`, `\\`, `\n`, `\t`).
fn unescape(lit: &str) -> String {
    let body = &lit[1..lit.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A lexical pass before the parser: rejects bracket nesting deeper than [`MAX_NESTING`]
/// (so that the recursive parser and the phases after it stay far from the end of the
/// stack on hostile input), unterminated comments and strings, which pest would report
/// only as an unexpected end of file, and an `r#` that does not begin a raw identifier,
/// which pest would report as a `#` after the name `r`.
fn check_lexical(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                let mut level = 0usize;
                loop {
                    if i + 1 >= bytes.len() {
                        return Err(Diagnostic::error("parse", "unterminated block comment")
                            .label(
                                Span::new(file, start, start + 2),
                                "this comment is never closed",
                            )
                            .help("close it with `*/` (block comments nest, as in Rust)"));
                    }
                    match (bytes[i], bytes[i + 1]) {
                        (b'/', b'*') => {
                            level += 1;
                            i += 2;
                        }
                        (b'*', b'/') => {
                            level -= 1;
                            i += 2;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return Err(Diagnostic::error("parse", "unterminated string")
                        .label(
                            Span::new(file, start, start + 1),
                            "this string is never closed",
                        )
                        .help("close it with `\"`"));
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        "nesting",
                        format!("brackets nest more than {MAX_NESTING} deep"),
                    )
                    .label(Span::new(file, i, i + 1), "too deep here")
                    .help("bind the inner part to a name and refer to it"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'r' if bytes.get(i + 1) == Some(&b'#') && (i == 0 || !is_ident_byte(bytes[i - 1])) => {
                check_raw_ident(file, text, i)?;
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The `r#` at `at` must begin a raw identifier: a name right after it, and one that Rust
/// allows raw (not `_`, `self`, `Self`, `super` or `crate`), so that the text reads the same
/// inside `network!`.
fn check_raw_ident(file: FileId, text: &str, at: usize) -> Result<(), Diagnostic> {
    let rest = &text[at + 2..];
    let len = rest.bytes().take_while(|&b| is_ident_byte(b)).count();
    let name = &rest[..len];
    let help = "`r#NAME` is the name NAME, even when NAME is a keyword, as in Rust: `r#block`";
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        let (found, span) = match rest.chars().next() {
            Some(c) if c.is_whitespace() => ("whitespace".to_string(), Span::new(file, at, at + 2)),
            _ => {
                let (found, span) = crate::syntax_error::found_token(file, text, at + 2);
                (found, Span::new(file, at, span.end as usize))
            }
        };
        return Err(Diagnostic::error(
            "parse",
            format!("expected a name after `r#`, found {found}"),
        )
        .label(span, "not a raw identifier")
        .help(help));
    }
    if matches!(name, "_" | "self" | "Self" | "super" | "crate") {
        return Err(
            Diagnostic::error("parse", format!("`r#{name}` is not a name"))
                .label(Span::new(file, at, at + 2 + len), "not a raw identifier")
                .help(format!(
                    "as in Rust, `{name}` cannot be a raw identifier; write `{name}`"
                )),
        );
    }
    Ok(())
}
