//! `lrn`: local response normalization across channels, PyTorch's convention (the sum of
//! squares over `size` neighbouring channels, scaled by `alpha / size`).

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::expect_image;
use super::OnnxCx;
use super::{channels, elems, object, Op, OpError, OpKind, SavedDecl};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "lrn",
    arity: Arity::One,
    params: &[
        p("size", Kind::Size, Int(5)),
        p("alpha", Kind::Float, Float(1e-4)),
        p("beta", Kind::Float, Float(0.75)),
        p("k", Kind::Float, Float(1.0)),
    ],
    build: |r| {
        Ok(Op::Lrn(Lrn {
            size: r.size("size")?,
            alpha: r.float("alpha", Kind::Float)?,
            beta: r.float("beta", Kind::Float)?,
            k: r.float("k", Kind::Float)?,
        }))
    },
}];

impl OpKind for Lrn {
    fn name(&self) -> &'static str {
        "lrn"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        expect_image("lrn", ins[0])?;
        Ok(ins[0].clone())
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k }))
    }

    /// The denominators, for backward.
    fn saved(&self, _ins: &[&Shape], y: &Shape) -> Vec<SavedDecl> {
        vec![SavedDecl::per_sample('s', elems(y))]
    }

    /// One image of scratch: for backward, and for an image's denominators at inference.
    fn col(&self, ins: &[&Shape], _y: &Shape) -> usize {
        elems(ins[0])
    }

    /// Inference keeps no denominators (see `emit_infer`).
    fn keeps_at_inference(&self) -> bool {
        false
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let mut scale = vec![0.0; out.y.len()];
        rt::norm::lrn_forward(
            cx.batch,
            c,
            plane,
            self.size,
            self.alpha as f32,
            self.beta as f32,
            self.k as f32,
            cx.xs[0],
            &mut out.y,
            &mut scale,
        );
        if cx.train() {
            out.saved.f.insert('s', scale);
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        let mut scratch = vec![0.0; c * plane];
        rt::norm::lrn_backward(
            cx.batch,
            c,
            plane,
            self.size,
            self.alpha as f32,
            self.beta as f32,
            cx.xs[0],
            &cx.saved.f[&'s'],
            cx.dy,
            &mut dx,
            &mut scratch,
        );
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let (size, a, b, k) = (
            self.size,
            self.alpha as f32,
            self.beta as f32,
            self.k as f32,
        );
        let (x, y, dy, s) = (cx.x(0), cx.y(), cx.dy(), cx.saved('s'));
        let cp = c * plane;
        (
            quote! { rt::norm::lrn_forward(n, #c, #plane, #size, #a, #b, #k, &#x, &mut #y, &mut #s); },
            cx.accumulate_dx(
                0,
                quote! {
                    rt::norm::lrn_backward(n, #c, #plane, #size, #a, #b, &#x, &#s, &#dy,
                        &mut ws.scratch[..len], &mut ws.col[..#cp]);
                },
            ),
        )
    }

    /// An image at a time, its denominators in the one image of `col`: the batch's would
    /// be a buffer as large as the output, which only backward reads.
    fn emit_infer(&self, cx: &Cx) -> Option<TokenStream> {
        let (c, plane) = channels(cx.shapes[0]);
        let (size, a, b, k) = (
            self.size,
            self.alpha as f32,
            self.beta as f32,
            self.k as f32,
        );
        let (x, y, cp) = (cx.x(0), cx.y(), c * plane);
        Some(quote! {
            for i in 0..n {
                let at = i * #cp..(i + 1) * #cp;
                rt::norm::lrn_forward(1, #c, #plane, #size, #a, #b, #k, &#x[at.clone()], &mut #y[at],
                    &mut ws.col[..#cp]);
            }
        })
    }

    /// ONNX's `LRN` sums the same window as PyTorch's when `size` is odd. For an even size
    /// PyTorch's window has one more channel before than after, ONNX's one more after: the
    /// mean of squares is then pooled explicitly (channels as the rows of a plane).
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        if self.size % 2 == 1 {
            cx.node(
                "LRN",
                &[x],
                &[y],
                vec![
                    onnx::attr_int("size", self.size as i64),
                    onnx::attr_float("alpha", self.alpha as f32),
                    onnx::attr_float("beta", self.beta as f32),
                    onnx::attr_float("bias", self.k as f32),
                ],
            );
            return Ok(());
        }
        let s = cx.shapes[0];
        let (c, plane) = (s[0] as i64, (s[1] * s[2]) as i64);
        let (before, after) = ((self.size / 2) as i64, ((self.size - 1) / 2) as i64);
        let rows = cx.i64s("rows", &[0, 1, c, plane]);
        let pads = cx.i64s("pads", &[0, 0, before, 0, 0, 0, after, 0]);
        let shape = cx.i64s("shape", &[0, c, s[1] as i64, s[2] as i64]);
        let alpha = cx.f32s("alpha", &[], &[self.alpha as f32]);
        let k = cx.f32s("k", &[], &[self.k as f32]);
        let beta = cx.f32s("beta", &[], &[self.beta as f32]);
        let t = [
            "squares",
            "rows_of_squares",
            "padded",
            "means",
            "mean_squares",
            "scaled",
            "base",
            "denominator",
        ]
        .map(|l| cx.tmp(l));
        cx.node("Mul", &[x.clone(), x.clone()], &[&t[0]], vec![]);
        cx.node("Reshape", &[t[0].clone(), rows], &[&t[1]], vec![]);
        cx.node("Pad", &[t[1].clone(), pads], &[&t[2]], vec![]);
        cx.node(
            "AveragePool",
            &[&t[2]],
            &[&t[3]],
            vec![onnx::attr_ints("kernel_shape", &[self.size as i64, 1])],
        );
        cx.node("Reshape", &[t[3].clone(), shape], &[&t[4]], vec![]);
        cx.node("Mul", &[t[4].clone(), alpha], &[&t[5]], vec![]);
        cx.node("Add", &[t[5].clone(), k], &[&t[6]], vec![]);
        cx.node("Pow", &[t[6].clone(), beta], &[&t[7]], vec![]);
        cx.node("Div", &[x, t[7].clone()], &[y], vec![]);
        Ok(())
    }
}
