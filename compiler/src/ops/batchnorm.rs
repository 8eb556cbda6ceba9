//! `batchnorm` over the channels of an image or the features of a vector: batch statistics
//! in training (updating the running ones, PyTorch's unbiased variance), the running ones at
//! inference. γ and β are trained; the running mean and variance are state. A ReLU or
//! ReLU6 after it is applied in its normalizing pass (`epilogue`), and its gradient mask in
//! its backward passes: the activation costs no pass over memory of its own.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::act::ActFn;
use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::OnnxCx;
use super::{channels, object, Op, OpError, OpKind, ParamDecl, Reads, SavedDecl};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
    /// The activation applied with the normalization (`epilogue`).
    pub act: Option<ActFn>,
}

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "batchnorm",
    arity: Arity::One,
    params: &[
        p("eps", Kind::Positive, Float(1e-5)),
        p("momentum", Kind::Unit, Float(0.1)),
    ],
    build: |r| {
        Ok(Op::BatchNorm(BatchNorm {
            eps: r.float("eps", Kind::Positive)?,
            momentum: r.float("momentum", Kind::Unit)?,
            act: None,
        }))
    },
}];

impl OpKind for BatchNorm {
    fn name(&self) -> &'static str {
        "batchnorm"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        if x.len() != 3 && x.len() != 1 {
            return Err(OpError::new(format!(
                "`batchnorm` expects [C, H, W] or [F], found {}",
                shape_str(x)
            )));
        }
        Ok(x.clone())
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        let c = ins[0][0];
        vec![
            ParamDecl::new("weight", vec![c], 1.0),
            ParamDecl::new("bias", vec![c], 0.0),
            ParamDecl::state("running_mean", vec![c], 0.0),
            ParamDecl::state("running_var", vec![c], 1.0),
        ]
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "eps": self.eps, "momentum": self.momentum }))
    }

    fn mixes_images_in_training(&self) -> bool {
        true
    }

    fn saved(&self, ins: &[&Shape], _y: &Shape) -> Vec<SavedDecl> {
        let c = ins[0][0];
        let fixed = |letter| SavedDecl {
            fixed: true,
            ..SavedDecl::per_sample(letter, c)
        };
        vec![fixed('m'), fixed('r')]
    }

    fn reads(&self) -> Reads {
        Reads {
            input: true,
            // A fused activation's gradient mask is read from the output.
            output: self.act.is_some(),
        }
    }

    fn masks_own_gradient(&self) -> bool {
        self.act.is_some()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let (gamma, beta) = (cx.param("weight"), cx.param("bias"));
        let (rm, rv) = (cx.param("running_mean"), cx.param("running_var"));
        if cx.train() {
            let (mut rm, mut rv) = (rm.to_vec(), rv.to_vec());
            let (mut mean, mut rstd) = (vec![0.0; c], vec![0.0; c]);
            rt::norm::batchnorm_train_forward(
                cx.batch,
                c,
                plane,
                self.eps as f32,
                self.momentum as f32,
                cx.xs[0],
                gamma,
                beta,
                &mut rm,
                &mut rv,
                &mut out.y,
                &mut mean,
                &mut rstd,
            );
            out.saved.f.insert('m', mean);
            out.saved.f.insert('r', rstd);
            out.state.push(("running_mean", rm));
            out.state.push(("running_var", rv));
        } else {
            rt::norm::batchnorm_eval_forward(
                cx.batch,
                c,
                plane,
                self.eps as f32,
                cx.xs[0],
                gamma,
                beta,
                rm,
                rv,
                &mut out.y,
            );
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (c, plane) = channels(cx.shapes[0]);
        let (mut dx, mut dg, mut db) = (cx.zeros_like(0), vec![0.0; c], vec![0.0; c]);
        rt::norm::batchnorm_train_backward(
            cx.batch,
            c,
            plane,
            cx.xs[0],
            cx.param("weight"),
            &cx.saved.f[&'m'],
            &cx.saved.f[&'r'],
            cx.dy,
            &mut dx,
            &mut dg,
            &mut db,
        );
        out.grad("weight", dg);
        out.grad("bias", db);
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (c, plane) = channels(cx.shapes[0]);
        let (eps, mom) = (self.eps as f32, self.momentum as f32);
        let (gw, gb) = (cx.param("weight"), cx.param("bias"));
        let (dgw, dgb) = (cx.grad("weight"), cx.grad("bias"));
        let (rm, rv) = (cx.state("running_mean"), cx.state("running_var"));
        let (m, r) = (cx.saved('m'), cx.saved('r'));
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        let act = ActFn::epilogue_tokens(self.act);
        let fwd = quote! {
            rt::norm::batchnorm_train_forward_act(ws.peers.as_ref(), n, #c, #plane, #eps,
                #mom, &#x, &#gw, &#gb, #act, &mut #rm, &mut #rv, &mut #y, &mut #m, &mut #r);
        };
        // Without an activation the output is not read (nor kept for backward).
        let out = if self.act.is_some() {
            quote! { &#y }
        } else {
            quote! { &[] }
        };
        let bwd = cx.scratch_dx(
            0,
            quote! {
            rt::norm::batchnorm_train_backward_act(ws.peers.as_ref(), n, #c, #plane, &#x,
                #out, #act, &#gw, &#m, &#r, &#dy, &mut ws.scratch[..len], &mut #dgw, &mut #dgb);
            },
        );
        (fwd, bwd)
    }

    fn keeps_at_inference(&self) -> bool {
        false
    }

    fn emit_infer(&self, cx: &Cx) -> Option<TokenStream> {
        let (c, plane) = channels(cx.shapes[0]);
        let eps = self.eps as f32;
        let (gw, gb) = (cx.param("weight"), cx.param("bias"));
        let (rm, rv) = (cx.state("running_mean"), cx.state("running_var"));
        let (x, y) = (cx.x(0), cx.y());
        let act = ActFn::epilogue_tokens(self.act);
        Some(quote! {
            rt::norm::batchnorm_eval_forward_act(n, #c, #plane, #eps, &#x, &#gw, &#gb, #act, &#rm,
                &#rv, &mut #y);
        })
    }

    /// The inference form: ONNX's `BatchNormalization` over the running statistics.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        if self.act.is_some() {
            return Err(OpError::new(
                "a fused batchnorm (export reads the unfused graph)",
            ));
        }
        let (x, y) = cx.io();
        let ins = [
            x,
            cx.param("weight"),
            cx.param("bias"),
            cx.param("running_mean"),
            cx.param("running_var"),
        ];
        cx.node(
            "BatchNormalization",
            &ins,
            &[y],
            vec![
                onnx::attr_float("epsilon", self.eps as f32),
                onnx::attr_float("momentum", 1.0 - self.momentum as f32),
            ],
        );
        Ok(())
    }
}
