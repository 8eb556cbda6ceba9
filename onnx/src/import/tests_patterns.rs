//! Unit tests of the patterns exporters write for ops ONNX lacks (netc's export first, on
//! hand-built graphs of input `x` [N, 4, 8, 8] and output `y`): each import must give the
//! one op, and a near miss an error or another reading, never a wrong layer.

use crate::build::{attr_float, attr_int, attr_ints, attr_string, node, tensor_f32, tensor_i64};
use crate::proto::{NodeProto, TensorProto};

use super::tests::{graph, import};

fn shape(name: &str, v: &[i64]) -> TensorProto {
    tensor_i64(name, &[v.len()], v)
}

fn scalar(name: &str, v: f32) -> TensorProto {
    tensor_f32(name, &[], &[v])
}

fn net(nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> String {
    match import(&graph(nodes, init), "g") {
        Ok(imp) => imp.net,
        Err(e) => panic!("{}", e.message),
    }
}

#[test]
fn groupnorm_decomposed_is_groupnorm() {
    // The Reshape back by `Shape(x)`, a node after the InstanceNormalization (PyTorch's).
    let imp = import(
        &graph(
            vec![
                node("Reshape", "gn", &["x", "grouped"], &["r"], vec![]),
                node(
                    "InstanceNormalization",
                    "gn/In",
                    &["r", "ones", "zeros"],
                    &["i"],
                    vec![attr_float("epsilon", 1e-3)],
                ),
                node("Shape", "gn/Shape", &["x"], &["s"], vec![]),
                node("Reshape", "gn/Back", &["i", "s"], &["b"], vec![]),
                node("Mul", "gn/Mul", &["b", "gn.weight"], &["m"], vec![]),
                node("Add", "gn/Add", &["m", "gn.bias"], &["y"], vec![]),
            ],
            vec![
                shape("grouped", &[0, 2, -1]),
                tensor_f32("ones", &[2], &[1.0; 2]),
                tensor_f32("zeros", &[2], &[0.0; 2]),
                tensor_f32("gn.weight", &[4, 1, 1], &[1.0, 2.0, 3.0, 4.0]),
                tensor_f32("gn.bias", &[4, 1, 1], &[0.5; 4]),
            ],
        ),
        "g",
    )
    .unwrap();
    assert!(
        imp.net.contains("y = x -> groupnorm(2, eps=0.001) as gn;"),
        "{}",
        imp.net
    );
    let names: Vec<(&str, &[usize])> = imp
        .weights
        .iter()
        .map(|(n, d, _)| (n.as_str(), d.as_slice()))
        .collect();
    assert_eq!(names, [("gn.weight", &[4][..]), ("gn.bias", &[4][..])]);
}

#[test]
fn groupnorm_with_a_learned_instance_scale_is_refused() {
    let e = import(
        &graph(
            vec![
                node("Reshape", "gn", &["x", "grouped"], &["r"], vec![]),
                node(
                    "InstanceNormalization",
                    "gn/In",
                    &["r", "twos", "zeros"],
                    &["y"],
                    vec![],
                ),
            ],
            vec![
                shape("grouped", &[0, 2, -1]),
                tensor_f32("twos", &[2], &[2.0; 2]),
                tensor_f32("zeros", &[2], &[0.0; 2]),
            ],
        ),
        "g",
    )
    .unwrap_err();
    assert!(
        e.message
            .starts_with("node `gn` (Reshape): Reshape of [N, 4, 8, 8]"),
        "{}",
        e.message
    );
}

#[test]
fn transposed_layer_normalization_is_layernorm2d() {
    let text = net(
        vec![
            node(
                "Transpose",
                "ln",
                &["x"],
                &["t"],
                vec![attr_ints("perm", &[0, 2, 3, 1])],
            ),
            node(
                "LayerNormalization",
                "ln/LayerNormalization",
                &["t", "ln.weight", "ln.bias"],
                &["n"],
                vec![attr_int("axis", -1), attr_float("epsilon", 1e-6)],
            ),
            node(
                "Transpose",
                "ln/Back",
                &["n"],
                &["y"],
                vec![attr_ints("perm", &[0, 3, 1, 2])],
            ),
        ],
        vec![
            tensor_f32("ln.weight", &[4], &[1.0; 4]),
            tensor_f32("ln.bias", &[4], &[0.0; 4]),
        ],
    );
    assert!(text.contains("y = x -> layernorm2d as ln;"), "{text}");
}

/// netc's export of `lrn(size=4)`: the window on a spatial axis, an average, the power.
fn even_lrn(pads: &[i64]) -> Vec<u8> {
    graph(
        vec![
            node("Mul", "n", &["x", "x"], &["sq"], vec![]),
            node("Reshape", "n/Reshape", &["sq", "rows"], &["r"], vec![]),
            node("Pad", "n/Pad", &["r", "pads"], &["p"], vec![]),
            node(
                "AveragePool",
                "n/Pool",
                &["p"],
                &["a"],
                vec![attr_ints("kernel_shape", &[4, 1])],
            ),
            node("Reshape", "n/Back", &["a", "back"], &["b"], vec![]),
            node("Mul", "n/Alpha", &["b", "alpha"], &["m"], vec![]),
            node("Add", "n/K", &["m", "k"], &["s"], vec![]),
            node("Pow", "n/Beta", &["s", "beta"], &["d"], vec![]),
            node("Div", "n/Div", &["x", "d"], &["y"], vec![]),
        ],
        vec![
            shape("rows", &[0, 1, 4, 64]),
            shape("pads", pads),
            shape("back", &[0, 4, 8, 8]),
            scalar("alpha", 1e-2),
            scalar("k", 2.0),
            scalar("beta", 0.75),
        ],
    )
}

#[test]
fn an_even_lrn_window_decomposed_is_lrn() {
    let imp = import(&even_lrn(&[0, 0, 2, 0, 0, 0, 1, 0]), "g").unwrap();
    assert!(
        imp.net.contains("y = x -> lrn(size=4, alpha=0.01, k=2.0);"),
        "{}",
        imp.net
    );
    // The window off centre the other way is not PyTorch's (nor netc's) LRN: the squares
    // are a `mul`, and their reshape is refused.
    let e = import(&even_lrn(&[0, 0, 1, 0, 0, 0, 2, 0]), "g").unwrap_err();
    assert!(
        e.message
            .starts_with("node `n/Reshape` (Reshape): Reshape of [N, 4, 8, 8]"),
        "{}",
        e.message
    );
}

/// GELU's tanh form as PyTorch writes it (constants first), or with one constant changed.
fn gelu_tanh(cubic: f32) -> Vec<u8> {
    graph(
        vec![
            node("Mul", "g/Mul", &["x", "x"], &["a"], vec![]),
            node("Mul", "g/Mul_1", &["x", "a"], &["b"], vec![]),
            node("Mul", "g/Mul_2", &["c", "b"], &["c3"], vec![]),
            node("Add", "g/Add", &["x", "c3"], &["i"], vec![]),
            node("Mul", "g/Mul_3", &["k", "i"], &["s"], vec![]),
            node("Tanh", "g/Tanh", &["s"], &["t"], vec![]),
            node("Add", "g/Add_1", &["one", "t"], &["p"], vec![]),
            node("Mul", "g/Mul_4", &["x", "p"], &["q"], vec![]),
            node("Mul", "g/Mul_5", &["half", "q"], &["y"], vec![]),
        ],
        vec![
            scalar("c", cubic),
            scalar("k", (2.0 / std::f32::consts::PI).sqrt()),
            scalar("one", 1.0),
            scalar("half", 0.5),
        ],
    )
}

#[test]
fn gelu_tanh_decomposed_is_gelu_tanh() {
    let text = import(&gelu_tanh(0.044715), "g").unwrap().net;
    assert!(
        text.contains("y = x -> gelu(approximate=\"tanh\");"),
        "{text}"
    );
    // Another cubic coefficient: not GELU, and netc multiplies no tensor by a scalar.
    assert!(import(&gelu_tanh(0.05), "g").is_err());
}

/// PyTorch's adaptive bins from [8, 8] to [3, 5] as a [64, 15] matrix, or another matrix.
fn bins(exact: bool) -> Vec<f32> {
    let bin = |i: usize, o: usize, d: usize| (i * d / o)..((i + 1) * d).div_ceil(o);
    let mut m = vec![0f32; 64 * 15];
    for i in 0..3 {
        for j in 0..5 {
            let (rows, cols) = (bin(i, 3, 8), bin(j, 5, 8));
            let n = (rows.len() * cols.len()) as f32;
            for r in rows {
                for s in cols.clone() {
                    m[(r * 8 + s) * 15 + i * 5 + j] = 1.0 / n;
                }
            }
        }
    }
    if !exact {
        m[0] *= 2.0;
    }
    m
}

fn adaptive(exact: bool) -> Vec<u8> {
    graph(
        vec![
            node("Reshape", "pool", &["x", "planes"], &["r"], vec![]),
            node("MatMul", "pool/MatMul", &["r", "bins"], &["m"], vec![]),
            node("Reshape", "pool/Back", &["m", "to"], &["y"], vec![]),
        ],
        vec![
            shape("planes", &[0, 4, 64]),
            tensor_f32("bins", &[64, 15], &bins(exact)),
            shape("to", &[0, 4, 3, 5]),
        ],
    )
}

#[test]
fn the_adaptive_bin_matrix_is_adaptive_avgpool() {
    let text = import(&adaptive(true), "g").unwrap().net;
    assert!(
        text.contains("y = x -> adaptive_avgpool([3, 5]);"),
        "{text}"
    );
    let e = import(&adaptive(false), "g").unwrap_err().message;
    assert!(
        e.contains("which is not PyTorch's bins from [8, 8] to [3, 5]"),
        "{e}"
    );
}

fn padded_pool(pads: &[i64], ceil: i64) -> Vec<u8> {
    graph(
        vec![
            node(
                "Pad",
                "p",
                &["x", "pads"],
                &["q"],
                vec![attr_string("mode", "constant")],
            ),
            node(
                "AveragePool",
                "p/Pool",
                &["q"],
                &["y"],
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("strides", &[2, 2]),
                    attr_int("ceil_mode", ceil),
                    attr_int("count_include_pad", 0),
                ],
            ),
        ],
        vec![shape("pads", pads)],
    )
}

#[test]
fn a_zero_pad_before_an_average_pool_is_its_padding() {
    let text = import(&padded_pool(&[0, 0, 1, 1, 0, 0, 1, 1], 1), "g")
        .unwrap()
        .net;
    assert!(
        text.contains("y = x -> avgpool(k=3, s=2, p=1, ceil=true);"),
        "{text}"
    );
    let e = import(&padded_pool(&[0, 0, 1, 1, 0, 0, 2, 2], 0), "g")
        .unwrap_err()
        .message;
    assert!(
        e.starts_with("node `p` (Pad): netc has no standalone padding"),
        "{e}"
    );
}

#[test]
fn an_output_renamed_by_identity_keeps_its_name_and_the_layer_its_path() {
    let text = net(
        vec![
            node("Conv", "conv1", &["x", "conv1.weight"], &["conv1"], vec![]),
            node("Identity", "output y", &["conv1"], &["y"], vec![]),
        ],
        vec![tensor_f32("conv1.weight", &[2, 4, 3, 3], &[0.5; 72])],
    );
    assert!(
        text.contains("y = x -> conv(2, k=3, bias=false) as conv1;"),
        "{text}"
    );
    assert!(text.contains("output y;"), "{text}");
}

#[test]
fn an_output_named_as_its_layer_is_that_layer_without_as() {
    // LeNet's `logits = f6 -> linear(10)`: the layer, its value and the output share a name.
    let text = net(
        vec![node("Conv", "y", &["x", "y.weight"], &["y"], vec![])],
        vec![tensor_f32("y.weight", &[2, 4, 3, 3], &[0.5; 72])],
    );
    assert!(
        text.contains("    y = x -> conv(2, k=3, bias=false);"),
        "{text}"
    );
    assert!(text.contains("output y;"), "{text}");
}
