//! `linear`: a fully connected layer on a feature vector, one GEMM per batch (ReLU in its
//! epilogue when the `epilogue` pass fuses one).

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::window::weights_fit;
use super::OnnxCx;
use super::{object, product, ActFn, Op, OpError, OpKind, ParamDecl, Reads};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub out: usize,
    pub bias: bool,
    /// The activation fused into the GEMM's epilogue by the `epilogue` pass (ReLU, ReLU6).
    pub act: Option<ActFn>,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "linear",
    arity: Arity::One,
    params: &[
        p("out", Kind::Size, Required),
        p("bias", Kind::Bool, Bool(true)),
    ],
    build: |r| {
        Ok(Op::Linear(Linear {
            out: r.size("out")?,
            bias: r.bool("bias")?,
            act: None,
        }))
    },
}];

impl OpKind for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        if x.len() != 1 {
            let mut e = OpError::new(format!(
                "`linear` expects a feature vector [F], found {}",
                shape_str(x)
            ));
            if x.len() == 3 {
                e = e.help("flatten it first: `-> flatten -> linear(..)`");
            }
            return Err(e);
        }
        weights_fit(product(&[x[0], self.out]))?;
        Ok(vec![self.out])
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        ParamDecl::weight_and_bias(vec![self.out, ins[0][0]], self.bias, self.out)
    }

    fn macs(&self, ins: &[&Shape], _y: &Shape) -> u64 {
        u64::try_from(product(&[ins[0][0], self.out])).unwrap_or(u64::MAX)
    }

    fn attrs(&self) -> Map<String, Json> {
        let mut v = json!({ "out": self.out, "bias": self.bias });
        if let Some(f) = self.act {
            v["act"] = json!(f.name());
        }
        object(v)
    }

    fn is_weighted_layer(&self) -> bool {
        true
    }

    fn reads(&self) -> Reads {
        Reads {
            input: true,
            output: self.act.is_some(),
        }
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        rt::linear::linear_forward(
            cx.batch,
            cx.shapes[0][0],
            self.out,
            cx.xs[0],
            cx.param("weight"),
            cx.maybe("bias", self.bias),
            false,
            &mut out.y,
        );
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (fin, o) = (cx.shapes[0][0], self.out);
        let w = cx.param("weight");
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; o]);
        rt::linear::linear_backward_weight(
            cx.batch,
            fin,
            o,
            cx.xs[0],
            cx.dy,
            &mut dw,
            Some(&mut db),
        );
        if cx.wants[0] {
            let mut dx = cx.zeros_like(0);
            rt::linear::linear_backward_data(cx.batch, fin, o, w, cx.dy, &mut dx);
            out.dx(0, dx);
        }
        out.grad("weight", dw);
        if self.bias {
            out.grad("bias", db);
        }
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (fin, o, act) = (cx.shapes[0][0], self.out, ActFn::epilogue_tokens(self.act));
        let (wt, gw) = (cx.param("weight"), cx.grad("weight"));
        let (b, db) = cx.bias_args(self.bias);
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        let data = cx.add_dx(0, |dx| {
            quote! { rt::linear::linear_backward_data_acc(n, #fin, #o, &#wt, &#dy, &mut #dx); }
        });
        (
            quote! { rt::linear::linear_forward_act(n, #fin, #o, &#x, &#wt, #b, #act, &mut #y); },
            quote! {
                rt::linear::linear_backward_weight(n, #fin, #o, &#x, &#dy, &mut #gw, #db);
                #data
            },
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        if self.act.is_some() {
            return Err(OpError::new(
                "a fused linear (export reads the unfused graph)",
            ));
        }
        let (x, y) = cx.io();
        let mut ins = vec![x, cx.param("weight")];
        if self.bias {
            ins.push(cx.param("bias"));
        }
        cx.node("Gemm", &ins, &[y], vec![onnx::attr_int("transB", 1)]);
        Ok(())
    }
}
