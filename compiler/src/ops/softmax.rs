//! `softmax` over channels (over features for a vector), at every position.

use proc_macro2::TokenStream;
use quote::quote;

use netc_runtime as rt;

use super::args::{Arity, OpSpec};
use super::OnnxCx;
use super::{channels, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Softmax;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "softmax",
    arity: Arity::One,
    params: &[],
    build: |_| Ok(Op::Softmax(Softmax)),
}];

impl OpKind for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(ins[0].clone())
    }

    fn reads(&self) -> Reads {
        Reads {
            input: false,
            output: true,
        }
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        rt::act::softmax_forward(c, plane, cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        rt::act::softmax_backward(c, plane, cx.y, cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::act::softmax_forward(#c, #plane, &#x, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! { rt::act::softmax_backward(#c, #plane, &#y, &#dy, &mut ws.scratch[..len]); },
            ),
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        cx.node("Softmax", &[x], &[y], vec![onnx::attr_int("axis", 1)]);
        Ok(())
    }
}
