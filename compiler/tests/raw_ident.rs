//! Raw identifiers through the compiler (docs/language.md, "Lexical rules" and "Names"): a
//! binding, `as` name, block or input written `r#NAME` is named NAME in paths, weight names
//! and reports; diagnostics quote a keyword name as it must be written (`r#block`) and point
//! at the whole `r#block`; generated Rust takes a name that is a Rust keyword as a raw
//! identifier; and every example reports the same with every name written raw.

use std::path::{Path, PathBuf};

use netc_compiler::interp::param_shapes;
use netc_compiler::{check_source, codegen, Checked, Report};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(text: &str) -> Checked {
    check_source("t.net", text, &root().join("t.net"), None)
}

fn check_ok(text: &str) -> Checked {
    let checked = check(text);
    assert!(
        checked.diagnostics.is_empty(),
        "expected no diagnostic:\n{}",
        checked.render()
    );
    checked
}

/// MobileNetV3's inverted residual as torchvision names it: the body is `block`.
const INVERTED: &str = "
block inverted(x, c) {
    r#block = x -> conv(4 * c, k=1, bias=false) -> batchnorm -> relu -> conv(c, k=1, bias=false);
    return add(r#block, x);
}
";

#[test]
fn a_raw_binding_in_a_block_instance_names_its_layers_by_its_name() {
    let text = format!(
        "{INVERTED}
network n(image: [8, 8, 8]) {{
    features = image -> conv(8, k=3, p=1) -> inverted(8) -> inverted(8);
    output features;
}}
"
    );
    let checked = check_ok(&text);
    let g = &checked.graphs[0];
    let paths: Vec<&str> = g
        .layers()
        .iter()
        .map(|&n| g.node(n).path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "features.0",
            "features.1.block.0",
            "features.1.block.1",
            "features.1.block.2",
            "features.1.block.3",
            "features.1",
            "features.2.block.0",
            "features.2.block.1",
            "features.2.block.2",
            "features.2.block.3",
            "features.2",
        ]
    );
    let weights: Vec<String> = param_shapes(g).into_iter().map(|(k, _)| k).collect();
    for key in [
        "features.1.block.0.weight",
        "features.1.block.1.weight",
        "features.1.block.1.running_var",
        "features.2.block.3.weight",
    ] {
        assert!(weights.iter().any(|w| w == key), "{key} in {weights:?}");
    }
    assert!(weights.iter().all(|w| !w.contains("r#")), "{weights:?}");
}

#[test]
fn raw_names_everywhere_are_their_names() {
    // A block named `block`, called raw; `as` names, bindings, inputs, a const and the network
    // named with keywords.
    let checked = check_ok(
        "const r#const = 10;
block r#block(r#use, c) {
    r#return = r#use -> conv(c, k=3, p=1) as r#as -> relu;
    return r#return;
}
network r#network(r#input: [3, 8, 8], r#class: class(r#const)) {
    r#block = r#input -> r#block(8) -> r#block(c=8);
    r#output = r#block -> global_avgpool -> flatten -> linear(r#const) as r#true;
    loss ce(r#output, r#class);
    output r#output;
}
",
    );
    let g = &checked.graphs[0];
    assert_eq!(g.name, "network");
    let report = Report::new(g);
    let inputs: Vec<&str> = report.inputs.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(inputs, ["input", "class"]);
    let paths: Vec<&str> = g
        .layers()
        .iter()
        .map(|&n| g.node(n).path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "block.0.as",
            "block.0.return.1",
            "block.1.as",
            "block.1.return.1",
            "output.0",
            "output.1",
            "true",
        ]
    );
    let outputs: Vec<&str> = g.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outputs, ["output"]);
    let rows: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rows, ["block", "output"]);
}

#[test]
fn diagnostics_quote_a_keyword_name_raw_and_underline_all_of_it() {
    let checked = check(
        "network n(x: [1, 8, 8]) {
    r#block = x -> relu;
    r#block = x -> tanh;
    y = add(r#block, r#blok);
    output y;
}
",
    );
    assert_eq!(
        checked.render(),
        "netc::unused

  ⚠ `r#block` reaches neither an output nor a loss
   ╭─[t.net:2:5]
 1 │ network n(x: [1, 8, 8]) {
 2 │     r#block = x -> relu;
   ·     ──────────┬─────────
   ·               ╰── computed but never used
 3 │     r#block = x -> tanh;
   ╰────
  help: it is left out of training and inference
netc::duplicate

  × `r#block` is defined twice
   ╭─[t.net:3:5]
 1 │ network n(x: [1, 8, 8]) {
 2 │     r#block = x -> relu;
   ·     ───┬───
   ·        ╰── first defined here
 3 │     r#block = x -> tanh;
   ·     ───┬───
   ·        ╰── defined again here
 4 │     y = add(r#block, r#blok);
   ╰────
netc::unused

  ⚠ `r#block` reaches neither an output nor a loss
   ╭─[t.net:3:5]
 2 │     r#block = x -> relu;
 3 │     r#block = x -> tanh;
   ·     ──────────┬─────────
   ·               ╰── computed but never used
 4 │     y = add(r#block, r#blok);
   ╰────
  help: it is left out of training and inference
netc::undefined

  × undefined name `blok`
   ╭─[t.net:4:22]
 3 │     r#block = x -> tanh;
 4 │     y = add(r#block, r#blok);
   ·                      ───┬──
   ·                         ╰── not defined here
 5 │     output y;
   ╰────
  help: did you mean `r#block`?
"
    );
    let checked = check("network n(x: [1, 8, 8]) {\n    r#block = x -> relu;\n    output x;\n}\n");
    assert_eq!(
        checked.render(),
        "netc::unused

  ⚠ `r#block` is never used
   ╭─[t.net:2:5]
 1 │ network n(x: [1, 8, 8]) {
 2 │     r#block = x -> relu;
   ·     ───┬───
   ·        ╰── bound here
 3 │     output x;
   ╰────
  help: it reaches neither an output nor a loss; name it in `output`, a `loss`, or another binding
"
    );
}

#[test]
fn a_raw_block_name_in_an_error_is_quoted_raw() {
    let checked = check(
        "block r#block(x, c) {
    return x -> conv(c, k=1);
}
network n(x: [1, 8, 8]) {
    y = x -> r#block(4, r#as=2);
    output y;
}
",
    );
    assert_eq!(
        checked.render(),
        "netc::unknown-argument

  × block `r#block` has no parameter `r#as`
   ╭─[t.net:5:25]
 4 │ network n(x: [1, 8, 8]) {
 5 │     y = x -> r#block(4, r#as=2);
   ·                         ──┬─
   ·                           ╰── unknown parameter
 6 │     output y;
   ╰────
  help: its parameters are `x`, `c`
"
    );
}

#[test]
fn a_plain_name_written_raw_is_quoted_plain() {
    // `r#conv1` is the name `conv1`: shown as any other spelling of it would be.
    let checked =
        check("network n(image: [1, 8, 8]) {\n    y = r#imag -> relu;\n    output y;\n}\n");
    let text = checked.render();
    assert!(text.contains("× undefined name `imag`"), "{text}");
    assert!(text.contains("help: did you mean `image`?"), "{text}");
}

#[test]
fn inputs_named_after_rust_keywords_are_raw_identifiers_in_generated_rust() {
    let checked = check_ok(
        "network r#use(r#type: [1, 4, 4], r#const: [4], label: class(2)) {
    r#block = r#type -> conv(2, k=3, p=1) as r#as -> flatten -> linear(4);
    r#return = add(r#block, r#const) -> linear(2);
    loss ce(r#return, label);
    output r#return;
}
",
    );
    let g = &checked.graphs[0];
    assert_eq!(codegen::rust_ident(&g.name).unwrap().to_string(), "r#use");
    let source = codegen::emit(g, "t.net").unwrap();
    syn::parse_file(&source).unwrap_or_else(|e| panic!("not Rust: {e}\n{source}"));
    for field in [
        "pub r#type: &'a [f32]",
        "pub r#const: &'a [f32]",
        "x.r#type",
    ] {
        assert!(source.contains(field), "{field}");
    }
}

// ---- every example, every name raw ---------------------------------------------------------

/// `text` with every identifier outside comments and strings that is not a keyword (and not
/// raw already) written raw: `conv` becomes `r#conv`.
fn all_raw(text: &str) -> String {
    const KEYWORDS: &[&str] = netc_dsl::ast::KEYWORDS;
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if text[i..].starts_with("//") {
            i += text[i..].find('\n').unwrap_or(b.len() - i);
        } else if text[i..].starts_with("/*") {
            let mut depth = 0;
            loop {
                if text[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if text[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if text[i..].starts_with("r#") {
            i += 2;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
        } else if b[i].is_ascii_digit() {
            // A number, with its exponent's letter (`1e-4`).
            while i < b.len() && (word(b[i]) || b[i] == b'.') {
                i += 1;
            }
        } else if word(b[i]) {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            if !KEYWORDS.contains(&&text[start..i]) {
                out.push_str("r#");
            }
        } else {
            i += text[i..].chars().next().unwrap().len_utf8();
        }
        out.push_str(&text[start..i]);
    }
    out
}

#[test]
fn every_example_reports_the_same_with_every_name_raw() {
    assert_eq!(
        all_raw("const c = 1e-4; // conv\nnetwork n(x: [3]) { y = x -> conv(p=\"same\") as r#as; }"),
        "const r#c = 1e-4; // conv\nnetwork r#n(r#x: [3]) { r#y = r#x -> r#conv(r#p=\"same\") as r#as; }"
    );
    let mut files = Vec::new();
    for dir in ["examples", "examples/zoo"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "net") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 14, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let raw = all_raw(&text);
        assert!(raw.matches("r#").count() > 20, "{}", path.display());
        let name = path.display().to_string();
        let (a, b) = (
            check_source(&name, &text, &path, None),
            check_source(&name, &raw, &path, None),
        );
        assert!(
            !a.has_errors() && !b.has_errors(),
            "{name}:\n{}",
            b.render()
        );
        let messages = |c: &Checked| -> Vec<String> {
            c.diagnostics.iter().map(|d| d.message.clone()).collect()
        };
        assert_eq!(messages(&a), messages(&b), "{name}");
        assert_eq!(a.graphs.len(), b.graphs.len(), "{name}");
        for (ga, gb) in a.graphs.iter().zip(&b.graphs) {
            let (ra, rb) = (Report::new(ga), Report::new(gb));
            assert_eq!(ra.to_json(ga), rb.to_json(gb), "{name}");
            assert_eq!(ra.table(true), rb.table(true), "{name}");
        }
    }
}

/// The messages about a block defined twice and an unknown `train` setting quote a keyword
/// name raw too, so that it can be written back as it is.
#[test]
fn duplicate_blocks_and_unknown_settings_quote_keyword_names_raw() {
    let twice =
        check("block r#block(x) { return x -> relu; }\nblock r#block(x) { return x -> tanh; }\n");
    let text = twice.render();
    assert!(text.contains("block `r#block` is defined twice"), "{text}");
    let setting = check(
        "network n(x: [4]) {\n    y = x -> relu;\n    output y;\n    train { r#network = 3; }\n}\n",
    );
    let text = setting.render();
    assert!(
        text.contains("unknown training setting `r#network`"),
        "{text}"
    );
}
