//! `flatten`: `[C,H,W] -> [C*H*W]` in C, H, W order (a copy; the layout is unchanged).

use proc_macro2::TokenStream;
use quote::quote;

use super::args::{Arity, OpSpec};
use super::OnnxCx;
use super::{elems, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Flatten;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "flatten",
    arity: Arity::One,
    params: &[],
    build: |_| Ok(Op::Flatten(Flatten)),
}];

impl OpKind for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(vec![elems(ins[0])])
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        out.y.copy_from_slice(cx.xs[0]);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        out.dx(0, cx.dy.to_vec());
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (x, y) = (cx.x(0), cx.y());
        (quote! { #y.copy_from_slice(&#x); }, cx.pass_dx(0))
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        cx.node("Flatten", &[x], &[y], vec![onnx::attr_int("axis", 1)]);
        Ok(())
    }
}
