//! Each pass as a rewrite: the graph before and after every pass on networks that exercise
//! them (an Inception block, a residual network with batchnorm, the autoencoder), as
//! snapshots of `Graph::describe`, which `netc graph --after PASS` prints. A change in what a
//! pass does shows up as a reviewed snapshot diff, pass by pass.

use std::path::Path;

use netc_compiler::{check_file, passes};

fn graph(path: &str) -> netc_compiler::Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let checked = check_file(&root.join(path), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs[0].clone()
}

fn snapshots(name: &str, path: &str) {
    let g = graph(path);
    insta::assert_snapshot!(format!("{name}__checked"), g.describe());
    for pass in passes::all_names() {
        let after = passes::after(&g, pass).unwrap().unwrap();
        insta::assert_snapshot!(format!("{name}__after_{pass}"), after.describe());
    }
}

#[test]
fn each_pass_on_an_inception_network() {
    snapshots(
        "small_inception",
        "compiler/tests/fixtures/torch_nets/small_inception.net",
    );
}

#[test]
fn each_pass_on_a_residual_network() {
    snapshots(
        "resnet_mini",
        "compiler/tests/fixtures/torch_shapes/resnet_mini.net",
    );
}

#[test]
fn each_pass_on_the_autoencoder() {
    snapshots("autoencoder", "examples/autoencoder.net");
}

/// `after` knows every pass and nothing else.
#[test]
fn after_an_unknown_pass_is_none() {
    let g = graph("examples/lenet.net");
    assert!(passes::after(&g, "fuse_everything").is_none());
    assert!(passes::after(&g, "epilogue").unwrap().is_ok());
}

/// Where no gradient flows (the inference graph), `inplace` also lets a residual add (one
/// `residual` did not put into a conv) overwrite the branch it adds to, and an activation whose derivative needs its input
/// (SiLU) overwrite its input; in training neither may (backward would need what is
/// overwritten).
#[test]
fn at_inference_adds_and_every_activation_run_in_place() {
    use netc_compiler::ops::Op;
    let in_place = |g: &netc_compiler::Graph, op: &str| {
        g.aliases
            .keys()
            .filter(|&&a| g.node(a).op.name() == op)
            .count()
    };
    let g = graph("compiler/tests/fixtures/torch_shapes/resnet_mini.net");
    let (inferred, trained) = (
        passes::inference(&g, &[]).unwrap(),
        passes::training(&g, &[]).unwrap(),
    );
    let adds = g
        .nodes()
        .into_iter()
        .filter(|&n| matches!(g.node(n).op, Op::Add(_)))
        .count();
    // With `residual`, each add is computed in the epilogue of the conv before it; without,
    // each runs in place.
    let residual = inferred
        .nodes()
        .into_iter()
        .filter(|&n| matches!(&inferred.node(n).op, Op::Conv(c) if c.residual))
        .count();
    assert_eq!((residual, adds), (5, 5));
    let unfused = passes::inference(&g, &["residual"]).unwrap();
    assert_eq!(in_place(&unfused, "add"), 5);
    assert_eq!(in_place(&trained, "add"), 0);
    let src = "network n(x: [3, 8, 8], t: [4, 8, 8]) {
        y = x -> conv(4, k=3, p=1) -> batchnorm -> silu;
        loss mse(y, t);
        output y;
    }";
    let checked = netc_compiler::check_source("n.net", src, Path::new("n.net"), None);
    let g = &checked.graphs[0];
    assert_eq!(in_place(&passes::inference(g, &[]).unwrap(), "silu"), 1);
    assert_eq!(in_place(&passes::training(g, &[]).unwrap(), "silu"), 0);
}
