//! The reference interpreter's gradients against finite differences of its own loss, on the
//! network that uses every op and every loss (auxiliary weights, fan-out, invert, the zoo's
//! ops), and its forward pass against the shapes the checker inferred.

use std::path::Path;

use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_compiler::{check_source, Graph};
use netc_runtime::init::Init;
use netc_runtime::rng::Rng;

/// The every-op network of the generated-code tests: every op of the language and every
/// loss, the zoo's included.
fn every_op() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codegen/nets/every_op.net");
    std::fs::read_to_string(path).unwrap()
}

fn graph(src: &str) -> Graph {
    let checked = check_source("t.net", src, Path::new("t.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs.into_iter().next().unwrap()
}

fn random(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let mut t = Tensor::zeros(shape);
    t.data.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0));
    t
}

fn feed(rng: &mut Rng, batch: usize) -> Feed {
    let mut f = Feed::default();
    f.tensors
        .insert("image".into(), random(rng, &[batch, 3, 8, 8]));
    f.tensors.insert("t".into(), random(rng, &[batch, 2, 8, 8]));
    f.labels.insert(
        "label".into(),
        (0..batch as i64).map(|i| (i * 3) % 5).collect(),
    );
    f
}

fn loss(g: &Graph, params: &Params, feed: &Feed) -> f64 {
    let mut p = params.clone();
    interp::forward(g, &mut p, feed, Mode::Train).loss as f64
}

#[test]
fn every_gradient_matches_finite_differences() {
    let g = graph(&every_op());
    let mut rng = Rng::new(42);
    let params = interp::init_params(&g, Init::Xavier, 7);
    // Biases start at zero; give them values so that their gradients are exercised as well.
    let mut params: Params = params
        .into_iter()
        .map(|(k, mut t)| {
            if k.ends_with(".bias") {
                t.data.iter_mut().for_each(|v| *v = rng.uniform(-0.2, 0.2));
            }
            (k, t)
        })
        .collect();
    let feed = feed(&mut rng, 3);
    let mut p = params.clone();
    let fwd = interp::forward(&g, &mut p, &feed, Mode::Train);
    let grads = interp::backward(&g, &params, &fwd);
    let trained: Vec<String> = interp::param_decls(&g)
        .into_iter()
        .filter(|(_, d)| !d.state)
        .map(|(k, _)| k)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        grads.keys().cloned().collect::<Vec<_>>(),
        trained,
        "a gradient for every trained parameter"
    );

    // ReLU and max pooling have kinks: a difference across one is not a derivative, so a
    // few elements may miss the tight bound; none may miss the loose one.
    let eps = 1e-3f32;
    let (mut checked, mut tight) = (0, 0);
    for (name, grad) in &grads {
        let len = grad.data.len();
        let scale = grad.data.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for i in (0..len).step_by(len.div_ceil(5).max(1)) {
            let x0 = params[name].data[i];
            params.get_mut(name).unwrap().data[i] = x0 + eps;
            let up = loss(&g, &params, &feed);
            params.get_mut(name).unwrap().data[i] = x0 - eps;
            let down = loss(&g, &params, &feed);
            params.get_mut(name).unwrap().data[i] = x0;
            let numeric = ((up - down) / (2.0 * eps as f64)) as f32;
            let a = grad.data[i];
            let err = (a - numeric).abs();
            assert!(
                err <= 0.3 * scale,
                "{name}[{i}]: backward {a}, finite difference {numeric}"
            );
            tight += usize::from(err <= 2e-2 * a.abs() + 5e-3 * scale);
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked}");
    assert!(
        tight * 100 >= checked * 95,
        "only {tight} of {checked} gradients within 2%"
    );
}

#[test]
fn forward_shapes_follow_the_checker_and_inference_prunes() {
    let g = graph(&every_op());
    let mut rng = Rng::new(1);
    let mut params = interp::init_params(&g, Init::He, 1);
    let feed = feed(&mut rng, 2);
    let f = interp::forward(&g, &mut params, &feed, Mode::Train);
    for n in g.layers() {
        let want: usize = 2 * g.node(n).shape.iter().product::<usize>();
        assert_eq!(f.value(n).len(), want, "{}", g.node(n).path);
    }
    assert!(f.loss.is_finite() && f.loss > 0.0);
    // Inference runs only what reaches `output`, and batchnorm uses the running statistics.
    let before = params.clone();
    let inf = interp::forward(&g, &mut params, &feed, Mode::Infer);
    assert_eq!(params, before, "inference changes no state");
    assert_eq!(inf.outputs(&g)["f"].shape, vec![2, 5]);
    assert_eq!(inf.loss, 0.0);
}

#[test]
fn parameters_have_pytorch_names_and_layouts() {
    let g = graph(&every_op());
    let shapes: Vec<(String, Vec<usize>)> = interp::param_shapes(&g);
    let find = |n: &str| {
        shapes
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(find("a.0.weight"), vec![4, 3, 3, 3]);
    assert_eq!(find("a.1.running_var"), vec![4]);
    assert_eq!(find("down.weight"), vec![4, 4, 3, 3]);
    assert_eq!(find("c.0.weight"), vec![4, 4, 3, 3]); // invert: [in, out, kh, kw]
    assert_eq!(find("r.weight"), vec![4, 1, 3, 3]); // conv_t, groups 2: [in, out/groups, kh, kw]
    assert_eq!(find("f.1.weight"), vec![12, 72]); // linear: [out, in]
}
