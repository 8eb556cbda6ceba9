//! `docs/language.md` against the compiler, so that the reference cannot drift from the code:
//! every op of the op table (`ops::OPS`) and every loss has an entry whose signature lists
//! exactly the op's arguments with their defaults, each argument with a row of its own; every
//! `train` setting is described, and the documented optimizer and schedule arguments and
//! defaults are the compiler's; every ```net example checks without an error or a warning,
//! with the shapes, parameters, MACs and layer paths its comments claim; every ```net-error
//! example fails.
//!
//! Comment claims in a ```net example, after `//` on a line, parts separated by `;`:
//! `[C, H, W]` (the output shape of the binding the line defines, which must fit on that
//! line), `N params`, `N MACs` (the binding's totals, as `netc check` prints them), and
//! `layers A, B` (these layer paths exist in the network). A comment whose first part is
//! none of these is prose. A block whose first line is `// file: NAME` is also the file
//! `NAME` for the other examples' `use`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use netc_compiler::load::{self, Loader};
use netc_compiler::ops::{self, Arity, OpSpec, ParamDefault, LOSSES};
use netc_compiler::{check_program, Checked, Report};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn doc() -> String {
    let path = docs_dir().join("language.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails with every problem found, one per line.
fn assert_none(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "docs/language.md disagrees with the compiler:\n- {}",
        problems.join("\n- ")
    );
}

// ---- sections ------------------------------------------------------------------------------

/// A heading and the text under it, up to the next heading of the same or a higher level.
struct Entry {
    title: String,
    body: String,
}

/// Every heading outside code blocks, with its level and line index.
fn headings(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push((line.chars().take_while(|&c| c == '#').count(), i));
        }
    }
    out
}

/// The first entry whose heading names `name` in backticks (`` ### `conv` ``, or a heading
/// shared with other ops).
fn entry(doc: &str, name: &str) -> Option<Entry> {
    let lines: Vec<&str> = doc.lines().collect();
    let heads = headings(&lines);
    let quoted = format!("`{name}`");
    let (k, &(level, start)) = heads
        .iter()
        .enumerate()
        .find(|(_, &(_, i))| lines[i].contains(&quoted))?;
    let end = heads[k + 1..]
        .iter()
        .find(|&&(l, _)| l <= level)
        .map_or(lines.len(), |&(_, i)| i);
    Some(Entry {
        title: lines[start].to_string(),
        body: lines[start + 1..end].join("\n"),
    })
}

/// The inline code spans of a text (`` `like this` ``), outside code blocks.
fn code_spans(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            out.extend(line.split('`').skip(1).step_by(2));
        }
    }
    out
}

/// `a, b=1, c=[1, 2]` as names and default texts, splitting at top-level commas.
fn parse_args(list: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, default)) => (name.trim().to_string(), Some(default.trim().to_string())),
            None => (p.to_string(), None),
        })
        .collect()
}

/// The arguments a code span `NAME(args)` (or `x -> NAME(args)`, or a bare `x -> NAME`)
/// documents for `name`; `None` when the span is not `name`'s signature.
fn signature(span: &str, name: &str, prefix: &str) -> Option<Vec<(String, Option<String>)>> {
    let rest = span.strip_prefix(prefix)?.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let args = rest.strip_prefix('(')?.strip_suffix(')')?;
    // `sgd(..)` mentions an op without documenting its arguments.
    (args != "..").then(|| parse_args(args))
}

/// The signature of `name` with the most arguments among the code spans of `text` (a
/// section may also show a call of it, `sgd(lr=0.01, momentum=0.9)`, with fewer).
fn fullest_signature(
    text: &str,
    name: &str,
    prefix: &str,
) -> Option<Vec<(String, Option<String>)>> {
    code_spans(text)
        .into_iter()
        .filter_map(|s| signature(s, name, prefix))
        .max_by_key(Vec::len)
}

fn default_matches(default: ParamDefault, text: Option<&str>) -> bool {
    match (default, text) {
        (ParamDefault::Required, None) => true,
        (ParamDefault::Int(i), Some(t)) => t.parse::<i64>() == Ok(i),
        (ParamDefault::Float(f), Some(t)) => t.parse::<f64>() == Ok(f),
        (ParamDefault::Bool(b), Some(t)) => t == b.to_string(),
        (ParamDefault::Same(other), Some(t)) => t == other,
        (ParamDefault::Str(st), Some(t)) => t == format!("\"{st}\""),
        _ => false,
    }
}

fn spec_signature(spec: &OpSpec) -> String {
    let params: Vec<String> = spec
        .params
        .iter()
        .map(|p| match p.default {
            ParamDefault::Required => p.name.to_string(),
            ParamDefault::Int(i) => format!("{}={i}", p.name),
            ParamDefault::Float(f) => format!("{}={f:?}", p.name),
            ParamDefault::Bool(b) => format!("{}={b}", p.name),
            ParamDefault::Same(o) => format!("{}={o}", p.name),
            ParamDefault::Str(st) => format!("{}=\"{st}\"", p.name),
        })
        .collect();
    match spec.arity {
        Arity::One if params.is_empty() => format!("x -> {}", spec.name),
        Arity::One => format!("x -> {}({})", spec.name, params.join(", ")),
        Arity::Many => format!("{}(x1, x2, ...)", spec.name),
    }
}

/// What is wrong with `spec`'s entry, if anything.
fn op_problems(doc: &str, spec: &OpSpec) -> Vec<String> {
    let name = spec.name;
    let want = spec_signature(spec);
    let Some(e) = entry(doc, name) else {
        return vec![format!(
            "op `{name}` has no heading naming it (`### `{name}``) with the signature `{want}`"
        )];
    };
    let mut problems = Vec::new();
    let prefix = match spec.arity {
        Arity::One => "x -> ",
        Arity::Many => "",
    };
    match fullest_signature(&e.body, name, prefix) {
        None => problems.push(format!(
            "the entry `{}` has no signature `{want}` for op `{name}`",
            e.title
        )),
        Some(mut args) => {
            if spec.arity == Arity::Many {
                // The tensor inputs, `x1, x2, ...`, come before any parameter.
                let input = |a: &str| {
                    a == "..."
                        || a.strip_prefix('x')
                            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                };
                args.retain(|(a, d)| !(d.is_none() && input(a)));
            }
            let names: Vec<&str> = args.iter().map(|(a, _)| a.as_str()).collect();
            let spec_names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
            if names != spec_names {
                problems.push(format!(
                    "op `{name}`: the signature lists the arguments {names:?}, the op table {spec_names:?} (want `{want}`)"
                ));
            }
            for p in spec.params {
                let text = args.iter().find(|(a, _)| a == p.name).map(|(_, d)| d);
                if let Some(d) = text {
                    if !default_matches(p.default, d.as_deref()) {
                        problems.push(format!(
                            "op `{name}`: argument `{}` is documented as `{}`, the op table has {:?} (want `{want}`)",
                            p.name,
                            d.as_deref().map_or(p.name.to_string(), |d| format!("{}={d}", p.name)),
                            p.default
                        ));
                    }
                }
            }
        }
    }
    for p in spec.params {
        if !e.body.contains(&format!("| `{}` |", p.name)) {
            problems.push(format!(
                "op `{name}`: argument `{}` has no row `| `{}` | ... |` in its table",
                p.name, p.name
            ));
        }
    }
    for label in ["**Shape**", "**Parameters**", "**MACs**"] {
        if !e.body.contains(label) {
            problems.push(format!("op `{name}`: the entry says nothing under {label}"));
        }
    }
    problems
}

#[test]
fn every_op_has_an_entry_with_its_arguments_and_defaults() {
    let doc = doc();
    assert_none(
        ops::all()
            .iter()
            .flat_map(|spec| op_problems(&doc, spec))
            .collect(),
    );
}

#[test]
fn every_loss_has_an_entry_with_its_signature() {
    let doc = doc();
    let mut problems = Vec::new();
    for &name in LOSSES {
        match entry(&doc, name) {
            None => problems.push(format!("loss `{name}` has no heading naming it")),
            Some(e) => {
                // Two tensors, then any options with their defaults.
                let two = fullest_signature(&e.body, name, "").is_some_and(|args| {
                    args.len() >= 2
                        && args[..2].iter().all(|a| a.1.is_none())
                        && args[2..].iter().all(|a| a.1.is_some())
                });
                if !two {
                    problems.push(format!(
                        "loss `{name}` has no signature `{name}(a, b)` with two arguments"
                    ));
                }
            }
        }
    }
    assert_none(problems);
}

// ---- the train section ---------------------------------------------------------------------

/// Checks `src`, a file in `docs/` named `name`, with the examples' files for `use`.
fn check(name: &str, src: &str, files: &HashMap<PathBuf, String>) -> Checked {
    struct DocFiles<'a>(&'a HashMap<PathBuf, String>);
    impl Loader for DocFiles<'_> {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            match self.0.get(path) {
                Some(text) => Ok(text.clone()),
                None => load::read_source(path),
            }
        }
    }
    let path = docs_dir().join(name);
    let (prog, diags) = load::load_source(name, src, &path, &DocFiles(files));
    check_program(prog, diags, None)
}

/// The training settings a `train { }` line gives, as JSON (after checking it has no error).
fn train_json(setting: &str) -> Result<serde_json::Value, String> {
    let src = format!(
        "network t(x: [1, 4, 4], label: class(2)) {{\n    y = x -> flatten -> linear(2);\n    loss ce(y, label);\n    output y;\n    train {{ {setting} }}\n}}\n"
    );
    let checked = check("train.net", &src, &HashMap::new());
    if checked.has_errors() {
        return Err(checked.render());
    }
    Ok(checked.graphs[0].train.to_json())
}

#[test]
fn every_train_setting_is_described() {
    let doc = doc();
    let e = entry(&doc, "train").expect("a heading naming `train`");
    let problems = netc_compiler::train::KEYS
        .iter()
        .filter(|key| !e.body.contains(&format!("| `{key}` |")))
        .map(|key| format!("the `train` setting `{key}` has no row `| `{key}` | ... |`"))
        .collect();
    assert_none(problems);
}

/// For each optimizer and schedule signature in the `train` section (`sgd(lr, momentum=0,
/// ...)`): the documented arguments are the compiler's (which lists them in its error for an
/// unknown argument), and giving every documented default explicitly changes nothing.
#[test]
fn documented_optimizer_and_schedule_arguments_are_the_compilers() {
    let doc = doc();
    let e = entry(&doc, "train").expect("a heading naming `train`");
    let mut problems = Vec::new();
    for (key, name) in [
        ("optimizer", "sgd"),
        ("optimizer", "adam"),
        ("optimizer", "adamw"),
        ("schedule", "step"),
    ] {
        let Some(args) = fullest_signature(&e.body, name, "") else {
            problems.push(format!("no signature `{name}(...)` in the `train` section"));
            continue;
        };
        // Required arguments get 1, which every one of them accepts.
        let required: Vec<String> = args
            .iter()
            .filter(|(_, d)| d.is_none())
            .map(|(a, _)| format!("{a}=1"))
            .collect();
        let all: Vec<String> = args
            .iter()
            .map(|(a, d)| format!("{a}={}", d.as_deref().unwrap_or("1")))
            .collect();
        let minimal = train_json(&format!("{key} = {name}({});", required.join(", ")));
        let explicit = train_json(&format!("{key} = {name}({});", all.join(", ")));
        match (minimal, explicit) {
            (Ok(m), Ok(x)) if m == x => {}
            (Ok(m), Ok(x)) => problems.push(format!(
                "`{name}`: the documented defaults give {x}, the compiler's {m}"
            )),
            (Err(d), _) | (_, Err(d)) => {
                problems.push(format!("`{name}` as documented does not check:\n{d}"))
            }
        }
        // The compiler's own list of the arguments, from its error for an unknown one.
        let listed = train_json(&format!(
            "{key} = {name}({}, zzzzzz=1);",
            required.join(", ")
        ))
        .err()
        .and_then(|d| {
            let list = d.split("its arguments are ").nth(1)?.lines().next()?;
            Some(
                list.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(String::from)
                    .collect::<Vec<_>>(),
            )
        });
        let documented: Vec<String> = args.iter().map(|(a, _)| a.clone()).collect();
        if listed.as_ref() != Some(&documented) {
            problems.push(format!(
                "`{name}`: documented arguments {documented:?}, the compiler's {listed:?}"
            ));
        }
    }
    assert_none(problems);
}

// ---- examples ------------------------------------------------------------------------------

/// A fenced example: its info string, first line in the document (1-based) and text.
struct Example {
    kind: String,
    line: usize,
    text: String,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut open: Option<Example> = None;
    for (i, line) in doc.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Example {
                    kind: info.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(ex), None) => {
                ex.text.push_str(line);
                ex.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The file name an example declares with `// file: NAME` on its first line.
fn file_name(ex: &Example) -> Option<&str> {
    ex.text
        .lines()
        .next()?
        .trim()
        .strip_prefix("// file:")
        .map(str::trim)
}

fn number(text: &str, unit: &str) -> Option<u64> {
    text.strip_suffix(unit)?
        .trim()
        .replace(',', "")
        .parse()
        .ok()
}

/// What the comments of `ex` claim that `checked` contradicts.
fn claim_problems(ex: &Example, checked: &Checked) -> Vec<String> {
    let mut problems = Vec::new();
    let mut network = None;
    for (i, line) in ex.text.lines().enumerate() {
        let at = format!("docs/language.md:{}", ex.line + i);
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("network ") {
            network = rest.split('(').next().map(str::trim);
        }
        let Some((code, comment)) = line.split_once("//") else {
            continue;
        };
        let Some(graph) = checked
            .graphs
            .iter()
            .find(|g| Some(g.name.as_str()) == network)
        else {
            continue;
        };
        let report = Report::new(graph);
        let parts: Vec<&str> = comment.split(';').map(str::trim).collect();
        if let Some(paths) = parts[0].strip_prefix("layers ") {
            for path in paths.split(',').map(str::trim) {
                if graph.find(path).is_none() {
                    problems.push(format!(
                        "{at}: network `{}` has no layer `{path}`",
                        graph.name
                    ));
                }
            }
            continue;
        }
        if !parts[0].starts_with('[') {
            continue; // prose
        }
        let binding = code
            .trim()
            .ends_with(';')
            .then(|| code.split('=').next().map(str::trim))
            .flatten();
        let Some(row) = binding.and_then(|b| report.rows.iter().find(|r| r.name == b)) else {
            problems.push(format!(
                "{at}: a claim on a line that does not define a binding of `{}`",
                graph.name
            ));
            continue;
        };
        let shape = row.output.as_ref().map(|s| format!("{s:?}"));
        if shape.as_deref() != Some(parts[0]) {
            problems.push(format!(
                "{at}: `{}` is {shape:?}, the comment says {}",
                row.name, parts[0]
            ));
        }
        for part in &parts[1..] {
            if let Some(n) = number(part, "params") {
                if n != row.cost.params() {
                    problems.push(format!(
                        "{at}: `{}` has {} params, the comment says {n}",
                        row.name,
                        row.cost.params()
                    ));
                }
            } else if let Some(n) = number(part, "MACs") {
                if n != row.cost.macs {
                    problems.push(format!(
                        "{at}: `{}` has {} MACs, the comment says {n}",
                        row.name, row.cost.macs
                    ));
                }
            } else {
                problems.push(format!("{at}: cannot read the claim `{part}`"));
            }
        }
    }
    problems
}

fn example_files(all: &[Example]) -> HashMap<PathBuf, String> {
    all.iter()
        .filter(|ex| ex.kind == "net")
        .filter_map(|ex| Some((docs_dir().join(file_name(ex)?), ex.text.clone())))
        .collect()
}

#[test]
fn every_net_example_checks_cleanly_with_the_figures_it_claims() {
    let all = examples(&doc());
    let files = example_files(&all);
    let mut problems = Vec::new();
    let mut count = 0;
    for ex in all.iter().filter(|ex| ex.kind == "net") {
        count += 1;
        let name = file_name(ex).map_or_else(|| format!("example-{}.net", ex.line), String::from);
        let checked = check(&name, &ex.text, &files);
        if !checked.diagnostics.is_empty() {
            problems.push(format!(
                "the example at docs/language.md:{} is not clean:\n{}",
                ex.line,
                checked.render()
            ));
            continue;
        }
        problems.extend(claim_problems(ex, &checked));
    }
    assert!(count >= 20, "only {count} ```net examples found");
    assert_none(problems);
}

#[test]
fn every_net_error_example_fails() {
    let all = examples(&doc());
    let files = example_files(&all);
    let errors: Vec<&Example> = all.iter().filter(|ex| ex.kind == "net-error").collect();
    assert!(!errors.is_empty(), "no ```net-error example found");
    let problems = errors
        .into_iter()
        .filter(|ex| !check("error.net", &ex.text, &files).has_errors())
        .map(|ex| format!("the error example at docs/language.md:{} checks", ex.line))
        .collect();
    assert_none(problems);
}

/// The text under the `## NAME` heading, up to the next `## `.
fn section(doc: &str, name: &str) -> String {
    let head = format!("## {name}");
    let mut lines = doc.lines().skip_while(|l| *l != head).skip(1);
    lines
        .by_ref()
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn not_in_netc_lists_nothing_the_language_has() {
    let doc = doc();
    let missing = section(&doc, "Not in netc");
    assert!(!missing.is_empty(), "no \"Not in netc\" section");
    // Each of these is a section of the reference, and a feature the compiler accepts.
    let features = [
        (
            "Defaults and calls by name",
            "block f(x, c=3)",
            "default values",
        ),
        ("Repetition", "repeat(", "repetition"),
    ];
    let problems = features
        .iter()
        .filter(|(_, code, _)| missing.contains(code))
        .map(|(title, code, what)| {
            format!("\"Not in netc\" lists {what} (`{code}`), which \"{title}\" documents")
        })
        .collect();
    assert_none(problems);
}
