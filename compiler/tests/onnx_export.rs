//! ONNX export against onnxruntime: every network of `examples/` and `examples/zoo/`
//! exported with parameters made by a formula, run by onnxruntime (in
//! `fixtures/onnx_export/make_export.py`, since CI has no Python), must give the reference
//! interpreter's outputs. The fixture records the FNV-1a hash of the model onnxruntime ran;
//! the test exports the network again and checks that it is the same model, byte for byte,
//! so a change to the export fails here until the fixtures are made again.
//!
//! `NETC_ONNX_OUT=DIR cargo test -p netc-compiler --release --test onnx_export -- --ignored`
//! writes the models and their inputs for the script (which runs it itself).

use std::path::{Path, PathBuf};

use netc_compiler::interp::{self, Mode, Params};
use netc_compiler::{check_file, Graph};
use serde_json::Value;

const BATCH: usize = 2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    root().join("compiler/tests/fixtures/onnx_export")
}

/// Every network of the example files and of `fixtures/onnx_export/ops.net` (every op, in
/// the variants whose ONNX form differs), by file (relative to the root) and name.
fn networks() -> Vec<(String, Graph)> {
    let mut files = vec!["compiler/tests/fixtures/onnx_export/ops.net".to_string()];
    for dir in ["examples", "examples/zoo"] {
        let mut names: Vec<_> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".net"))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    let mut nets = Vec::new();
    for file in files {
        let checked = check_file(&root().join(&file), None);
        assert!(!checked.has_errors(), "{file}:\n{}", checked.render());
        nets.extend(checked.graphs.into_iter().map(|g| (file.clone(), g)));
    }
    nets
}

fn model(g: &Graph, params: &Params) -> Vec<u8> {
    netc_compiler::onnx::model_bytes(g, params, env!("CARGO_PKG_VERSION"))
        .unwrap_or_else(|e| panic!("{}: {e}", g.name))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn every_example_exports_and_onnxruntime_computes_what_netc_does() {
    let mut checked = 0;
    for (file, g) in networks() {
        let path = fixtures().join(format!("{}.json", g.name));
        let fx: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run make_export.py)", path.display())),
        )
        .unwrap();
        assert_eq!(fx["file"], file.as_str(), "{}", g.name);
        let params = interp::formula_params(&g);
        let bytes = model(&g, &params);
        assert_eq!(
            format!("{:016x}", fnv1a64(&bytes)),
            fx["fnv1a64"].as_str().unwrap(),
            "{file} {}: the export is not the model onnxruntime ran; if the change is meant, make the fixtures again (make_export.py)",
            g.name
        );
        let mut params = params;
        let outs = interp::forward(
            &g,
            &mut params,
            &interp::formula_feed(&g, BATCH),
            Mode::Infer,
        )
        .outputs(&g);
        let want = fx["outputs"].as_object().unwrap();
        assert_eq!(want.len(), outs.len(), "{}: outputs", g.name);
        for (name, t) in outs {
            let w = &want[&name];
            let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
            assert_eq!(shape, t.shape, "{} {name}", g.name);
            let values: Vec<f64> = serde_json::from_value(w["values"].clone()).unwrap();
            let scale = values.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            let dev = values
                .iter()
                .zip(&t.data)
                .map(|(a, &b)| (a - b as f64).abs())
                .fold(0.0, f64::max);
            assert!(
                dev <= 1e-4 * scale,
                "{} {name}: netc and onnxruntime differ by {dev:e} (outputs up to {scale:e})",
                g.name
            );
            eprintln!(
                "{file} {} {name}: deviation {:.1e} of {scale:.1e}",
                g.name,
                dev / scale,
            );
        }
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} networks");
}

/// The networks exported above use every op a user can write.
#[test]
fn the_exported_networks_use_every_op() {
    let used: std::collections::BTreeSet<&str> = networks()
        .iter()
        .flat_map(|(_, g)| {
            g.nodes()
                .into_iter()
                .map(|n| g.node(n).op.name())
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<&str> = netc_compiler::ops::all()
        .iter()
        .map(|s| s.name)
        .filter(|n| !used.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "no exported network uses {missing:?}: add them to ops.net"
    );
}

/// For the fixture script: every network's model and inputs, written to `$NETC_ONNX_OUT`.
#[test]
#[ignore]
fn write_models() {
    let Some(dir) = std::env::var_os("NETC_ONNX_OUT") else {
        panic!("set NETC_ONNX_OUT to the folder to write to");
    };
    let dir = PathBuf::from(dir);
    for (file, g) in networks() {
        std::fs::write(
            dir.join(format!("{}.onnx", g.name)),
            model(&g, &interp::formula_params(&g)),
        )
        .unwrap();
        let feed = interp::formula_feed(&g, BATCH);
        let mut inputs = serde_json::Map::new();
        for (name, t) in &feed.tensors {
            let bytes: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let bin = format!("{}.{name}.f32", g.name);
            std::fs::write(dir.join(&bin), bytes).unwrap();
            inputs.insert(
                name.clone(),
                serde_json::json!({ "shape": t.shape, "file": bin }),
            );
        }
        let manifest = serde_json::json!({ "file": file, "network": g.name, "inputs": inputs });
        std::fs::write(
            dir.join(format!("{}.inputs.json", g.name)),
            manifest.to_string(),
        )
        .unwrap();
    }
}
