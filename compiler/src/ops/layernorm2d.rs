//! `layernorm2d`: layer normalization over the channels at each position (ConvNeXt's
//! `LayerNorm2d`), the same in training and inference; γ (`weight`) and β (`bias`) per
//! channel.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::expect_image;
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, ParamDecl, SavedDecl};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm2d {
    pub eps: f64,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "layernorm2d",
    arity: Arity::One,
    params: &[p("eps", Kind::Positive, Float(1e-6))],
    build: |r| {
        Ok(Op::LayerNorm2d(LayerNorm2d {
            eps: r.float("eps", Kind::Positive)?,
        }))
    },
}];

impl OpKind for LayerNorm2d {
    fn name(&self) -> &'static str {
        "layernorm2d"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        expect_image("layernorm2d", ins[0])?;
        Ok(ins[0].clone())
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        let c = ins[0][0];
        vec![
            ParamDecl::new("weight", vec![c], 1.0),
            ParamDecl::new("bias", vec![c], 0.0),
        ]
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "eps": self.eps }))
    }

    /// The mean and reciprocal deviation of each position.
    fn saved(&self, ins: &[&Shape], _y: &Shape) -> Vec<SavedDecl> {
        let plane = channels(ins[0]).1;
        vec![
            SavedDecl::per_sample('m', plane),
            SavedDecl::per_sample('r', plane),
        ]
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let (mut mean, mut rstd) = (vec![0.0; cx.batch * plane], vec![0.0; cx.batch * plane]);
        rt::norm::layernorm2d_forward(
            cx.batch,
            c,
            plane,
            self.eps as f32,
            cx.xs[0],
            cx.param("weight"),
            cx.param("bias"),
            &mut out.y,
            &mut mean,
            &mut rstd,
        );
        out.saved.f.insert('m', mean);
        out.saved.f.insert('r', rstd);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let (mut dx, mut dw, mut db) = (cx.zeros_like(0), vec![0.0; c], vec![0.0; c]);
        rt::norm::layernorm2d_backward(
            cx.batch,
            c,
            plane,
            cx.xs[0],
            cx.param("weight"),
            &cx.saved.f[&'m'],
            &cx.saved.f[&'r'],
            cx.dy,
            &mut dx,
            &mut dw,
            &mut db,
        );
        out.grad("weight", dw);
        out.grad("bias", db);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let eps = self.eps as f32;
        let (w, b, gw, gb) = (
            cx.param("weight"),
            cx.param("bias"),
            cx.grad("weight"),
            cx.grad("bias"),
        );
        let (m, r) = (cx.saved('m'), cx.saved('r'));
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        let bwd = cx.scratch_dx(
            0,
            quote! {
            rt::norm::layernorm2d_backward(n, #c, #plane, &#x, &#w, &#m, &#r, &#dy,
                &mut ws.scratch[..len], &mut #gw, &mut #gb);
            },
        );
        (
            quote! { rt::norm::layernorm2d_forward(n, #c, #plane, #eps, &#x, &#w, &#b, &mut #y, &mut #m, &mut #r); },
            bwd,
        )
    }

    /// ONNX's `LayerNormalization` normalizes trailing axes: the channels are moved last
    /// and back.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let (last, normed) = (cx.tmp("channels_last"), cx.tmp("normalized"));
        let (w, b) = (cx.param("weight"), cx.param("bias"));
        let perm = |p: &[i64]| vec![onnx::attr_ints("perm", p)];
        cx.node("Transpose", &[x], &[&last], perm(&[0, 2, 3, 1]));
        cx.node(
            "LayerNormalization",
            &[last, w, b],
            &[&normed],
            vec![
                onnx::attr_int("axis", -1),
                onnx::attr_float("epsilon", self.eps as f32),
            ],
        );
        cx.node("Transpose", &[normed], &[y], perm(&[0, 3, 1, 2]));
        Ok(())
    }
}
