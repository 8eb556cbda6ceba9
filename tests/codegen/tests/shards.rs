//! The generated `Sharded` workspace (`plan::shards`, `rt::shard`) against the plain
//! `Workspace` over the whole batch:
//!
//! - inference in a shard per thread computes the same bits as one workspace, on a network
//!   of every op, on GoogLeNet, and on the zoo's ResNet-50 (Winograd) and MobileNetV2
//!   (depthwise) on small images;
//! - a training step cut into shards (networks without batchnorm) gives the loss and
//!   gradients of the whole batch, within rounding, and the same bits on one thread and two;
//!   dropout draws in every shard;
//! - a network with batchnorm trains in shards that run together and exchange its sums: the
//!   whole batch's step within rounding, and on one thread the plain workspace to the bit.

use netc::rt;
use netc_codegen_tests as t;

/// Random values in [-1, 1) from `seed`.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rt::rng::Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn labels(n: usize, classes: u64, seed: u64) -> Vec<i64> {
    let mut r = rt::rng::Rng::new(seed);
    (0..n).map(|_| r.below(classes) as i64).collect()
}

/// Parameters and batchnorm statistics of module `$m`, drawn (statistics kept positive
/// where they are variances).
macro_rules! params {
    ($m:ident) => {{
        let mut p = t::$m::Params::new();
        for (k, (name, _)) in t::$m::Params::SHAPES.iter().enumerate() {
            let v = p.get_mut(name).unwrap();
            let n = v.len();
            v.copy_from_slice(&values(n, 100 + k as u64));
            v.iter_mut().for_each(|x| *x *= 0.5);
        }
        let mut s = t::$m::State::new();
        for (k, (name, _)) in t::$m::State::SHAPES.iter().enumerate() {
            let v = s.get_mut(name).unwrap();
            let n = v.len();
            let r = values(n, 500 + k as u64);
            for (x, r) in v.iter_mut().zip(r) {
                *x = if name.ends_with("running_var") {
                    0.5 + r.abs()
                } else {
                    0.1 * r
                };
            }
        }
        (p, s)
    }};
}

/// Runs `f` with the runtime on two threads (the shards of inference are one per thread).
fn on_two_threads<R>(f: impl FnOnce() -> R) -> R {
    rt::gemm::set_num_threads(2);
    f()
}

/// Inference of `$m` at `$batch` in two shards equals one workspace, bit for bit.
macro_rules! same_inference {
    ($test:ident, $m:ident, $batch:expr, [$($input:ident: $len:expr),*], $out:ident) => {
        #[test]
        fn $test() {
            let (p, s) = params!($m);
            let batch: usize = $batch;
            $( let $input = values(batch * $len, 7); )*
            let x = t::$m::Inputs { $($input: &$input,)* ..inputs_rest!($m) };
            let mut one = t::$m::Workspace::for_inference(batch);
            t::$m::forward(&p, &s, &mut one, &x);
            let want = t::$m::$out(&one).to_vec();
            on_two_threads(|| {
                let mut ws = t::$m::Sharded::for_inference(batch);
                assert_eq!(ws.shards(), 2, "a shard per thread");
                ws.forward(&p, &s, &x);
                let got = ws.$out();
                assert_eq!(got.len(), want.len());
                let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{} of {} outputs differ in two shards", differ, want.len());
                assert!(want.iter().any(|&v| v != 0.0), "a test of zeros");
            });
        }
    };
}

/// The inputs a test leaves out: empty labels (inference does not read them).
macro_rules! inputs_rest {
    (every_op) => {
        t::every_op::Inputs {
            image: &[],
            t: &[],
            label: &[],
        }
    };
    ($m:ident) => {
        t::$m::Inputs {
            image: &[],
            label: &[],
        }
    };
}

same_inference!(every_op_inference_is_the_same_in_shards, every_op, 4, [image: 3 * 64, t: 2 * 64], output_f);
same_inference!(lenet_inference_is_the_same_in_shards, lenet, 6, [image: 784], output_logits);
same_inference!(googlenet_inference_is_the_same_in_shards, googlenet, 2, [image: 3 * 224 * 224], output_logits);

#[test]
fn zoo_inference_is_the_same_in_shards() {
    macro_rules! zoo {
        ($m:ident, $out:ident) => {{
            use t::zoo::$m as m;
            let mut p = m::Params::new();
            for (k, (name, _)) in m::Params::SHAPES.iter().enumerate() {
                let v = p.get_mut(name).unwrap();
                let n = v.len();
                v.copy_from_slice(&values(n, 900 + k as u64));
                v.iter_mut().for_each(|x| *x *= 0.2);
            }
            let mut s = m::State::new();
            for (name, _) in m::State::SHAPES {
                if name.ends_with("running_var") {
                    s.get_mut(name).unwrap().fill(1.5);
                }
            }
            let image = values(3 * 3 * 32 * 32, 11);
            let x = m::Inputs {
                image: &image,
                label: &[],
            };
            let mut one = m::Workspace::for_inference(3);
            m::forward(&p, &s, &mut one, &x);
            let want = m::$out(&one).to_vec();
            on_two_threads(|| {
                let mut ws = m::Sharded::for_inference(3);
                assert_eq!(ws.shards(), 2);
                ws.forward(&p, &s, &x);
                assert!(
                    ws.$out()
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    stringify!($m)
                );
            });
        }};
    }
    zoo!(resnet50_winograd, output_logits);
    zoo!(mobilenet_v2, output_classifier);
}

/// `|got - want| <= tol·max|want|`, element by element.
fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: {g} in shards, {w} whole (scale {scale})"
        );
    }
}

/// One training step of LeNet at batch 32 (two shards of 16) against the whole batch, and
/// the shards on one thread against two.
#[test]
fn a_training_step_in_shards_is_the_whole_batch_step() {
    let (p, mut s) = params!(lenet);
    let image = values(32 * 784, 3);
    let label = labels(32, 10, 4);
    let x = t::lenet::Inputs {
        image: &image,
        label: &label,
    };
    let mut one = t::lenet::Workspace::new(32);
    let want_loss = t::lenet::forward_train(&p, &mut s, &mut one, &x);
    let want_logits = t::lenet::output_logits(&one).to_vec();
    let mut want = t::lenet::Grads::new();
    t::lenet::backward(&p, &mut want, &mut one);

    let step = || {
        let mut ws = t::lenet::Sharded::new(32);
        assert_eq!(ws.shards(), 2, "batch 32 in shards of 16");
        let loss = ws.forward_train(&p, &mut s.clone(), &x);
        let logits = ws.output_logits().to_vec();
        let mut g = t::lenet::Grads::new();
        ws.backward(&p, &mut g);
        (loss, logits, g)
    };
    let (loss, logits, g) = rt::gemm::serial(step);
    assert!(
        (loss - want_loss).abs() <= 1e-6 * want_loss.abs(),
        "loss {loss} in shards, {want_loss} whole"
    );
    close("logits", &logits, &want_logits, 1e-6);
    for (name, _) in t::lenet::Params::SHAPES {
        close(name, g.get(name).unwrap(), want.get(name).unwrap(), 1e-5);
    }
    let (loss2, _, g2) = on_two_threads(step);
    assert_eq!(
        loss.to_bits(),
        loss2.to_bits(),
        "the loss on one thread and two"
    );
    assert!(g == g2, "the gradients on one thread and two");
}

/// Dropout draws in the shards, from generators the step's generator seeds: the same masks
/// on one thread and two, and another loss than without a generator. (`dropout.rs` checks
/// each shard's masks against the interpreter's.)
#[test]
fn dropout_draws_in_every_shard() {
    let (p, s) = params!(dropout);
    let image = values(32 * 784, 5);
    let label = labels(32, 10, 6);
    let x = t::dropout::Inputs {
        image: &image,
        label: &label,
    };
    let step = || {
        let mut ws = t::dropout::Sharded::new(32);
        assert_eq!(ws.shards(), 2);
        ws.dropout = Some(rt::rng::Rng::new(42));
        let loss = ws.forward_train(&p, &mut s.clone(), &x);
        let mut g = t::dropout::Grads::new();
        ws.backward(&p, &mut g);
        (loss, g)
    };
    let (loss, g) = rt::gemm::serial(step);
    let (loss2, g2) = on_two_threads(step);
    assert_eq!(loss.to_bits(), loss2.to_bits());
    assert!(g == g2);
    // Without the generator nothing drops: another loss.
    let mut ws = t::dropout::Sharded::new(32);
    let kept = ws.forward_train(&p, &mut s.clone(), &x);
    assert_ne!(kept.to_bits(), loss.to_bits(), "dropout dropped nothing");
}

/// A network with batchnorm trains in a shard per thread that run together: batchnorm's
/// statistics are the whole batch's, so the loss, outputs, gradients and running statistics
/// are the whole batch's within rounding; on one thread it is one shard, the plain
/// workspace to the bit.
#[test]
fn batchnorm_shards_run_together() {
    const {
        assert!(t::resnet_mini::TRAIN_SHARDS_TOGETHER);
        assert!(!t::lenet::TRAIN_SHARDS_TOGETHER);
    }
    assert_eq!(t::lenet::TRAIN_SHARD_IMAGES, 16);
    let (p, s) = params!(resnet_mini);
    let image = values(32 * 3 * 32 * 32, 9);
    let label = labels(32, 10, 10);
    let x = t::resnet_mini::Inputs {
        image: &image,
        label: &label,
    };
    let mut want_s = s.clone();
    let mut one = t::resnet_mini::Workspace::new(32);
    let want_loss = t::resnet_mini::forward_train(&p, &mut want_s, &mut one, &x);
    let want_logits = t::resnet_mini::output_logits(&one).to_vec();
    let mut want = t::resnet_mini::Grads::new();
    t::resnet_mini::backward(&p, &mut want, &mut one);

    let step = |shards: usize| {
        let mut ws = t::resnet_mini::Sharded::new(32);
        assert_eq!(ws.shards(), shards);
        let mut s1 = s.clone();
        let loss = ws.forward_train(&p, &mut s1, &x);
        let logits = ws.output_logits().to_vec();
        let mut g = t::resnet_mini::Grads::new();
        ws.backward(&p, &mut g);
        (loss, logits, g, s1)
    };
    let (loss, logits, g, s1) = rt::gemm::serial(|| step(1));
    assert_eq!(loss.to_bits(), want_loss.to_bits());
    assert!(g == want, "one shard's gradients");
    assert!(s1 == want_s, "one shard's running statistics");

    let (loss, logits2, g, s2) = on_two_threads(|| step(2));
    assert!(
        (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
        "loss {loss} in shards, {want_loss} whole"
    );
    assert_eq!(logits, want_logits);
    close("logits", &logits2, &want_logits, 1e-4);
    for (name, _) in t::resnet_mini::Params::SHAPES {
        close(name, g.get(name).unwrap(), want.get(name).unwrap(), 1e-4);
    }
    for (name, _) in t::resnet_mini::State::SHAPES {
        close(name, s2.get(name).unwrap(), want_s.get(name).unwrap(), 1e-5);
    }
}

/// The trainer's memory check reads `Sharded::training_bytes` before it allocates: it is
/// what `Sharded::new` holds, shards' gradients and gathered outputs included; likewise for
/// inference.
#[test]
fn the_bytes_said_beforehand_are_the_bytes_held() {
    for batch in [1, 15, 16, 32, 33, 64, 200] {
        let ws = t::lenet::Sharded::new(batch);
        assert_eq!(
            t::lenet::Sharded::training_bytes(batch),
            Some(ws.bytes()),
            "batch {batch}"
        );
        let ws = t::resnet_mini::Sharded::new(batch);
        assert_eq!(
            t::resnet_mini::Sharded::training_bytes(batch),
            Some(ws.bytes())
        );
        on_two_threads(|| {
            let ws = t::lenet::Sharded::for_inference(batch);
            assert_eq!(t::lenet::Sharded::inference_bytes(batch), Some(ws.bytes()));
        });
    }
    assert_eq!(
        t::lenet::Sharded::new(200).shards(),
        8,
        "at most rt::shard::MAX_SHARDS"
    );
}
