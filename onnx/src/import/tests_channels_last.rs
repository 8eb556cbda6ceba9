//! Unit tests of channels-last regions on hand-built graphs of input `x` [N, 4, 8, 8]: a
//! ConvNeXt block's MLP (Transpose, LayerNormalization, MatMul + Add, GELU, MatMul + Add,
//! Transpose back) lowers to NCHW layers with the Linear weights transposed to 1×1 convs,
//! and an op whose meaning depends on the layout is refused by name.

use crate::build::{attr_float, attr_int, attr_ints, node, tensor_f32};
use crate::proto::{NodeProto, TensorProto};

use super::tests::{graph, import};

fn to_last(name: &str, x: &str, out: &str) -> NodeProto {
    node(
        "Transpose",
        name,
        &[x],
        &[out],
        vec![attr_ints("perm", &[0, 2, 3, 1])],
    )
}

fn to_nchw(name: &str, x: &str, out: &str) -> NodeProto {
    node(
        "Transpose",
        name,
        &[x],
        &[out],
        vec![attr_ints("perm", &[0, 3, 1, 2])],
    )
}

/// fc1's matrix, [4, 8] as PyTorch's exporter writes it (the Linear's weight transposed):
/// entry (i, o) is `10 i + o`.
fn fc1() -> TensorProto {
    let m: Vec<f32> = (0..4)
        .flat_map(|i| (0..8).map(move |o| (10 * i + o) as f32))
        .collect();
    tensor_f32("onnx::MatMul_7", &[4, 8], &m)
}

/// PyTorch's CNBlock as its exporter writes it: the residual branch is channels-last from
/// block.1 to block.6, then the layer scale [C, 1, 1] and the Add.
fn cnblock(extra: Vec<NodeProto>, last: &str) -> Vec<u8> {
    let mut nodes = vec![
        to_last("/block/block.1/Transpose", "x", "t"),
        node(
            "LayerNormalization",
            "/block/block.2/LayerNormalization",
            &["t", "block.2.weight", "block.2.bias"],
            &["n"],
            vec![attr_int("axis", -1), attr_float("epsilon", 1e-6)],
        ),
        node(
            "MatMul",
            "/block/block.3/MatMul",
            &["n", "onnx::MatMul_7"],
            &["m1"],
            vec![],
        ),
        node(
            "Add",
            "/block/block.3/Add",
            &["block.3.bias", "m1"],
            &["a1"],
            vec![],
        ),
        node("Gelu", "/block/block.4/Gelu", &["a1"], &["g"], vec![]),
        node(
            "MatMul",
            "/block/block.5/MatMul",
            &["g", "onnx::MatMul_8"],
            &["m2"],
            vec![],
        ),
        node(
            "Add",
            "/block/block.5/Add",
            &["block.5.bias", "m2"],
            &["a2"],
            vec![],
        ),
    ];
    nodes.extend(extra);
    nodes.push(to_nchw("/block/block.6/Transpose", last, "b"));
    nodes.push(node("Mul", "/Mul", &["layer_scale", "b"], &["s"], vec![]));
    nodes.push(node("Add", "/Add", &["s", "x"], &["y"], vec![]));
    graph(
        nodes,
        vec![
            tensor_f32("block.2.weight", &[4], &[1.0, 2.0, 3.0, 4.0]),
            tensor_f32("block.2.bias", &[4], &[0.5; 4]),
            fc1(),
            tensor_f32("block.3.bias", &[8], &[0.25; 8]),
            tensor_f32("onnx::MatMul_8", &[8, 4], &[0.5; 32]),
            tensor_f32("block.5.bias", &[4], &[0.75; 4]),
            tensor_f32("layer_scale", &[4, 1, 1], &[1e-6; 4]),
            tensor_f32("net.gamma", &[4], &[2.0; 4]),
        ],
    )
}

#[test]
fn a_channels_last_mlp_is_nchw_layers_with_conv_weights() {
    let imp = match import(&cnblock(vec![], "a2"), "g") {
        Ok(imp) => imp,
        Err(e) => panic!("{}", e.message),
    };
    // block.0 and block.1 (the Transpose) are no layers: fillers keep the positions.
    assert!(
        imp.net.contains(
            "r#block = x -> dropout(0.0) -> dropout(0.0) -> layernorm2d -> conv(8, k=1) -> gelu\n        -> conv(4, k=1)"
        ),
        "{}",
        imp.net
    );
    let names: Vec<(&str, &[usize])> = imp.weights[..6]
        .iter()
        .map(|(n, d, _)| (n.as_str(), d.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("block.2.weight", &[4][..]),
            ("block.2.bias", &[4][..]),
            ("block.3.weight", &[8, 4, 1, 1][..]),
            ("block.3.bias", &[8][..]),
            ("block.5.weight", &[4, 8, 1, 1][..]),
            ("block.5.bias", &[4][..]),
        ]
    );
    // The conv's weight (o, i) is the matrix's (i, o): PyTorch's Linear weight.
    let w = &imp.weights[2].2;
    assert_eq!(&w[..5], &[0.0, 10.0, 20.0, 30.0, 1.0]);
    assert_eq!(w[4 * 7 + 3], 37.0);
    assert!(
        imp.notes
            .iter()
            .any(|n| n.starts_with("each Linear over the channels")
                && n.contains("`block.3`, `block.5`")),
        "{:?}",
        imp.notes
    );
}

#[test]
fn a_factor_per_channel_in_a_channels_last_region_is_scale() {
    let mul = node("Mul", "/gamma/Mul", &["a2", "net.gamma"], &["f"], vec![]);
    let imp = match import(&cnblock(vec![mul], "f"), "g") {
        Ok(imp) => imp,
        Err(e) => panic!("{}", e.message),
    };
    // A bare parameter (`net.gamma`) is the weight of a `scale` layer of its own path.
    assert!(imp.net.contains("x -> scale as gamma;"), "{}", imp.net);
    let gamma = imp.weights.iter().find(|(n, ..)| n == "net.gamma.weight");
    assert_eq!(
        gamma.map(|(_, d, v)| (d.as_slice(), v.as_slice())),
        Some((&[4, 1, 1][..], &[2.0; 4][..]))
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.starts_with("the factor per channel of a channels-last tensor")),
        "{:?}",
        imp.notes
    );
}

#[test]
fn a_layout_dependent_op_in_a_channels_last_region_names_the_node() {
    let soft = node(
        "Softmax",
        "/block/Softmax",
        &["a2"],
        &["sm"],
        vec![attr_int("axis", -1)],
    );
    let e = import(&cnblock(vec![soft], "sm"), "g").unwrap_err().message;
    assert!(
        e.starts_with(
            "node `/block/Softmax` (Softmax): op `Softmax` on a channels-last tensor; between a Transpose [0, 2, 3, 1]"
        ),
        "{e}"
    );
}

#[test]
fn a_channels_last_tensor_with_an_nchw_one_is_refused() {
    let add = node("Add", "/mix/Add", &["a2", "x"], &["mixed"], vec![]);
    let e = import(&cnblock(vec![add], "mixed"), "g")
        .unwrap_err()
        .message;
    assert!(
        e.starts_with("node `/mix/Add` (Add): input 1 (`x`) is NCHW, and another is channels-last (after node `/block/block.1/Transpose`)"),
        "{e}"
    );
}

#[test]
fn a_channels_last_output_or_reader_outside_the_region_is_refused() {
    let e = import(&graph(vec![to_last("t", "x", "y")], vec![]), "g")
        .unwrap_err()
        .message;
    assert!(
        e.starts_with("graph output `y` is channels-last (after node `t`)"),
        "{e}"
    );
    let e = import(
        &graph(
            vec![
                to_last("t", "x", "l"),
                node(
                    "Transpose",
                    "back",
                    &["l"],
                    &["y"],
                    vec![attr_ints("perm", &[0, 3, 2, 1])],
                ),
            ],
            vec![],
        ),
        "g",
    )
    .unwrap_err()
    .message;
    assert!(
        e.starts_with("node `back` (Transpose): Transpose [0, 3, 2, 1] of a channels-last tensor; only [0, 3, 1, 2]"),
        "{e}"
    );
}
