//! The network zoo (`examples/zoo/*.net`: eleven torchvision classifiers and a small U-Net)
//! against torchvision, with the fixtures of `fixtures/zoo/make_zoo.py`:
//!
//! - counts: netc's report must have, for every torchvision module with parameters, a layer
//!   of that path (torchvision's state_dict name, or netc's where the language cannot say
//!   it: the fixture gives both) with the same output shape per sample, parameters and MACs,
//!   and the same total of parameters;
//! - numerics: one training step at batch 2 and 64×64 (Inception v3: 299×299, the smallest
//!   input its auxiliary classifier takes; about 4 s here in a debug build) through the
//!   reference interpreter, with parameters and inputs made by the fixture's formula, must
//!   give PyTorch's loss, output, running statistics and gradients (as summaries: see
//!   `assert_summary`).
//!
//! - held out: seven torchvision networks outside the zoo (ResNet-101, ResNeXt-50, Wide
//!   ResNet-50, DenseNet-169 and -201, VGG-16-BN, MobileNetV3-Large), written with `repeat`
//!   and defaults in `fixtures/heldout/` after the language had them, against the same
//!   counts (`make_zoo.py --heldout`).
//!
//! Each zoo file checks in well under a second with a release `netc check` (a few
//! milliseconds when this was written); that is a property to keep, not a timed assertion
//! here, where the debug build and a busy machine would make it flaky.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_compiler::{check_file, check_source, Checked, Report};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn net_path(name: &str) -> PathBuf {
    root().join(format!("examples/zoo/{name}.net"))
}

fn fixture(name: &str, kind: &str) -> Value {
    let path = root().join(format!("compiler/tests/fixtures/zoo/{name}.{kind}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    serde_json::from_value(v.clone()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The warnings a zoo file may have at its own input size: SqueezeNet 1.1's first conv (3×3,
/// stride 2, no padding) never reads the last row and column of a 224×224 image, in
/// torchvision as here.
fn expected_warnings(name: &str) -> Vec<&'static str> {
    match name {
        "squeezenet1_1" => vec!["window-drops"],
        _ => vec![],
    }
}

fn check_zoo_file(name: &str) -> Checked {
    let checked = check_file(&net_path(name), None);
    assert!(!checked.has_errors(), "{name}.net:\n{}", checked.render());
    let warnings: Vec<&str> = checked.warnings().map(|d| d.code).collect();
    assert_eq!(
        warnings,
        expected_warnings(name),
        "{name}.net: warnings\n{}",
        checked.render()
    );
    assert_eq!(checked.graphs.len(), 1, "{name}.net: one network");
    checked
}

// --- counts ---------------------------------------------------------------------------------

fn check_counts(name: &str) {
    check_counts_of(name, &fixture(name, "counts"), check_zoo_file(name));
}

/// Issue 18's held-out networks (`fixtures/heldout/`: torchvision networks outside the zoo,
/// written with `repeat` and defaults): the same counts and paths as torchvision.
fn check_heldout(name: &str) {
    let dir = root().join("compiler/tests/fixtures/heldout");
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.counts.json"))).unwrap(),
    )
    .unwrap();
    let checked = check_file(&dir.join(format!("{name}.net")), None);
    assert!(!checked.has_errors(), "{name}.net:\n{}", checked.render());
    assert_eq!(
        checked.warnings().count(),
        0,
        "{name}.net:\n{}",
        checked.render()
    );
    check_counts_of(name, &fx, checked);
}

fn check_counts_of(name: &str, fx: &Value, checked: Checked) {
    let g = &checked.graphs[0];
    let report = Report::new(g);
    let input = &report.inputs[0];
    assert_eq!(input.0, "image", "{name}: the first input");
    assert_eq!(input.2, usizes(&fx["input"]), "{name}: input shape");

    let layers: BTreeMap<&str, _> = report.layers.iter().map(|l| (l.path.as_str(), l)).collect();
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for m in fx["modules"].as_array().unwrap() {
        let path = m["netc"].as_str().unwrap();
        let Some(l) = layers.get(path) else {
            missing.push(format!("{path} ({})", m["type"].as_str().unwrap()));
            continue;
        };
        let want = (
            usizes(&m["output"]),
            m["params"].as_u64().unwrap(),
            m["macs"].as_u64().unwrap(),
        );
        let got = (l.output.clone(), l.cost.params(), l.cost.macs);
        if got != want {
            wrong.push(format!(
                "{path}: netc {} {:?}, {} params, {} MACs; torchvision {} {:?}, {} params, {} MACs",
                l.op,
                got.0,
                got.1,
                got.2,
                m["type"].as_str().unwrap(),
                want.0,
                want.1,
                want.2
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{name}: {} torchvision modules have no netc layer of that path: {}",
        missing.len(),
        missing.join(", ")
    );
    assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n"));
    // Every netc layer with parameters is one of torchvision's modules: the totals agree.
    assert_eq!(
        report.total.params(),
        fx["total_params"].as_u64().unwrap(),
        "{name}: total parameters"
    );
    assert_eq!(
        report.total.macs,
        fx["total_macs"].as_u64().unwrap(),
        "{name}: total MACs"
    );
}

// --- numerics -------------------------------------------------------------------------------

/// The fixtures' formula: `float32(offset + scale * sin(0.37 i + 0.0137 i² + phase))`, in
/// f64 and in this order of operations, as numpy evaluates it in make_zoo.py (so both sides
/// round the same f64 values to f32).
fn formula(n: usize, f: &Value) -> Vec<f32> {
    let offset = f["offset"].as_f64().unwrap();
    let scale = f["scale"].as_f64().unwrap();
    let phase = f["phase"].as_f64().unwrap();
    (0..n)
        .map(|i| {
            let i = i as f64;
            (offset + scale * (0.37 * i + 0.0137 * i * i + phase).sin()) as f32
        })
        .collect()
}

/// The fixture's shape `want` and netc's `got` hold the same numbers in the same order:
/// equal, or equal but for trailing 1s (ConvNeXt's Linear `[out, in]` is a 1×1 conv
/// `[out, in, 1, 1]` here).
fn same_layout(got: &[usize], want: &[usize]) -> bool {
    let trim = |s: &[usize]| {
        let mut s = s.to_vec();
        while s.len() > 1 && s.last() == Some(&1) {
            s.pop();
        }
        s
    };
    got == want || trim(got) == trim(want)
}

/// The sums of `t` as the fixtures summarize tensors.
struct Sums {
    sum: f64,
    sum_sq: f64,
    sum_abs: f64,
    max_abs: f64,
}

fn sums(t: &[f32]) -> Sums {
    let mut s = Sums {
        sum: 0.0,
        sum_sq: 0.0,
        sum_abs: 0.0,
        max_abs: 0.0,
    };
    for &v in t {
        let v = v as f64;
        s.sum += v;
        s.sum_sq += v * v;
        s.sum_abs += v.abs();
        s.max_abs = s.max_abs.max(v.abs());
    }
    s
}

/// Tolerances against PyTorch's float64 step, for netc's float32 one. How close float32 can
/// come depends on the network. Where batchnorm trains on batch 2 at 2×2 pixels through
/// dozens of layers, float32's forward error grows to 1e-4 of the activations, a few relus
/// then see the other sign of a value that close to 0, and each such flip moves whole terms
/// of the gradients below it: PyTorch's own float32 step misses its float64 one by 1e-5 of
/// a tensor's largest gradient on ResNet-18 (no flip) and by 0.4% (median) to 40% (worst)
/// on ResNet-50 (where 9 batchnorm outputs change sign). Which units flip depends on each
/// implementation's rounding, so netc's misses need not be where PyTorch's are. The fixture
/// records, per tensor, how far PyTorch's float32 strays (`f32_dev`, the largest deviation;
/// `f32_dev_sum`, the sum of the deviations); from them the test takes the network's noise,
/// the median over its gradients of `f32_dev` relative to the tensor's largest value. netc
/// may then stray:
/// - each of the first values: `VALUE_RTOL` of the tensor's largest absolute value, plus
///   `F32_TIMES` PyTorch's float32 deviation of the tensor, plus `NOISE_TIMES` the network's
///   noise (relative to the tensor's largest value);
/// - a sum and a sum of absolute values: the same, with `SUM_RTOL` of the sum of absolute
///   values (what a sum could cancel down from) and the sums of deviations; a sum of
///   squares: `SUM_RTOL` of itself, and 2·max|x| times the sum's tolerance;
/// - and a floor, `FLOOR_RTOL` of the network's largest gradient: some gradients are zero in
///   exact arithmetic (a bias before a batchnorm) and are rounding noise in float32.
///
/// For a value, that is 1e-4 to 2e-4 of its tensor's scale on ResNet-18, SqueezeNet,
/// MobileNetV3, ConvNeXt and the U-Net; 6e-4 on DenseNet-121; 1.5e-3 to 3e-3 on MobileNetV2,
/// EfficientNet and ShuffleNet; 3.5e-2 on ResNet-50; 0.1 on Inception v3 and 0.64 on
/// ResNet-152 (where PyTorch's own float32 step misses its float64 one by 1.3% and 8% of a
/// gradient's scale, the median over their gradients): loose there, but a wrong op, a wrong name or a wrong layout misses by its
/// whole size (an eps of 1e-3 instead of 1e-5 in one batchnorm of ResNet-50 fails 380
/// comparisons; in Inception v3, the default eps fails 1,828, a max pool for one average
/// pool 1,258, a 0.3 for the auxiliary loss's 0.4 248).
///
/// DenseNet-121's fixture records the larger deviation of two PyTorch float32 runs, in NCHW
/// and channels-last memory format (which sum in different orders): its NCHW run alone
/// strays by 2.5e-5 on denseblock3.denselayer8's batchnorms, where its channels-last run
/// strays by up to 9.5e-4 and netc by up to 8.7e-4, so one run's luck would set netc's
/// tolerance. It still fails on a change of 0.1% in one conv's weights (the scale of
/// `denseblock2.denselayer5.conv1.weight` times 1.001) or an eps of 1e-3 in one transition.
const VALUE_RTOL: f64 = 1e-4;
const SUM_RTOL: f64 = 1e-3;
const FLOOR_RTOL: f64 = 1e-6;
const F32_TIMES: f64 = 8.0;
const NOISE_TIMES: f64 = 8.0;

/// What a summary may miss by, beyond the fixed relative tolerances.
struct Slack {
    /// The network's float32 noise, relative to a tensor's scale.
    noise: f64,
    /// An absolute floor.
    floor: f64,
}

fn assert_summary(what: &str, got: &[f32], want: &Value, slack: &Slack, errors: &mut Vec<String>) {
    let n = want["n"].as_u64().unwrap() as usize;
    if got.len() != n {
        errors.push(format!("{what}: {} values, want {n}", got.len()));
        return;
    }
    let s = sums(got);
    let w = |k: &str| want[k].as_f64().unwrap();
    let value_tol = (VALUE_RTOL + NOISE_TIMES * slack.noise) * w("max_abs")
        + F32_TIMES * w("f32_dev")
        + slack.floor;
    let sum_tol = (SUM_RTOL + NOISE_TIMES * slack.noise) * w("sum_abs")
        + F32_TIMES * w("f32_dev_sum")
        + slack.floor;
    let mut check = |label: &str, got: f64, want: f64, tol: f64| {
        if (got - want).abs() > tol || got.is_nan() {
            errors.push(format!(
                "{what}: {label} {got:e}, want {want:e} (difference {:e}, tolerance {tol:e})",
                (got - want).abs()
            ));
        }
    };
    check("sum", s.sum, w("sum"), sum_tol);
    check("sum of |x|", s.sum_abs, w("sum_abs"), sum_tol);
    // |Σa² - Σb²| = |Σ(a - b)(a + b)| ≤ 2·max|x|·Σ|a - b|, near enough.
    let sq_tol = SUM_RTOL * w("sum_sq") + 2.0 * (w("max_abs") + value_tol) * sum_tol;
    check("sum of squares", s.sum_sq, w("sum_sq"), sq_tol);
    for (i, (g, v)) in got.iter().zip(f64s(&want["first"])).enumerate() {
        check(&format!("[{i}]"), *g as f64, v, value_tol);
    }
}

/// The network's float32 noise: the median over its gradients of PyTorch's float32
/// deviation relative to the tensor's largest value (leaving out the gradients that are
/// zero in exact arithmetic), and the floor.
fn slack(grads: &serde_json::Map<String, Value>) -> Slack {
    let largest = grads
        .values()
        .map(|s| s["max_abs"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let mut rel: Vec<f64> = grads
        .values()
        .filter(|s| s["max_abs"].as_f64().unwrap() > 1e-9 * largest)
        .map(|s| s["f32_dev"].as_f64().unwrap() / s["max_abs"].as_f64().unwrap())
        .collect();
    rel.sort_by(f64::total_cmp);
    Slack {
        noise: rel[rel.len() / 2],
        floor: FLOOR_RTOL * largest,
    }
}

fn check_numerics(name: &str) {
    let fx = fixture(name, "numeric");
    let input = usizes(&fx["input"]);
    // The step runs at the fixture's size (64×64 for most), not at the file's (224×224 for
    // most): the same network but for its input.
    let source = std::fs::read_to_string(net_path(name)).unwrap();
    let declared = format!("image: {:?}", usizes(&fixture(name, "counts")["input"]));
    assert!(
        source.contains(&declared),
        "{name}.net: no `{declared}` input"
    );
    let small = format!("image: {input:?}");
    let text = source.replacen(&declared, &small, 1);
    let mut checked = check_source(&format!("{name}.net"), &text, &net_path(name), None);
    checked.allow(&["window-drops"]);
    assert!(
        !checked.has_errors(),
        "{name}.net at {input:?}:\n{}",
        checked.render()
    );
    let g = &checked.graphs[0];

    // Parameters and state by the fixture's formulas, under netc's names.
    let specs: BTreeMap<&str, &Value> = fx["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["netc"].as_str().unwrap(), p))
        .collect();
    let shapes = interp::param_shapes(g);
    let ours: BTreeSet<&str> = shapes.iter().map(|(k, _)| k.as_str()).collect();
    let theirs: BTreeSet<&str> = specs.keys().copied().collect();
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "{name}: netc tensors that torchvision does not have"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "{name}: torchvision tensors that netc does not have"
    );
    let mut params = Params::new();
    for (k, shape) in &shapes {
        let spec = specs[k.as_str()];
        let torch_shape = usizes(&spec["shape"]);
        assert!(
            same_layout(shape, &torch_shape),
            "{name}: {k} is {shape:?} in netc, {torch_shape:?} in torchvision ({})",
            spec["name"]
        );
        let data = formula(shape.iter().product(), spec);
        params.insert(
            k.clone(),
            Tensor {
                shape: shape.clone(),
                data,
            },
        );
    }

    let mut feed = Feed::default();
    for (k, f) in fx["inputs"].as_object().unwrap() {
        let shape = usizes(&f["shape"]);
        let data = formula(shape.iter().product(), f);
        feed.tensors.insert(k.clone(), Tensor { shape, data });
    }
    for (k, v) in fx["labels"].as_object().unwrap() {
        feed.labels
            .insert(k.clone(), serde_json::from_value(v.clone()).unwrap());
    }

    let before = params.clone();
    let f = interp::forward(g, &mut params, &feed, Mode::Train);
    let mut errors = Vec::new();

    let want_grads = fx["grads"].as_object().unwrap();
    let slack = slack(want_grads);
    let want_loss = fx["loss"].as_f64().unwrap();
    let loss_tol = (1e-4 + NOISE_TIMES * slack.noise) * want_loss.abs().max(1.0)
        + F32_TIMES * fx["loss_f32_dev"].as_f64().unwrap();
    if (f.loss as f64 - want_loss).abs() > loss_tol {
        errors.push(format!("loss {}, want {want_loss}", f.loss));
    }

    let outputs = f.outputs(g);
    assert_eq!(outputs.len(), 1, "{name}: one output");
    let out = outputs.values().next().unwrap();
    let want_out = f64s(&fx["output"]["data"]);
    assert_eq!(
        out.shape,
        usizes(&fx["output"]["shape"]),
        "{name}: output shape"
    );
    let scale = want_out.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (worst, at) = out
        .data
        .iter()
        .zip(&want_out)
        .enumerate()
        .map(|(i, (g, w))| ((*g as f64 - w).abs(), i))
        .fold(
            (0.0, 0),
            |a, b| if b.0 > a.0 || b.0.is_nan() { b } else { a },
        );
    let out_tol = (VALUE_RTOL + NOISE_TIMES * slack.noise) * scale
        + F32_TIMES * fx["output"]["f32_dev"].as_f64().unwrap();
    if worst > out_tol {
        errors.push(format!(
            "output: largest difference {worst:e} at {at} (got {}, want {}), scale {scale}",
            out.data[at], want_out[at]
        ));
    }

    let state = fx["state_after"].as_object().unwrap();
    for (k, want) in state {
        match params.get(k) {
            Some(t) => assert_summary(
                &format!("{k} after the step"),
                &t.data,
                want,
                &slack,
                &mut errors,
            ),
            None => errors.push(format!("{k}: no such state in netc")),
        }
    }

    let grads = interp::backward(g, &before, &f);
    let got_names: Vec<&String> = grads.keys().collect();
    let mut want_names: Vec<&String> = want_grads.keys().collect();
    want_names.sort();
    assert_eq!(got_names, want_names, "{name}: gradient names");
    for (k, want) in want_grads {
        assert_summary(
            &format!("grad {k}"),
            &grads[k].data,
            want,
            &slack,
            &mut errors,
        );
    }
    assert!(
        errors.is_empty(),
        "{name}: {} differences from PyTorch:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

macro_rules! zoo {
    ($($name:ident),* $(,)?) => {
        mod counts {
            $( #[test] fn $name() { super::check_counts(stringify!($name)); } )*
        }
        mod numerics {
            $( #[test] fn $name() { super::check_numerics(stringify!($name)); } )*
        }
        const ZOO: &[&str] = &[$(stringify!($name)),*];
    };
}

mod heldout {
    macro_rules! heldout {
        ($($name:ident),* $(,)?) => {
            $( #[test] fn $name() { super::check_heldout(stringify!($name)); } )*
        };
    }
    heldout!(
        densenet169,
        densenet201,
        mobilenet_v3_large,
        resnet101,
        resnext50_32x4d,
        vgg16_bn,
        wide_resnet50_2,
    );
}

zoo!(
    convnext_tiny,
    densenet121,
    efficientnet_b0,
    inception_v3,
    mobilenet_v2,
    mobilenet_v3_small,
    resnet152,
    resnet18,
    resnet50,
    shufflenet_v2_x1_0,
    squeezenet1_1,
    unet,
);

/// Every zoo network has both fixtures and is listed above.
#[test]
fn every_zoo_network_is_tested() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples/zoo"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "net").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let mut zoo = ZOO.to_vec();
    zoo.sort();
    assert_eq!(names, zoo);
    for name in ZOO {
        for kind in ["counts", "numeric"] {
            let path = root().join(format!("compiler/tests/fixtures/zoo/{name}.{kind}.json"));
            assert!(path.exists(), "{} is missing", path.display());
        }
    }
}

/// netc's names are torchvision's state_dict keys, so that its weights load unchanged: every
/// module path (MobileNetV3's, EfficientNet's and ConvNeXt's `block`, a keyword of the
/// language, is the raw identifier `r#block` in their files), and every tensor but ConvNeXt's
/// bare parameter `layer_scale`, which is the weight of a `scale` layer of that path. With the
/// counts and numerics above, which find each fixture name in netc's network, this is the
/// zoo README's column of renames.
#[test]
fn names_are_torchvision_keys() {
    let mut renamed = Vec::new();
    for name in ZOO {
        for m in fixture(name, "counts")["modules"].as_array().unwrap() {
            if m["netc"] != m["path"] {
                renamed.push(format!("{name}: module {} is {}", m["path"], m["netc"]));
            }
        }
        for p in fixture(name, "numeric")["params"].as_array().unwrap() {
            let (torch, netc) = (p["name"].as_str().unwrap(), p["netc"].as_str().unwrap());
            let layer_scale = torch.ends_with(".layer_scale") && netc == format!("{torch}.weight");
            if netc != torch && !(*name == "convnext_tiny" && layer_scale) {
                renamed.push(format!("{name}: tensor {torch} is {netc}"));
            }
        }
    }
    assert!(renamed.is_empty(), "renamed:\n{}", renamed.join("\n"));
}
