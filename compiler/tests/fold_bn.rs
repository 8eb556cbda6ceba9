//! The inference passes. `fold_bn`: where a batchnorm follows a conv that nothing else
//! reads, inference computes the conv with the batchnorm folded into its weight and bias,
//! and the schedule has no batchnorm step; where the conv's value is needed too (another
//! consumer, an output), or an activation comes between, both stay. `residual`: a residual
//! `add` after a conv (its batchnorm folded) is computed in the conv's epilogue. Each
//! network's inference by its plan (`plan::run`) equals the unfused interpreter, with
//! non-trivial batchnorm statistics, folded and with `fold_bn` skipped.

use std::path::Path;

use netc_compiler::interp::{self, Feed, Mode, Params, Tensor};
use netc_compiler::ops::{InputKind, Op};
use netc_compiler::plan::schedule::What;
use netc_compiler::plan::{self, run, schedule, Plan};
use netc_compiler::{check_source, Graph};
use netc_runtime::rng::Rng;

fn graph(src: &str) -> Graph {
    let checked = check_source("t.net", src, Path::new("t.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs[0].clone()
}

/// The paths of the layers inference runs, by op name.
fn inferred(p: &Plan, op: &str) -> Vec<String> {
    let g = &p.infer.graph;
    p.infer
        .ws
        .schedule
        .forward
        .iter()
        .filter_map(|s| match s.what {
            What::Infer(n) if g.node(n).op.name() == op => Some(g.node(n).path.clone()),
            _ => None,
        })
        .collect()
}

/// The batchnorms folded into convs at inference: (conv, batchnorm).
fn folds(p: &Plan) -> Vec<(String, String)> {
    let g = &p.infer.graph;
    g.nodes()
        .into_iter()
        .filter_map(|n| match &g.node(n).op {
            Op::Conv(c) => Some((g.node(n).path.clone(), c.fold.as_ref()?.bn.clone())),
            _ => None,
        })
        .collect()
}

/// Parameters with batchnorm statistics, scales and shifts away from the identity, so that
/// a fold that used them wrongly shows.
pub fn params(g: &Graph, seed: u64) -> Params {
    let mut params = interp::init_params(g, netc_runtime::init::Init::He, seed);
    let mut rng = Rng::new(seed + 1);
    let norms: Vec<String> = params
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
            let t = params.get_mut(&format!("{bn}.{suffix}")).unwrap();
            t.data.iter_mut().for_each(|v| *v = rng.uniform(lo, hi));
        }
    }
    for (k, t) in params.iter_mut() {
        if k.ends_with(".bias") && t.data.iter().all(|&v| v == 0.0) {
            t.data.iter_mut().for_each(|v| *v = rng.uniform(-0.1, 0.1));
        }
    }
    params
}

/// A batch of 2 for every input of `g` that inference reads: values in [-1, 1].
pub fn feed(g: &Graph, seed: u64) -> Feed {
    let mut rng = Rng::new(seed);
    let mut f = Feed::default();
    for (name, n) in &g.inputs {
        if let Op::Input(InputKind::Tensor) = g.node(*n).op {
            let mut shape = vec![2];
            shape.extend(&g.node(*n).shape);
            let mut t = Tensor::zeros(&shape);
            t.data.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0));
            f.tensors.insert(name.clone(), t);
        }
    }
    f
}

/// Inference by the plan of `g`, with every pass and with `fold_bn` skipped, equals the
/// interpreter's within `1e-5` of the largest output (folding rounds otherwise than a conv
/// then a batchnorm). Returns the plan with every pass.
pub fn infers_as_the_interpreter(name: &str, g: &Graph) -> Plan {
    let (params, f) = (params(g, 3), feed(g, 7));
    let want = interp::forward(g, &mut params.clone(), &f, Mode::Infer).outputs(g);
    for skip in [&[][..], &["fold_bn"]] {
        let p = plan::plan(g, skip).unwrap();
        schedule::verify(&p.infer.ws.schedule, &p.infer.ws.buffers)
            .unwrap_or_else(|e| panic!("{name} skipping {skip:?}: {e}"));
        let got = run::infer(&p.infer, &params, &f);
        for (k, w) in &want {
            let scale = w.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got[k].data.iter().zip(&w.data).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{name} skipping {skip:?}: output {k}[{i}] is {a}, the interpreter's {b}"
                );
            }
        }
    }
    plan::plan(g, &[]).unwrap()
}

/// A conv, a batchnorm and a ReLU: inference runs one conv (the batchnorm folded in, the
/// ReLU in its epilogue) where training runs all three.
#[test]
fn a_batchnorm_after_a_conv_folds_into_it() {
    let g = graph(
        "network n(x: [3, 8, 8], label: class(4)) {
            y = x -> conv(6, k=3, p=1) as conv1 -> batchnorm as bn1 -> relu
                  -> conv(4, k=3, s=2, p=1, bias=false) as conv2 -> batchnorm as bn2
                  -> global_avgpool -> flatten;
            loss ce(y, label);
            output y;
        }",
    );
    let p = infers_as_the_interpreter("conv-bn-relu", &g);
    assert!(inferred(&p, "batchnorm").is_empty(), "no batchnorm step");
    assert!(inferred(&p, "relu").is_empty(), "the ReLU in the epilogue");
    assert_eq!(
        folds(&p),
        [
            ("conv1".into(), "bn1".into()),
            ("conv2".into(), "bn2".into())
        ]
    );
    // Training is as it was: both batchnorms are steps of their own.
    let train = &p.train.graph;
    let bns = train
        .nodes()
        .into_iter()
        .filter(|&n| matches!(train.node(n).op, Op::BatchNorm(_)))
        .count();
    assert_eq!(bns, 2);
    // `netc check --plan --steps` says so.
    let s = plan::summary(&g, &[], 2).unwrap();
    assert!(
        s.steps.contains("conv conv1 (fold bn1 into conv1)"),
        "{}",
        s.steps
    );
    assert_eq!((s.batchnorms, s.batchnorms_folded), (2, 2));
    // Nothing of a batchnorm is in the inference workspace; the folded weight's scratch is
    // the larger conv's weight and bias (conv2's 4 × 6 × 3 × 3 and 4, not conv1's
    // 6 × 3 × 3 × 3 and 6).
    assert!(p.infer.ws.buffers.iter().all(|b| !b.name.contains("bn")));
    assert_eq!(p.infer.ws.fold, 4 * 6 * 9 + 4);
}

/// A conv whose value is read by something else too, is an output, or goes through an
/// activation first keeps its batchnorm: the conv's own value is needed.
#[test]
fn a_conv_whose_value_is_needed_keeps_its_batchnorm() {
    let g = graph(
        "network n(x: [3, 8, 8]) {
            c = x -> conv(4, k=3, p=1) as shared;
            y = add(c -> batchnorm as bn1, c);
            o = x -> conv(4, k=1) as seen;
            z = o -> batchnorm as bn2;
            w = x -> conv(4, k=1) as act -> relu -> batchnorm as bn3;
            output y, o, z, w;
        }",
    );
    let p = infers_as_the_interpreter("needed", &g);
    assert!(folds(&p).is_empty(), "{:?}", folds(&p));
    assert_eq!(inferred(&p, "batchnorm"), ["bn1", "bn2", "bn3"]);
}

/// A depthwise conv (MobileNet's) folds as any other, and its ReLU6 goes into the epilogue;
/// a grouped one too.
#[test]
fn a_depthwise_conv_folds_its_batchnorm() {
    let g = graph(
        "network n(x: [8, 8, 8]) {
            y = x -> conv(8, k=3, p=1, groups=8, bias=false) as dw -> batchnorm as bn1 -> relu6
                  -> conv(8, k=3, p=1, groups=2) as grouped -> batchnorm as bn2;
            output y;
        }",
    );
    let p = infers_as_the_interpreter("depthwise", &g);
    assert_eq!(
        folds(&p),
        [
            ("dw".into(), "bn1".into()),
            ("grouped".into(), "bn2".into())
        ]
    );
    assert!(
        inferred(&p, "relu6").is_empty(),
        "the ReLU6 in the epilogue"
    );
}

/// Branches that end in a batchnorm (and a ReLU) feed a concat: folded, their convs write
/// straight into the concat's channels, which copies nothing at inference; in training the
/// batchnorms' outputs are copied in.
#[test]
fn a_folded_conv_writes_into_its_concat_slot() {
    let g = graph(
        "network n(x: [4, 6, 6]) {
            a = x -> conv(3, k=1) as ca -> batchnorm -> relu;
            b = x -> conv(5, k=3, p=1) as cb -> batchnorm;
            c = x -> maxpool(k=3, s=1, p=1);
            y = concat(a, b, c) -> conv(2, k=1);
            output y;
        }",
    );
    let p = infers_as_the_interpreter("concat", &g);
    let gi = &p.infer.graph;
    let slotted: Vec<&str> = gi.slots.keys().map(|&n| gi.node(n).path.as_str()).collect();
    assert_eq!(slotted, ["ca", "cb"]);
    assert!(inferred(&p, "batchnorm").is_empty());
    assert!(p.train.graph.slots.is_empty(), "training copies");
}

/// Sibling 1×1 convs, each with a batchnorm after it: folded, each computes its own weight,
/// so they run alone (in training they are one GEMM).
#[test]
fn folded_siblings_are_not_merged() {
    let g = graph(
        "network n(x: [4, 6, 6]) {
            a = x -> conv(3, k=1, bias=false) -> batchnorm -> relu;
            b = x -> conv(5, k=1, bias=false) -> batchnorm -> relu;
            y = concat(a, b);
            output y;
        }",
    );
    let p = infers_as_the_interpreter("siblings", &g);
    assert_eq!(p.train.graph.merged.len(), 1);
    assert!(p.infer.graph.merged.is_empty());
    assert_eq!(folds(&p).len(), 2);
}

/// The zoo's networks with batchnorm after every conv, on small images: every batchnorm
/// folds (those of ResNet, MobileNetV2 and EfficientNet all follow a conv that nothing
/// else reads), and inference by the plan equals the interpreter.
#[test]
fn the_zoo_infers_with_every_batchnorm_folded() {
    for (name, size) in [
        ("resnet18", 32),
        ("resnet50", 32),
        ("mobilenet_v2", 32),
        ("efficientnet_b0", 32),
    ] {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/zoo/{name}.net"));
        let src = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[3, 224, 224]", &format!("[3, {size}, {size}]"));
        let g = graph(&src);
        let p = infers_as_the_interpreter(name, &g);
        let s = plan::summary(&g, &[], 2).unwrap();
        assert_eq!(s.batchnorms_folded, s.batchnorms, "{name}");
        assert!(inferred(&p, "batchnorm").is_empty(), "{name}");
    }
}

/// The residual convs of the inference graph: (conv, the value it adds).
fn residuals(p: &Plan) -> Vec<(String, String)> {
    let g = &p.infer.graph;
    g.nodes()
        .into_iter()
        .filter(|&n| matches!(&g.node(n).op, Op::Conv(c) if c.residual))
        .map(|n| {
            let r = g.inputs_of(n)[1];
            (g.node(n).path.clone(), g.node(r).path.clone())
        })
        .collect()
}

/// ResNet's two blocks: the add (and the ReLU after it) goes into the epilogue of the conv
/// before it, its batchnorm folded (`residual`); the identity block's conv copies the block
/// input, which its first conv reads too, while the projection block's conv writes onto
/// the projection, which only it reads. With `fold_bn` skipped a batchnorm comes between,
/// and the adds stay.
#[test]
fn a_residual_add_goes_into_the_conv_epilogue() {
    let g = graph(
        "network n(x: [4, 8, 8]) {
            b1 = x -> conv(4, k=3, p=1, bias=false) as c1 -> batchnorm -> relu
                   -> conv(4, k=3, p=1, bias=false) as c2 -> batchnorm;
            y1 = add(b1, x) -> relu;
            ds = y1 -> conv(6, k=1, s=2, bias=false) as proj -> batchnorm;
            b2 = y1 -> conv(6, k=3, s=2, p=1, bias=false) as c3 -> batchnorm -> relu
                   -> conv(6, k=3, p=1) as c4 -> batchnorm;
            y = add(ds, b2) -> relu -> global_avgpool -> flatten;
            output y;
        }",
    );
    let p = infers_as_the_interpreter("resnet blocks", &g);
    assert_eq!(
        residuals(&p),
        [("c2".into(), "x".into()), ("c4".into(), "proj".into())]
    );
    assert!(inferred(&p, "add").is_empty(), "no add step");
    assert!(inferred(&p, "relu").is_empty(), "the ReLUs in epilogues");
    let gi = &p.infer.graph;
    let on = |a: &str| {
        gi.aliases
            .iter()
            .find(|(&n, _)| gi.node(n).path == a)
            .map(|(_, &x)| gi.node(x).path.clone())
    };
    assert_eq!(on("c2"), None, "x is read by c1 too, and is an input");
    assert_eq!(on("c4").as_deref(), Some("proj"), "c4 adds onto proj");
    let s = plan::summary(&g, &[], 2).unwrap();
    assert_eq!((s.adds, s.adds_fused), (2, 2));
    assert!(s.steps.contains("(+ proj in the epilogue)"), "{}", s.steps);
    let unfolded = plan::plan(&g, &["fold_bn"]).unwrap();
    assert!(residuals(&unfolded).is_empty());
    assert_eq!(inferred(&unfolded, "add").len(), 2);
    // Training keeps its adds: backward needs each conv's own output.
    let train = &p.train.graph;
    assert!(train
        .nodes()
        .into_iter()
        .all(|n| !matches!(&train.node(n).op, Op::Conv(c) if c.residual)));
}

/// An add whose conv has an activation of its own, another consumer, or is an output,
/// or that adds a value to itself, stays an add.
#[test]
fn a_conv_whose_value_is_needed_keeps_its_add() {
    let g = graph(
        "network n(x: [4, 6, 6]) {
            a = x -> conv(4, k=3, p=1) as acted -> relu;
            y1 = add(x, a);
            c = x -> conv(4, k=1) as shared;
            y2 = add(x, c) -> conv(4, k=1) as after;
            y3 = add(c, after);
            o = x -> conv(4, k=1) as seen;
            y4 = add(x, o);
            s = x -> conv(4, k=1) as twice;
            y5 = add(s, s);
            output y1, y3, o, y4, y5;
        }",
    );
    let p = infers_as_the_interpreter("kept adds", &g);
    // Only `after` qualifies: made after `c`, it feeds only its add.
    assert_eq!(residuals(&p), [("after".into(), "shared".into())]);
    assert_eq!(inferred(&p, "add").len(), 4);
}
