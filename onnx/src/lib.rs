//! netc-onnx: ONNX's protobuf messages (`proto`, generated from ONNX's `onnx.proto` at build
//! time) and the few constructors `netc export` and `netc import` share: attributes, tensors,
//! nodes, value infos, and reading them back.

pub mod build;
pub mod import;

/// The messages of `onnx.proto` (package `onnx`), as prost generates them.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use prost::Message;
