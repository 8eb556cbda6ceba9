//! No input makes netc panic: random token soup, random networks of every op with nasty
//! arguments (zero, negative, huge), and the examples mutated at random all come back as a
//! graph or as diagnostics, and whatever checks cleanly also reports and draws.

use std::path::Path;

use netc_compiler::{check_source, dot, Report};
use proptest::prelude::*;

/// Checks `src` and, when it is valid, renders everything a user can ask for.
fn survive(src: &str) {
    let checked = check_source("fuzz.net", src, Path::new("fuzz.net"), None);
    let rendered = checked.render();
    if checked.has_errors() {
        assert!(checked.graphs.is_empty());
        assert!(rendered.contains('×'), "an error must render:\n{rendered}");
    }
    for g in &checked.graphs {
        let r = Report::new(g);
        let _ = r.table(false);
        let _ = r.table(true);
        let _ = r.to_json(g).to_string();
        let _ = dot::to_dot(g);
    }
}

const TOKENS: &[&str] = &[
    "network",
    "block",
    "const",
    "use",
    "return",
    "loss",
    "output",
    "train",
    "as",
    "class",
    "true",
    "false",
    "conv",
    "conv_t",
    "invert",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "batchnorm",
    "lrn",
    "dropout",
    "flatten",
    "linear",
    "concat",
    "add",
    "softmax",
    "ce",
    "mse",
    "l1",
    "bce",
    "smoothing",
    "relu6",
    "gelu",
    "mul",
    "upsample",
    "slice",
    "repeat",
    "index",
    "x",
    "y",
    "z",
    "n",
    "f",
    "image",
    "label",
    "k",
    "s",
    "p",
    "of",
    "out",
    "groups",
    "dil",
    "ceil",
    "op",
    "0",
    "1",
    "2",
    "3",
    "7",
    "28",
    "224",
    "-1",
    "0.5",
    "1e-4",
    "1e999",
    "99999999999999999999",
    "2147483648",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    "=",
    "->",
    "+",
    "-",
    "*",
    "/",
    ":",
    "\"same\"",
    "\"x.net\"",
    "// c\n",
    "/*",
    "*/",
    "\n",
    "#",
    "3x3",
    "é",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.join(" "))
}

/// A number an argument might be given: mostly sensible, sometimes hostile.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => (1i64..4).prop_map(|v| v.to_string()),
        1 => Just("0".to_string()),
        1 => Just("-2".to_string()),
        1 => Just("65536".to_string()),
        1 => Just("2147483647".to_string()),
        1 => Just("9223372036854775807".to_string()),
        1 => Just("0.5".to_string()),
        1 => Just("[2, 3]".to_string()),
        1 => Just("\"same\"".to_string()),
    ]
}

/// One stage of a chain: any op, with arguments drawn from `number()`.
fn stage() -> impl Strategy<Value = String> {
    let n = number;
    prop_oneof![
        (n(), n(), n(), n()).prop_map(|(o, k, s, p)| format!("conv({o}, k={k}, s={s}, p={p})")),
        (n(), n(), n()).prop_map(|(o, k, g)| format!("conv({o}, k={k}, groups={g}, dil={k})")),
        (n(), n(), n(), n())
            .prop_map(|(o, k, s, op)| format!("conv_t({o}, k={k}, s={s}, op={op})")),
        (n(), n(), n()).prop_map(|(k, s, p)| format!("maxpool(k={k}, s={s}, p={p}, ceil=true)")),
        (n(), n()).prop_map(|(k, p)| format!("avgpool(k={k}, p={p})")),
        Just("global_avgpool".to_string()),
        Just("relu".to_string()),
        Just("sigmoid -> tanh".to_string()),
        n().prop_map(|v| format!("leaky_relu(slope={v})")),
        Just("batchnorm".to_string()),
        n().prop_map(|v| format!("lrn(size={v})")),
        n().prop_map(|v| format!("dropout({v})")),
        Just("flatten".to_string()),
        n().prop_map(|v| format!("linear({v})")),
        Just("softmax".to_string()),
        Just("unit(4)".to_string()),
        Just("repeat(2, unit, 4)".to_string()),
        Just("repeat(2, unit, c=3)".to_string()),
        Just("repeat(0, unit, 4)".to_string()),
        Just("repeat(2, relu)".to_string()),
        Just("invert(of=b0)".to_string()),
        Just("relu6 -> hardswish -> hardsigmoid -> silu -> mish".to_string()),
        (n(), n()).prop_map(|(a, b)| format!("hardtanh(min=-{a}, max={b})")),
        Just("gelu -> gelu(approximate=\"tanh\")".to_string()),
        n().prop_map(|v| format!("elu(alpha={v})")),
        n().prop_map(|v| format!("scale(init={v})")),
        n().prop_map(|v| format!("upsample(scale={v}, mode=\"bilinear\", align_corners=true)")),
        n().prop_map(|v| format!("upsample(scale={v})")),
        n().prop_map(|v| format!("adaptive_avgpool({v})")),
        Just("layernorm2d".to_string()),
        n().prop_map(|v| format!("groupnorm({v})")),
        n().prop_map(|v| format!("channel_shuffle({v})")),
        (n(), n()).prop_map(|(a, b)| format!("slice(from={a}, to={b})")),
        n().prop_map(|v| format!("stochastic_depth({v})")),
        Just("mul(b0)".to_string()),
    ]
}

/// A network of random chains over a random input, some joined by concat and add.
fn network() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            4 => prop::collection::vec(8usize..40, 3..=3),
            1 => prop::collection::vec(1usize..40, 1..4),
        ],
        prop::collection::vec(prop::collection::vec(stage(), 1..5), 1..5),
        any::<bool>(),
    )
        .prop_map(|(dims, chains, join)| {
            let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            let mut src = String::from(
                "block unit(x, c) {\n    y = x -> conv(c, k=3, p=1) -> relu;\n    return concat(x, y);\n}\n",
            );
            src.push_str(&format!(
                "network n(image: [{}], label: class(10)) {{\n",
                dims.join(", ")
            ));
            let mut prev = "image".to_string();
            for (i, chain) in chains.iter().enumerate() {
                src.push_str(&format!("    b{i} = {prev} -> {};\n", chain.join(" -> ")));
                prev = format!("b{i}");
            }
            if join && chains.len() > 1 {
                src.push_str("    j = concat(b0, b1);\n    a = add(b0, b1);\n    m = mul(b0, b1);\n");
            }
            src.push_str(&format!(
                "    logits = {prev} -> flatten -> linear(10);\n    loss ce(logits, label, smoothing=0.1) + l1(logits, logits) + bce(logits, logits);\n    output logits;\n}}\n"
            ));
            src
        })
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, &'static str),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(at, t)| Mutation::Insert(at, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len().max(1);
    let mut out = chars.clone();
    match *m {
        Mutation::Delete(at, len) => {
            let at = at % n;
            out.drain(at..(at + len).min(chars.len()));
        }
        Mutation::Duplicate(at, len) => {
            let at = at % n;
            let piece: Vec<char> = chars[at..(at + len).min(chars.len())].to_vec();
            out.splice(at..at, piece);
        }
        Mutation::Insert(at, t) => {
            let at = at % n;
            out.splice(at..at, format!(" {t} ").chars());
        }
        Mutation::Swap(a, b) => {
            if !chars.is_empty() {
                out.swap(a % chars.len(), b % chars.len());
            }
        }
    }
    out.into_iter().collect()
}

proptest! {
    // NETC_FUZZ_CASES=100000 for a long campaign; CI runs the default.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("NETC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500),
        ..ProptestConfig::default()
    })]

    #[test]
    fn token_soup_never_panics(src in token_soup()) {
        survive(&src);
    }

    #[test]
    fn random_networks_never_panic(src in network()) {
        survive(&src);
    }

    #[test]
    fn mutated_examples_never_panic(which in any::<usize>(), ms in prop::collection::vec(mutation(), 1..6)) {
        let ex = examples();
        let mut text = ex[which % ex.len()].clone();
        for m in &ms {
            text = apply(&text, m);
        }
        survive(&text);
    }
}

/// Random networks are not all errors: the generator reaches shape inference and costs.
#[test]
fn random_networks_are_often_valid() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut valid = 0;
    for _ in 0..200 {
        let src = network().new_tree(&mut runner).unwrap().current();
        let checked = check_source("fuzz.net", &src, Path::new("fuzz.net"), None);
        valid += usize::from(!checked.has_errors());
    }
    assert!(
        valid >= 10,
        "only {valid} of 200 random networks were valid"
    );
}

/// Nesting right at the limit parses and lowers on a small stack (a test thread's 2 MiB).
#[test]
fn deep_nesting_at_the_limit() {
    let depth = netc_dsl::parse::MAX_NESTING - 4;
    let expr = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let src = format!("const a = {expr};\nnetwork n(x: [a]) {{ output x; }}\n");
    let nested_calls = format!(
        "network n(x: [3, 8, 8]) {{ y = {}x{}; output y; }}\n",
        "add(x, ".repeat(depth / 2),
        ")".repeat(depth / 2)
    );
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            survive(&src);
            survive(&nested_calls);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Twenty thousand chained bindings check in one pass (the report once was quadratic in the
/// number of rows). Not a timing assertion: a quadratic report would take minutes here.
#[test]
fn many_bindings() {
    let mut src = String::from("network n(x: [4]) {\n    b0 = x -> relu;\n");
    for i in 1..20_000 {
        src.push_str(&format!("    b{i} = b{} -> relu;\n", i - 1));
    }
    src.push_str("    output b19999;\n}\n");
    let checked = check_source("many.net", &src, Path::new("many.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let r = Report::new(&checked.graphs[0]);
    assert_eq!(r.rows.len(), 20_000);
    assert_eq!(r.table(false).lines().count(), 20_000 + 9); // header, rules, totals, depth, outputs
}
