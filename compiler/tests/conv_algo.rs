//! The `conv_algo` pass on whole networks: the plan records, per conv, the algorithm the
//! generated code runs it with: Winograd F4 where the cost model finds it faster (3×3
//! stride-1 convs on large maps), im2col for every other conv (1×1, strided, larger
//! kernels) and for small maps at small batches; `--conv-algo` (`Graph::conv_algo`) pins it.

use std::collections::BTreeMap;
use std::path::Path;

use netc_compiler::ops::Algo;
use netc_compiler::passes::conv_algo::Pin;
use netc_compiler::{check_file, plan, Graph};
use netc_runtime::conv::winograd::Tile;

fn graph(file: &str) -> Graph {
    let checked = check_file(Path::new(file), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    checked.graphs[0].clone()
}

/// Each conv's algorithm in the plan of `g` at `batch` images (the model's batch).
fn algos(g: &Graph, batch: u64, pin: Pin) -> BTreeMap<String, Algo> {
    let mut g = g.clone();
    g.train.batch = Some(batch);
    g.conv_algo = pin;
    let s = plan::summary(&g, &[], 1).unwrap();
    assert_eq!(s.model_batch, batch as usize);
    s.convs.into_iter().map(|c| (c.path, c.algo)).collect()
}

const F4: Algo = Algo::Winograd(Tile::F4);

#[test]
fn auto_chooses_winograd_for_large_3x3_maps_and_im2col_elsewhere() {
    let g = graph("../examples/googlenet.net");
    let a = algos(&g, 8, Pin::Auto);
    assert_eq!(a["i3a.b2.2"], F4, "3×3 96→128 at 28×28");
    assert_eq!(a["stem.6"], F4, "3×3 64→192 at 56×56");
    assert_eq!(a["i3a.b1.0"], Algo::Im2col, "1×1");
    assert_eq!(a["conv1"], Algo::Im2col, "7×7 stride 2");
    assert_eq!(a["i3a.b3.2"], Algo::Im2col, "5×5");
    assert_eq!(a["i5b.b2.2"], Algo::Im2col, "3×3 192→384 at 7×7, batch 8");
    // Batch 32 shares the 7×7 layers' weight transform among enough tiles.
    assert_eq!(algos(&g, 32, Pin::Auto)["i5b.b2.2"], F4);

    let r = graph("../examples/zoo/resnet50.net");
    for batch in [1, 8] {
        let a = algos(&r, batch, Pin::Auto);
        assert_eq!(
            a["layer4.1.conv2"],
            Algo::Im2col,
            "3×3 512→512 at 7×7, batch {batch}"
        );
        assert_eq!(a["layer2.0.conv2"], Algo::Im2col, "3×3 stride 2");
        assert_eq!(a["layer1.0.conv2"], F4, "3×3 64→64 at 56×56, batch {batch}");
        assert_eq!(
            a["layer2.1.conv2"], F4,
            "3×3 128→128 at 28×28, batch {batch}"
        );
    }
}

#[test]
fn a_pin_decides_wherever_winograd_applies() {
    let r = graph("../examples/zoo/resnet50.net");
    let im2col = algos(&r, 8, Pin::Im2col);
    assert!(im2col.values().all(|&a| a == Algo::Im2col));
    let winograd = algos(&r, 1, Pin::Winograd);
    assert_eq!(winograd["layer4.1.conv2"], F4);
    assert_eq!(winograd["layer2.0.conv2"], Algo::Im2col, "stride 2");
    assert_eq!(winograd["layer1.0.conv1"], Algo::Im2col, "1×1");
    assert_eq!(winograd.values().filter(|&&a| a == F4).count(), 13);
    // Skipped, the pass leaves every conv on im2col.
    let s = plan::summary(&r, &["conv_algo"], 1).unwrap();
    assert!(s.convs.iter().all(|c| c.algo == Algo::Im2col));
}
