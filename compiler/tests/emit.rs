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
    let checked = check_file(&path, None).graphs.remove(0);
    assert_eq!(checked.layers().len(), 158);
    // The epilogue pass folds the ReLU after 61 convs and linears into them (3 in the stem,
    // 6 in each of 9 inceptions, 2 in each auxiliary head).
    let g = netc_compiler::passes::training(&checked, &[]).unwrap();
    let layers = g.layers().len();
    assert_eq!(layers, 158 - 61);
    // Inference has no auxiliary heads (2 × 6 layers, their ReLUs fused).
    let inferred = netc_compiler::passes::inference(&checked, &[]).unwrap();
    assert_eq!(inferred.layers().len(), layers - 2 * 6);
    // A forward, a backward and an inference function per layer (the auxiliary heads'
    // none at inference), but for the 9 concats whose branches all write in place (none),
    // and for the 18 reductions merged with their block's 1×1 branch (a backward that
    // masks the fused ReLU only).
    assert_eq!(a.matches("\nfn fwd_").count(), layers - 9 - 18);
    assert_eq!(a.matches("\nfn bwd_").count(), layers - 9);
    assert_eq!(a.matches("\nfn inf_").count(), layers - 2 * 6 - 9 - 18);
    assert_eq!(
        a.matches("#[inline(never)]").count(),
        3 * (layers - 9 - 18) + 18 - 2 * 6,
        "functions"
    );
    assert!(
        a.contains("/// Layer `i3a.b2.2` at inference: conv 3×3/1 → [128, 28, 28]."),
        "inference functions"
    );
    assert!(a.contains(
        "/// Layer `i3a.b1.0`: conv 1×1/1 → [64, 28, 28]. One GEMM computes it with `i3a.b2.0`, \
         `i3a.b3.0` (merge_1x1). Written in place as channels 0..64 of the concat `i3a` (concat_in_place)."
    ), "fusion notes");
    insta::assert_snapshot!("googlenet", a);
}
