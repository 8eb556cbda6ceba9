//! Unit tests of the importer on hand-built graphs: op mappings, patterns, and the errors
//! that name a node and its op.

use crate::build::{attr_float, attr_int, attr_ints, model, node, tensor_f32, value_info, Dim};
use crate::proto::{GraphProto, NodeProto, TensorProto};
use crate::Message;

use super::{ImportError, Imported};

/// Some of the language's op names, which blocks may not take (the CLI passes them all).
pub(super) const RESERVED: &[&str] = &["conv", "relu", "batchnorm", "linear", "add"];

/// The importer, with [`RESERVED`].
pub(super) fn import(bytes: &[u8], name: &str) -> Result<Imported, ImportError> {
    super::import(bytes, name, RESERVED)
}

/// A model of `nodes` on input `x` [N, 4, 8, 8] with output `y`.
pub(super) fn graph(nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> Vec<u8> {
    let g = GraphProto {
        name: Some("g".into()),
        node: nodes,
        initializer: init,
        input: vec![value_info(
            "x",
            &[
                Dim::Named("N".into()),
                Dim::Fixed(4),
                Dim::Fixed(8),
                Dim::Fixed(8),
            ],
        )],
        output: vec![value_info("y", &[])],
        ..Default::default()
    };
    model(g, "test").encode_to_vec()
}

fn conv_w() -> TensorProto {
    tensor_f32("conv1.weight", &[2, 4, 3, 3], &[0.5; 72])
}

#[test]
fn a_conv_and_relu_import_with_their_names() {
    let bytes = graph(
        vec![
            node(
                "Conv",
                "/conv1/Conv",
                &["x", "conv1.weight"],
                &["c"],
                vec![
                    attr_ints("pads", &[1, 1, 1, 1]),
                    attr_ints("strides", &[2, 2]),
                ],
            ),
            node("Relu", "/relu/Relu", &["c"], &["y"], vec![]),
        ],
        vec![conv_w()],
    );
    let imp = import(&bytes, "g").unwrap();
    assert!(
        imp.net
            .contains("y = x -> conv(2, k=3, s=2, p=1, bias=false) as conv1 -> relu;"),
        "{}",
        imp.net
    );
    assert_eq!(imp.weights.len(), 1);
    assert_eq!(imp.weights[0].0, "conv1.weight");
}

#[test]
fn x_times_sigmoid_x_is_silu() {
    let bytes = graph(
        vec![
            node("Sigmoid", "s", &["x"], &["s"], vec![]),
            node("Mul", "m", &["x", "s"], &["y"], vec![]),
        ],
        vec![],
    );
    assert!(import(&bytes, "g").unwrap().net.contains("silu"));
}

#[test]
fn an_unsupported_op_names_the_node_and_op() {
    let bytes = graph(
        vec![node("Cos", "/head/Cos", &["x"], &["y"], vec![])],
        vec![],
    );
    assert_eq!(
        import(&bytes, "g").unwrap_err().message,
        "node `/head/Cos` (Cos): op `Cos` has no counterpart in netc's language"
    );
}

#[test]
fn asymmetric_pads_are_refused() {
    let bytes = graph(
        vec![node(
            "Conv",
            "c",
            &["x", "conv1.weight"],
            &["y"],
            vec![attr_ints("pads", &[0, 0, 1, 1])],
        )],
        vec![conv_w()],
    );
    let e = import(&bytes, "g").unwrap_err().message;
    assert!(
        e.starts_with("node `c` (Conv): asymmetric padding [0, 0, 1, 1]"),
        "{e}"
    );
}

#[test]
fn a_missing_initializer_is_named() {
    let bytes = graph(vec![node("Conv", "c", &["x", "w"], &["y"], vec![])], vec![]);
    let e = import(&bytes, "g").unwrap_err().message;
    assert!(
        e.contains("node `c` (Conv): input `w` is not produced"),
        "{e}"
    );
}

#[test]
fn a_reshape_by_a_computed_shape_is_refused() {
    let bytes = graph(
        vec![node("Reshape", "r", &["x", "x"], &["y"], vec![])],
        vec![],
    );
    let e = import(&bytes, "g").unwrap_err().message;
    assert!(
        e.contains("node `r` (Reshape): input 1 (`x`) is computed from the input"),
        "{e}"
    );
}

#[test]
fn a_hardsigmoid_of_other_slope_says_why() {
    let bytes = graph(
        vec![node(
            "HardSigmoid",
            "h",
            &["x"],
            &["y"],
            vec![attr_float("alpha", 0.2)],
        )],
        vec![],
    );
    let e = import(&bytes, "g").unwrap_err().message;
    assert!(
        e.contains("netc's hardsigmoid is PyTorch's (alpha=1/6, beta=0.5)"),
        "{e}"
    );
}

#[test]
fn avgpool_without_counting_padding_is_refused() {
    let bytes = graph(
        vec![node(
            "AveragePool",
            "p",
            &["x"],
            &["y"],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_int("count_include_pad", 0),
            ],
        )],
        vec![],
    );
    assert!(import(&bytes, "g")
        .unwrap_err()
        .message
        .contains("count_include_pad=0"));
}

#[test]
fn corrupt_bytes_are_an_error() {
    for bytes in [&b"\xff\xff\xff"[..], b"", b"\x0a\x05hello"] {
        assert!(import(bytes, "g").is_err());
    }
}

#[test]
fn a_concat_of_one_input_is_no_layer() {
    // torchvision's DenseNet: `torch.cat([x], 1)` in the first dense layer of each block.
    let bytes = graph(
        vec![
            node(
                "Concat",
                "/cat/Concat",
                &["x"],
                &["c"],
                vec![attr_int("axis", 1)],
            ),
            node(
                "Conv",
                "/conv1/Conv",
                &["c", "conv1.weight"],
                &["y"],
                vec![attr_ints("pads", &[1, 1, 1, 1])],
            ),
        ],
        vec![conv_w()],
    );
    let imp = import(&bytes, "g").unwrap();
    assert!(!imp.net.contains("concat"), "{}", imp.net);
    assert!(
        imp.net
            .contains("y = x -> conv(2, k=3, p=1, bias=false) as conv1;"),
        "{}",
        imp.net
    );
}

#[test]
fn a_concat_or_add_of_no_inputs_is_an_error() {
    for op in ["Concat", "Add", "Sum"] {
        let none: &[&str] = &[];
        let bytes = graph(vec![node(op, "n", none, &["y"], vec![])], vec![]);
        let e = import(&bytes, "g").unwrap_err().message;
        assert_eq!(e, format!("node `n` ({op}): the node has no inputs"));
    }
}
