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
use super::OnnxCx;
use super::{object, Op, OpError, OpKind, Pair, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

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

    /// Bins of equal size are an `AveragePool`; PyTorch's uneven bins are a product with
    /// the matrix of bin weights (ONNX has no adaptive pooling): the planes as rows,
    /// `[N, C, H·W] × [H·W, oh·ow]`.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let (c, h, w) = (cx.shapes[0][0], cx.shapes[0][1], cx.shapes[0][2]);
        let [oh, ow] = self.out;
        if h % oh == 0 && w % ow == 0 {
            let k = [(h / oh) as i64, (w / ow) as i64];
            cx.node(
                "AveragePool",
                &[x],
                &[y],
                vec![
                    onnx::attr_ints("kernel_shape", &k),
                    onnx::attr_ints("strides", &k),
                ],
            );
            return Ok(());
        }
        let bins = |i: usize, o: usize, d: usize| (i * d / o)..(((i + 1) * d).div_ceil(o));
        let mut m = vec![0f32; h * w * oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                let (rows, cols) = (bins(i, oh, h), bins(j, ow, w));
                let n = (rows.len() * cols.len()) as f32;
                for r in rows {
                    for s in cols.clone() {
                        m[(r * w + s) * oh * ow + i * ow + j] = 1.0 / n;
                    }
                }
            }
        }
        let planes = cx.i64s("planes", &[0, c as i64, (h * w) as i64]);
        let to = cx.i64s("shape", &[0, c as i64, oh as i64, ow as i64]);
        let bins = cx.f32s("bins", &[h * w, oh * ow], &m);
        let (rows, pooled) = (cx.tmp("rows"), cx.tmp("pooled"));
        cx.node("Reshape", &[x, planes], &[&rows], vec![]);
        cx.node("MatMul", &[rows, bins], &[&pooled], vec![]);
        cx.node("Reshape", &[pooled, to], &[y], vec![]);
        Ok(())
    }
}
