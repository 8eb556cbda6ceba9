//! The examples rewritten with block defaults and `repeat` lower to the same networks as
//! their written-out versions before the rewrite (kept in `fixtures/written_out/`): the same
//! layers in the same order, with the same paths and shapes, the same report (parameters,
//! MACs, rows) and the same generated code.

use std::path::{Path, PathBuf};

use netc_compiler::codegen::emit_with;
use netc_compiler::{check_file, Report};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn same_network(example: &str, written_out: &str) {
    let a = check_file(&root().join(example), None);
    let b = check_file(&root().join(written_out), None);
    assert!(!a.has_errors(), "{example}:\n{}", a.render());
    assert!(!b.has_errors(), "{written_out}:\n{}", b.render());
    let (ga, gb) = (&a.graphs[0], &b.graphs[0]);
    let layers = |g: &netc_compiler::graph::Graph| -> Vec<(String, Vec<usize>)> {
        g.nodes()
            .into_iter()
            .map(|n| (g.node(n).path.clone(), g.node(n).shape.clone()))
            .collect()
    };
    assert_eq!(layers(ga), layers(gb), "{example}: layers");
    let (ra, rb) = (Report::new(ga), Report::new(gb));
    assert_eq!(ra.table(true), rb.table(true), "{example}: report");
    assert_eq!(ra.table(false), rb.table(false), "{example}: rows");
    let code = |g| emit_with(g, "net", &[]).expect("emits");
    assert!(code(ga) == code(gb), "{example}: generated code differs");
}

#[test]
fn resnet50_with_repeat_is_resnet50_written_out() {
    same_network(
        "examples/zoo/resnet50.net",
        "compiler/tests/fixtures/written_out/resnet50.net",
    );
}

#[test]
fn mobilenet_v2_with_defaults_and_repeat_is_mobilenet_v2_written_out() {
    same_network(
        "examples/zoo/mobilenet_v2.net",
        "compiler/tests/fixtures/written_out/mobilenet_v2.net",
    );
}
