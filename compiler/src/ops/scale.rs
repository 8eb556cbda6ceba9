//! `scale`: a learned factor per channel (ConvNeXt's layer scale), `PATH.weight` of shape
//! `[C,1,1]` starting at `init`.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, ParamDecl};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub init: f64,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "scale",
    arity: Arity::One,
    params: &[p("init", Kind::Float, Float(1.0))],
    build: |r| {
        Ok(Op::Scale(Scale {
            init: r.float("init", Kind::Float)?,
        }))
    },
}];

impl OpKind for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(ins[0].clone())
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        // One factor per channel, broadcast over the rest: [C, 1, 1] for an image.
        let mut shape = vec![1; ins[0].len()];
        shape[0] = ins[0][0];
        vec![ParamDecl::new("weight", shape, self.init as f32)]
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "init": self.init }))
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        rt::tensor::scale_forward(cx.batch, c, plane, cx.xs[0], cx.param("weight"), &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let (mut dx, mut dw) = (cx.zeros_like(0), vec![0.0; c]);
        rt::tensor::scale_backward(
            cx.batch,
            c,
            plane,
            cx.xs[0],
            cx.param("weight"),
            cx.dy,
            cx.wants[0].then_some(&mut dx[..]),
            &mut dw,
        );
        out.grad("weight", dw);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let (x, y, dy, w, dw) = (
            cx.x(0),
            cx.y(),
            cx.dy(),
            cx.param("weight"),
            cx.grad("weight"),
        );
        let bwd = if cx.wants(0) {
            let dx = cx.dx(0);
            quote! {
                let len = #x.len();
                rt::tensor::scale_backward(n, #c, #plane, &#x, &#w, &#dy, Some(&mut ws.scratch[..len]), &mut #dw);
                rt::tensor::accumulate(&ws.scratch[..len], &mut #dx);
            }
        } else {
            quote! { rt::tensor::scale_backward(n, #c, #plane, &#x, &#w, &#dy, None, &mut #dw); }
        };
        (
            quote! { rt::tensor::scale_forward(n, #c, #plane, &#x, &#w, &mut #y); },
            bwd,
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let w = cx.param("weight");
        cx.node("Mul", &[x, w], &[y], vec![]);
        Ok(())
    }
}
