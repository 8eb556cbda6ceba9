//! `netc run`: weights and inputs in safetensors files, outputs, loss and gradients out, and
//! a clear error for every kind of bad file. The end-to-end oracle is PyTorch: LeNet's
//! weights, inputs and reference values come from `compiler/tests/fixtures/torch_nets/`.

#[path = "../common/mod.rs"]
mod common;
mod dropout;
mod hostile;
mod predict;

use common::*;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netc-run-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `netc run NET --weights W --inputs I --out OUT EXTRA...`.
fn netc_run(net: &str, w: &Path, i: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        net,
        "--weights",
        w.to_str().unwrap(),
        "--inputs",
        i.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    netc(&args)
}

/// A tensor to write: dtype, shape, little-endian bytes.
struct Raw(Dtype, Vec<usize>, Vec<u8>);

fn f32s(shape: Vec<usize>, data: &[f32]) -> Raw {
    Raw(
        Dtype::F32,
        shape,
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

fn write(path: &Path, tensors: &[(String, Raw)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, Raw(d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn json_tensor(v: &Value) -> (Vec<usize>, Vec<f32>) {
    (
        v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap() as f32)
            .collect(),
    )
}

/// LeNet's PyTorch fixture as safetensors files: (weights, inputs, fixture).
fn lenet_files(d: &Path) -> (PathBuf, PathBuf, Value) {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("compiler/tests/fixtures/torch_nets/lenet.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let weights: Vec<(String, Raw)> = fixture["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let (s, d) = json_tensor(v);
            (k.clone(), f32s(s, &d))
        })
        .collect();
    let (s, x) = json_tensor(&fixture["inputs"]["image"]);
    let labels: Vec<u8> = fixture["labels"]["label"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l.as_i64().unwrap().to_le_bytes())
        .collect();
    let n = s[0];
    let (w, i) = (d.join("w.safetensors"), d.join("x.safetensors"));
    write(&w, &weights);
    write(
        &i,
        &[
            ("image".into(), f32s(s, &x)),
            ("label".into(), Raw(Dtype::I64, vec![n], labels)),
        ],
    );
    (w, i, fixture)
}

#[test]
fn lenet_loss_and_gradients_match_pytorch_through_files() {
    let d = dir("lenet");
    let (w, i, fixture) = lenet_files(&d);
    let out = d.join("y.safetensors");
    let res = netc_run("examples/lenet.net", &w, &i, &out, &["--grads", "--interp"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let scalar = |name: &str| {
        let v = file.tensor(name).unwrap();
        f32::from_le_bytes(v.data()[..4].try_into().unwrap())
    };
    let want = fixture["loss"].as_f64().unwrap() as f32;
    assert!(
        (scalar("loss") - want).abs() < 1e-5,
        "{} vs {want}",
        scalar("loss")
    );
    let grad = file.tensor("grad.c1.0.weight").unwrap();
    assert_eq!(grad.shape(), &[6, 1, 5, 5]);
    let (_, want) = json_tensor(&fixture["grads"]["c1.0.weight"]);
    let got: Vec<f32> = grad
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(got
        .iter()
        .zip(&want)
        .all(|(a, b)| (a - b).abs() <= 1e-3 * scale));
    assert_eq!(file.tensor("logits").unwrap().shape(), &[4, 10]);
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names.len(),
        1 + 1 + 10,
        "logits, loss and ten gradients: {names:?}"
    );

    // Without --grads: outputs only, in inference mode.
    let res = netc_run("examples/lenet.net", &w, &i, &out, &["--interp"]);
    assert!(res.status.success());
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        SafeTensors::deserialize(&bytes).unwrap().names(),
        ["logits"]
    );
}

#[test]
fn bad_files_are_named_errors() {
    let d = dir("bad");
    let (w, i, _) = lenet_files(&d);
    let out = d.join("y.safetensors");
    let run = |w: &Path, i: &Path| {
        let r = netc_run("examples/lenet.net", w, i, &out, &["--interp", "--grads"]);
        assert_eq!(
            r.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stderr).into_owned()
    };
    // Weights: a missing tensor, a wrong shape, a wrong dtype, an extra name.
    let bytes = std::fs::read(&w).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Raw)> = file
        .tensors()
        .into_iter()
        .filter(|(k, _)| k != "c1.0.bias")
        .map(|(k, v)| (k, Raw(v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    for (k, raw) in tensors.iter_mut() {
        if k == "logits.weight" {
            *raw = f32s(vec![84, 10], &vec![0.0; 840]);
        }
        if k == "f6.0.bias" {
            *raw = Raw(Dtype::F64, vec![84], vec![0; 84 * 8]);
        }
    }
    tensors.push(("conv9.weight".into(), f32s(vec![1], &[0.0])));
    let bad_w = d.join("bad_w.safetensors");
    write(&bad_w, &tensors);
    let err = run(&bad_w, &i);
    assert!(
        err.contains("`c1.0.bias` is missing (expected f32 [6])"),
        "{err}"
    );
    assert!(
        err.contains("`logits.weight` has shape [84, 10], expected [10, 84]"),
        "{err}"
    );
    assert!(err.contains("`f6.0.bias` is F64, expected F32"), "{err}");
    assert!(
        err.contains("`conv9.weight` is not a parameter of network `lenet`"),
        "{err}"
    );

    // Inputs: a label out of range, a wrong image shape, a corrupt file.
    let bad_i = d.join("bad_i.safetensors");
    write(
        &bad_i,
        &[
            ("image".into(), f32s(vec![2, 28, 28], &vec![0.0; 2 * 784])),
            (
                "label".into(),
                Raw(
                    Dtype::I32,
                    vec![2],
                    [3i32, 10].iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
            ),
        ],
    );
    let err = run(&w, &bad_i);
    assert!(
        err.contains("input `image` has shape [2, 28, 28], expected [N, 1, 28, 28]"),
        "{err}"
    );
    assert!(
        err.contains("label `label`[1] is 10, outside 0..10"),
        "{err}"
    );
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"this is not a safetensors file").unwrap();
    let err = run(&w, &junk);
    assert!(
        err.contains("junk.safetensors is not a safetensors file"),
        "{err}"
    );
    let err = run(&d.join("nope.safetensors"), &i);
    assert!(err.contains("cannot read"), "{err}");
    assert!(!out.exists(), "nothing is written when the run fails");
}

/// Without `--interp`, `netc run` builds (once, cached) and runs the generated code, which
/// gives what the interpreter gives.
#[test]
fn generated_code_and_interpreter_agree_through_files() {
    let d = dir("generated");
    let (w, i, fixture) = lenet_files(&d);
    let (gen, int) = (d.join("gen.safetensors"), d.join("int.safetensors"));
    for (out, extra) in [(&gen, &["--grads"][..]), (&int, &["--grads", "--interp"])] {
        let res = netc_run("examples/lenet.net", &w, &i, out, extra);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
    }
    let (gb, ib) = (std::fs::read(&gen).unwrap(), std::fs::read(&int).unwrap());
    let (gf, itf) = (
        SafeTensors::deserialize(&gb).unwrap(),
        SafeTensors::deserialize(&ib).unwrap(),
    );
    let mut names = gf.names();
    names.sort();
    let mut inames = itf.names();
    inames.sort();
    assert_eq!(names, inames);
    for name in names {
        let (a, b) = (gf.tensor(name).unwrap(), itf.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        let fa: Vec<f32> = a
            .data()
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().unwrap()))
            .collect();
        let fb: Vec<f32> = b
            .data()
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().unwrap()))
            .collect();
        let scale = fb.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        assert!(
            fa.iter()
                .zip(&fb)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * scale),
            "{name}"
        );
    }
    let loss = f32::from_le_bytes(gf.tensor("loss").unwrap().data()[..4].try_into().unwrap());
    assert!(
        (loss - fixture["loss"].as_f64().unwrap() as f32).abs() < 1e-5,
        "PyTorch's loss"
    );
}

/// Inputs named like the generated runner's own variables (`x`, `w`, `p`, `s`, `batch`)
/// shadow nothing: `netc run` and `netc bench` build and give the interpreter's values.
#[test]
fn inputs_named_like_the_runners_variables_work() {
    let d = dir("names");
    let net = d.join("names.net");
    std::fs::write(
        &net,
        "network names(x: [1, 4, 4], w: class(2), p: [16], s: [16], batch: [16]) {\n    a = add(p, s, batch);\n    logits = x -> flatten -> add(a) -> linear(2) as fc;\n    loss ce(logits, w);\n    output logits;\n}\n",
    )
    .unwrap();
    let weights = d.join("w.safetensors");
    let fc: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 50.0).collect();
    write(
        &weights,
        &[
            ("fc.weight".into(), f32s(vec![2, 16], &fc)),
            ("fc.bias".into(), f32s(vec![2], &[0.1, -0.1])),
        ],
    );
    let inputs = d.join("x.safetensors");
    let x: Vec<f32> = (0..48).map(|i| (i % 7) as f32 / 7.0).collect();
    let v16: Vec<f32> = (0..48).map(|i| (i % 5) as f32 / 10.0).collect();
    let labels: Vec<u8> = [1i64, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    write(
        &inputs,
        &[
            ("x".into(), f32s(vec![3, 1, 4, 4], &x)),
            ("w".into(), Raw(Dtype::I64, vec![3], labels)),
            ("p".into(), f32s(vec![3, 16], &v16)),
            ("s".into(), f32s(vec![3, 16], &v16)),
            ("batch".into(), f32s(vec![3, 16], &v16)),
        ],
    );
    let mut losses = Vec::new();
    for extra in [&["--grads"][..], &["--grads", "--interp"]] {
        let out = d.join(format!("out{}.safetensors", losses.len()));
        let res = netc_run(net.to_str().unwrap(), &weights, &inputs, &out, extra);
        assert!(res.status.success(), "{}", text(&res.stderr));
        let bytes = std::fs::read(&out).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let loss = file.tensor("loss").unwrap().data()[..4].try_into().unwrap();
        losses.push(f32::from_le_bytes(loss));
    }
    assert!((losses[0] - losses[1]).abs() < 1e-5, "{losses:?}");
    let res = netc(&[
        "bench",
        net.to_str().unwrap(),
        "--steps",
        "1",
        "--batch",
        "2",
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
}
