//! The plan against the unfused interpreter, without rustc: each network's schedule, run by
//! `plan::run` over one arena laid out as generated code lays it out, gives the
//! interpreter's loss, gradients, batchnorm state and outputs, for training and inference,
//! with every pass and with each pass skipped. A buffer the memory plan reuses while it is
//! still needed, a gradient zeroed late or not at all, or a backward that reads more than
//! its op declares, shows as a wrong number (the arena starts as NaN). Every schedule also
//! passes `schedule::verify` (nothing is read before it is written).

use std::path::Path;

use netc_compiler::interp::{self, Feed, Mode, Tensor};
use netc_compiler::ops::{InputKind, Op};
use netc_compiler::plan::{self, run, schedule};
use netc_compiler::{check_source, passes, Graph};
use netc_runtime::rng::Rng;

/// A batch of 2 for every input of `g`: values in [-1, 1], labels in range.
fn feed(g: &Graph, rng: &mut Rng) -> Feed {
    let mut f = Feed::default();
    for (name, n) in &g.inputs {
        let node = g.node(*n);
        match node.op {
            Op::Input(InputKind::Class(c)) => {
                let labels = (0..2).map(|_| rng.below(c as u64) as i64).collect();
                f.labels.insert(name.clone(), labels);
            }
            _ => {
                let mut shape = vec![2];
                shape.extend(&node.shape);
                let mut t = Tensor::zeros(&shape);
                t.data.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0));
                f.tensors.insert(name.clone(), t);
            }
        }
    }
    f
}

/// `got` within 1e-5 of `want`'s largest value: merged convolutions add their input
/// gradients in another order than the interpreter does.
fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * scale,
            "{what}: element {i} is {g}, the interpreter's {w} (scale {scale})"
        );
    }
}

fn check(name: &str, src: &str) {
    let checked = check_source(name, src, Path::new(name), None);
    assert!(!checked.has_errors(), "{name}: {}", checked.render());
    for g in &checked.graphs {
        let mut rng = Rng::new(7);
        let f = feed(g, &mut rng);
        let params = interp::init_params(g, netc_runtime::init::Init::He, 3);
        // The oracle: the unfused graph.
        let mut want_params = params.clone();
        let want = interp::forward(g, &mut want_params, &f, Mode::Train);
        let want_grads = interp::backward(g, &params, &want);
        let want_outputs = want.outputs(g);
        let want_infer = interp::forward(g, &mut params.clone(), &f, Mode::Infer).outputs(g);
        let names = passes::names();
        let mut skips: Vec<Vec<&str>> = vec![vec![], names.clone()];
        skips.extend(names.iter().map(|&p| vec![p]));
        for skip in skips {
            let at = format!("{name} skipping {skip:?}");
            let p = plan::plan(g, &skip).unwrap();
            for ws in [&p.train.ws, &p.infer.ws] {
                schedule::verify(&ws.schedule, &ws.buffers).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            let mut got_params = params.clone();
            let got = run::train_step(&p.train, &mut got_params, &f);
            let loss = (got.loss - want.loss).abs() <= 1e-5 * want.loss.abs().max(1.0);
            assert!(loss, "{at}: loss {} against {}", got.loss, want.loss);
            assert_eq!(
                got.grads.keys().collect::<Vec<_>>(),
                want_grads.keys().collect::<Vec<_>>(),
                "{at}: gradients"
            );
            for (k, w) in &want_grads {
                close(&format!("{at}: gradient {k}"), &got.grads[k].data, &w.data);
            }
            for (k, w) in &want_params {
                close(&format!("{at}: state {k}"), &got_params[k].data, &w.data);
            }
            for (k, w) in &want_outputs {
                close(&format!("{at}: output {k}"), &got.outputs[k].data, &w.data);
            }
            let infer = run::infer(&p.infer, &params, &f);
            for (k, w) in &want_infer {
                close(&format!("{at}: inference {k}"), &infer[k].data, &w.data);
            }
        }
    }
}

fn file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_examples_run_by_their_plans() {
    for path in [
        "examples/lenet.net",
        "examples/autoencoder.net",
        "examples/vanishing.net",
        "examples/lecture.net",
    ] {
        check(path, &file(path));
    }
}

#[test]
fn the_every_op_network_runs_by_its_plan() {
    for path in [
        "tests/codegen/nets/every_op.net",
        "tests/codegen/nets/dropout.net",
        "compiler/tests/fixtures/torch_nets/small_inception.net",
    ] {
        check(path, &file(path));
    }
}

#[test]
fn the_shape_fixtures_run_by_their_plans() {
    for name in [
        "ae29",
        "ae45",
        "alexnet",
        "heads",
        "inception_mini",
        "nested",
        "resnet_mini",
        "vgg_small",
        "windows",
    ] {
        let path = format!("compiler/tests/fixtures/torch_shapes/{name}.net");
        check(&path, &file(&path));
    }
}

/// The zoo's networks with the most sharing of buffers (concat, slices, shuffles, gates,
/// residuals, in-place activations), on small images.
#[test]
fn zoo_networks_run_by_their_plans() {
    for (name, size) in [
        ("shufflenet_v2_x1_0", 32),
        ("mobilenet_v3_small", 32),
        ("squeezenet1_1", 32),
        ("unet", 16),
    ] {
        let path = format!("examples/zoo/{name}.net");
        let src = file(&path)
            .replace("[3, 224, 224]", &format!("[3, {size}, {size}]"))
            .replace("[1, 64, 64]", &format!("[1, {size}, {size}]"));
        check(&path, &src);
    }
}
