//! `netc import` on models PyTorch exported (tests/fixtures/onnx_import, made by
//! make_import.py there): each imports, checks, runs in the interpreter to PyTorch's output,
//! and names its weights as PyTorch's state_dict does; the ResNet's text is a golden file.

mod common;

use std::path::{Path, PathBuf};

use common::{netc, text};
use safetensors::SafeTensors;

const FIXTURES: &str = "tests/fixtures/onnx_import";

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every f32 tensor of a safetensors file.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v.shape().to_vec(), data)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Imports fixture `name`, runs it, and compares with PyTorch; returns the `.net` text.
fn round(name: &str) -> String {
    round_renamed(name, &|k| k.to_string())
}

/// [`round`], where the weights' names are PyTorch's state_dict keys given by `rename`.
fn round_renamed(name: &str, rename: &dyn Fn(&str) -> String) -> String {
    let dir = scratch(name);
    let net = dir.join(format!("{name}.net"));
    let weights = dir.join(format!("{name}.safetensors"));
    let onnx = format!("{FIXTURES}/{name}.onnx");
    let o = netc(&["import", &onnx, "-o", net.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = netc(&["check", net.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.join("out.safetensors");
    let o = netc(&[
        "run",
        net.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--inputs",
        &format!("{FIXTURES}/{name}.in.safetensors"),
        "--out",
        out.to_str().unwrap(),
        "--interp",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let got = tensors(&out);
    let want = tensors(Path::new(&format!("{FIXTURES}/{name}.out.safetensors")));
    assert_eq!(got.len(), 1, "one output");
    let ((_, gs, g), (_, ws, w)) = (&got[0], &want[0]);
    assert_eq!(gs, ws, "{name}: output shape");
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let (worst, at) = g
        .iter()
        .zip(w)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs(), i))
        .fold((0f32, 0), |m, x| if x.0 > m.0 { x } else { m });
    assert!(
        worst <= 1e-4 * scale,
        "{name}: largest difference {worst} at {at} (scale {scale})"
    );
    // The weights carry PyTorch's state_dict names.
    let keys = std::fs::read_to_string(format!("{FIXTURES}/{name}.keys.txt")).unwrap();
    let mut keys: Vec<String> = keys.split_whitespace().map(rename).collect();
    keys.sort();
    let names: Vec<String> = tensors(&weights).into_iter().map(|t| t.0).collect();
    assert_eq!(names, keys, "{name}: weight names");
    let text = std::fs::read_to_string(&net).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[test]
fn resnet_imports_with_its_basic_blocks_as_a_block() {
    let net = round("resnet");
    assert!(
        net.contains("layer1 = stem -> layer(8) -> layer(8);"),
        "{net}"
    );
    let golden = std::fs::read_to_string(format!("{FIXTURES}/resnet.net")).unwrap();
    assert_eq!(
        net, golden,
        "the imported text changed (update {FIXTURES}/resnet.net if it reads better)"
    );
}

#[test]
fn lenet_imports() {
    round("lenet");
}

#[test]
fn mobilenet_imports_depthwise_relu6_and_residuals() {
    let net = round("mobilenet");
    // One block for every Conv2dNormActivation, the depthwise ones with groups = channels.
    assert!(net.contains("groups=g"), "{net}");
    assert!(
        net.contains("conv_batchnorm_relu6(48, 3, 1, 1, 48)"),
        "{net}"
    );
}

#[test]
fn se_hardswish_silu_gelu_import() {
    let net = round("sehard");
    for op in [
        "hardswish",
        "hardsigmoid",
        "silu",
        "gelu",
        "mul(",
        "ceil=true",
        "se = stem -> se;",
    ] {
        assert!(net.contains(op), "{op} in\n{net}");
    }
}

#[test]
fn squeezenet_fire_modules_import() {
    let net = round("squeezenet");
    assert!(net.contains("concat("), "{net}");
}

#[test]
fn shuffle_split_upsample_softmax_import() {
    let net = round("shuffle");
    for op in [
        "channel_shuffle(2)",
        "slice(0, 8)",
        "upsample",
        "softmax",
        "leaky_relu(slope=0.2)",
        "elu",
    ] {
        assert!(net.contains(op), "{op} in\n{net}");
    }
}

#[test]
fn inception_with_pytorch_lrn_imports() {
    let net = round("inception");
    for part in [
        "lrn(size=5, alpha=0.001, k=2.0)",
        "lrn(size=4)",
        "i3a = stem -> i3a(8, 12, 6);",
        "return concat(b1, b2, b3, b4);",
    ] {
        assert!(net.contains(part), "{part} in\n{net}");
    }
}

#[test]
fn groupnorm_layernorm2d_and_gelu_tanh_import() {
    let net = round("norms");
    for part in [
        "groupnorm(2) as gn",
        "layernorm2d as norm",
        "gelu(approximate=\"tanh\")",
        "avgpool(k=3, s=2, p=1, ceil=true)",
    ] {
        assert!(net.contains(part), "{part} in\n{net}");
    }
}

#[test]
fn convnext_blocks_run_their_channels_last_mlp_in_nchw() {
    // A bare nn.Parameter used as a factor per channel is a `scale` layer's weight.
    let net = round_renamed("convnext", &|k| {
        if k.ends_with("layer_scale") {
            format!("{k}.weight")
        } else {
            k.to_string()
        }
    });
    for part in [
        "-> layernorm2d -> conv(4 * c, k=1)",
        "-> gelu -> conv(c, k=1) -> scale as layer_scale;",
        "return add(r#block, x);",
        "x -> layernorm2d -> conv(16, k=2, s=2)",
    ] {
        assert!(net.contains(part), "{part} in\n{net}");
    }
}

#[test]
fn a_corrupt_model_is_an_error_and_outputs_are_not_overwritten() {
    let dir = scratch("errors");
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07\xff\xff garbage").unwrap();
    let net = dir.join("bad.net");
    let o = netc(&["import", bad.to_str().unwrap(), "-o", net.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not an ONNX model"),
        "{}",
        text(&o.stderr)
    );
    assert!(!net.exists());

    std::fs::write(&net, "keep me").unwrap();
    let o = netc(&[
        "import",
        &format!("{FIXTURES}/lenet.onnx"),
        "-o",
        net.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&net).unwrap(), "keep me");
    let o = netc(&[
        "import",
        &format!("{FIXTURES}/lenet.onnx"),
        "-o",
        net.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
