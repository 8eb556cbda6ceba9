//! `groupnorm`: group normalization (`nn.GroupNorm`): each sample's channels in `groups`
//! consecutive groups, each normalized over its channels and plane; γ and β per channel.
//! The same in training and inference: no running statistics.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, ParamDecl, SavedDecl};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct GroupNorm {
    pub groups: usize,
    pub eps: f64,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "groupnorm",
    arity: Arity::One,
    params: &[
        p("groups", Kind::Size, Required),
        p("eps", Kind::Positive, Float(1e-5)),
    ],
    build: |r| {
        Ok(Op::GroupNorm(GroupNorm {
            groups: r.size("groups")?,
            eps: r.float("eps", Kind::Positive)?,
        }))
    },
}];

impl OpKind for GroupNorm {
    fn name(&self) -> &'static str {
        "groupnorm"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        if x.len() != 3 {
            return Err(OpError::new(format!(
                "`groupnorm` expects an image [C, H, W], found {}",
                shape_str(x)
            )));
        }
        if !x[0].is_multiple_of(self.groups) {
            return Err(OpError::new(format!(
                "`groups={}` must divide the input's {} channels",
                self.groups, x[0]
            ))
            .at("groups"));
        }
        Ok(x.clone())
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        let c = ins[0][0];
        vec![
            ParamDecl::new("weight", vec![c], 1.0),
            ParamDecl::new("bias", vec![c], 0.0),
        ]
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "groups": self.groups, "eps": self.eps }))
    }

    /// The mean and reciprocal deviation of each group of each sample.
    fn saved(&self, _ins: &[&Shape], _y: &Shape) -> Vec<SavedDecl> {
        vec![
            SavedDecl::per_sample('m', self.groups),
            SavedDecl::per_sample('r', self.groups),
        ]
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let stats = cx.batch * self.groups;
        let (mut mean, mut rstd) = (vec![0.0; stats], vec![0.0; stats]);
        rt::norm::groupnorm_forward(
            cx.batch,
            c,
            plane,
            self.groups,
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
        rt::norm::groupnorm_backward(
            cx.batch,
            c,
            plane,
            self.groups,
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
        let (groups, eps) = (self.groups, self.eps as f32);
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
            rt::norm::groupnorm_backward(n, #c, #plane, #groups, &#x, &#w, &#m, &#r, &#dy,
                &mut ws.scratch[..len], &mut #gw, &mut #gb);
            },
        );
        (
            quote! { rt::norm::groupnorm_forward(n, #c, #plane, #groups, #eps, &#x, &#w, &#b, &mut #y, &mut #m, &mut #r); },
            bwd,
        )
    }

    /// PyTorch's own decomposition (ONNX's `GroupNormalization` came in opset 18 and changed
    /// meaning in 21): the groups as the channels of an `InstanceNormalization` without
    /// scale, then γ and β per channel.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let shape = cx.shapes[0];
        let g = self.groups;
        let grouped = cx.i64s("grouped", &[0, g as i64, -1]);
        let back: Vec<i64> = std::iter::once(0)
            .chain(shape.iter().map(|&d| d as i64))
            .collect();
        let back = cx.i64s("shape", &back);
        let ones = cx.f32s("ones", &[g], &vec![1.0; g]);
        let zeros = cx.f32s("zeros", &[g], &vec![0.0; g]);
        let mut per_channel = vec![1; shape.len()];
        per_channel[0] = shape[0];
        let w = cx.param_as("weight", &per_channel);
        let b = cx.param_as("bias", &per_channel);
        let [rows, normed, whole, scaled] =
            ["groups", "normalized", "ungrouped", "scaled"].map(|l| cx.tmp(l));
        cx.node("Reshape", &[x, grouped], &[&rows], vec![]);
        cx.node(
            "InstanceNormalization",
            &[rows, ones, zeros],
            &[&normed],
            vec![onnx::attr_float("epsilon", self.eps as f32)],
        );
        cx.node("Reshape", &[normed, back], &[&whole], vec![]);
        cx.node("Mul", &[whole, w], &[&scaled], vec![]);
        cx.node("Add", &[scaled, b], &[y], vec![]);
        Ok(())
    }
}
