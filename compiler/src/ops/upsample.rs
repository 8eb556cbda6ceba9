//! `upsample`: nearest or bilinear upsampling by an integer factor (`F.interpolate` with
//! `scale_factor`; bilinear with or without `align_corners`), as in U-Net decoders.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;
use rt::upsample::{Upsample2d, UpsampleMode};

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::{checked_shape, expect_image};
use super::OnnxCx;
use super::{object, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    pub scale: usize,
    pub bilinear: bool,
    pub align_corners: bool,
}

const MODE: Kind = Kind::Choice(&["nearest", "bilinear"]);

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "upsample",
    arity: Arity::One,
    params: &[
        p("scale", Kind::Size, Int(2)),
        p("mode", MODE, Str("nearest")),
        p("align_corners", Kind::Bool, Bool(false)),
    ],
    build: |r| {
        let bilinear = r.choice("mode", MODE)? == "bilinear";
        let align_corners = r.bool("align_corners")?;
        if align_corners && !bilinear {
            return Err(OpError::new(
                "`align_corners` applies to `mode=\"bilinear\"` only (as in PyTorch)",
            )
            .at("align_corners"));
        }
        Ok(Op::Upsample(Upsample {
            scale: r.size("scale")?,
            bilinear,
            align_corners,
        }))
    },
}];

impl Upsample {
    fn geometry(&self, x: &[usize]) -> Upsample2d {
        Upsample2d {
            c: x[0],
            h: x[1],
            w: x[2],
            s: self.scale,
            mode: if self.bilinear {
                UpsampleMode::Bilinear {
                    align_corners: self.align_corners,
                }
            } else {
                UpsampleMode::Nearest
            },
        }
    }
}

impl OpKind for Upsample {
    fn name(&self) -> &'static str {
        "upsample"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        expect_image("upsample", x)?;
        let up = |d: usize| d.saturating_mul(self.scale);
        checked_shape(vec![x[0], up(x[1]), up(x[2])])
    }

    fn attrs(&self) -> Map<String, Json> {
        let mode = if self.bilinear { "bilinear" } else { "nearest" };
        object(json!({ "scale": self.scale, "mode": mode, "align_corners": self.align_corners }))
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let u = self.geometry(cx.shapes[0]);
        rt::upsample::upsample2d_forward(&u, cx.batch, cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let u = self.geometry(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        rt::upsample::upsample2d_backward(&u, cx.batch, cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn geometry(&self, cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        let x = cx.shapes[0];
        let (c, h, w, s) = (x[0], x[1], x[2], self.scale);
        let mode = if self.bilinear {
            let a = self.align_corners;
            quote! { rt::upsample::UpsampleMode::Bilinear { align_corners: #a } }
        } else {
            quote! { rt::upsample::UpsampleMode::Nearest }
        };
        Some((
            quote! { rt::upsample::Upsample2d },
            quote! { rt::upsample::Upsample2d { c: #c, h: #h, w: #w, s: #s, mode: #mode } },
        ))
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let geo = cx.geo();
        let (tx, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::upsample::upsample2d_forward(&#geo, n, &#tx, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! { rt::upsample::upsample2d_backward(&#geo, n, &#dy, &mut ws.scratch[..len]); },
            ),
        )
    }

    /// `Resize` by the factor: nearest as PyTorch's (`asymmetric` coordinates, `floor`),
    /// bilinear with `align_corners` or PyTorch's half-pixel centres.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let s = self.scale as f32;
        let scales = cx.f32s("scales", &[4], &[1.0, 1.0, s, s]);
        let attrs = if self.bilinear {
            let coords = if self.align_corners {
                "align_corners"
            } else {
                "pytorch_half_pixel"
            };
            vec![
                onnx::attr_string("mode", "linear"),
                onnx::attr_string("coordinate_transformation_mode", coords),
            ]
        } else {
            vec![
                onnx::attr_string("mode", "nearest"),
                onnx::attr_string("coordinate_transformation_mode", "asymmetric"),
                onnx::attr_string("nearest_mode", "floor"),
            ]
        };
        cx.node("Resize", &[x, String::new(), scales], &[y], attrs);
        Ok(())
    }
}
