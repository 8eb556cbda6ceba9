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
