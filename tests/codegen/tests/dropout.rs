//! Dropout and stochastic depth in a training step (`nets/dropout.net`): with a generator in
//! the workspace, the generated code drops (inverted: kept values scaled by 1/(1-p)) with the
//! masks the interpreter draws from a generator seeded the same, and its gradients flow
//! through those masks; without one, or at inference, or in the trainer's `loss`, it keeps
//! every value. The trainer sets a generator for every step.

use std::collections::BTreeMap;
use std::path::Path;

use netc::train::{Network, Trainer};
use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_runtime::init::Init;
use netc_runtime::rng::Rng;

netc::include_net!("nets/dropout.net");

/// `nets/dropout.net` with nothing dropped (`p = 0` keeps every value, scaled by 1).
mod kept {
    netc::network! {
        network drop(image: [1, 28, 28], label: class(10)) {
            a = image -> conv(4, k=5, s=2, p=2) -> relu -> maxpool(k=2);
            r = add(a, a -> conv(4, k=3, p=1) as branch -> stochastic_depth(0) as sd);
            h = r -> flatten -> linear(32) as fc -> dropout(0) as d;
            logits = h -> linear(10) as out;
            loss ce(logits, label);
            output logits;

            train {
                optimizer = sgd(lr=0.01, momentum=0.9);
                batch = 32;
                epochs = 2;
                seed = 3;
            }
        }
    }
}

/// The network, Xavier weights and small random biases, and a batch of random images and
/// labels.
struct Case {
    graph: netc_compiler::Graph,
    params: Params,
    feed: Feed,
}

fn case(batch: usize) -> Case {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("nets/dropout.net");
    let checked = netc_compiler::check_file(&path, None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let graph = checked.graphs.into_iter().next().unwrap();
    let mut rng = Rng::new(5);
    let mut params = interp::init_params(&graph, Init::Xavier, 9);
    for (name, t) in params.iter_mut() {
        if name.ends_with(".bias") {
            t.data.iter_mut().for_each(|v| *v = rng.uniform(-0.1, 0.1));
        }
    }
    let mut feed = Feed::default();
    let mut image = Tensor::zeros(&[batch, 1, 28, 28]);
    image
        .data
        .iter_mut()
        .for_each(|v| *v = rng.uniform(0.0, 1.0));
    feed.tensors.insert("image".into(), image);
    feed.labels.insert(
        "label".into(),
        (0..batch).map(|_| rng.below(10) as i64).collect(),
    );
    Case {
        graph,
        params,
        feed,
    }
}

/// The case's parameters as the generated module's.
fn params<N: Network>(c: &Case) -> N::Params {
    let mut p = N::params();
    for (name, _) in N::SHAPES {
        N::param_mut(&mut p, name)
            .unwrap()
            .copy_from_slice(&c.params[*name].data);
    }
    p
}

/// The interpreter's loss and gradients for a training step drawing from `rng`.
fn reference(c: &Case, rng: Option<&mut Rng>) -> (f32, BTreeMap<String, Vec<f32>>) {
    let mut p = c.params.clone();
    let f = interp::forward_dropping(&c.graph, &mut p, &c.feed, Mode::Train, rng);
    let grads = interp::backward(&c.graph, &c.params, &f);
    (
        f.loss,
        grads.into_iter().map(|(k, t)| (k, t.data)).collect(),
    )
}

/// `|got - want| <= 1e-4·max(max|want|, floor)`, as `tests/equal.rs` compares.
fn close_to(what: &str, got: &[f32], want: &[f32], floor: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{what}[{i}]: generated {g}, interpreter {w}"
        );
    }
}

/// How `y` relates to `x` block by block (`len` values each): the number of blocks zeroed;
/// every other block must be `x` times `scale`, exactly.
fn dropped_blocks(y: &[f32], x: &[f32], len: usize, scale: f32) -> usize {
    assert_eq!(y.len(), x.len());
    let mut zeroed = 0;
    for (k, (yb, xb)) in y.chunks(len).zip(x.chunks(len)).enumerate() {
        if yb.iter().all(|&v| v == 0.0) && xb.iter().any(|&v| v != 0.0) {
            zeroed += 1;
        } else {
            for (i, (&v, &u)) in yb.iter().zip(xb).enumerate() {
                assert_eq!(v, u * scale, "block {k}, value {i}: kept values are scaled");
            }
        }
    }
    zeroed
}

/// (a) A training step with a generator zeroes about half of `dropout(0.5)`'s values and
/// doubles the rest, and about half of the samples of `stochastic_depth(0.5)`'s branch;
/// without one it keeps every value, and its loss is the interpreter's deterministic one.
/// Inference and the trainer's `loss` never drop, and leave the generator as it was.
#[test]
fn a_training_step_with_a_generator_drops_and_without_one_keeps_every_value() {
    type N = drop::Net;
    let batch = 64;
    let c = case(batch);
    let p = params::<N>(&c);
    let (images, labels) = (&c.feed.tensors["image"].data, &c.feed.labels["label"]);
    let mut s = N::state();
    let mut ws = N::workspace(batch);

    N::set_dropout(&mut ws, Some(Rng::new(11)));
    let dropping = N::forward_train(&p, &mut s, &mut ws, images, labels);
    // `d` is still in the arena after the step (the next layer's backward reads it); the
    // values before the dropping layers are not (nothing reads them back), so they come from
    // the interpreter drawing the same masks, which (b) shows the generated code draws.
    // The trainer's workspace is cut into shards (no batchnorm here), each drawing from a
    // generator of its own: the values are gathered shard by shard, in batch order.
    let act = |ws: &drop::Sharded, path: &str| -> Vec<f32> {
        ws.activations(path).flatten().copied().collect()
    };
    // The trainer cuts the batch into shards, and shard `k` draws from a generator seeded
    // by the step's `k`-th draw: the interpreter runs each shard's images with that one.
    let shards = netc::rt::shard::ranges(batch, ws.shards());
    assert!(shards.len() > 1, "a batch of {batch} is cut into shards");
    let interpreted = |rng: Option<Rng>| {
        let mut rng = rng;
        let (mut fc, mut branch, mut sd) = (Vec::new(), Vec::new(), Vec::new());
        for r in &shards {
            let mut feed = Feed::default();
            let image = &c.feed.tensors["image"];
            let per = image.data.len() / batch;
            let mut part = Tensor::zeros(&[r.len(), 1, 28, 28]);
            part.data
                .copy_from_slice(&image.data[r.start * per..r.end * per]);
            feed.tensors.insert("image".into(), part);
            feed.labels
                .insert("label".into(), c.feed.labels["label"][r.clone()].to_vec());
            let mut shard_rng = rng.as_mut().map(|g| Rng::new(g.next_u64()));
            let mut params = c.params.clone();
            let f = interp::forward_dropping(
                &c.graph,
                &mut params,
                &feed,
                Mode::Train,
                shard_rng.as_mut(),
            );
            let value = |path: &str| f.value(c.graph.find(path).unwrap()).to_vec();
            fc.extend(value("fc"));
            branch.extend(value("branch"));
            sd.extend(value("sd"));
        }
        (fc, branch, sd)
    };
    let (fc, branch, sd) = interpreted(Some(Rng::new(11)));
    let d = act(&ws, "d");
    // 64 × 32 values: a count of 1,024 ± 23 (one standard deviation).
    let zeroed = dropped_blocks(&d, &fc, 1, 2.0);
    assert!((922..=1126).contains(&zeroed), "{zeroed} of 2048 dropped");
    // 64 samples of 196 values: 32 ± 4.
    let zeroed = dropped_blocks(&sd, &branch, 196, 2.0);
    assert!(
        (20..=44).contains(&zeroed),
        "{zeroed} of 64 samples dropped"
    );

    N::set_dropout(&mut ws, None);
    let kept = N::forward_train(&p, &mut s, &mut ws, images, labels);
    let (fc, _, _) = interpreted(None);
    assert_eq!(dropped_blocks(&act(&ws, "d"), &fc, 1, 1.0), 0);
    let (want, _) = reference(&c, None);
    assert!(
        (kept - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss without a generator: generated {kept}, interpreter {want}"
    );
    assert_ne!(dropping, kept, "dropping changes the loss");

    // The trainer's `loss` (validation without labels) and inference never drop, and leave
    // the generator where it was: the next step draws what it would have drawn.
    N::set_dropout(&mut ws, Some(Rng::new(11)));
    assert_eq!(N::loss(&p, &s, &mut ws, images, labels), kept);
    // Inference lays the arena out by its own plan, after which only the outputs are
    // there: its scores are the interpreter's, which keeps every value.
    N::forward(&p, &s, &mut ws, images);
    let want = interp::forward(&c.graph, &mut c.params.clone(), &c.feed, Mode::Infer);
    let want = &want.outputs(&c.graph)["logits"].data;
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in N::logits(&ws).iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "logits[{i}]: {g} against {w}"
        );
    }
    assert_eq!(
        N::forward_train(&p, &mut s, &mut ws, images, labels),
        dropping
    );
}

/// (b) Gradients through fixed masks: the generated code's step drawing from a generator
/// equals the interpreter's `forward_dropping` + `backward` drawing from one seeded the
/// same (the masks drawn in the same order), with and without the codegen passes.
macro_rules! gradients_through_masks {
    ($test:ident, $m:ident) => {
        #[test]
        fn $test() {
            use netc_codegen_tests::$m as m;
            let c = case(8);
            let mut p = m::Params::new();
            for (name, _) in m::Params::SHAPES {
                p.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let mut s = m::State::new();
            let x = m::Inputs {
                image: &c.feed.tensors["image"].data,
                label: &c.feed.labels["label"],
            };
            let mut ws = m::Workspace::new(8);
            let (_, kept) = reference(&c, None);
            for seed in [1, 2, 3] {
                ws.dropout = Some(Rng::new(seed));
                let loss = m::forward_train(&p, &mut s, &mut ws, &x);
                let mut g = m::Grads::new();
                m::backward(&p, &mut g, &mut ws);
                let (want, grads) = reference(&c, Some(&mut Rng::new(seed)));
                assert!(
                    (loss - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "seed {seed}: loss: generated {loss}, interpreter {want}"
                );
                let floor = 1e-2
                    * grads
                        .values()
                        .flatten()
                        .fold(1e-3f32, |m, v| m.max(v.abs()));
                for (name, want) in &grads {
                    close_to(
                        &format!("seed {seed}: grad {name}"),
                        g.get(name).unwrap(),
                        want,
                        floor,
                    );
                }
                // Not the gradients without dropping.
                assert_ne!(kept["fc.weight"], grads["fc.weight"]);
                assert_ne!(kept["branch.weight"], grads["branch.weight"]);
            }
        }
    };
}

gradients_through_masks!(dropping_gradients_equal_the_interpreters, dropout);
gradients_through_masks!(
    dropping_gradients_equal_the_interpreters_unfused,
    dropout_unfused
);

/// The trainer drops: one epoch of `nets/dropout.net` ends with other parameters than the
/// same network's with `p = 0`, from the same initialization, data and order.
#[test]
fn the_trainer_drops_in_training_steps() {
    fn train<N: Network>(name: &str) -> N::Params {
        let out = std::env::temp_dir().join(format!("netc-dropout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let trained = Trainer::<N>::new()
            .data("synthetic:320")
            .epochs(1)
            .quiet(true)
            .out(&out)
            .run()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = std::fs::remove_dir_all(&out);
        trained.params
    }
    let half = train::<drop::Net>("half");
    let none = train::<kept::drop::Net>("none");
    for (name, _) in drop::Net::SHAPES {
        assert_ne!(
            drop::Net::param(&half, name),
            kept::drop::Net::param(&none, name),
            "{name}"
        );
    }
}
