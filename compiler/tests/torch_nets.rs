//! Whole networks against PyTorch: one training step of LeNet, the autoencoder, a small
//! Inception network with an auxiliary head and the every-op network (every op of the
//! language and every loss), built in PyTorch from netc's own JSON export
//! (`bench/torch_from_json.py`, fixtures made by `fixtures/torch_nets/make_nets.py`). The
//! reference interpreter must give the same loss, every gradient, the updated batchnorm
//! statistics and the outputs.

use std::path::Path;

use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_compiler::{check_file, Graph};
use serde_json::Value;

fn tensor(v: &Value) -> Tensor {
    Tensor {
        shape: v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        data: v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap() as f32)
            .collect(),
    }
}

/// Every element within `rtol` of the reference, relative to the tensor's largest value,
/// give or take 1e-7 (a conv bias before batchnorm has a gradient of zero plus rounding).
fn assert_close(what: &str, got: &[f32], want: &Tensor, rtol: f32) {
    assert_eq!(got.len(), want.data.len(), "{what}: length");
    let scale = want.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let (worst, at) = got
        .iter()
        .zip(&want.data)
        .enumerate()
        .map(|(i, (g, w))| ((g - w).abs(), i))
        .fold(
            (0.0f32, 0),
            |a, b| if b.0 > a.0 || b.0.is_nan() { b } else { a },
        );
    assert!(
        worst <= rtol * scale + 1e-7,
        "{what}: largest difference {worst} at {at} (got {}, want {}), scale {scale}",
        got[at],
        want.data[at]
    );
}

fn check_network(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join(format!("compiler/tests/fixtures/torch_nets/{name}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let checked = check_file(&root.join(fixture["source"].as_str().unwrap()), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let g: &Graph = &checked.graphs[0];

    let mut params: Params = fixture["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), tensor(v)))
        .collect();
    let expected: Vec<(String, Vec<usize>)> = interp::param_shapes(g);
    let names: Vec<&String> = params.keys().collect();
    let mut want_names: Vec<&String> = expected.iter().map(|(k, _)| k).collect();
    want_names.sort();
    assert_eq!(names, want_names, "{name}: parameter names");
    for (k, shape) in &expected {
        assert_eq!(&params[k].shape, shape, "{name}: layout of {k}");
    }

    let mut feed = Feed::default();
    for (k, v) in fixture["inputs"].as_object().unwrap() {
        feed.tensors.insert(k.clone(), tensor(v));
    }
    for (k, v) in fixture["labels"].as_object().unwrap() {
        feed.labels.insert(
            k.clone(),
            v.as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_i64().unwrap())
                .collect(),
        );
    }
    let before = params.clone();
    let f = interp::forward(g, &mut params, &feed, Mode::Train);
    let want_loss = fixture["loss"].as_f64().unwrap() as f32;
    assert!(
        (f.loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
        "{name}: loss {} vs {want_loss}",
        f.loss
    );
    for (k, v) in fixture["outputs"].as_object().unwrap() {
        assert_close(
            &format!("{name}: output {k}"),
            &f.outputs(g)[k].data,
            &tensor(v),
            1e-4,
        );
    }
    for (k, v) in fixture["state_after"].as_object().unwrap() {
        assert_close(
            &format!("{name}: {k} after the step"),
            &params[k].data,
            &tensor(v),
            1e-5,
        );
    }
    let grads = interp::backward(g, &before, &f);
    let mut want: Vec<&String> = fixture["grads"].as_object().unwrap().keys().collect();
    want.sort();
    assert_eq!(
        grads.keys().collect::<Vec<_>>(),
        want,
        "{name}: gradient names"
    );
    for (k, v) in fixture["grads"].as_object().unwrap() {
        assert_close(
            &format!("{name}: grad {k}"),
            &grads[k].data,
            &tensor(v),
            1e-3,
        );
    }
}

#[test]
fn lenet() {
    check_network("lenet");
}

#[test]
fn autoencoder() {
    check_network("autoencoder");
}

#[test]
fn every_op_and_every_loss() {
    check_network("every_op");
}

#[test]
fn small_inception_with_an_auxiliary_head() {
    check_network("small_inception");
}
