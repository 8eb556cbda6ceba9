//! Raw identifiers (docs/language.md, "Lexical rules"): `r#NAME` is the name NAME wherever an
//! identifier stands, keywords included, and its span covers the whole `r#NAME`; an `r#` that
//! begins no name is an error in prose; and a program without `r#` parses as it did before
//! raw identifiers: every name is its text, and writing any name raw changes nothing but
//! spans.

use std::path::{Path, PathBuf};

use netc_dsl::ast::*;
use netc_dsl::{parse, FileId, SourceMap, Span};

fn parse_ok(text: &str) -> File {
    parse(FileId(0), text).unwrap_or_else(|d| {
        let mut sources = SourceMap::new();
        sources.add("t.net", text);
        panic!("{}", d.render(&sources))
    })
}

/// The rendered error of a text that must not parse.
fn error(text: &str) -> String {
    let mut sources = SourceMap::new();
    let f = sources.add("t.net", text);
    match parse(f, text) {
        Ok(_) => panic!("parsed: {text}"),
        Err(d) => d.render(&sources),
    }
}

fn text_of(text: &str, span: Span) -> &str {
    &text[span.start as usize..span.end as usize]
}

// ---- every identifier of a file, in the order the parser made them -------------------------

fn idents(file: &File) -> Vec<&Ident> {
    let mut out = Vec::new();
    for item in &file.items {
        match item {
            Item::Use(_) => {}
            Item::Const(c) => {
                out.push(&c.name);
                expr(&c.value, &mut out);
            }
            Item::Block(b) => {
                out.push(&b.name);
                for p in &b.params {
                    out.push(&p.name);
                    if let Some(d) = &p.default {
                        expr(d, &mut out);
                    }
                }
                for bind in &b.binds {
                    out.push(&bind.name);
                    chain(&bind.chain, &mut out);
                }
                chain(&b.ret, &mut out);
            }
            Item::Network(n) => {
                out.push(&n.name);
                for i in &n.inputs {
                    out.push(&i.name);
                    match &i.kind {
                        InputKind::Shape(dims) => dims.iter().for_each(|d| expr(d, &mut out)),
                        InputKind::Class(c) => expr(c, &mut out),
                    }
                }
                for s in &n.stmts {
                    match s {
                        Stmt::Bind(b) => {
                            out.push(&b.name);
                            chain(&b.chain, &mut out);
                        }
                        Stmt::Loss(l) => {
                            for t in &l.terms {
                                if let Some(LossWeight::Name(id)) = &t.weight {
                                    out.push(id);
                                }
                                call(&t.call, &mut out);
                            }
                        }
                        Stmt::Output(o) => out.extend(&o.names),
                        Stmt::Train(t) => {
                            for e in &t.entries {
                                out.push(&e.key);
                                expr(&e.value, &mut out);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn chain<'a>(c: &'a Chain, out: &mut Vec<&'a Ident>) {
    for st in std::iter::once(&c.head).chain(&c.stages) {
        match &st.target {
            Target::Name(id) => out.push(id),
            Target::Call(c) => call(c, out),
        }
        out.extend(&st.alias);
    }
}

fn call<'a>(c: &'a Call, out: &mut Vec<&'a Ident>) {
    out.push(&c.callee);
    for a in &c.args {
        out.extend(&a.name);
        expr(&a.value, out);
    }
}

fn expr<'a>(e: &'a Expr, out: &mut Vec<&'a Ident>) {
    match &e.kind {
        ExprKind::Chain(c) => chain(c, out),
        ExprKind::List(items) => items.iter().for_each(|i| expr(i, out)),
        ExprKind::Binary(_, a, b) => {
            expr(a, out);
            expr(b, out);
        }
        ExprKind::Neg(a) => expr(a, out),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
    }
}

// ---- names and spans -----------------------------------------------------------------------

#[test]
fn every_keyword_is_a_name_when_raw_wherever_a_name_stands() {
    for k in KEYWORDS {
        let text = format!(
            "const r#{k} = 1;\n\
             block r#{k}(r#{k}) {{ r#{k} = r#{k} -> relu as r#{k}; return r#{k}; }}\n\
             network r#{k}(r#{k}: [r#{k}], r#{k}: class(r#{k})) {{\n\
             \x20   r#{k} = r#{k} -> r#{k}(r#{k}=r#{k} * 2) -> r#{k} as r#{k};\n\
             \x20   loss r#{k} * r#{k}(r#{k}, r#{k});\n\
             \x20   output r#{k}, r#{k};\n\
             \x20   train {{ r#{k} = r#{k}(r#{k}=r#{k}); }}\n\
             }}\n"
        );
        let file = parse_ok(&text);
        let ids: Vec<&Ident> = idents(&file)
            .into_iter()
            .filter(|i| i.name != "relu")
            .collect();
        assert_eq!(
            ids.len(),
            text.matches("r#").count(),
            "{k}: every name seen"
        );
        for id in ids {
            assert_eq!(id.name, *k);
            assert_eq!(text_of(&text, id.span), format!("r#{k}"), "{k}: the span");
            assert_eq!(id.to_string(), format!("r#{k}"), "{k}: shown raw");
        }
        // Plain, it is still a keyword.
        assert!(parse(FileId(0), &format!("const {k} = 1;")).is_err(), "{k}");
    }
}

#[test]
fn a_raw_name_that_is_no_keyword_is_the_plain_name() {
    let raw =
        parse_ok("network n(x: [1, 8, 8]) { y = x -> r#conv(4, r#k=3) as r#conv1; output r#y; }");
    let plain = parse_ok("network n(x: [1, 8, 8]) { y = x -> conv(4, k=3) as conv1; output y; }");
    let names = |f: &File| -> Vec<String> { idents(f).iter().map(|i| i.name.clone()).collect() };
    assert_eq!(names(&raw), names(&plain));
    assert_eq!(names(&raw), ["n", "x", "y", "x", "conv", "k", "conv1", "y"]);
    // Shown as the plain name: both spellings are one name.
    assert_eq!(idents(&raw)[6].to_string(), "conv1");
}

#[test]
fn spans_cover_the_whole_raw_identifier() {
    let text = "block b(x) {\n    r#block = x -> relu as r#as;\n    return r#block;\n}\n";
    let file = parse_ok(text);
    let Item::Block(b) = &file.items[0] else {
        panic!("a block")
    };
    let bind = &b.binds[0];
    assert_eq!((bind.name.span.start, bind.name.span.end), (17, 24));
    assert_eq!(text_of(text, bind.name.span), "r#block");
    let alias = bind.chain.stages[0].alias.as_ref().unwrap();
    assert_eq!(
        (alias.name.as_str(), text_of(text, alias.span)),
        ("as", "r#as")
    );
    // The binding's span and the chain's begin and end where they did.
    assert_eq!(text_of(text, bind.span), "r#block = x -> relu as r#as;");
    assert_eq!(text_of(text, bind.chain.span), "x -> relu as r#as");
    let ret = b.ret.head.target.ident();
    assert_eq!(
        (ret.name.as_str(), text_of(text, ret.span)),
        ("block", "r#block")
    );
}

// ---- errors --------------------------------------------------------------------------------

#[test]
fn r_hash_without_a_name_is_an_error() {
    assert_eq!(
        error("network n(x: [1, 8, 8]) { y = x -> r#; output y; }"),
        "netc::parse

  × expected a name after `r#`, found `;`
   ╭─[t.net:1:36]
 1 │ network n(x: [1, 8, 8]) { y = x -> r#; output y; }
   ·                                    ─┬─
   ·                                     ╰── not a raw identifier
   ╰────
  help: `r#NAME` is the name NAME, even when NAME is a keyword, as in Rust: `r#block`
"
    );
    assert_eq!(
        error("r#"),
        "netc::parse

  × expected a name after `r#`, found end of file
   ╭─[t.net:1:1]
 1 │ r#
   · ─┬
   ·  ╰── not a raw identifier
   ╰────
  help: `r#NAME` is the name NAME, even when NAME is a keyword, as in Rust: `r#block`
"
    );
    assert_eq!(
        error("network n(x: [1, 8, 8]) { r# y = x; }"),
        "netc::parse

  × expected a name after `r#`, found whitespace
   ╭─[t.net:1:27]
 1 │ network n(x: [1, 8, 8]) { r# y = x; }
   ·                           ─┬
   ·                            ╰── not a raw identifier
   ╰────
  help: `r#NAME` is the name NAME, even when NAME is a keyword, as in Rust: `r#block`
"
    );
}

#[test]
fn r_hash_before_a_number_is_an_error() {
    assert_eq!(
        error("const c = r#1;"),
        "netc::parse

  × expected a name after `r#`, found `1`
   ╭─[t.net:1:11]
 1 │ const c = r#1;
   ·           ─┬─
   ·            ╰── not a raw identifier
   ╰────
  help: `r#NAME` is the name NAME, even when NAME is a keyword, as in Rust: `r#block`
"
    );
}

#[test]
fn names_rust_cannot_make_raw_are_errors() {
    assert_eq!(
        error("network n(x: [1, 8, 8]) { y = x -> relu; output r#self; }"),
        "netc::parse

  × `r#self` is not a name
   ╭─[t.net:1:49]
 1 │ network n(x: [1, 8, 8]) { y = x -> relu; output r#self; }
   ·                                                 ───┬──
   ·                                                    ╰── not a raw identifier
   ╰────
  help: as in Rust, `self` cannot be a raw identifier; write `self`
"
    );
    for name in ["_", "Self", "super", "crate"] {
        let e = error(&format!("const r#{name} = 1;"));
        assert!(e.contains(&format!("× `r#{name}` is not a name")), "{e}");
    }
    // A name that only begins with one of them is a name.
    let file = parse_ok("const r#self_ = 1; const r#_x = 2; const r#crates = 3;");
    let names: Vec<&str> = idents(&file).iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["self_", "_x", "crates"]);
}

#[test]
fn r_hash_in_comments_and_strings_is_text() {
    parse_ok("// r# r#1\n/* r# */ use \"r#.net\";\n");
}

#[test]
fn a_keyword_where_a_name_stands_suggests_the_raw_identifier() {
    assert_eq!(
        error("block b(x) {\n    y = x -> relu as block;\n    return y;\n}\n"),
        "netc::parse

  × unexpected keyword `block`
   ╭─[t.net:2:22]
 1 │ block b(x) {
 2 │     y = x -> relu as block;
   ·                      ──┬──
   ·                        ╰── unexpected here
 3 │     return y;
   ╰────
  help: `block` is a keyword; to use it as a name, write the raw identifier `r#block`
"
    );
    // But not a keyword that begins a misplaced item.
    let e = error("network n(x: [1]) { y = x -> relu; block b(x) { return x; } }");
    assert!(!e.contains("help"), "{e}");
}

#[test]
fn a_raw_identifier_in_an_error_is_one_token() {
    assert_eq!(
        error("network n(x: [1, 8, 8]) { y = x r#block; }"),
        "netc::parse

  × expected `(`, `->`, `;` or `as`, found `r#block`
   ╭─[t.net:1:33]
 1 │ network n(x: [1, 8, 8]) { y = x r#block; }
   ·                                 ───┬───
   ·                                    ╰── unexpected here
   ╰────
  help: is a `;` missing before this?
"
    );
}

// ---- programs without `r#` -----------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.net` file of the examples (the zoo included) and of the generated-code tests.
fn net_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["examples", "examples/zoo", "tests/codegen/nets"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "net") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 15, "{out:?}");
    out
}

/// `text` with every identifier the parser saw written raw.
fn all_raw(text: &str, file: &File) -> String {
    let mut starts: Vec<usize> = idents(file)
        .iter()
        .map(|i| i.span.start as usize)
        .filter(|&s| !text[s..].starts_with("r#"))
        .collect();
    starts.sort();
    starts.dedup();
    let mut out = String::with_capacity(text.len() + 2 * starts.len());
    let mut at = 0;
    for s in starts {
        out.push_str(&text[at..s]);
        out.push_str("r#");
        at = s;
    }
    out.push_str(&text[at..]);
    out
}

/// The AST's `Debug` without its spans, which writing names raw moves.
fn without_spans(file: &File) -> String {
    let debug = format!("{file:?}");
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug.as_str();
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        rest = &rest[i + rest[i..].find('}').unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn without_raw_identifiers_every_name_is_its_text() {
    // The parser took names from the text before raw identifiers; it still does where there
    // is no `r#`.
    for path in net_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = parse_ok(&text);
        for id in idents(&file) {
            let written = text_of(&text, id.span);
            let raw = written.starts_with("r#");
            assert_eq!(
                written.strip_prefix("r#").unwrap_or(written),
                id.name,
                "{}",
                path.display()
            );
            assert_eq!(
                raw,
                KEYWORDS.contains(&id.name.as_str()),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn writing_every_name_raw_changes_only_spans() {
    for path in net_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = parse_ok(&text);
        let raw_text = all_raw(&text, &file);
        assert!(raw_text.len() > text.len(), "{}", path.display());
        let raw = parse_ok(&raw_text);
        assert_eq!(
            without_spans(&raw),
            without_spans(&file),
            "{}",
            path.display()
        );
        for id in idents(&raw) {
            assert_eq!(text_of(&raw_text, id.span), format!("r#{}", id.name));
        }
    }
}
