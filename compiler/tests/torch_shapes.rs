//! Shapes, parameters and MACs against PyTorch: every network in `fixtures/torch_shapes/` was
//! built by hand in PyTorch by `make_shapes.py`, which recorded each layer's real output
//! shape and parameter count. netc must agree on every layer, by path.

use std::collections::BTreeMap;
use std::path::Path;

use netc_compiler::{check_file, Report};
use serde_json::Value;

fn check_fixture(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_shapes");
    let checked = check_file(&dir.join(format!("{name}.net")), None);
    assert!(!checked.has_errors(), "{name}.net:\n{}", checked.render());
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    assert_eq!(checked.graphs.len(), 1);
    let g = &checked.graphs[0];
    let report = Report::new(g);

    let ours: BTreeMap<&str, _> = report.layers.iter().map(|l| (l.path.as_str(), l)).collect();
    let theirs: BTreeMap<&str, &Value> = expected["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["path"].as_str().unwrap(), l))
        .collect();
    let our_paths: Vec<_> = ours.keys().collect();
    let their_paths: Vec<_> = theirs.keys().collect();
    assert_eq!(our_paths, their_paths, "{name}: layer paths differ");

    for (path, t) in &theirs {
        let l = ours[path];
        let shape: Vec<usize> = serde_json::from_value(t["output"].clone()).unwrap();
        assert_eq!(l.op, t["op"].as_str().unwrap(), "{name}: op of {path}");
        assert_eq!(l.output, shape, "{name}: output shape of {path}");
        assert_eq!(
            l.cost.params(),
            t["params"].as_u64().unwrap(),
            "{name}: params of {path}"
        );
        assert_eq!(
            l.cost.macs,
            t["macs"].as_u64().unwrap(),
            "{name}: MACs of {path}"
        );
    }
    assert_eq!(
        report.total.params(),
        expected["total_params"].as_u64().unwrap(),
        "{name}: total"
    );
    assert_eq!(
        report.inference.params(),
        expected["inference_params"].as_u64().unwrap(),
        "{name}: inference params"
    );
    let outputs: BTreeMap<String, Vec<usize>> =
        serde_json::from_value(expected["outputs"].clone()).unwrap();
    let ours: BTreeMap<String, Vec<usize>> = report.outputs.iter().cloned().collect();
    assert_eq!(ours, outputs, "{name}: outputs");
}

macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check_fixture(stringify!($name)); } )*
    };
}

fixtures!(
    ae29,
    ae45,
    alexnet,
    heads,
    inception_mini,
    nested,
    resnet_mini,
    vgg_small,
    windows
);

/// Every fixture network is listed above (a new one cannot be silently skipped).
#[test]
fn every_fixture_is_tested() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_shapes");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "net").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ae29",
            "ae45",
            "alexnet",
            "heads",
            "inception_mini",
            "nested",
            "resnet_mini",
            "vgg_small",
            "windows"
        ]
    );
}
