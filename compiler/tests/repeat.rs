//! Block parameter defaults and `repeat` (docs/language.md "Defaults and repetition"): the
//! paths, shapes and counts they lower to, and, as a property, that `repeat(n, B, ..)` lowers
//! to exactly what the `n` calls written out lower to (paths, shapes, the report, and the
//! generated code byte for byte).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use netc_compiler::codegen::emit_with;
use netc_compiler::graph::Graph;
use netc_compiler::load::{self, Loader};
use netc_compiler::{check_program, check_source, Checked, Report};
use proptest::prelude::*;

fn check(src: &str) -> Checked {
    let checked = check_source("t.net", src, Path::new("t.net"), None);
    assert!(!checked.has_errors(), "{}\n{}", src, checked.render());
    checked
}

/// Every layer's path and output shape, in the order made.
fn layers(g: &Graph) -> Vec<(String, Vec<usize>)> {
    g.nodes()
        .into_iter()
        .map(|n| (g.node(n).path.clone(), g.node(n).shape.clone()))
        .collect()
}

fn paths(g: &Graph) -> Vec<String> {
    layers(g).into_iter().map(|(p, _)| p).collect()
}

const BOTTLENECK: &str = "
block bottleneck(x, w, s=1, e=4) {
    y = x -> conv(w, k=1, bias=false) as conv1 -> batchnorm as bn1 -> relu
          -> conv(w, k=3, s=s, p=1, bias=false) as conv2 -> batchnorm as bn2 -> relu
          -> conv(e * w, k=1, bias=false) as conv3 -> batchnorm as bn3;
    return add(y, x) -> relu;
}
block bottleneck_down(x, w, s=1) {
    y = x -> conv(w, k=1, bias=false) as conv1 -> batchnorm as bn1 -> relu
          -> conv(w, k=3, s=s, p=1, bias=false) as conv2 -> batchnorm as bn2 -> relu
          -> conv(4 * w, k=1, bias=false) as conv3 -> batchnorm as bn3;
    downsample = x -> conv(4 * w, k=1, s=s, bias=false) -> batchnorm;
    return add(y, downsample) -> relu;
}
";

#[test]
fn repeat_takes_the_chains_next_positions_as_torchvision_sequential() {
    let src = format!(
        "{BOTTLENECK}
network n(x: [256, 16, 16]) {{
    layer2 = x -> bottleneck_down(128, s=2) -> repeat(3, bottleneck, 128);
    output layer2;
}}"
    );
    let checked = check(&src);
    let g = &checked.graphs[0];
    let p = paths(g);
    for i in 0..4 {
        for l in ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"] {
            let path = format!("layer2.{i}.{l}");
            assert!(p.contains(&path), "no {path} in {p:?}");
        }
    }
    assert!(p.contains(&"layer2.0.downsample.0".to_string()));
    assert!(!p.iter().any(|p| p.starts_with("layer2.4")), "{p:?}");
    let out = g.find("layer2.3.1").expect("the last relu");
    assert_eq!(g.node(out).shape, vec![512, 8, 8]);
    // torchvision's layer2 of resnet50 at its input: 1,219,584 parameters.
    let r = Report::new(g);
    assert_eq!((r.total.weights + r.total.biases), 1_219_584);
}

#[test]
fn a_single_repetition_takes_the_bindings_name() {
    let checked = check(
        "block unit(x, c) { return x -> conv(c, k=3, p=1); }
network n(x: [3, 8, 8]) {
    a = x -> repeat(1, unit, 4);
    b = a -> repeat(2, unit, 4);
    output b;
}",
    );
    let p = paths(&checked.graphs[0]);
    assert_eq!(p, ["x", "a", "b.0", "b.1"]);
}

#[test]
fn index_passes_the_repetition_number_to_the_block() {
    let checked = check(
        "block widen(x, c, i) { return x -> conv(c * (i + 1), k=3, p=1) as conv -> relu; }
network n(x: [3, 8, 8]) {
    w = x -> repeat(3, widen, 8, index=i);
    output w;
}",
    );
    let g = &checked.graphs[0];
    let widths: Vec<(String, usize)> = layers(g)
        .into_iter()
        .filter(|(p, _)| p.ends_with(".conv"))
        .map(|(p, s)| (p, s[0]))
        .collect();
    assert_eq!(
        widths,
        [
            ("w.0.conv".to_string(), 8),
            ("w.1.conv".to_string(), 16),
            ("w.2.conv".to_string(), 24)
        ]
    );
}

#[test]
fn prefix_and_start_name_the_repetitions_in_the_scope_as_torchvision_densenet() {
    let checked = check(
        "block dense_layer(x, g) {
    new = x -> batchnorm as norm1 -> relu -> conv(g, k=3, p=1, bias=false) as conv1;
    return concat(x, new);
}
block dense_block(x, n) {
    return x -> repeat(n, dense_layer, 4, prefix=\"denselayer\", start=1);
}
network n(x: [8, 8, 8]) {
    a = x -> repeat(2, dense_layer, 4, prefix=\"layer\");
    b = a -> conv(8, k=1) -> dense_block(3) as denseblock1;
    output b;
}",
    );
    let p = paths(&checked.graphs[0]);
    for want in [
        "layer0.norm1",
        "layer1.conv1",
        "b.0",
        "denseblock1.denselayer1.norm1",
        "denseblock1.denselayer3.conv1",
    ] {
        assert!(p.iter().any(|p| p == want), "no {want} in {p:?}");
    }
    assert!(
        !p.iter()
            .any(|p| p.contains("denselayer0") || p.contains("denselayer4")),
        "{p:?}"
    );
    let g = &checked.graphs[0];
    // The third layer's input is 8 + 4 + 4 channels.
    let norm = g
        .find("denseblock1.denselayer3.norm1")
        .expect("the third norm");
    assert_eq!(g.node(norm).shape, vec![16, 8, 8]);
}

#[test]
fn a_prefix_names_repetitions_per_scope() {
    // The same prefix in the network and in two instances of a block, and a prefix that
    // another continues (`b` gives `b0`, `b1`; `b1x` gives `b1x0`): no two layers clash.
    let checked = check(
        "block unit(x) { return x -> conv(4, k=1); }
block pair(x) { return x -> repeat(2, unit, prefix=\"b\"); }
network n(x: [4, 8, 8]) {
    a = x -> repeat(2, unit, prefix=\"b\") -> pair as p1 -> pair as p2;
    c = a -> repeat(1, unit, prefix=\"b1x\") -> repeat(1, unit, prefix=\"b\", start=2);
    output c;
}",
    );
    assert_eq!(
        paths(&checked.graphs[0]),
        ["x", "b0", "b1", "p1.b0", "p1.b1", "p2.b0", "p2.b1", "b1x0", "b2"]
    );
}

#[test]
fn a_block_parameter_named_prefix_keeps_its_argument() {
    let checked = check(
        "block unit(x, prefix, start=1) { return x -> conv(prefix * start, k=1); }
network n(x: [3, 8, 8]) {
    a = x -> repeat(2, unit, prefix=4, start=2);
    output a;
}",
    );
    let g = &checked.graphs[0];
    assert_eq!(paths(g), ["x", "a.0", "a.1"]);
    assert_eq!(g.node(g.find("a.1").unwrap()).shape, vec![8, 8, 8]);
}

#[test]
fn defaults_fill_parameters_left_out_and_names_pick_any() {
    let checked = check(
        "const wide = 16;
block cna(x, c=wide, k=3, s=1, g=1) {
    return x -> conv(c, k=k, s=s, p=k / 2, groups=g) -> batchnorm -> relu;
}
network n(x: [8, 32, 32]) {
    a = x -> cna;
    b = a -> cna(32, s=2);
    c = b -> cna(k=1, g=2, c=8);
    output c;
}",
    );
    let g = &checked.graphs[0];
    let shape = |p: &str| g.node(g.find(p).unwrap()).shape.clone();
    assert_eq!(shape("a.0"), vec![16, 32, 32]);
    assert_eq!(shape("b.0"), vec![32, 16, 16]);
    assert_eq!(shape("c.0"), vec![8, 16, 16]);
    // 16·8·9 + 16, 32·16·9 + 32, 8·16·1 + 8 (groups 2), and 2C per batchnorm.
    let r = Report::new(g);
    assert_eq!(
        (r.total.weights + r.total.biases),
        (16 * 8 * 9 + 16) + (32 * 16 * 9 + 32) + (8 * 16 + 8) + 2 * (16 + 32 + 8)
    );
}

#[test]
fn a_repeat_inside_a_block_counts_from_a_parameter() {
    let checked = check(
        "block unit(x, c) { return x -> conv(c, k=3, p=1) -> relu; }
block stage(x, c, n) { return x -> conv(c, k=1) as proj -> repeat(n, unit, c); }
network n(x: [3, 8, 8]) {
    s = x -> stage(4, 2) -> stage(8, 1);
    output s;
}",
    );
    let p = paths(&checked.graphs[0]);
    assert_eq!(
        p,
        [
            "x", "s.0.proj", "s.0.1.0", "s.0.1.1", "s.0.2.0", "s.0.2.1", "s.1.proj", "s.1.1.0",
            "s.1.1.1"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    );
}

#[test]
fn invert_of_a_layer_inside_a_repetition_is_that_repetitions_layer() {
    let checked = check(
        "block updown(x, c) {
    e = x -> conv(c, k=3, s=2, p=1) as down;
    return e -> relu -> invert(of=e) as up;
}
network n(x: [4, 16, 16]) {
    u = x -> repeat(2, updown, 8);
    output u;
}",
    );
    let g = &checked.graphs[0];
    for i in 0..2 {
        let up = g.find(&format!("u.{i}.up")).expect("the inverse");
        assert_eq!(g.node(up).shape, vec![4, 16, 16]);
    }
}

/// Files in memory, for `use`.
struct Files(HashMap<PathBuf, String>);

impl Loader for Files {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

#[test]
fn a_used_block_repeats_with_its_defaults() {
    let loader = Files(
        [
            (
                PathBuf::from("net/t.net"),
                "use \"blocks.net\";
network n(x: [3, 8, 8]) {
    y = x -> repeat(2, cna, 4) -> cna(4, k=1);
    output y;
}"
                .to_string(),
            ),
            (
                PathBuf::from("net/blocks.net"),
                "block cna(x, c, k=3) { return x -> conv(c, k=k, p=k / 2) as conv -> relu; }"
                    .to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    );
    let (prog, diags) = load::load_file(Path::new("net/t.net"), &loader);
    let checked = check_program(prog, diags, None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let p = paths(&checked.graphs[0]);
    assert_eq!(
        p,
        ["x", "y.0.conv", "y.0.1", "y.1.conv", "y.1.1", "y.2.conv", "y.2.1"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_huge_repeat_is_an_error_at_once() {
    let start = std::time::Instant::now();
    let checked = check_source(
        "t.net",
        "block unit(x) { return x -> relu; }
block many(x) { return x -> repeat(200000, unit); }
network n(x: [3, 8, 8]) {
    y = x -> repeat(1000000, unit) -> repeat(200000, many);
    output y;
}",
        Path::new("t.net"),
        None,
    );
    assert!(checked.has_errors());
    assert!(checked.render().contains("250000"), "{}", checked.render());
    assert!(start.elapsed().as_secs() < 30);
}

// ---- written out ------------------------------------------------------------------------

/// One random network with a `repeat`, and the same with its calls written out.
#[derive(Debug, Clone)]
struct Case {
    n: usize,
    c: usize,
    k: usize,
    index: bool,
    named_k: bool,
    alias: bool,
    before: bool,
    after: bool,
    single: bool,
}

impl Case {
    fn block(&self) -> String {
        let width = if self.index { "c * (i + 1)" } else { "c" };
        let alias = if self.alias { " as conv" } else { "" };
        format!(
            "block unit(x, c, k=3, i=0) {{\n    return x -> conv({width}, k=k, p=k / 2){alias} -> batchnorm -> relu;\n}}\n"
        )
    }

    fn args(&self) -> String {
        if self.named_k {
            format!("{}, k={}", self.c, self.k)
        } else {
            format!("{}, {}", self.c, self.k)
        }
    }

    fn network(&self, body: &str) -> String {
        let before = if self.before { " -> conv(4, k=1)" } else { "" };
        let after = if self.after { " -> maxpool(k=2)" } else { "" };
        let other = if self.single {
            "    z = y -> repeat(1, unit, 2);\n    output z;\n"
        } else {
            "    output y;\n"
        };
        format!(
            "{}network n(x: [3, 8, 8]) {{\n    y = x{before}{body}{after};\n{other}}}\n",
            self.block()
        )
        .replace(
            "repeat(1, unit, 2)",
            if body.contains("repeat") {
                "repeat(1, unit, 2)"
            } else {
                "unit(2)"
            },
        )
    }

    fn repeated(&self) -> String {
        let index = if self.index { ", index=i" } else { "" };
        self.network(&format!(
            " -> repeat({}, unit, {}{index})",
            self.n,
            self.args()
        ))
    }

    fn written_out(&self) -> String {
        let calls: String = (0..self.n)
            .map(|i| {
                let index = if self.index {
                    format!(", i={i}")
                } else {
                    String::new()
                };
                format!(" -> unit({}{index})", self.args())
            })
            .collect();
        self.network(&calls)
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..5,
        1usize..6,
        prop_oneof![Just(1usize), Just(3), Just(5)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(n, c, k, index, named_k, alias, before, after, single)| Case {
                n,
                c,
                k,
                index,
                named_k,
                alias,
                before,
                after,
                single,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn repeat_lowers_as_its_calls_written_out(case in case()) {
        let a = check(&case.repeated());
        let b = check(&case.written_out());
        let (ga, gb) = (&a.graphs[0], &b.graphs[0]);
        prop_assert_eq!(layers(ga), layers(gb));
        let (ra, rb) = (Report::new(ga), Report::new(gb));
        prop_assert_eq!(ra.table(true), rb.table(true));
        prop_assert_eq!(ra.to_json(ga).to_string(), rb.to_json(gb).to_string());
        let ca = emit_with(ga, "t.net", &[]).expect("emits");
        let cb = emit_with(gb, "t.net", &[]).expect("emits");
        prop_assert!(ca == cb, "generated code differs:\n{}\n---\n{}", case.repeated(), case.written_out());
    }
}
