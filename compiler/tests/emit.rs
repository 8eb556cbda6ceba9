//! The generated source of each example, snapshotted (reviewed once, then any change shows
//! in review), and deterministic: the same input gives the same source, byte for byte. That
//! it compiles, and computes what the interpreter computes, is `tests/codegen`'s job.

use std::path::Path;

use netc_compiler::{check_file, codegen};

fn emit(example: &str, network: Option<&str>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example);
    let checked = check_file(&path, network);
    assert!(!checked.has_errors(), "{}", checked.render());
    codegen::emit(&checked.graphs[0], &format!("examples/{example}")).unwrap()
}

#[test]
fn lenet_source() {
    insta::assert_snapshot!("lenet", emit("lenet.net", None));
}

#[test]
fn autoencoder_source() {
    insta::assert_snapshot!("autoencoder", emit("autoencoder.net", None));
}

#[test]
fn lecture_sources() {
    insta::assert_snapshot!("lecture_naive", emit("lecture.net", Some("naive")));
    insta::assert_snapshot!("lecture_reduced", emit("lecture.net", Some("reduced")));
}

#[test]
fn googlenet_source_is_deterministic_and_commented() {
    let a = emit("googlenet.net", None);
    assert_eq!(a, emit("googlenet.net", None));
    // Every layer is its own function, commented with the path it implements.
    assert!(
        a.contains("/// Layer `i3a.b2.2`: conv 3×3/1 → [128, 28, 28]."),
        "comments"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/googlenet.net");
    let mut g = check_file(&path, None).graphs.remove(0);
    assert_eq!(g.layers().len(), 158);
    // The epilogue pass folds the ReLU after 61 convs and linears into them (3 in the stem,
    // 6 in each of 9 inceptions, 2 in each auxiliary head).
    netc_compiler::passes::run(&mut g, netc_compiler::passes::CODEGEN, &[]).unwrap();
    let layers = g.layers().len();
    assert_eq!(layers, 158 - 61);
    // A forward and a backward function per layer, but for the 9 concats whose branches
    // all write in place (none), and for the 18 reductions merged with their block's 1×1
    // branch (a backward that masks the fused ReLU only).
    assert_eq!(
        a.matches("#[inline(never)]").count(),
        2 * (layers - 9) - 18,
        "functions"
    );
    assert!(a.contains(
        "/// Layer `i3a.b1.0`: conv 1×1/1 → [64, 28, 28]. One GEMM computes it with `i3a.b2.0`, \
         `i3a.b3.0` (merge_1x1). Written in place as channels 0..64 of the concat `i3a` (concat_in_place)."
    ), "fusion notes");
    insta::assert_snapshot!("googlenet", a);
}
