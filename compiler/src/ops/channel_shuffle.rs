//! `channel_shuffle`: ShuffleNet's permutation of channels, `groups × C/groups` transposed
//! to `C/groups × groups` (torchvision's `channel_shuffle`).

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::expect_image;
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct ChannelShuffle {
    pub groups: usize,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "channel_shuffle",
    arity: Arity::One,
    params: &[p("groups", Kind::Size, Required)],
    build: |r| {
        Ok(Op::ChannelShuffle(ChannelShuffle {
            groups: r.size("groups")?,
        }))
    },
}];

impl OpKind for ChannelShuffle {
    fn name(&self) -> &'static str {
        "channel_shuffle"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        expect_image("channel_shuffle", x)?;
        if !x[0].is_multiple_of(self.groups) {
            return Err(OpError::new(format!(
                "`groups={}` must divide the input's {} channels",
                self.groups, x[0]
            ))
            .at("groups"));
        }
        Ok(x.clone())
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "groups": self.groups }))
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        rt::tensor::channel_shuffle_forward(cx.batch, c, self.groups, plane, cx.xs[0], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        rt::tensor::channel_shuffle_backward(cx.batch, c, self.groups, plane, cx.dy, &mut dx);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let groups = self.groups;
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        (
            quote! { rt::tensor::channel_shuffle_forward(n, #c, #groups, #plane, &#x, &mut #y); },
            cx.accumulate_dx(
                0,
                quote! { rt::tensor::channel_shuffle_backward(n, #c, #groups, #plane, &#dy, &mut ws.scratch[..len]); },
            ),
        )
    }

    /// ONNX has no channel shuffle: `groups × C/groups` reshaped, transposed and flattened
    /// back, as PyTorch exports torchvision's.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (x, y) = cx.io();
        let s = cx.shapes[0];
        let g = self.groups as i64;
        let (c, h, w) = (s[0] as i64, s[1] as i64, s[2] as i64);
        let split = cx.i64s("split", &[0, g, c / g, h, w]);
        let back = cx.i64s("shape", &[0, c, h, w]);
        let (groups, swapped) = (cx.tmp("groups"), cx.tmp("transposed"));
        cx.node("Reshape", &[x, split], &[&groups], vec![]);
        cx.node(
            "Transpose",
            &[groups],
            &[&swapped],
            vec![onnx::attr_ints("perm", &[0, 2, 1, 3, 4])],
        );
        cx.node("Reshape", &[swapped, back], &[y], vec![]);
        Ok(())
    }
}
