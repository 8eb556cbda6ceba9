//! `slice`: channels `from..to` of a value (ShuffleNet's split); its gradient fills those
//! channels of the input's and leaves the others zero.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub from: usize,
    pub to: usize,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "slice",
    arity: Arity::One,
    params: &[
        p("from", Kind::Index, Required),
        p("to", Kind::Size, Required),
    ],
    build: |r| {
        let (from, to) = (r.index("from")?, r.size("to")?);
        if from >= to {
            return Err(OpError::new(format!(
                "`slice` needs `from` < `to`, found from={from} to={to}"
            ))
            .at("to"));
        }
        Ok(Op::Slice(Slice { from, to }))
    },
}];

impl OpKind for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        if x.is_empty() || self.to > x[0] {
            return Err(OpError::new(format!(
                "`slice` takes channels {}..{} of {}, which has {} channels",
                self.from,
                self.to,
                shape_str(x),
                x.first().copied().unwrap_or(0)
            ))
            .at("to"));
        }
        let mut y = x.clone();
        y[0] = self.to - self.from;
        Ok(y)
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "from": self.from, "to": self.to }))
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let k = self.to - self.from;
        rt::tensor::slice_channels(cx.batch, plane, k, self.from, c, cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let k = self.to - self.from;
        let mut dx = cx.zeros_like(0);
        rt::tensor::concat_channels(cx.batch, plane, k, self.from, c, cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let (k, from) = (self.to - self.from, self.from);
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::tensor::slice_channels(n, #plane, #k, #from, #c, &#x, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! {
                    ws.scratch[..len].fill(0.0);
                    rt::tensor::concat_channels(n, #plane, #k, #from, #c, &#dy, &mut ws.scratch[..len]);
                },
            ),
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let starts = cx.i64s("starts", &[self.from as i64]);
        let ends = cx.i64s("ends", &[self.to as i64]);
        let axes = cx.i64s("axes", &[1]);
        cx.node("Slice", &[x, starts, ends, axes], &[y], vec![]);
        Ok(())
    }
}
