//! The round trip of issue 16: every network of `examples/`, `examples/zoo/` and the export's
//! `ops.net` (every op, in the variants whose ONNX form differs) exported to ONNX and
//! imported again must be the same network: the same parameters and MACs at inference, its
//! parameters under the same names (so the original's weights load into the imported
//! network unchanged), and the same outputs, by name and by value on the original's weights
//! (the reference interpreter on both). Every network here passes all of it. The libraries are called directly (export,
//! import, check, interpreter), as the CLI would, to keep the run short: about 30 s on 2
//! cores in a debug build, the zoo's 224×224 networks most of it.

use std::path::{Path, PathBuf};

use netc_compiler::interp::{self, Mode, Params};
use netc_compiler::report::Report;
use netc_compiler::{check_file, check_source, Graph};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checked(name: &str, checked: netc_compiler::Checked) -> Vec<Graph> {
    let mut checked = checked;
    // The zoo's windows that drop a row are the models' own (the export needs the same).
    checked.allow(&["window-drops"]);
    assert!(!checked.has_errors(), "{name}:\n{}", checked.render());
    checked.graphs
}

/// The names of the parameters (and batchnorm state) of the layers inference runs.
fn inference_params(g: &Graph) -> Vec<(String, Vec<usize>)> {
    let used = g.inference_set();
    let mut out = Vec::new();
    for n in g.layers() {
        if !used[n.index()] {
            continue;
        }
        let node = g.node(n);
        let ins: Vec<&Vec<usize>> = g
            .inputs_of(n)
            .into_iter()
            .map(|i| &g.node(i).shape)
            .collect();
        for d in node.op.kind().params(&ins) {
            out.push((format!("{}.{}", node.path, d.suffix), d.shape));
        }
    }
    out.sort();
    out
}

/// Exports `file`'s network `network`, imports it, and checks what issue 16 asks, running
/// both networks on the original's weights.
fn round_trip(file: &str, network: &str) {
    let graphs = checked(file, check_file(&root().join(file), Some(network)));
    let g = graphs
        .iter()
        .find(|g| g.name == network)
        .expect("the network");
    let weights = interp::formula_params(g);
    let bytes = netc_compiler::onnx::model_bytes(g, &weights, "test")
        .unwrap_or_else(|e| panic!("{network}: export: {e}"));
    let reserved: Vec<&str> = netc_compiler::ops::all()
        .iter()
        .map(|s| s.name)
        .chain(netc_compiler::ops::LOSSES.iter().copied())
        .collect();
    let imported = netc_onnx::import::import(&bytes, network, &reserved)
        .unwrap_or_else(|e| panic!("{network}: import: {e}"));
    let back = checked(
        network,
        check_source(network, &imported.net, Path::new("imported.net"), None),
    );
    let [h] = back.as_slice() else {
        panic!("{network}: {} networks", back.len())
    };
    let text = &imported.net;
    let (a, b) = (Report::new(g), Report::new(h));
    assert_eq!(
        (a.inference.weights, a.inference.biases, a.inference.macs),
        (b.inference.weights, b.inference.biases, b.inference.macs),
        "{network}: parameters and MACs at inference differ\n{text}"
    );
    // The same names and shapes: the original's weights load unchanged.
    assert_eq!(
        inference_params(g),
        inference_params(h),
        "{network}: parameter names differ\n{text}"
    );
    let outs = |g: &Graph| g.outputs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(outs(g), outs(h), "{network}: outputs differ\n{text}");
    // The imported weights are the original's, by name.
    for (name, dims, data) in &imported.weights {
        let w = &weights[name];
        assert_eq!((&w.shape, &w.data), (dims, data), "{network}: `{name}`");
    }
    let mut mine: Params = weights.clone();
    let theirs = inference_params(h);
    let mut loaded: Params = weights
        .iter()
        .filter(|(n, _)| theirs.iter().any(|(t, _)| t == *n))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let x = interp::formula_feed(g, 2);
    let want = interp::forward(g, &mut mine, &x, Mode::Infer).outputs(g);
    let got = interp::forward(h, &mut loaded, &x, Mode::Infer).outputs(h);
    for (name, w) in &want {
        let t = &got[name];
        assert_eq!(w.shape, t.shape, "{network} {name}");
        let scale = w.data.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let dev = w
            .data
            .iter()
            .zip(&t.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            dev <= 1e-5 * scale,
            "{network} {name}: the imported network's output differs by {dev:e} (outputs up to {scale:e})\n{text}"
        );
    }
}

#[test]
fn small_examples_round_trip_with_their_outputs() {
    for (file, net) in [
        ("examples/lenet.net", "lenet"),
        ("examples/autoencoder.net", "autoencoder"),
        ("examples/lecture.net", "naive"),
        ("examples/lecture.net", "reduced"),
        ("examples/vanishing.net", "plain"),
        ("examples/vanishing.net", "aux"),
        ("examples/vanishing.net", "bn"),
        ("compiler/tests/fixtures/onnx_export/ops.net", "ops"),
    ] {
        round_trip(file, net);
    }
}

#[test]
fn googlenet_round_trips_with_its_outputs() {
    round_trip("examples/googlenet.net", "googlenet");
}

/// The zoo at its own sizes (224×224, Inception v3 299×299), all of it with outputs (the
/// interpreter's convolutions are the runtime's, optimized even in a debug build); ConvNeXt
/// and Inception v3, the slowest, in tests of their own so that the tests share the cores.
#[test]
fn the_zoo_round_trips_with_its_outputs() {
    let dir = root().join("examples/zoo");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".net"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    let own_test = ["convnext_tiny.net", "inception_v3.net"];
    for f in files.iter().filter(|f| !own_test.contains(&f.as_str())) {
        let net = f.trim_end_matches(".net");
        round_trip(&format!("examples/zoo/{f}"), net);
    }
}

#[test]
fn convnext_round_trips_with_its_outputs() {
    round_trip("examples/zoo/convnext_tiny.net", "convnext_tiny");
}

#[test]
fn inception_round_trips_with_its_outputs() {
    round_trip("examples/zoo/inception_v3.net", "inception_v3");
}
