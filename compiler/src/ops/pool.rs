//! `maxpool` and `avgpool`: windowed pooling with padding and PyTorch's ceil mode (average
//! pooling counts padding, as PyTorch's default). Max pooling keeps its argmaxes for backward
//! in training; inference needs none.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, Param, ParamDefault::*, Reader};
use super::window::{expect_image, window_shape, Window};
use super::OnnxCx;
use super::{elems, object, pair_str, Op, OpError, OpKind, Pair, Reads, SavedDecl};
use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use crate::onnx::{ints, pads};
use netc_onnx::build as onnx;

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Max pooling, or average pooling.
    pub max: bool,
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub ceil: bool,
}

const PARAMS: &[Param] = &[
    p("k", Kind::Pair, Required),
    p("s", Kind::Pair, Same("k")),
    p("p", Kind::PairZ, Int(0)),
    p("ceil", Kind::Bool, Bool(false)),
];

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "maxpool",
        arity: Arity::One,
        params: PARAMS,
        build: |r| build(r, true),
    },
    OpSpec {
        name: "avgpool",
        arity: Arity::One,
        params: PARAMS,
        build: |r| build(r, false),
    },
];

fn build(r: &Reader, max: bool) -> Result<Op, OpError> {
    Ok(Op::Pool(Pool {
        max,
        k: r.pair("k", 1)?,
        s: r.pair("s", 1)?,
        p: r.pair("p", 0)?,
        ceil: r.bool("ceil")?,
    }))
}

impl Pool {
    pub fn geometry(&self, x: &[usize]) -> rt::pool::Pool2d {
        rt::pool::Pool2d {
            c: x[0],
            h: x[1],
            w: x[2],
            kh: self.k[0],
            kw: self.k[1],
            sh: self.s[0],
            sw: self.s[1],
            ph: self.p[0],
            pw: self.p[1],
            ceil: self.ceil,
        }
    }
}

impl OpKind for Pool {
    fn name(&self) -> &'static str {
        if self.max {
            "maxpool"
        } else {
            "avgpool"
        }
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let (x, name) = (ins[0], self.name());
        expect_image(name, x)?;
        for i in 0..2 {
            if 2 * self.p[i] > self.k[i] {
                return Err(OpError::new(format!(
                    "`{name}`'s padding {} is more than half its window {}",
                    pair_str(self.p),
                    pair_str(self.k)
                ))
                .at("p")
                .help("PyTorch requires pad ≤ k/2: a window made only of padding has no value"));
            }
        }
        window_shape(
            name,
            x,
            x[0],
            Window {
                k: self.k,
                s: self.s,
                p: self.p,
                dil: [1, 1],
                ceil: self.ceil,
            },
        )
    }

    fn attrs(&self) -> Map<String, Json> {
        object(json!({ "k": self.k, "s": self.s, "p": self.p, "ceil": self.ceil }))
    }

    fn window(&self) -> Option<String> {
        Some(super::window::describe(self.k, self.s))
    }

    fn saved(&self, _ins: &[&Shape], y: &Shape) -> Vec<SavedDecl> {
        if self.max {
            vec![SavedDecl {
                index: true,
                ..SavedDecl::per_sample('a', elems(y))
            }]
        } else {
            Vec::new()
        }
    }

    fn reads(&self) -> Reads {
        Reads::default()
    }

    /// Inference needs no argmaxes (`maxpool2d_forward_values`).
    fn keeps_at_inference(&self) -> bool {
        false
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        if self.max {
            let mut argmax = vec![0; out.y.len()];
            rt::pool::maxpool2d_forward(&geo, cx.batch, cx.xs[0], &mut out.y, &mut argmax);
            out.saved.u.insert('a', argmax);
        } else {
            rt::pool::avgpool2d_forward(&geo, cx.batch, cx.xs[0], &mut out.y);
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut dx = cx.zeros_like(0);
        if self.max {
            rt::pool::maxpool2d_backward(&geo, cx.batch, cx.dy, &cx.saved.u[&'a'], &mut dx);
        } else {
            rt::pool::avgpool2d_backward(&geo, cx.batch, cx.dy, &mut dx);
        }
        out.dx(0, dx);
    }

    fn geometry(&self, cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        let rt::pool::Pool2d {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            ceil,
        } = self.geometry(cx.shapes[0]);
        Some((
            quote! { rt::pool::Pool2d },
            quote! {
                rt::pool::Pool2d { c: #c, h: #h, w: #w, kh: #kh, kw: #kw, sh: #sh, sw: #sw, ph: #ph, pw: #pw, ceil: #ceil }
            },
        ))
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let geo = cx.geo();
        let (tx, t, d) = (cx.x(0), cx.y(), cx.dy());
        if self.max {
            let a = cx.saved('a');
            (
                quote! { rt::pool::maxpool2d_forward(&#geo, n, &#tx, &mut #t, &mut #a); },
                cx.accumulate_dx(
                    0,
                    quote! { rt::pool::maxpool2d_backward(&#geo, n, &#d, &#a, &mut ws.scratch[..len]); },
                ),
            )
        } else {
            (
                quote! { rt::pool::avgpool2d_forward(&#geo, n, &#tx, &mut #t); },
                cx.accumulate_dx(
                    0,
                    quote! { rt::pool::avgpool2d_backward(&#geo, n, &#d, &mut ws.scratch[..len]); },
                ),
            )
        }
    }

    /// Max pooling without its argmaxes; average pooling as in training.
    fn emit_infer(&self, cx: &Cx) -> Option<TokenStream> {
        let (geo, tx, t) = (cx.geo(), cx.x(0), cx.y());
        self.max
            .then(|| quote! { rt::pool::maxpool2d_forward_values(&#geo, n, &#tx, &mut #t); })
    }

    /// Max pooling is ONNX's `MaxPool`. Average pooling counts the padding in its divisor
    /// but not a ceil-mode window's overhang past it (PyTorch's rule), which ONNX's
    /// `count_include_pad` cannot say: the padding is made explicit (`Pad` with zeros) and
    /// the pool counts what it then covers.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (mut x, y) = cx.io();
        let mut attrs = vec![
            onnx::attr_ints("kernel_shape", &ints(self.k)),
            onnx::attr_ints("strides", &ints(self.s)),
            onnx::attr_int("ceil_mode", self.ceil as i64),
        ];
        if self.max {
            attrs.push(onnx::attr_ints("pads", &pads(self.p)));
            cx.node("MaxPool", &[x], &[y], attrs);
            return Ok(());
        }
        if self.p != [0, 0] {
            let [ph, pw] = self.p.map(|p| p as i64);
            let amounts = cx.i64s("pads", &[0, 0, ph, pw, 0, 0, ph, pw]);
            let padded = cx.tmp("padded");
            cx.node("Pad", &[x, amounts], &[&padded], vec![]);
            x = padded;
        }
        attrs.push(onnx::attr_int("count_include_pad", 0));
        cx.node("AveragePool", &[x], &[y], attrs);
        Ok(())
    }
}
