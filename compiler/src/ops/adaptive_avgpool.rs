//! `adaptive_avgpool`: average pooling to a fixed output size `[h, w]` with PyTorch's bins
//! (`nn.AdaptiveAvgPool2d`): bin `i` of `o` over `d` rows spans `floor(i·d/o)` to
//! `ceil((i+1)·d/o)`.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;
use rt::pool::AdaptivePool2d;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::{checked_shape, expect_image};
use super::{object, Op, OpError, OpKind, Pair, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveAvgPool {
    pub out: Pair,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "adaptive_avgpool",
    arity: Arity::One,
    params: &[p("out", Kind::Pair, Required)],
    build: |r| {
        Ok(Op::AdaptiveAvgPool(AdaptiveAvgPool {
            out: r.pair("out", 1)?,
        }))
    },
}];

impl AdaptiveAvgPool {
    fn geometry(&self, x: &[usize]) -> AdaptivePool2d {
        AdaptivePool2d {
            c: x[0],
            h: x[1],
            w: x[2],
            oh: self.out[0],
            ow: self.out[1],
        }
    }
}

impl OpKind for AdaptiveAvgPool {
    fn name(&self) -> &'static str {
        "adaptive_avgpool"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        expect_image("adaptive_avgpool", x)?;
        checked_shape(vec![x[0], self.out[0], self.out[1]])
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "out": self.out }))
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        rt::pool::adaptive_avgpool2d_forward(&geo, cx.batch, cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        rt::pool::adaptive_avgpool2d_backward(&geo, cx.batch, cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn geometry(&self, cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        let x = cx.shapes[0];
        let (c, h, w, oh, ow) = (x[0], x[1], x[2], self.out[0], self.out[1]);
        Some((
            quote! { rt::pool::AdaptivePool2d },
            quote! { rt::pool::AdaptivePool2d { c: #c, h: #h, w: #w, oh: #oh, ow: #ow } },
        ))
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let geo = cx.geo();
        let (tx, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::pool::adaptive_avgpool2d_forward(&#geo, n, &#tx, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! { rt::pool::adaptive_avgpool2d_backward(&#geo, n, &#dy, &mut ws.scratch[..len]); },
            ),
        )
    }
}
