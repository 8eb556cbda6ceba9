//! Generated code against the reference interpreter: on each network, the same parameters
//! and inputs must give the same outputs (inference), the same loss and the same gradient
//! for every parameter and the same batchnorm state after a training step.

use std::collections::BTreeMap;
use std::path::Path;

use netc_codegen_tests::*;
use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_runtime::init::Init;
use netc_runtime::rng::Rng;

/// `|got - want| <= 1e-4·max(max|want|, 1e-3)`.
fn close(what: &str, got: &[f32], want: &[f32]) {
    close_to(what, got, want, 1e-3, 1e-4);
}

/// The tolerance of gradients: 1e-4, or 1e-3 for code with Winograd convs (`WINOGRAD` of a
/// generated module, `--conv-algo`). Winograd rounds differently from the interpreter's
/// im2col (F4 about 10× as much, relative to the sum of magnitudes); outputs still agree
/// to ~2e-7 of their largest on GoogLeNet, but a gradient that is a sum with much
/// cancellation (a weight's, a bias's) magnifies the difference, and the rounding flips a
/// few ReLU masks and max-pool choices near ties, which reroutes whole values: GoogLeNet's
/// worst measured 6.8e-4 of its largest with F4 forced (3e-4 with F2; im2col: 4e-7).
fn grad_tol(winograd: bool) -> f32 {
    if winograd {
        1e-3
    } else {
        1e-4
    }
}

/// `|got - want| <= tol·max(max|want|, floor)`, `tol` 1e-4 but for Winograd's gradients
/// (see [`grad_tol`]). Merged GEMMs sum in another order than the
/// interpreter, so a gradient that is zero in exact arithmetic (a bias before batchnorm) is
/// rounding noise on both sides, as large as rounding in the network's largest gradients:
/// gradients are compared with a floor of 1% of those.
fn close_to(what: &str, got: &[f32], want: &[f32], floor: f32, tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: generated {g}, interpreter {w}"
        );
    }
}

/// 1% of the largest gradient of any parameter (see [`close_to`]).
fn grad_floor(grads: &BTreeMap<String, Vec<f32>>) -> f32 {
    1e-2 * grads
        .values()
        .flatten()
        .fold(1e-3f32, |m, v| m.max(v.abs()))
}

struct Case {
    graph: netc_compiler::Graph,
    params: Params,
    feed: Feed,
}

fn case(path: &str, batch: usize) -> Case {
    case_of(path, None, batch)
}

fn case_of(path: &str, network: Option<&str>, batch: usize) -> Case {
    // An absolute path (the random networks in OUT_DIR) replaces the base in `join`.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let checked = netc_compiler::check_file(&path, network);
    assert!(!checked.has_errors(), "{}", checked.render());
    let graph = checked.graphs.into_iter().next().unwrap();
    let mut rng = Rng::new(5);
    let params: Params = interp::init_params(&graph, Init::Xavier, 9)
        .into_iter()
        .map(|(k, mut t)| {
            if k.ends_with(".bias") {
                t.data.iter_mut().for_each(|v| *v = rng.uniform(-0.1, 0.1));
            }
            (k, t)
        })
        .collect();
    let mut feed = Feed::default();
    for (name, n) in &graph.inputs {
        match graph.node(*n).op {
            netc_compiler::ops::Op::Input(netc_compiler::ops::InputKind::Class(c)) => {
                feed.labels.insert(
                    name.clone(),
                    (0..batch).map(|_| rng.below(c as u64) as i64).collect(),
                );
            }
            _ => {
                let mut shape = vec![batch];
                shape.extend(&graph.node(*n).shape);
                let mut t = Tensor::zeros(&shape);
                t.data.iter_mut().for_each(|v| *v = rng.uniform(0.0, 1.0));
                feed.tensors.insert(name.clone(), t);
            }
        }
    }
    Case {
        graph,
        params,
        feed,
    }
}

/// What the interpreter computes: the loss, every gradient (missing ones are zero), the
/// state after the step, and the inference outputs.
struct Reference {
    loss: f32,
    grads: BTreeMap<String, Vec<f32>>,
    state_after: Params,
    outs: BTreeMap<String, Vec<f32>>,
    acts: BTreeMap<String, Vec<Vec<f32>>>,
}

fn reference(c: &Case) -> Reference {
    let mut p = c.params.clone();
    let f = interp::forward(&c.graph, &mut p, &c.feed, Mode::Train);
    let grads = interp::backward(&c.graph, &c.params, &f);
    let grads = interp::param_decls(&c.graph)
        .into_iter()
        .filter(|(_, d)| !d.state)
        .map(|(n, d)| (n, d.shape))
        .map(|(n, s)| {
            let g = grads
                .get(&n)
                .map(|t| t.data.clone())
                .unwrap_or_else(|| vec![0.0; s.iter().product()]);
            (n, g)
        })
        .collect();
    let mut q = c.params.clone();
    let inf = interp::forward(&c.graph, &mut q, &c.feed, Mode::Infer);
    let outs = inf
        .outputs(&c.graph)
        .into_iter()
        .map(|(k, t)| (k, t.data))
        .collect();
    // Each inference value by path, and, where a ReLU alone reads it, the ReLU's value too
    // (the epilogue pass folds that ReLU into the layer, which then holds the ReLU's value).
    let g = &c.graph;
    let infer = g.inference_set();
    let acts = g
        .nodes()
        .into_iter()
        .filter(|n| {
            infer[n.index()]
                && !matches!(
                    g.node(*n).op,
                    netc_compiler::ops::Op::Input(netc_compiler::ops::InputKind::Class(_))
                )
        })
        .map(|n| {
            // (A batchnorm alone reading a conv is folded into it at inference: the conv
            // holds the batchnorm's value, or that of the ReLU after it.)
            let mut values = vec![inf.value(n).to_vec()];
            let mut at = n;
            if let [b] = g.consumers_of(n)[..] {
                if matches!(g.node(b).op, netc_compiler::ops::Op::BatchNorm(_)) {
                    values.push(inf.value(b).to_vec());
                    at = b;
                }
            }
            if let [r] = g.consumers_of(at)[..] {
                let f = g.node(r).op.act();
                if f.is_some_and(|f| f.in_epilogue()) {
                    values.push(inf.value(r).to_vec());
                }
            }
            (g.node(n).path.clone(), values)
        })
        .collect();
    Reference {
        loss: f.loss,
        grads,
        state_after: p,
        outs,
        acts,
    }
}

/// After `forward`, every activation the generated module lists (`INFERENCE_ACTIVATIONS`)
/// that inference computes equals the interpreter's value of that path.
fn check_activations<'w>(
    acts: &BTreeMap<String, Vec<Vec<f32>>>,
    list: &[(&str, usize, usize)],
    get: impl Fn(&str) -> Option<&'w [f32]>,
) {
    let mut checked = 0;
    for (path, _, _) in list {
        let Some(want) = acts.get(*path) else {
            continue;
        };
        let got = get(path).expect("a listed activation");
        let near = |w: &Vec<f32>| {
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            w.len() == got.len()
                && got
                    .iter()
                    .zip(w)
                    .all(|(g, w)| (g - w).abs() <= 1e-4 * scale)
        };
        assert!(
            want.iter().any(near),
            "activation `{path}` differs from the interpreter's"
        );
        checked += 1;
    }
    assert!(checked > 0, "no activation checked");
}

/// `workspace_bytes(b)` of module `$m` is what `Workspace::new(b)` allocates, and
/// `inference_workspace_bytes(b)` what `Workspace::for_inference(b)` does, at one sample and
/// at `$batch`; and `None` where the bytes overflow a `usize`.
macro_rules! workspace_bytes {
    ($m:ident, $batch:expr) => {
        for b in [1, $batch] {
            assert_eq!($m::workspace_bytes(b), Some($m::Workspace::new(b).bytes()));
            let infer = $m::Workspace::for_inference(b).bytes();
            assert_eq!($m::inference_workspace_bytes(b), Some(infer));
            assert!(infer <= $m::Workspace::new(b).bytes());
        }
        assert_eq!($m::workspace_bytes(usize::MAX / 2), None);
        assert_eq!($m::inference_workspace_bytes(usize::MAX / 2), None);
    };
}

macro_rules! equal {
    ($test:ident, $m:ident, $path:expr, $batch:expr, [$($input:ident),*], [$($label:ident),*], [$($out:ident: $outf:ident),*]) => {
        #[test]
        fn $test() {
            let c = case($path, $batch);
            let Reference { loss, grads, state_after, outs, acts } = reference(&c);
            let mut p = $m::Params::new();
            for (name, _) in $m::Params::SHAPES {
                p.get_mut(name).unwrap().copy_from_slice(&c.params[*name].data);
            }
            let mut s = $m::State::new();
            for (name, _) in $m::State::SHAPES {
                s.get_mut(name).unwrap().copy_from_slice(&c.params[*name].data);
            }
            let x = $m::Inputs {
                $($input: &c.feed.tensors[stringify!($input)].data,)*
                $($label: &c.feed.labels[stringify!($label)],)*
            };
            workspace_bytes!($m, $batch);
            // Inference in a workspace of its own, and in a training one.
            let mut ws = $m::Workspace::for_inference($batch);
            $m::forward(&p, &s, &mut ws, &x);
            check_activations(&acts, $m::INFERENCE_ACTIVATIONS, |path| $m::activation(&ws, path));
            $(
                let out = $m::$outf(&ws).to_vec();
                close(concat!(stringify!($m), " output ", stringify!($out)), &out, &outs[stringify!($out)]);
            )*
            let mut ws = $m::Workspace::new($batch);
            $m::forward(&p, &s, &mut ws, &x);
            $(
                let out = $m::$outf(&ws).to_vec();
                close(concat!(stringify!($m), " output ", stringify!($out), " (training workspace)"), &out, &outs[stringify!($out)]);
            )*
            let got = $m::forward_train(&p, &mut s, &mut ws, &x);
            assert!((got - loss).abs() <= 1e-5 * loss.abs().max(1.0), "loss: generated {got}, interpreter {loss}");
            let mut g = $m::Grads::new();
            $m::backward(&p, &mut g, &mut ws);
            let floor = grad_floor(&grads);
            for (name, want) in &grads {
                close_to(&format!("grad {name}"), g.get(name).unwrap(), want, floor, grad_tol($m::WINOGRAD));
            }
            for (name, _) in $m::State::SHAPES {
                close(name, s.get(name).unwrap(), &state_after[*name].data);
            }
        }
    };
}

macro_rules! equal_random {
    ($name:ident) => {
        #[test]
        fn $name() {
            use netc_codegen_tests::random::$name as m;
            let path = concat!(env!("OUT_DIR"), "/", stringify!($name), ".net");
            let c = case(path, 3);
            let Reference {
                loss,
                grads,
                state_after,
                outs,
                acts,
            } = reference(&c);
            let mut p = m::Params::new();
            for (name, _) in m::Params::SHAPES {
                p.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let mut s = m::State::new();
            for (name, _) in m::State::SHAPES {
                s.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let x = m::Inputs {
                image: &c.feed.tensors["image"].data,
                label: &c.feed.labels["label"],
            };
            workspace_bytes!(m, 3);
            let mut ws = m::Workspace::for_inference(3);
            m::forward(&p, &s, &mut ws, &x);
            check_activations(&acts, m::INFERENCE_ACTIVATIONS, |path| {
                m::activation(&ws, path)
            });
            close("logits", m::output_logits(&ws), &outs["logits"]);
            let mut ws = m::Workspace::new(3);
            m::forward(&p, &s, &mut ws, &x);
            close("logits", m::output_logits(&ws), &outs["logits"]);
            let got = m::forward_train(&p, &mut s, &mut ws, &x);
            assert!(
                (got - loss).abs() <= 1e-5 * loss.abs().max(1.0),
                "loss: generated {got}, interpreter {loss}"
            );
            let mut g = m::Grads::new();
            m::backward(&p, &mut g, &mut ws);
            let floor = grad_floor(&grads);
            for (name, want) in &grads {
                close_to(
                    &format!("grad {name}"),
                    g.get(name).unwrap(),
                    want,
                    floor,
                    grad_tol(m::WINOGRAD),
                );
            }
            for (name, _) in m::State::SHAPES {
                close(name, s.get(name).unwrap(), &state_after[*name].data);
            }
        }
    };
}

mod random {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/random_tests.rs"));
}

/// The lecture's networks have no loss: inference only.
macro_rules! equal_inference {
    ($test:ident, $m:ident, $network:expr) => {
        #[test]
        fn $test() {
            let c = case_of("../../examples/lecture.net", Some($network), 2);
            let mut q = c.params.clone();
            let want = interp::forward(&c.graph, &mut q, &c.feed, Mode::Infer).outputs(&c.graph);
            let mut p = $m::Params::new();
            for (name, _) in $m::Params::SHAPES {
                p.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let x = $m::Inputs {
                x: &c.feed.tensors["x"].data,
            };
            workspace_bytes!($m, 2);
            for mut ws in [$m::Workspace::for_inference(2), $m::Workspace::new(2)] {
                $m::forward(&p, &$m::State::new(), &mut ws, &x);
                close("y", $m::output_y(&ws), &want["y"].data);
            }
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/example_tests.rs"));

/// Inference of a zoo network (batchnorm after every conv): in a workspace for inference
/// and in one for training, the generated code's scores equal the unfused interpreter's,
/// with batchnorm statistics, scales and shifts away from the identity (so that folding them
/// wrongly shows).
macro_rules! equal_zoo {
    ($name:ident, $out:ident, $outf:ident) => {
        #[test]
        fn $name() {
            use netc_codegen_tests::zoo::$name as m;
            let path = concat!(env!("OUT_DIR"), "/", stringify!($name), ".net");
            let mut c = case(path, 2);
            let mut rng = Rng::new(13);
            let norms: Vec<String> = c
                .params
                .keys()
                .filter_map(|k| k.strip_suffix(".running_mean").map(str::to_string))
                .collect();
            for bn in norms {
                for (suffix, lo, hi) in [
                    ("running_mean", -0.3, 0.3),
                    ("running_var", 0.3, 2.0),
                    ("weight", 0.5, 1.5),
                    ("bias", -0.3, 0.3),
                ] {
                    let t = c.params.get_mut(&format!("{bn}.{suffix}")).unwrap();
                    t.data.iter_mut().for_each(|v| *v = rng.uniform(lo, hi));
                }
            }
            let want = interp::forward(&c.graph, &mut c.params.clone(), &c.feed, Mode::Infer)
                .outputs(&c.graph);
            let mut p = m::Params::new();
            for (name, _) in m::Params::SHAPES {
                p.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let mut s = m::State::new();
            for (name, _) in m::State::SHAPES {
                s.get_mut(name)
                    .unwrap()
                    .copy_from_slice(&c.params[*name].data);
            }
            let x = m::Inputs {
                image: &c.feed.tensors["image"].data,
                label: &c.feed.labels["label"],
            };
            workspace_bytes!(m, 2);
            for mut ws in [m::Workspace::for_inference(2), m::Workspace::new(2)] {
                m::forward(&p, &s, &mut ws, &x);
                let out = stringify!($out);
                close(out, m::$outf(&ws), &want[out].data);
            }
        }
    };
}

mod zoo {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/zoo_tests.rs"));
}

/// Every pass that can be skipped, by name.
fn all_passes() -> Vec<&'static str> {
    netc_compiler::passes::names()
}

/// The schedules `build.rs` builds: every pass, none, and each one skipped.
fn skips() -> Vec<Vec<&'static str>> {
    let mut v = vec![vec![], all_passes()];
    v.extend(all_passes().into_iter().map(|p| vec![p]));
    v
}

/// What module `$m`'s two workspaces allocate at `$batch`: `Workspace::new`'s bytes, and
/// `Workspace::for_inference`'s.
macro_rules! module_bytes {
    ($($m:ident)::+, $batch:expr) => {
        (
            $($m)::+::Workspace::new($batch).bytes() as u64,
            $($m)::+::Workspace::for_inference($batch).bytes() as u64,
        )
    };
}

/// `netc check --plan` reports the memory the generated code really allocates: the plan's
/// workspaces equal `Workspace::bytes` of the module built with and without the passes.
#[test]
fn the_plan_sizes_the_generated_workspace() {
    use netc_codegen_tests::{every_op, every_op_unfused, googlenet, googlenet_unfused};
    let plan = |path: &str, skip: &[&str]| {
        let c = case(path, 1);
        netc_compiler::plan::summary(&c.graph, skip, 1).unwrap()
    };
    // What `Workspace::new` and `Workspace::for_inference` allocate, by the plan, with
    // im2col convs as the modules compared (`conv_algo` skipped: see `build.rs`).
    let bytes = |path: &str, skip: &[&str], batch: usize| {
        let c = case(path, 1);
        let skip: Vec<&str> = skip.iter().copied().chain(["conv_algo"]).collect();
        let b = netc_compiler::plan::summary(&c.graph, &skip, batch)
            .unwrap()
            .bytes;
        (b.workspace, b.inference)
    };
    let g = "../../examples/googlenet.net";
    let e = "nets/every_op.net";
    let all = all_passes();
    for batch in [1, 5] {
        let fused = bytes(g, &[], batch);
        assert_eq!(fused, module_bytes!(googlenet, batch));
        let unfused = bytes(g, &all, batch);
        assert_eq!(unfused, module_bytes!(googlenet_unfused, batch));
        assert!(fused.0 < unfused.0, "fusing ReLUs frees their buffers");
        let in_place = bytes(g, &["concat_in_place"], batch);
        assert_eq!(
            in_place,
            module_bytes!(netc_codegen_tests::googlenet_no_concat_in_place, batch)
        );
        assert!(
            fused.0 < in_place.0,
            "branches written in place free their buffers"
        );
        // Winograd's scratch (transformed weights and a block of tiles) is larger than
        // im2col's: the module with Winograd everywhere is sized by its plan too.
        let mut wg = case(g, 1).graph;
        wg.conv_algo = netc_compiler::passes::conv_algo::Pin::Winograd;
        let w = netc_compiler::plan::summary(&wg, &[], batch).unwrap().bytes;
        assert_eq!(
            (w.workspace, w.inference),
            module_bytes!(netc_codegen_tests::googlenet_winograd, batch)
        );
        assert!(
            w.workspace > fused.0,
            "Winograd's scratch is more than im2col's"
        );
        assert_eq!(bytes(e, &[], batch), module_bytes!(every_op, batch));
        assert_eq!(
            bytes(e, &all, batch),
            module_bytes!(every_op_unfused, batch)
        );
    }
    // ResNet: a ReLU after a batchnorm is applied in its normalizing pass; one after an
    // add runs in place.
    let r = "../../compiler/tests/fixtures/torch_shapes/resnet_mini.net";
    let s = plan(r, &[]);
    assert_eq!((s.relus, s.relus_fused, s.in_place), (11, 6, 5));
    for batch in [1, 5] {
        let in_place = bytes(r, &[], batch);
        assert_eq!(
            in_place,
            module_bytes!(netc_codegen_tests::resnet_mini, batch)
        );
        let own = bytes(r, &["inplace"], batch);
        assert_eq!(
            own,
            module_bytes!(netc_codegen_tests::resnet_mini_no_inplace, batch)
        );
        let unfolded = bytes(r, &["fold_bn"], batch);
        assert_eq!(
            unfolded,
            module_bytes!(netc_codegen_tests::resnet_mini_no_fold_bn, batch)
        );
        // Folded, a batchnorm takes no buffer at inference (the memory is no less here:
        // its peak is at a residual `add`, which folding does not touch, and the folded
        // weights take scratch).
        let count = |skip: &[&str]| plan(r, skip).inference.buffers.len();
        assert_eq!(
            count(&["fold_bn"]) - count(&["residual"]),
            13,
            "batchnorms folded"
        );
        // The two projection blocks' convs add onto the projection's buffer (`residual`);
        // the identity blocks' copy the block input, which the next block reads too.
        assert_eq!(
            count(&["residual"]) - count(&[]),
            2,
            "convs onto their residual"
        );
        assert_eq!(plan(r, &[]).batchnorms_folded, 13);
        let (in_place, own) = (in_place.0, own.0);
        // In place, the activations take no buffers of their own. With liveness from what
        // each step reads, their inputs die as they are read anyway, so the peak is the
        // same either way but for where first-fit places the buffers (here 0.5% more in
        // place, since the ReLUs after batchnorms are fused and only those after adds run
        // in place); what goes is the buffers.
        assert!(
            in_place as f64 <= 1.01 * own as f64,
            "{in_place} in place, {own} without"
        );
        let count = |skip: &[&str]| plan(r, skip).workspace.buffers.len();
        assert_eq!(
            count(&["inplace"]) - count(&[]),
            2 * 5,
            "activations in place"
        );
    }
    let s = plan(g, &[]);
    assert_eq!(
        (s.gemm_layers_before, s.relus, s.relus_fused, s.concats),
        (64, 61, 61, 9)
    );
    // Each Inception block's 1×1 branch and two reductions are one GEMM.
    assert_eq!(s.gemm_layers, 64 - 9 * 2);
    // Every branch of every Inception block ends in a conv: nothing is copied.
    assert_eq!((s.concat_elems, s.concat_copied), (1_235_584, 0));
    let s = plan(g, &["concat_in_place"]);
    assert_eq!(s.concat_copied, s.concat_elems);
    assert_eq!(s.params, 13_378_280);
}

/// Every memory plan (training and inference, with and without the passes) of the examples
/// and the random networks passes the checker, needs no less than the most bytes live at
/// once and no more than the workspace without reuse; and the checker does catch overlap.
#[test]
fn every_memory_plan_checks() {
    let mut paths: Vec<std::path::PathBuf> = [
        "../../examples/googlenet.net",
        "../../examples/lenet.net",
        "../../examples/autoencoder.net",
        "nets/every_op.net",
    ]
    .iter()
    .map(|p| Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
    .collect();
    // Every random network build.rs made (one `equal_random!(rSEED);` each), and only those:
    // OUT_DIR keeps the files of earlier builds that made other networks.
    let made: Vec<&str> = include_str!(concat!(env!("OUT_DIR"), "/random_tests.rs"))
        .lines()
        .filter_map(|l| l.strip_prefix("equal_random!(")?.strip_suffix(");"))
        .collect();
    assert!(made.len() > 100, "{} random networks", made.len());
    for name in made {
        let path = Path::new(env!("OUT_DIR")).join(format!("{name}.net"));
        assert!(path.exists(), "{}", path.display());
        paths.push(path);
    }
    for path in &paths {
        let checked = netc_compiler::check_file(path, None);
        assert!(!checked.has_errors(), "{}", checked.render());
        let g = checked.graphs.into_iter().next().unwrap();
        for skip in skips() {
            let s = netc_compiler::plan::summary(&g, &skip, 3).unwrap();
            for (plan, ws) in [(&s.train_plan, &s.workspace), (&s.infer_plan, &s.inference)] {
                plan.check()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(plan.peak >= plan.live_peak(), "{}", path.display());
                assert!(plan.peak <= ws.bytes(3).unwrap(), "{}", path.display());
            }
            assert!(s.infer_plan.peak <= s.train_plan.peak, "{}", path.display());
        }
    }
    // The checker is not a rubber stamp: two live buffers at one offset fail it.
    let g = netc_compiler::check_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lenet.net"),
        None,
    )
    .graphs
    .remove(0);
    let mut plan = netc_compiler::plan::summary(&g, &[], 2).unwrap().train_plan;
    let (i, j) = (0..plan.placed.len())
        .flat_map(|i| (i + 1..plan.placed.len()).map(move |j| (i, j)))
        .find(|&(i, j)| {
            let (p, q) = (&plan.placed[i], &plan.placed[j]);
            p.first <= q.last && q.first <= p.last
        })
        .unwrap();
    plan.placed[j].offset = plan.placed[i].offset;
    assert!(plan.check().is_err());
    let mut plan = netc_compiler::plan::summary(&g, &[], 2).unwrap().train_plan;
    plan.peak -= 1;
    assert!(plan.check().is_err());
}
