//! The pointwise activations: `relu`, `sigmoid`, `tanh`, `leaky_relu`, `relu6`, `hardtanh`,
//! `hardswish`, `hardsigmoid`, `silu`, `mish`, `gelu`, `elu`. They share everything but
//! their function: one runtime kernel over the function's `(f, df)` pair
//! (`rt::act::Pointwise`), forward and backward. Those whose derivative follows from their
//! output may run in place on their input's buffer (the `inplace` pass). Adding one is a
//! variant of [`ActFn`], its spec in [`SPECS`] and its runtime function.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, Param, ParamDefault::*, Reader};
use super::OnnxCx;
use super::{object, Op, OpError, OpKind, Reads};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use netc_onnx::build as onnx;

/// A pointwise function and its arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActFn {
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu {
        slope: f64,
    },
    Relu6,
    Hardtanh {
        min: f64,
        max: f64,
    },
    Hardswish,
    Hardsigmoid,
    Silu,
    Mish,
    /// `approximate="tanh"` when `tanh`, else the erf form.
    Gelu {
        tanh: bool,
    },
    Elu {
        alpha: f64,
    },
}

/// A pointwise activation layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Act {
    pub f: ActFn,
}

const GELU: Kind = Kind::Choice(&["none", "tanh"]);

const fn spec(name: &'static str, params: &'static [Param], build: Build) -> OpSpec {
    OpSpec {
        name,
        arity: Arity::One,
        params,
        build,
    }
}

type Build = fn(&Reader) -> Result<Op, OpError>;

fn act(f: ActFn) -> Result<Op, OpError> {
    Ok(Op::Act(Act { f }))
}

/// In docs/language.md's order.
pub const SPECS: &[OpSpec] = &[
    spec("relu", &[], |_| act(ActFn::Relu)),
    spec("sigmoid", &[], |_| act(ActFn::Sigmoid)),
    spec("tanh", &[], |_| act(ActFn::Tanh)),
    spec("leaky_relu", &[p("slope", Kind::Float, Float(0.01))], |r| {
        act(ActFn::LeakyRelu {
            slope: r.float("slope", Kind::Float)?,
        })
    }),
    spec("relu6", &[], |_| act(ActFn::Relu6)),
    spec(
        "hardtanh",
        &[
            p("min", Kind::Float, Float(-1.0)),
            p("max", Kind::Float, Float(1.0)),
        ],
        |r| {
            let (min, max) = (r.float("min", Kind::Float)?, r.float("max", Kind::Float)?);
            if min >= max {
                return Err(OpError::new(format!(
                    "`hardtanh` needs `min` < `max`, found min={min} max={max}"
                ))
                .at("max"));
            }
            act(ActFn::Hardtanh { min, max })
        },
    ),
    spec("hardswish", &[], |_| act(ActFn::Hardswish)),
    spec("hardsigmoid", &[], |_| act(ActFn::Hardsigmoid)),
    spec("silu", &[], |_| act(ActFn::Silu)),
    spec("mish", &[], |_| act(ActFn::Mish)),
    spec("gelu", &[p("approximate", GELU, Str("none"))], |r| {
        act(ActFn::Gelu {
            tanh: r.choice("approximate", GELU)? == "tanh",
        })
    }),
    spec("elu", &[p("alpha", Kind::Float, Float(1.0))], |r| {
        act(ActFn::Elu {
            alpha: r.float("alpha", Kind::Float)?,
        })
    }),
];

/// Runs `$body` with `$k` bound to the runtime's function for `$f` (each arm its own type).
macro_rules! with_kernel {
    ($f:expr, |$k:ident| $body:expr) => {
        match $f {
            ActFn::Relu => {
                let $k = rt::act::Relu;
                $body
            }
            ActFn::Sigmoid => {
                let $k = rt::act::Sigmoid;
                $body
            }
            ActFn::Tanh => {
                let $k = rt::act::Tanh;
                $body
            }
            ActFn::LeakyRelu { slope } => {
                let $k = rt::act::LeakyRelu {
                    slope: slope as f32,
                };
                $body
            }
            ActFn::Relu6 => {
                let $k = rt::act::Relu6;
                $body
            }
            ActFn::Hardtanh { min, max } => {
                let $k = rt::act::Hardtanh {
                    min: min as f32,
                    max: max as f32,
                };
                $body
            }
            ActFn::Hardswish => {
                let $k = rt::act::Hardswish;
                $body
            }
            ActFn::Hardsigmoid => {
                let $k = rt::act::Hardsigmoid;
                $body
            }
            ActFn::Silu => {
                let $k = rt::act::Silu;
                $body
            }
            ActFn::Mish => {
                let $k = rt::act::Mish;
                $body
            }
            ActFn::Gelu { tanh: false } => {
                let $k = rt::act::Gelu;
                $body
            }
            ActFn::Gelu { tanh: true } => {
                let $k = rt::act::GeluTanh;
                $body
            }
            ActFn::Elu { alpha } => {
                let $k = rt::act::Elu {
                    alpha: alpha as f32,
                };
                $body
            }
        }
    };
}

impl ActFn {
    /// The runtime's function as an expression of generated code.
    pub fn kernel(self) -> TokenStream {
        match self {
            ActFn::Relu => quote! { rt::act::Relu },
            ActFn::Sigmoid => quote! { rt::act::Sigmoid },
            ActFn::Tanh => quote! { rt::act::Tanh },
            ActFn::LeakyRelu { slope } => {
                let slope = slope as f32;
                quote! { rt::act::LeakyRelu { slope: #slope } }
            }
            ActFn::Relu6 => quote! { rt::act::Relu6 },
            ActFn::Hardtanh { min, max } => {
                let (min, max) = (min as f32, max as f32);
                quote! { rt::act::Hardtanh { min: #min, max: #max } }
            }
            ActFn::Hardswish => quote! { rt::act::Hardswish },
            ActFn::Hardsigmoid => quote! { rt::act::Hardsigmoid },
            ActFn::Silu => quote! { rt::act::Silu },
            ActFn::Mish => quote! { rt::act::Mish },
            ActFn::Gelu { tanh: false } => quote! { rt::act::Gelu },
            ActFn::Gelu { tanh: true } => quote! { rt::act::GeluTanh },
            ActFn::Elu { alpha } => {
                let alpha = alpha as f32;
                quote! { rt::act::Elu { alpha: #alpha } }
            }
        }
    }

    /// Whether a GEMM's epilogue can apply it (the runtime's `gemm::Act`): ReLU and ReLU6,
    /// clamps whose derivative the output decides, so backward needs no pre-activation.
    pub fn in_epilogue(self) -> bool {
        matches!(self, ActFn::Relu | ActFn::Relu6)
    }

    /// The runtime's epilogue for an optional fused activation, as generated code.
    pub fn epilogue_tokens(act: Option<ActFn>) -> TokenStream {
        match act {
            None => quote! { rt::gemm::Act::None },
            Some(ActFn::Relu) => quote! { rt::gemm::Act::Relu },
            Some(ActFn::Relu6) => quote! { rt::gemm::Act::Relu6 },
            Some(f) => unreachable!("{f:?} is not applied in an epilogue"),
        }
    }

    /// `x ← f(x)`, in the interpreter.
    pub fn forward_inplace(self, x: &mut [f32]) {
        with_kernel!(self, |k| rt::act::forward_inplace(k, x))
    }

    /// `dy ← dy·f'(y)`, for a function whose derivative its output decides.
    pub fn backward_inplace(self, y: &[f32], dy: &mut [f32]) {
        with_kernel!(self, |k| rt::act::backward_inplace(k, y, dy))
    }

    /// The display name of the op (`relu6`).
    pub fn name(self) -> &'static str {
        Act { f: self }.name()
    }

    /// Whether the derivative follows from the output alone (the runtime's
    /// `Pointwise::FROM_OUTPUT`): then the activation may overwrite its input.
    pub fn from_output(self) -> bool {
        with_kernel!(self, |k| from_output_of(k))
    }
}

fn from_output_of<F: rt::act::Pointwise>(_: F) -> bool {
    F::FROM_OUTPUT
}

impl OpKind for Act {
    fn name(&self) -> &'static str {
        match self.f {
            ActFn::Relu => "relu",
            ActFn::Sigmoid => "sigmoid",
            ActFn::Tanh => "tanh",
            ActFn::LeakyRelu { .. } => "leaky_relu",
            ActFn::Relu6 => "relu6",
            ActFn::Hardtanh { .. } => "hardtanh",
            ActFn::Hardswish => "hardswish",
            ActFn::Hardsigmoid => "hardsigmoid",
            ActFn::Silu => "silu",
            ActFn::Mish => "mish",
            ActFn::Gelu { .. } => "gelu",
            ActFn::Elu { .. } => "elu",
        }
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        Ok(ins[0].clone())
    }

    fn attrs(&self) -> Map<String, Json> {
        object(match self.f {
            ActFn::LeakyRelu { slope } => json!({ "slope": slope }),
            ActFn::Hardtanh { min, max } => json!({ "min": min, "max": max }),
            ActFn::Gelu { tanh } => json!({ "approximate": if tanh { "tanh" } else { "none" } }),
            ActFn::Elu { alpha } => json!({ "alpha": alpha }),
            _ => json!({}),
        })
    }

    /// The derivative reads the output (`Pointwise::FROM_OUTPUT`) or the input, never both.
    fn reads(&self) -> Reads {
        let out = self.f.from_output();
        Reads {
            input: !out,
            output: out,
        }
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        with_kernel!(self.f, |k| rt::act::forward(k, cx.xs[0], &mut out.y))
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let mut dx = cx.zeros_like(0);
        with_kernel!(self.f, |k| rt::act::backward(
            k, cx.xs[0], cx.y, cx.dy, &mut dx
        ));
        out.dx(0, dx);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (k, x, y, dy) = (self.f.kernel(), cx.x(0), cx.y(), cx.dy());
        // Backward reads what `reads` says, the output or the input (which then stands in
        // for the output the derivative does not read), so the other may be gone.
        let at = if self.f.from_output() { &y } else { &x };
        let bwd = quote! { rt::act::backward(#k, &#at, &#at, &#dy, &mut ws.scratch[..len]); };
        (
            quote! { rt::act::forward(#k, &#x, &mut #y); },
            cx.accumulate_dx(0, bwd),
        )
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        onnx_act(self.f, cx);
        Ok(())
    }
}

/// The nodes of activation `f` from `cx.ins[0]` to `cx.y`: ONNX's op where opset 17 has it,
/// PyTorch's decomposition where it does not (SiLU, Mish, GELU), and `Clip` for the clamps.
fn onnx_act(f: ActFn, cx: &mut OnnxCx) {
    let (x, y) = cx.io();
    let one = |cx: &mut OnnxCx, op: &str, attrs| cx.node(op, &[&x], &[&y], attrs);
    match f {
        ActFn::Relu => one(cx, "Relu", vec![]),
        ActFn::Sigmoid => one(cx, "Sigmoid", vec![]),
        ActFn::Tanh => one(cx, "Tanh", vec![]),
        ActFn::LeakyRelu { slope } => one(
            cx,
            "LeakyRelu",
            vec![onnx::attr_float("alpha", slope as f32)],
        ),
        ActFn::Elu { alpha } => one(cx, "Elu", vec![onnx::attr_float("alpha", alpha as f32)]),
        ActFn::Hardswish => one(cx, "HardSwish", vec![]),
        ActFn::Hardsigmoid => one(
            cx,
            "HardSigmoid",
            vec![
                onnx::attr_float("alpha", 1.0 / 6.0),
                onnx::attr_float("beta", 0.5),
            ],
        ),
        ActFn::Relu6 => clip(cx, 0.0, 6.0),
        ActFn::Hardtanh { min, max } => clip(cx, min as f32, max as f32),
        ActFn::Silu => {
            let s = cx.tmp("sigmoid");
            cx.node("Sigmoid", &[&x], &[&s], vec![]);
            cx.node("Mul", &[x, s], &[y], vec![]);
        }
        ActFn::Mish => {
            let [sp, t] = ["softplus", "tanh"].map(|l| cx.tmp(l));
            cx.node("Softplus", &[&x], &[&sp], vec![]);
            cx.node("Tanh", &[sp], &[&t], vec![]);
            cx.node("Mul", &[x, t], &[y], vec![]);
        }
        ActFn::Gelu { tanh: false } => {
            // x · ½ (1 + erf(x / √2))
            let sqrt2 = cx.f32s("sqrt2", &[], &[std::f32::consts::SQRT_2]);
            let one = cx.f32s("one", &[], &[1.0]);
            let half = cx.f32s("half", &[], &[0.5]);
            let t = ["scaled", "erf", "plus_one", "times_x"].map(|l| cx.tmp(l));
            cx.node("Div", &[x.clone(), sqrt2], &[&t[0]], vec![]);
            cx.node("Erf", &[&t[0]], &[&t[1]], vec![]);
            cx.node("Add", &[t[1].clone(), one], &[&t[2]], vec![]);
            cx.node("Mul", &[x, t[2].clone()], &[&t[3]], vec![]);
            cx.node("Mul", &[t[3].clone(), half], &[y], vec![]);
        }
        ActFn::Gelu { tanh: true } => {
            // x · ½ (1 + tanh(√(2/π) (x + 0.044715 x³)))
            let c = cx.f32s("cubic", &[], &[0.044715]);
            let k = cx.f32s(
                "sqrt_2_over_pi",
                &[],
                &[(2.0 / std::f64::consts::PI).sqrt() as f32],
            );
            let one = cx.f32s("one", &[], &[1.0]);
            let half = cx.f32s("half", &[], &[0.5]);
            let t = [
                "square",
                "cube",
                "cubic_term",
                "inner",
                "scaled",
                "tanh",
                "plus_one",
                "times_x",
            ]
            .map(|l| cx.tmp(l));
            cx.node("Mul", &[x.clone(), x.clone()], &[&t[0]], vec![]);
            cx.node("Mul", &[t[0].clone(), x.clone()], &[&t[1]], vec![]);
            cx.node("Mul", &[t[1].clone(), c], &[&t[2]], vec![]);
            cx.node("Add", &[x.clone(), t[2].clone()], &[&t[3]], vec![]);
            cx.node("Mul", &[t[3].clone(), k], &[&t[4]], vec![]);
            cx.node("Tanh", &[&t[4]], &[&t[5]], vec![]);
            cx.node("Add", &[t[5].clone(), one], &[&t[6]], vec![]);
            cx.node("Mul", &[x, t[6].clone()], &[&t[7]], vec![]);
            cx.node("Mul", &[t[7].clone(), half], &[y], vec![]);
        }
    }
}

/// `Clip` to `[min, max]` (its bounds are inputs since opset 11).
fn clip(cx: &mut OnnxCx, min: f32, max: f32) {
    let (x, y) = cx.io();
    let lo = cx.f32s("min", &[], &[min]);
    let hi = cx.f32s("max", &[], &[max]);
    cx.node("Clip", &[x, lo, hi], &[y], vec![]);
}
