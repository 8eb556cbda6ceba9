//! `netc export` as a user runs it: the same network gives the same model, the seed changes
//! it, and bad weights, a bad output path or conflicting flags are errors that write
//! nothing. (What the model computes is checked against onnxruntime in
//! compiler/tests/onnx_export.rs.)

mod common;

use common::{netc, text};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-export-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn export_is_deterministic_and_seeded() {
    let dir = tmp("seed");
    let model = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec!["export", "examples/lenet.net", "-o", path.to_str().unwrap()];
        args.extend(extra);
        let out = netc(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read(path).unwrap()
    };
    let a = model("a.onnx", &[]);
    let b = model("b.onnx", &[]);
    let seeded = model("c.onnx", &["--seed", "1"]);
    let other = model("d.onnx", &["--seed", "2"]);
    assert!(
        a.len() > 200_000,
        "LeNet's 61,706 parameters: {} bytes",
        a.len()
    );
    assert_eq!(a, b, "the same network exported twice");
    // lenet.net's `train { seed = 1; }` is the default seed.
    assert_eq!(a, seeded);
    assert_ne!(a, other);
    let s = String::from_utf8_lossy(&a);
    for name in [
        "c1.0.weight",
        "logits.bias",
        "Conv",
        "MaxPool",
        "Gemm",
        "netc",
    ] {
        assert!(s.contains(name), "no `{name}` in the model");
    }
    // The loss and the label input are not part of the inference graph.
    assert!(!s.contains("label"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_weights_paths_and_flags_are_errors_that_write_nothing() {
    let dir = tmp("bad");
    let out = dir.join("m.onnx");
    let o = out.to_str().unwrap();

    let r = netc(&[
        "export",
        "examples/lenet.net",
        "--weights",
        "examples/lenet.net",
        "-o",
        o,
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("is not a safetensors file"),
        "{}",
        text(&r.stderr)
    );
    assert!(!out.exists());

    let missing = dir.join("no/such/folder/m.onnx");
    let r = netc(&[
        "export",
        "examples/lenet.net",
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("does not exist"),
        "{}",
        text(&r.stderr)
    );

    let r = netc(&["export", "examples/lenet.net", "-o", "examples/lenet.net"]);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    assert!(
        text(&r.stderr).contains("the file the run reads"),
        "{}",
        text(&r.stderr)
    );

    let r = netc(&[
        "export",
        "examples/lenet.net",
        "--weights",
        "w",
        "--seed",
        "2",
        "-o",
        o,
    ]);
    assert_eq!(r.status.code(), Some(2));

    let r = netc(&["export", "examples/lecture.net", "-o", o]);
    assert_eq!(r.status.code(), Some(2));
    assert!(text(&r.stderr).contains("--network"), "{}", text(&r.stderr));
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}
