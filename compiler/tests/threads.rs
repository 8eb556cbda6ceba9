//! The plan's choice of threads (`plan::threads`): each layer's crossover batch per direction,
//! below which its generated function runs on the calling thread alone: LeNet's small layers
//! alone at its batch, GoogLeNet's large convs on all threads at any batch, a depthwise conv
//! by the direct kernels' crossover; the generated code compares the batch it runs at.

use std::collections::BTreeMap;
use std::path::Path;

use netc_compiler::plan::threads::{
    Crossover, DIRECT_BACKWARD_MACS, DIRECT_FORWARD_MACS, GEMM_FORWARD_MACS, LINEAR_BACKWARD_MACS,
};
use netc_compiler::{check_file, check_source, codegen, plan, Graph};

fn graph(file: &str) -> Graph {
    let checked = check_file(Path::new(file), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs[0].clone()
}

/// Each layer's crossover in the training program of `g`, by path.
fn crossovers(g: &Graph) -> BTreeMap<String, Crossover> {
    let p = plan::plan(g, &[]).unwrap();
    let t = &p.train;
    t.ws.crossovers
        .iter()
        .map(|(&n, &c)| (t.graph.node(n).path.clone(), c))
        .collect()
}

/// The batch at which `macs` per sample reach `crossover`.
fn batch(crossover: u64, macs: u64) -> usize {
    crossover.div_ceil(macs) as usize
}

#[test]
fn lenets_small_layers_run_alone_and_the_batch_decides() {
    let c = crossovers(&graph("../examples/lenet.net"));
    // f6: a 120→84 linear layer, 10 080 multiply-adds per sample: alone at batch 64 (and up
    // to 198 forward, 376 backward).
    let f6 = c["f6.0"];
    assert_eq!(f6.forward, batch(GEMM_FORWARD_MACS, 120 * 84));
    assert_eq!(f6.backward, batch(LINEAR_BACKWARD_MACS, 120 * 84));
    assert!(64 < f6.forward && 64 < f6.backward);
    // c1: 1→6 5×5 on 28×28, on the direct kernels, which split over groups: it has one, so
    // it runs alone at every batch.
    let c1 = c["c1.0"];
    assert_eq!(
        (c1.forward, c1.backward),
        (usize::MAX, usize::MAX),
        "{c1:?}"
    );
    // A pool by its elements (in and out): 6×28×28 + 6×14×14.
    assert_eq!(
        c["c1.2"].forward,
        plan::threads::MEMORY_FORWARD_ELEMS.div_ceil(6 * (28 * 28 + 14 * 14)) as usize
    );

    // At LeNet's batch (64), five of its eight layers run alone forward (c1, the second
    // pool, f5's flatten, f6 and the logits), four backward.
    let s = plan::summary(&graph("../examples/lenet.net"), &[], 64).unwrap();
    assert_eq!(s.threads.forward, (5, 8), "{:?}", s.threads);
    assert_eq!(s.threads.backward, (4, 8), "{:?}", s.threads);
    assert_eq!(s.threads.inference, (5, 8), "{:?}", s.threads);
    // Alone at batch 1; from a batch large enough for the 84→10 layer's backward, c1 alone.
    let s = plan::summary(&graph("../examples/lenet.net"), &[], 1).unwrap();
    assert_eq!(s.threads.total(), (24, 24));
    let s = plan::summary(&graph("../examples/lenet.net"), &[], 5000).unwrap();
    assert_eq!(
        s.threads.total().0,
        3,
        "c1 forward, backward and at inference"
    );
}

#[test]
fn googlenets_large_convs_run_on_all_threads_at_any_batch() {
    let c = crossovers(&graph("../examples/googlenet.net"));
    let one = Crossover {
        forward: 1,
        backward: 1,
    };
    assert_eq!(c["stem.6"], one, "3×3 64→192 on 56×56");
    assert_eq!(c["i3a.b2.2"], one, "3×3 96→128 on 28×28");
    assert_eq!(c["i3a.b1.0"], one, "1×1 192→64, with its merged siblings");
}

/// The direct kernels split each image's call: MobileNetV2's depthwise convs have images
/// worth splitting and run on all threads at any batch; 32 channels of 28×28 do not, and run
/// alone below the batch at which the direct kernels' crossover is reached.
#[test]
fn depthwise_convs_split_by_their_images() {
    let c = crossovers(&graph("../examples/zoo/mobilenet_v2.net"));
    let one = Crossover {
        forward: 1,
        backward: 1,
    };
    // Depthwise 3×3 over 960 channels of 7×7, and over 144 channels of 56×56.
    assert_eq!(c["features.17.conv.1.0"], one);
    assert_eq!(c["features.3.conv.1.0"], one);

    let src = "network dw(x: [32, 28, 28], t: [32, 28, 28]) {
        y = x -> conv(32, k=3, p=1, groups=32);
        loss mse(y, t);
        output y;
    }";
    let checked = check_source("dw.net", src, Path::new("dw.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let c = crossovers(&checked.graphs[0]);
    let macs = 32 * 9 * 28 * 28;
    assert_eq!(c["y"].forward, batch(DIRECT_FORWARD_MACS, macs));
    assert_eq!(c["y"].backward, batch(DIRECT_BACKWARD_MACS, macs));
    assert_eq!((c["y"].forward, c["y"].backward), (5, 2));
}

#[test]
fn generated_layers_compare_the_batch_with_their_crossover() {
    let g = graph("../examples/lenet.net");
    let src = codegen::emit(&g, "examples/lenet.net").unwrap();
    let c = crossovers(&g);
    for (f, b) in [
        ("fwd_f6_0", c["f6.0"].forward),
        ("bwd_f6_0", c["f6.0"].backward),
        ("inf_f6_0", c["f6.0"].forward),
        ("fwd_c1_0", c["c1.0"].forward),
    ] {
        let at = src
            .find(&format!("fn {f}("))
            .unwrap_or_else(|| panic!("{f}"));
        let body = &src[at..];
        let first = body.lines().nth(1).unwrap().trim();
        // A layer whose kernel never splits is alone at every batch, without a comparison.
        let want = match b {
            usize::MAX => "let _threads = rt::gemm::one_thread();".to_string(),
            b => format!("let _threads = rt::gemm::one_thread_if(ws.batch < {b});"),
        };
        assert_eq!(first, want, "{f}");
    }
    // A layer on all threads at any batch has no guard.
    let src = codegen::emit(
        &graph("../examples/googlenet.net"),
        "examples/googlenet.net",
    )
    .unwrap();
    let at = src.find("fn fwd_stem_6(").unwrap();
    assert!(!src[at..].lines().nth(1).unwrap().contains("one_thread_if"));
}
