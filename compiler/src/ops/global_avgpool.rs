//! `global_avgpool`: the mean of each channel's plane, `[C,H,W] -> [C,1,1]`.

use proc_macro2::TokenStream;
use quote::quote;

use netc_runtime as rt;

use super::args::{Arity, OpSpec};
use super::window::expect_image;
use super::OnnxCx;
use super::{Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalAvgPool;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "global_avgpool",
    arity: Arity::One,
    params: &[],
    build: |_| Ok(Op::GlobalAvgPool(GlobalAvgPool)),
}];

impl OpKind for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global_avgpool"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        expect_image("global_avgpool", ins[0])?;
        Ok(vec![ins[0][0], 1, 1])
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let x = cx.shapes[0];
        rt::pool::global_avgpool_forward(x[1] * x[2], cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let x = cx.shapes[0];
        let mut dx = cx.zeros_like(0);
        rt::pool::global_avgpool_backward(x[1] * x[2], cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let plane = cx.shapes[0][1] * cx.shapes[0][2];
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::pool::global_avgpool_forward(#plane, &#x, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! { rt::pool::global_avgpool_backward(#plane, &#dy, &mut ws.scratch[..len]); },
            ),
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        cx.node("GlobalAveragePool", &[x], &[y], vec![]);
        Ok(())
    }
}
