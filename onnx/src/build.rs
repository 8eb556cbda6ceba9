//! Constructors for the messages a model is made of, and readers for the attributes and
//! tensors an importer takes apart. Export and import both speak through these, so that the
//! encoding rules (tensors as little-endian `raw_data`, the batch as a named dimension) are
//! written once.

use crate::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The operator set netc writes (ONNX 1.13 and newer read it; onnxruntime since 1.14).
pub const OPSET: i64 = 17;
/// The IR version of opset 17.
pub const IR_VERSION: i64 = 8;

/// A dimension of a graph input or output: a size, or a name (the batch, `N`).
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Named(String),
}

/// A model of one graph, importing the default domain at [`OPSET`].
pub fn model(graph: GraphProto, producer_version: &str) -> ModelProto {
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("netc".into()),
        producer_version: Some(producer_version.into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// A node: `op` of the default domain, reading `inputs` and writing `outputs`.
pub fn node<I: AsRef<str>, O: AsRef<str>>(
    op: &str,
    name: &str,
    inputs: &[I],
    outputs: &[O],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.as_ref().to_string()).collect(),
        output: outputs.iter().map(|s| s.as_ref().to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attribute(name, AttributeType::Int)
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attribute(name, AttributeType::Ints)
    }
}

pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attribute(name, AttributeType::Float)
    }
}

pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..attribute(name, AttributeType::String)
    }
}

/// A float tensor, its data as little-endian `raw_data` (what every exporter writes).
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "tensor {name}");
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An int64 tensor (shapes, axes, slice bounds).
pub fn tensor_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "tensor {name}");
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A float tensor value of the given dimensions (a graph input or output).
pub fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The dimensions of a value info (`None` for a dimension that is neither a size nor a name,
/// or a value that is not a tensor).
pub fn dims_of(v: &ValueInfoProto) -> Option<Vec<Option<Dim>>> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    Some(
        t.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(n)) if *n >= 0 => {
                    Some(Dim::Fixed(*n as usize))
                }
                Some(tensor_shape_proto::dimension::Value::DimParam(s)) => {
                    Some(Dim::Named(s.clone()))
                }
                _ => None,
            })
            .collect(),
    )
}

/// An attribute of a node by name.
pub fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

/// An integer attribute, or `default`.
pub fn int_attr(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).and_then(|a| a.i).unwrap_or(default)
}

/// A list of integers, or `None` when the node does not have it.
pub fn ints_attr(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// A float attribute, or `default`.
pub fn float_attr(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).and_then(|a| a.f).unwrap_or(default)
}

/// A string attribute, or `default`.
pub fn string_attr(n: &NodeProto, name: &str, default: &str) -> String {
    attr(n, name)
        .and_then(|a| a.s.as_ref())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_else(|| default.to_string())
}

/// A tensor's dimensions and values as `f64` (float, double, float16 is refused; the integer
/// types convert exactly up to 2^53). Errors name the tensor.
pub fn tensor_values(t: &TensorProto) -> Result<(Vec<usize>, Vec<f64>), String> {
    let name = t.name();
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(format!(
            "tensor `{name}` keeps its data in an external file, which netc does not read: save the model with its data inside (onnx.save(model, path, save_as_external_data=False))"
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{name}` has dimension {d}")))
        .collect::<Result<_, _>>()?;
    let n: usize = dims.iter().product();
    let raw = t.raw_data.as_deref();
    let kind = DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined);
    let values: Vec<f64> = match (kind, raw) {
        (DataType::Float, Some(r)) => r
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect(),
        (DataType::Float, None) => t.float_data.iter().map(|&v| v as f64).collect(),
        (DataType::Double, Some(r)) => r
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        (DataType::Double, None) => t.double_data.clone(),
        (DataType::Int64, Some(r)) => r
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64)
            .collect(),
        (DataType::Int64, None) => t.int64_data.iter().map(|&v| v as f64).collect(),
        (DataType::Int32, Some(r)) => r
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect(),
        (DataType::Int32, None) => t.int32_data.iter().map(|&v| v as f64).collect(),
        _ => {
            return Err(format!(
                "tensor `{name}` is of type {kind:?}; netc reads float, double, int32 and int64 tensors"
            ))
        }
    };
    if values.len() != n {
        return Err(format!(
            "tensor `{name}` has {} values for dimensions {dims:?}",
            values.len()
        ));
    }
    Ok((dims, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_model_survives_encoding_and_its_tensors_read_back() {
        let w = tensor_f32("conv1.weight", &[2, 1, 1, 1], &[0.5, -1.25]);
        let graph = GraphProto {
            name: Some("net".into()),
            node: vec![node(
                "Conv",
                "conv1",
                &["image", "conv1.weight"],
                &["y"],
                vec![attr_ints("kernel_shape", &[1, 1]), attr_int("group", 1)],
            )],
            initializer: vec![w, tensor_i64("shape", &[2], &[-1, 7])],
            input: vec![value_info(
                "image",
                &[
                    Dim::Named("N".into()),
                    Dim::Fixed(1),
                    Dim::Fixed(4),
                    Dim::Fixed(4),
                ],
            )],
            ..Default::default()
        };
        let bytes = model(graph, "0.1.0").encode_to_vec();
        let back = ModelProto::decode(&bytes[..]).unwrap();
        let g = back.graph.unwrap();
        assert_eq!(g.node[0].op_type(), "Conv");
        assert_eq!(ints_attr(&g.node[0], "kernel_shape"), Some(vec![1, 1]));
        assert_eq!(int_attr(&g.node[0], "group", 9), 1);
        assert_eq!(int_attr(&g.node[0], "missing", 9), 9);
        assert_eq!(
            tensor_values(&g.initializer[0]).unwrap(),
            (vec![2, 1, 1, 1], vec![0.5, -1.25])
        );
        assert_eq!(
            tensor_values(&g.initializer[1]).unwrap(),
            (vec![2], vec![-1.0, 7.0])
        );
        assert_eq!(
            dims_of(&g.input[0]).unwrap(),
            vec![
                Some(Dim::Named("N".into())),
                Some(Dim::Fixed(1)),
                Some(Dim::Fixed(4)),
                Some(Dim::Fixed(4))
            ]
        );
    }
}
