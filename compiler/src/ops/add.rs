//! `add`: the elementwise sum of two or more values of one shape (a residual connection).

use proc_macro2::TokenStream;
use quote::quote;

use netc_runtime as rt;

use super::args::{Arity, OpSpec};
use super::OnnxCx;
use super::{Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct Add;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "add",
    arity: Arity::Many,
    params: &[],
    build: |_| Ok(Op::Add(Add)),
}];

impl OpKind for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        for (i, y) in ins.iter().enumerate().skip(1) {
            if *y != x {
                return Err(OpError::new(format!(
                    "`add` needs inputs of one shape; input 1 is {} but input {} is {}",
                    shape_str(x),
                    i + 1,
                    shape_str(y)
                ))
                .help("project the shortcut with a 1×1 conv of matching channels and stride"));
            }
        }
        Ok(x.clone())
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        rt::tensor::add_forward(&cx.xs, &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        for i in 0..cx.xs.len() {
            out.dx(i, cx.dy.to_vec());
        }
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let xs: Vec<TokenStream> = (0..cx.ins.len()).map(|i| cx.x(i)).collect();
        let bwd: Vec<TokenStream> = (0..cx.ins.len()).map(|i| cx.pass_dx(i)).collect();
        let y = cx.y();
        (
            quote! { rt::tensor::add_forward(&[#(&#xs[..]),*], &mut #y); },
            quote! { #(#bwd)* },
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (ins, y) = (cx.ins.clone(), cx.y.clone());
        let op = if ins.len() == 2 { "Add" } else { "Sum" };
        cx.node(op, &ins, &[y], vec![]);
        Ok(())
    }
}
