//! A network input: an image or feature tensor, or a class label. The interpreter and the
//! generated code copy inputs in before the first layer; they have no computation of their
//! own and take no gradient.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use super::OnnxCx;
use super::{object, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An image or feature tensor.
    Tensor,
    /// An integer class label in `0..N`.
    Class(usize),
}

impl OpKind for InputKind {
    fn name(&self) -> &'static str {
        "input"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(ins.first().map(|s| (*s).clone()).unwrap_or_default())
    }

    fn attrs(&self) -> Map<String, Json> {
        match self {
            InputKind::Tensor => Map::new(),
            InputKind::Class(n) => object(json!({ "classes": n })),
        }
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, _cx: &Fwd, _out: &mut FwdOut) {}

    fn backward(&self, _cx: &Bwd, _out: &mut BwdOut) {}

    fn emit(&self, _cx: &Cx) -> (TokenStream, TokenStream) {
        (quote! {}, quote! {})
    }

    /// A graph input, which the export driver declares.
    fn onnx(&self, _cx: &mut OnnxCx) -> Result<(), OpError> {
        Ok(())
    }
}
