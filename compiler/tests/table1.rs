//! The cost model against published figures: Table 1 of the GoogLeNet paper, Caffe's
//! bvlc_googlenet parameter counts, and the lecture's worked counts.

use std::path::Path;

use netc_compiler::report::{Layer, Report};
use netc_compiler::{check_file, Graph};

fn example(name: &str) -> Vec<Graph> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let checked = check_file(&path, None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs
}

fn googlenet() -> Report {
    let graphs = example("googlenet.net");
    Report::new(&graphs[0])
}

/// `|ours - paper| / paper <= 1%`
fn within_1pct(what: &str, ours: f64, paper: f64) {
    let rel = (ours - paper).abs() / paper;
    assert!(
        rel <= 0.01,
        "{what}: netc {ours:.2}, paper {paper}, off by {:.2}%",
        rel * 100.0
    );
}

fn layer<'r>(r: &'r Report, path: &str) -> &'r Layer {
    r.layers
        .iter()
        .find(|l| l.path == path)
        .unwrap_or_else(|| panic!("no layer {path}"))
}

/// Table 1's rows: name, params (K = 1024 weights, biases excluded), ops (M MACs).
const TABLE1: &[(&str, f64, f64)] = &[
    ("i3a", 159.0, 128.0),
    ("i3b", 380.0, 304.0),
    ("i4a", 364.0, 73.0),
    ("i4b", 437.0, 88.0),
    ("i4c", 463.0, 100.0),
    ("i4d", 580.0, 119.0),
    ("i4e", 840.0, 170.0),
    ("i5a", 1072.0, 54.0),
    ("i5b", 1388.0, 71.0),
];

#[test]
fn table1_params_of_the_rows_that_follow_from_their_channels() {
    let r = googlenet();
    for &(name, params_k, _) in TABLE1 {
        if ["i4c", "i4d", "i5a", "i5b"].contains(&name) {
            continue; // the paper's params for these do not follow from its own channel columns
        }
        let row = r.rows.iter().find(|row| row.name == name).unwrap();
        within_1pct(name, row.cost.weights as f64 / 1024.0, params_k);
    }
    // conv2 is the 1×1 reduction and the 3×3 conv of the stem.
    let conv2 = layer(&r, "stem.4").cost.weights + layer(&r, "stem.6").cost.weights;
    within_1pct("conv2", conv2 as f64 / 1024.0, 112.0);
    within_1pct(
        "linear",
        layer(&r, "logits.3").cost.weights as f64 / 1024.0,
        1000.0,
    );
}

#[test]
fn table1_macs_of_every_inception_row_but_5a() {
    let r = googlenet();
    for &(name, _, ops_m) in TABLE1 {
        if name == "i5a" {
            continue; // 51.1M from its channels; the paper says 54M
        }
        let row = r.rows.iter().find(|row| row.name == name).unwrap();
        within_1pct(name, row.cost.macs as f64 / 1e6, ops_m);
    }
    let conv2 = layer(&r, "stem.4").cost.macs + layer(&r, "stem.6").cost.macs;
    within_1pct("conv2", conv2 as f64 / 1e6, 360.0);
    // The paper rounds the linear layer's 1.024M to "1M".
    assert_eq!((layer(&r, "logits.3").cost.macs as f64 / 1e6).round(), 1.0);
}

/// The rows that differ differ by the amounts README "Table 1, reproduced" explains.
#[test]
fn table1_rows_that_differ() {
    let r = googlenet();
    let row = |name: &str| r.rows.iter().find(|row| row.name == name).unwrap().cost;
    assert_eq!(row("i4c").weights, 509_440); // 497.5K, the paper says 463K
    assert_eq!(row("i5a").weights, 1_042_432); // 1018K, the paper says 1072K
    assert_eq!(row("i5a").macs, 51_079_168); // 51.1M, the paper says 54M
                                             // conv1: a full 7×7 conv is 9,408 weights and 118M MACs; the paper's 2.7K and 34M fit a
                                             // 7×7 depthwise conv with 8 filters per input channel followed by a 1×1 conv to 64.
    let conv1 = layer(&r, "conv1").cost;
    assert_eq!((conv1.weights, conv1.macs), (9_408, 118_013_952));
    let separable = 3 * 8 * 49 + 24 * 64;
    assert_eq!(separable, 2_712); // 2.65K ≈ 2.7K
    assert_eq!(separable * 112 * 112, 34_019_328); // 34M
}

#[test]
fn googlenet_totals_equal_caffe_bvlc_googlenet() {
    let r = googlenet();
    assert_eq!(r.inference.params(), 6_998_552);
    assert_eq!(r.total.params(), 13_378_280);
    assert_eq!(r.total.macs, 1_591_044_096);
    assert_eq!(r.inference.macs, 1_582_671_872);
    // "GoogLeNet ... 22 layers deep when counting only layers with parameters".
    assert_eq!(r.depth, 22);
}

#[test]
fn googlenet_shapes_and_rows_follow_table1() {
    let r = googlenet();
    let expect: &[(&str, [usize; 3], usize)] = &[
        ("stem", [192, 28, 28], 3),
        ("i3a", [256, 28, 28], 2),
        ("i3b", [480, 28, 28], 2),
        ("i4a", [512, 14, 14], 2),
        ("i4b", [512, 14, 14], 2),
        ("i4c", [512, 14, 14], 2),
        ("i4d", [528, 14, 14], 2),
        ("i4e", [832, 14, 14], 2),
        ("i5a", [832, 7, 7], 2),
        ("i5b", [1024, 7, 7], 2),
    ];
    for &(name, shape, depth) in expect {
        let row = r.rows.iter().find(|row| row.name == name).unwrap();
        assert_eq!(row.output.as_deref(), Some(&shape[..]), "{name}");
        assert_eq!(row.depth, depth, "{name}");
    }
    // The JSON example of the issue: i3a's 3×3 reduction and the whole i3a row.
    let red = layer(&r, "i3a.b2.0");
    assert_eq!((red.cost.params(), red.cost.macs), (18_528, 14_450_688));
    let i3a = r.rows.iter().find(|row| row.name == "i3a").unwrap();
    assert_eq!((i3a.cost.params(), i3a.cost.macs), (163_696, 128_049_152));
    // Auxiliary heads train but are pruned from inference.
    assert!(!layer(&r, "aux1.1").inference && !layer(&r, "aux2.7").inference);
    assert!(layer(&r, "logits.3").inference);
    // docs/language.md's naming examples.
    assert_eq!(layer(&r, "stem.1").op, "relu");
    assert_eq!(layer(&r, "i3a").op, "concat");
    assert_eq!(layer(&r, "i4a.1").op, "concat");
    assert_eq!(layer(&r, "i4a.1.b2.2").op, "conv");
}

#[test]
fn lecture_counts() {
    let graphs = example("lecture.net");
    let params: Vec<(String, u64)> = graphs
        .iter()
        .map(|g| (g.name.clone(), Report::new(g).total.params()))
        .collect();
    assert_eq!(
        params,
        [
            ("naive".to_string(), 221_312),
            ("reduced".to_string(), 129_248)
        ]
    );
}

#[test]
fn lenet_and_autoencoder() {
    let lenet = Report::new(&example("lenet.net")[0]);
    assert_eq!(lenet.total.params(), 61_706); // LeNet-5's classic count
    let ae = &example("autoencoder.net")[0];
    let r = Report::new(ae);
    assert_eq!(r.outputs, [("recon".to_string(), vec![1, 28, 28])]);
    let shapes: Vec<(String, Vec<usize>)> = r
        .layers
        .iter()
        .filter(|l| l.op == "invert" || l.op == "conv_t")
        .map(|l| (l.path.clone(), l.output.clone()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("recon.0".to_string(), vec![32, 7, 7]),
            ("recon.2".to_string(), vec![16, 14, 14]),
            ("recon.4".to_string(), vec![1, 28, 28]),
        ]
    );
}

/// The prune pass leaves exactly the layers the report counts for inference.
#[test]
fn pruned_graph_is_the_inference_graph() {
    let mut g = example("googlenet.net").remove(0);
    let changed =
        netc_compiler::passes::run(&mut g, netc_compiler::passes::INFERENCE, &[]).unwrap();
    assert_eq!(changed, ["prune"]);
    let r = Report::new(&g);
    assert_eq!(r.total.params(), 6_998_552);
    assert_eq!(r.total.macs, 1_582_671_872);
    assert!(g.losses.is_empty());
    assert_eq!(
        g.inputs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["image"]
    );
    assert!(g.find("aux1.1").is_none() && g.find("logits.3").is_some());
    // Pruning twice changes nothing more.
    let again = netc_compiler::passes::run(&mut g, netc_compiler::passes::INFERENCE, &[]).unwrap();
    assert!(again.is_empty());
}

/// Layers that reach neither an output nor a loss are computed by nothing and counted in
/// neither total.
#[test]
fn dead_layers_count_nowhere() {
    let src = "network n(x: [3, 8, 8], t: [4, 8, 8]) {
        y = x -> conv(4, k=1);
        spare = x -> conv(50, k=1);
        aux = x -> conv(4, k=3, p=1);
        loss mse(y, t) + 0.1 * mse(aux, t);
        output y;
    }";
    let checked = netc_compiler::check_source("t.net", src, Path::new("t.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let r = Report::new(&checked.graphs[0]);
    assert_eq!(r.inference.params(), 3 * 4 + 4);
    assert_eq!(r.total.params(), 3 * 4 + 4 + 3 * 4 * 9 + 4);
    let spare = layer(&r, "spare");
    assert!(!spare.training && !spare.inference);
    let aux = layer(&r, "aux");
    assert!(aux.training && !aux.inference);
}
