//! `dropout` (each element) and `stochastic_depth` (each sample's whole residual branch):
//! inverted dropping in a training step that draws (kept values scaled by `1/(1-p)`, the
//! mask kept for backward), the identity at inference and in `netc run --grads` unless
//! `--dropout` is given. Generated code draws from the workspace's generator
//! (`Workspace::dropout`, seeded by the trainer each step); the interpreter from the one
//! its caller passes.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, ParamDefault::*};
use super::OnnxCx;
use super::{elems, object, Op, OpError, OpKind, Reads, SavedDecl};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of dropping.
    pub p: f64,
    /// Drops whole samples (`stochastic_depth`) rather than elements.
    pub per_sample: bool,
}

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "dropout",
        arity: Arity::One,
        params: &[p("p", Kind::Prob, Required)],
        build: |r| {
            Ok(Op::Dropout(Dropout {
                p: r.float("p", Kind::Prob)?,
                per_sample: false,
            }))
        },
    },
    OpSpec {
        name: "stochastic_depth",
        arity: Arity::One,
        params: &[p("p", Kind::Prob, Required)],
        build: |r| {
            Ok(Op::Dropout(Dropout {
                p: r.float("p", Kind::Prob)?,
                per_sample: true,
            }))
        },
    },
];

impl OpKind for Dropout {
    fn name(&self) -> &'static str {
        if self.per_sample {
            "stochastic_depth"
        } else {
            "dropout"
        }
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(ins[0].clone())
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "p": self.p }))
    }

    /// The mask: a scale per element, or per sample.
    fn saved(&self, _ins: &[&Shape], y: &Shape) -> Vec<SavedDecl> {
        let per_sample = if self.per_sample { 1 } else { elems(y) };
        vec![SavedDecl::per_sample('k', per_sample)]
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    /// Inference draws no mask.
    fn keeps_at_inference(&self) -> bool {
        false
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let p = self.p as f32;
        match out.rng.as_deref_mut().filter(|_| cx.drop) {
            Some(rng) => {
                let mut mask = vec![
                    0.0;
                    if self.per_sample {
                        cx.batch
                    } else {
                        out.y.len()
                    }
                ];
                if self.per_sample {
                    rt::act::stochastic_depth_forward(
                        p, rng, cx.batch, cx.xs[0], &mut out.y, &mut mask,
                    );
                } else {
                    rt::act::dropout_forward(p, rng, cx.xs[0], &mut out.y, &mut mask);
                }
                out.saved.f.insert('k', mask);
            }
            None => out.y.copy_from_slice(cx.xs[0]),
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let mut dx = cx.zeros_like(0);
        match cx.saved.f.get(&'k') {
            Some(mask) if self.per_sample => {
                rt::act::stochastic_depth_backward(cx.batch, mask, cx.dy, &mut dx)
            }
            Some(mask) => rt::act::dropout_backward(mask, cx.dy, &mut dx),
            None => dx.copy_from_slice(cx.dy),
        }
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let p = self.p as f32;
        let (x, y, dy, k) = (cx.x(0), cx.y(), cx.dy(), cx.saved('k'));
        // Stochastic depth also takes the batch (one draw per sample).
        let (fwd, bwd) = if self.per_sample {
            (
                quote! { rt::act::stochastic_depth_forward(#p, rng, n, &#x, &mut #y, &mut #k) },
                quote! { rt::act::stochastic_depth_backward(n, &#k, &#dy, &mut ws.scratch[..len]); },
            )
        } else {
            (
                quote! { rt::act::dropout_forward(#p, rng, &#x, &mut #y, &mut #k) },
                quote! { rt::act::dropout_backward(&#k, &#dy, &mut ws.scratch[..len]); },
            )
        };
        (
            // A training step that does not draw keeps every value: a mask of ones for backward.
            quote! {
                match ws.dropout.as_mut() {
                    Some(rng) => #fwd,
                    None => {
                        #y.copy_from_slice(&#x);
                        #k.fill(1.0);
                    }
                }
            },
            cx.accumulate_dx(0, bwd),
        )
    }

    /// The identity: a copy.
    fn emit_infer(&self, cx: &Cx) -> Option<TokenStream> {
        let (x, y) = (cx.x(0), cx.y());
        Some(quote! { #y.copy_from_slice(&#x); })
    }

    /// The identity at inference: no node.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        cx.alias();
        Ok(())
    }
}
