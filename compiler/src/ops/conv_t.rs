//! `conv_t` and `invert`: the transposed convolution, the adjoint of `conv` (forward: GEMM
//! then col2im; backward: im2col then GEMM); `invert(of=..)` is the one that undoes a conv's
//! shape change, built by the lowering from that conv (see [`invert`]).

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, Param, ParamDefault::*, Reader};
use super::window::{expect_image, weights_fit};
use super::OnnxCx;
use super::{object, pair_str, product, Conv, Op, OpError, OpKind, Pair, ParamDecl};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use crate::onnx::{conv_node, ints};
use netc_onnx::build as onnx;

/// A transposed convolution; `inverts` names the conv it was made from by `invert(of=..)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvT {
    pub out: usize,
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub op: Pair,
    pub dil: Pair,
    pub groups: usize,
    pub bias: bool,
    pub inverts: Option<String>,
}

const PARAMS: &[Param] = &[
    p("out", Kind::Size, Required),
    p("k", Kind::Pair, Required),
    p("s", Kind::Pair, Int(1)),
    p("p", Kind::PairZ, Int(0)),
    p("op", Kind::PairZ, Int(0)),
    p("dil", Kind::Pair, Int(1)),
    p("groups", Kind::Size, Int(1)),
    p("bias", Kind::Bool, Bool(true)),
];

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "conv_t",
        arity: Arity::One,
        params: PARAMS,
        build,
    },
    OpSpec {
        name: "invert",
        arity: Arity::One,
        params: &[
            p("of", Kind::Tensor, Required),
            p("bias", Kind::Bool, Bool(true)),
        ],
        build: |_| unreachable!("the lowering builds `invert` from the conv it inverts"),
    },
];

fn build(r: &Reader) -> Result<Op, OpError> {
    Ok(Op::ConvT(ConvT {
        out: r.size("out")?,
        k: r.pair("k", 1)?,
        s: r.pair("s", 1)?,
        p: r.pair("p", 0)?,
        op: r.pair("op", 0)?,
        dil: r.pair("dil", 1)?,
        groups: r.size("groups")?,
        bias: r.bool("bias")?,
        inverts: None,
    }))
}

/// `invert(of=c)`: the transposed convolution that undoes conv `c`'s shape change. `of` is
/// the conv, `of_in` its input shape, `of_out` its output shape, `of_path` its path.
pub fn invert(
    of: &Conv,
    of_in: &[usize],
    of_out: &[usize],
    of_path: &str,
    bias: bool,
) -> Result<Op, OpError> {
    let mut op = [0; 2];
    for i in 0..2 {
        let (d, o) = (of_in[i + 1], of_out[i + 1]);
        // (o-1)s - 2p + dil(k-1) + 1 + op = d; the conv's floor makes 0 <= op < s.
        let base = (o - 1) * of.s[i] + of.dil[i] * (of.k[i] - 1) + 1;
        op[i] = d + 2 * of.p[i] - base;
    }
    Ok(Op::ConvT(ConvT {
        out: of_in[0],
        k: of.k,
        s: of.s,
        p: of.p,
        op,
        dil: of.dil,
        groups: 1,
        bias,
        inverts: Some(of_path.to_string()),
    }))
}

impl ConvT {
    pub fn geometry(&self, x: &[usize]) -> rt::conv_t::ConvT2d {
        rt::conv_t::ConvT2d {
            c: x[0],
            h: x[1],
            w: x[2],
            out: self.out,
            kh: self.k[0],
            kw: self.k[1],
            sh: self.s[0],
            sw: self.s[1],
            ph: self.p[0],
            pw: self.p[1],
            oph: self.op[0],
            opw: self.op[1],
            dh: self.dil[0],
            dw: self.dil[1],
            groups: self.groups,
        }
    }

    fn weight_shape(&self, c: usize) -> Vec<usize> {
        vec![c, self.out / self.groups, self.k[0], self.k[1]]
    }
}

impl OpKind for ConvT {
    fn name(&self) -> &'static str {
        if self.inverts.is_some() {
            "invert"
        } else {
            "conv_t"
        }
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let (x, name) = (ins[0], self.name());
        expect_image(name, x)?;
        if !x[0].is_multiple_of(self.groups) || !self.out.is_multiple_of(self.groups) {
            return Err(OpError::new(format!(
                "`groups={}` must divide both the input channels ({}) and `out` ({})",
                self.groups, x[0], self.out
            ))
            .at("groups"));
        }
        for i in 0..2 {
            // docs/language.md: 0 <= op < s (PyTorch also allows op < dil; netc does not).
            if self.op[i] >= self.s[i] {
                return Err(OpError::new(format!(
                    "output padding `op={}` must be smaller than the stride ({})",
                    pair_str(self.op),
                    pair_str(self.s),
                ))
                .at("op"));
            }
        }
        weights_fit(product(&self.weight_shape(x[0])))?;
        let mut out = vec![self.out, 0, 0];
        for i in 0..2 {
            // (H-1)s - 2p + dil(k-1) + op + 1
            let full = (x[i + 1] as u128 - 1) * self.s[i] as u128
                + (self.dil[i] * (self.k[i] - 1)) as u128
                + self.op[i] as u128
                + 1;
            let crop = 2 * self.p[i] as u128;
            if full <= crop {
                return Err(OpError::new(format!(
                    "`{name}` on {} with k={} s={} p={} has no output: padding crops everything",
                    shape_str(x),
                    pair_str(self.k),
                    pair_str(self.s),
                    pair_str(self.p)
                ))
                .at("p"));
            }
            out[i + 1] = usize::try_from(full - crop).unwrap_or(usize::MAX);
        }
        super::window::checked_shape(out)
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        ParamDecl::weight_and_bias(self.weight_shape(ins[0][0]), self.bias, self.out)
    }

    fn macs(&self, ins: &[&Shape], _y: &Shape) -> u64 {
        let x = ins[0];
        let w = product(&self.weight_shape(x[0]));
        u64::try_from(w.saturating_mul(product(&[x[1], x[2]]))).unwrap_or(u64::MAX)
    }

    fn attrs(&self) -> Map<String, Json> {
        let mut v = json!({
            "out": self.out, "k": self.k, "s": self.s, "p": self.p, "op": self.op, "dil": self.dil,
            "groups": self.groups, "bias": self.bias,
        });
        if let Some(of) = &self.inverts {
            v["of"] = json!(of);
        }
        object(v)
    }

    fn window(&self) -> Option<String> {
        Some(super::window::describe(self.k, self.s))
    }

    fn is_weighted_layer(&self) -> bool {
        true
    }

    fn col(&self, ins: &[&Shape], _y: &Shape) -> usize {
        self.geometry(ins[0]).col_len()
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut col = vec![0.0; geo.col_len()];
        rt::conv_t::conv_t2d_forward(
            &geo,
            cx.batch,
            cx.xs[0],
            cx.param("weight"),
            cx.maybe("bias", self.bias),
            &mut out.y,
            &mut col,
        );
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut col = vec![0.0; geo.col_len()];
        let w = cx.param("weight");
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; self.out]);
        rt::conv_t::conv_t2d_backward_weight(
            &geo,
            cx.batch,
            cx.xs[0],
            cx.dy,
            &mut dw,
            Some(&mut db),
            &mut col,
        );
        if cx.wants[0] {
            let mut dx = cx.zeros_like(0);
            rt::conv_t::conv_t2d_backward_data(&geo, cx.batch, w, cx.dy, &mut dx, &mut col);
            out.dx(0, dx);
        }
        out.grad("weight", dw);
        if self.bias {
            out.grad("bias", db);
        }
    }

    fn geometry(&self, cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        let rt::conv_t::ConvT2d {
            c,
            h,
            w,
            out,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oph,
            opw,
            dh,
            dw,
            groups,
        } = self.geometry(cx.shapes[0]);
        Some((
            quote! { rt::conv_t::ConvT2d },
            quote! {
                rt::conv_t::ConvT2d { c: #c, h: #h, w: #w, out: #out, kh: #kh, kw: #kw, sh: #sh, sw: #sw,
                    ph: #ph, pw: #pw, oph: #oph, opw: #opw, dh: #dh, dw: #dw, groups: #groups }
            },
        ))
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let geo = cx.geo();
        let (x, y, dy) = (cx.x(0), cx.y(), cx.dy());
        let (wt, gw) = (cx.param("weight"), cx.grad("weight"));
        let (b, db) = cx.bias_args(self.bias);
        let fwd =
            quote! { rt::conv_t::conv_t2d_forward(&#geo, n, &#x, &#wt, #b, &mut #y, &mut ws.col); };
        let data = cx.add_dx(0, |dx| {
            quote! {
                rt::conv_t::conv_t2d_backward_data_acc(&#geo, n, &#wt, &#dy, &mut #dx, &mut ws.col);
            }
        });
        let bwd = quote! {
            rt::conv_t::conv_t2d_backward_weight(&#geo, n, &#x, &#dy, &mut #gw, #db, &mut ws.col);
            #data
        };
        (fwd, bwd)
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let window = [self.k, self.s, self.p, self.dil];
        let output_padding = vec![onnx::attr_ints("output_padding", &ints(self.op))];
        conv_node(
            cx,
            "ConvTranspose",
            self.bias,
            window,
            self.groups,
            output_padding,
        );
        Ok(())
    }
}
