//! `concat`: values joined along channels (every input the same H, W). Inputs that the
//! `concat_in_place` pass wrote straight into their channels leave nothing to copy.

use proc_macro2::TokenStream;
use quote::quote;

use netc_runtime as rt;

use super::args::{Arity, OpSpec};
use super::window::checked_shape;
use super::OnnxCx;
use super::{channels, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Concat;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "concat",
    arity: Arity::Many,
    params: &[],
    build: |_| Ok(Op::Concat(Concat)),
}];

impl OpKind for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        let rank = x.len();
        for (i, y) in ins.iter().enumerate().skip(1) {
            let same = y.len() == rank && (rank != 3 || y[1..] == x[1..]);
            if !same {
                return Err(OpError::new(format!(
                    "`concat` joins along channels, so every input needs the same H and W; input 1 is {} but input {} is {}",
                    shape_str(x),
                    i + 1,
                    shape_str(y)
                ))
                .help("check the strides and padding of the branches"));
            }
        }
        let mut out = x.clone();
        out[0] = ins.iter().map(|s| s[0]).sum();
        checked_shape(out)
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (cy, plane) = channels(cx.y_shape);
        let mut c0 = 0;
        for (x, shape) in cx.xs.iter().zip(&cx.shapes) {
            rt::tensor::concat_channels(cx.batch, plane, shape[0], c0, cy, x, &mut out.y);
            c0 += shape[0];
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (cy, plane) = channels(cx.y_shape);
        let mut c0 = 0;
        for (i, shape) in cx.shapes.iter().enumerate() {
            let mut dx = cx.zeros_like(i);
            rt::tensor::slice_channels(cx.batch, plane, shape[0], c0, cy, cx.dy, &mut dx);
            out.dx(i, dx);
            c0 += shape[0];
        }
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (cy, plane) = channels(cx.y_shape);
        let (y, dy) = (cx.y(), cx.dy());
        let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
        let mut c0 = 0usize;
        for (i, &j) in cx.ins.iter().enumerate() {
            let c = cx.shapes[i][0];
            // A layer that wrote its slice in place leaves nothing to copy.
            if !cx.g.slots.contains_key(&j) {
                let x = cx.x(i);
                fwd.push(
                    quote! { rt::tensor::concat_channels(n, #plane, #c, #c0, #cy, &#x, &mut #y); },
                );
                bwd.push(cx.accumulate_dx(
                    i,
                    quote! { rt::tensor::slice_channels(n, #plane, #c, #c0, #cy, &#dy, &mut ws.scratch[..len]); },
                ));
            }
            c0 += c;
        }
        (quote! { #(#fwd)* }, quote! { #(#bwd)* })
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (ins, y) = (cx.ins.clone(), cx.y.clone());
        cx.node("Concat", &ins, &[y], vec![onnx::attr_int("axis", 1)]);
        Ok(())
    }
}
