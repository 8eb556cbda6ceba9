//! `conv`: 2-d convolution (dilation, groups, bias), im2col + GEMM in the runtime, a ReLU
//! fused into the GEMM's epilogue by the `epilogue` pass, sibling 1×1 convs merged into one
//! GEMM by `merge_1x1`, outputs written into a concat's channels by `concat_in_place`, and,
//! at inference, the batchnorm after it folded into its weights by `fold_bn` (see `fold`)
//! and the residual `add` after it summed in its epilogue by `residual`; a 3×3 stride-1 conv
//! runs as Winograd where `conv_algo` chooses it.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{json, Map, Value as Json};

use netc_runtime as rt;

use super::args::{p, Arity, Kind, OpSpec, Param, ParamDefault::*, Reader};
use super::fold::Fold;
use super::window::{expect_image, weights_fit, window_shape, Window};
use super::OnnxCx;
use super::{object, pair_str, product, ActFn, Op, OpError, OpKind, Pair, ParamDecl, Reads};
use crate::codegen::{layer_in_place, Cx};
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
use crate::onnx::conv_node;

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub out: usize,
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub dil: Pair,
    pub groups: usize,
    pub bias: bool,
    /// The activation applied in the GEMM's epilogue (ReLU or ReLU6; set by the `epilogue`
    /// pass, never by users).
    pub act: Option<ActFn>,
    /// The batchnorm folded into it (set by the `fold_bn` pass on the inference graph,
    /// never by users).
    pub fold: Option<Fold>,
    /// Whether its input 1 is added to its output before the activation: a residual `add`
    /// computed in the GEMM's epilogue (set by the `residual` pass on the inference graph,
    /// never by users).
    pub residual: bool,
    /// How the generated code computes it (set by the `conv_algo` pass, never by users; the
    /// interpreter always uses im2col).
    pub algo: Algo,
}

/// A conv's algorithm in generated code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algo {
    /// im2col (or the direct and batched paths the runtime's `conv` takes) and a GEMM.
    #[default]
    Im2col,
    /// Winograd convolution with this tile (`rt::conv::winograd`).
    Winograd(rt::conv::winograd::Tile),
}

impl Algo {
    /// `im2col`, `winograd F4`, `winograd F2`: as `netc check --plan` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Im2col => "im2col",
            Algo::Winograd(rt::conv::winograd::Tile::F4) => "winograd F4",
            Algo::Winograd(rt::conv::winograd::Tile::F2) => "winograd F2",
        }
    }

    /// The runtime function `name` of this algorithm and its leading arguments after the
    /// geometry: `rt::conv::NAME` and none, or `rt::conv::winograd::NAME` and the tile.
    fn call(self, name: &str) -> (TokenStream, TokenStream) {
        let f = proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
        match self {
            Algo::Im2col => (quote! { rt::conv::#f }, quote! {}),
            Algo::Winograd(tile) => {
                let t =
                    proc_macro2::Ident::new(&format!("{tile:?}"), proc_macro2::Span::call_site());
                (
                    quote! { rt::conv::winograd::#f },
                    quote! { rt::conv::winograd::Tile::#t, },
                )
            }
        }
    }
}

const PARAMS: &[Param] = &[
    p("out", Kind::Size, Required),
    p("k", Kind::Pair, Required),
    p("s", Kind::Pair, Int(1)),
    p("p", Kind::Pad, Int(0)),
    p("dil", Kind::Pair, Int(1)),
    p("groups", Kind::Size, Int(1)),
    p("bias", Kind::Bool, Bool(true)),
];

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "conv",
    arity: Arity::One,
    params: PARAMS,
    build,
}];

fn build(r: &Reader) -> Result<Op, OpError> {
    let k = r.pair("k", 1)?;
    let dil = r.pair("dil", 1)?;
    let s = r.pair("s", 1)?;
    let p = match r.raw("p")? {
        crate::value::Value::Str(ref st) if st == "same" => {
            if s != [1, 1] || k[0] % 2 == 0 || k[1] % 2 == 0 {
                return Err(OpError::new(format!(
                    "`p=\"same\"` needs stride 1 and an odd kernel, found k={} s={}",
                    pair_str(k),
                    pair_str(s)
                ))
                .at("p")
                .help("give the padding as a number"));
            }
            [dil[0] * (k[0] - 1) / 2, dil[1] * (k[1] - 1) / 2]
        }
        crate::value::Value::Str(other) => {
            return Err(OpError::new(format!(
                "`p` must be {}, found \"{other}\"",
                Kind::Pad.describe()
            ))
            .at("p"))
        }
        _ => r.pair("p", 0)?,
    };
    Ok(Op::Conv(Conv {
        out: r.size("out")?,
        k,
        s,
        p,
        dil,
        groups: r.size("groups")?,
        bias: r.bool("bias")?,
        act: None,
        fold: None,
        residual: false,
        algo: Algo::Im2col,
    }))
}

impl Conv {
    /// The runtime's geometry for input shape `x`.
    pub fn geometry(&self, x: &[usize]) -> rt::conv::Conv2d {
        rt::conv::Conv2d {
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
            dh: self.dil[0],
            dw: self.dil[1],
            groups: self.groups,
        }
    }

    /// Elements of the weight for input shape `x`.
    pub fn weight_len(&self, x: &[usize]) -> usize {
        self.out * x[0] / self.groups * self.k[0] * self.k[1]
    }

    /// Scratch for its folded weight and bias (see `fold`), for input shape `x`: none
    /// without a fold.
    pub fn fold_len(&self, x: &[usize]) -> usize {
        match self.fold {
            Some(_) => self.weight_len(x) + self.out,
            None => 0,
        }
    }
}

impl OpKind for Conv {
    fn name(&self) -> &'static str {
        "conv"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        let x = ins[0];
        expect_image("conv", x)?;
        if !x[0].is_multiple_of(self.groups) || !self.out.is_multiple_of(self.groups) {
            return Err(OpError::new(format!(
                "`groups={}` must divide both the input channels ({}) and `out` ({})",
                self.groups, x[0], self.out
            ))
            .at("groups"));
        }
        weights_fit(product(&[
            self.out,
            x[0] / self.groups,
            self.k[0],
            self.k[1],
        ]))?;
        let y = window_shape(
            "conv",
            x,
            self.out,
            Window {
                k: self.k,
                s: self.s,
                p: self.p,
                dil: self.dil,
                ceil: false,
            },
        )?;
        match (self.residual, ins.get(1)) {
            (false, None) => Ok(y),
            (true, Some(&r)) if *r == y => Ok(y),
            _ => Err(OpError::new(
                "a residual conv adds one input of its output's shape (a bug in `residual`)",
            )),
        }
    }

    fn params(&self, ins: &[&Shape]) -> Vec<ParamDecl> {
        let shape = vec![self.out, ins[0][0] / self.groups, self.k[0], self.k[1]];
        ParamDecl::weight_and_bias(shape, self.bias, self.out)
    }

    fn macs(&self, ins: &[&Shape], y: &Shape) -> u64 {
        let w = product(&[self.out, ins[0][0] / self.groups, self.k[0], self.k[1]]);
        u64::try_from(w.saturating_mul(product(&[y[1], y[2]]))).unwrap_or(u64::MAX)
    }

    fn attrs(&self) -> Map<String, Json> {
        let mut v = json!({
            "out": self.out, "k": self.k, "s": self.s, "p": self.p, "dil": self.dil,
            "groups": self.groups, "bias": self.bias,
        });
        if let Some(f) = self.act {
            v["act"] = json!(f.name());
        }
        if let Some(fold) = &self.fold {
            v["fold"] = json!(fold.bn);
        }
        if self.residual {
            v["residual"] = json!(true);
        }
        if self.algo != Algo::Im2col {
            v["algo"] = json!(self.algo.name());
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
        let geo = self.geometry(ins[0]);
        match self.algo {
            Algo::Im2col => geo.col_len(),
            // Bounded for any batch; the generated code's `col` is allocated once.
            Algo::Winograd(tile) => rt::conv::winograd::scratch_len(&geo, tile, usize::MAX),
        }
    }

    fn reads(&self) -> Reads {
        Reads {
            input: true,
            output: self.act.is_some(),
        }
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut col = vec![0.0; geo.col_len()];
        // A folded batchnorm (only ever in an inference graph): its weight and bias.
        let folded = self.fold.as_ref().map(|fold| {
            let w = cx.param("weight");
            let (mut wf, mut bf) = (vec![0.0; w.len()], vec![0.0; self.out]);
            let bn = |suffix: &str| cx.param_of(&fold.bn, suffix);
            rt::norm::fold_batchnorm(
                fold.eps as f32,
                w,
                cx.maybe("bias", self.bias),
                bn("weight"),
                bn("bias"),
                bn("running_mean"),
                bn("running_var"),
                &mut wf,
                &mut bf,
            );
            (wf, bf)
        });
        let (w, b) = match &folded {
            Some((wf, bf)) => (&wf[..], Some(&bf[..])),
            None => (cx.param("weight"), cx.maybe("bias", self.bias)),
        };
        // The fused ReLU is the interpreter's to apply (see `interp::forward`), after the
        // residual.
        let y = &mut out.y;
        rt::conv::conv2d_forward(&geo, cx.batch, cx.xs[0], w, b, false, y, &mut col);
        if self.residual {
            rt::tensor::accumulate(cx.xs[1], y);
        }
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let geo = self.geometry(cx.shapes[0]);
        let mut col = vec![0.0; geo.col_len()];
        let w = cx.param("weight");
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; self.out]);
        if cx.wants[0] {
            let mut dx = cx.zeros_like(0);
            rt::conv::conv2d_backward(
                &geo,
                cx.batch,
                cx.xs[0],
                w,
                cx.dy,
                &mut dx,
                &mut dw,
                Some(&mut db),
                &mut col,
            );
            out.dx(0, dx);
        } else {
            rt::conv::conv2d_backward_weight(
                &geo,
                cx.batch,
                cx.xs[0],
                cx.dy,
                &mut dw,
                Some(&mut db),
                &mut col,
            );
        }
        out.grad("weight", dw);
        if self.bias {
            out.grad("bias", db);
        }
    }

    fn geometry(&self, cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        // The first member of a merged group computes the group, the others nothing.
        let out = match cx.g.group_of(cx.n) {
            Some(group) if group[0] != cx.n => return None,
            Some(group) => group.iter().map(|&j| cx.g.node(j).shape[0]).sum(),
            None => self.out,
        };
        let rt::conv::Conv2d {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups,
            ..
        } = self.geometry(cx.shapes[0]);
        Some((
            quote! { rt::conv::Conv2d },
            quote! {
                rt::conv::Conv2d { c: #c, h: #h, w: #w, out: #out, kh: #kh, kw: #kw, sh: #sh, sw: #sw,
                                   ph: #ph, pw: #pw, dh: #dh, dw: #dw, groups: #groups }
            },
        ))
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let g = cx.g;
        if let Some(group) = g.group_of(cx.n) {
            // The first member computes the group; the others have nothing to do.
            if group[0] != cx.n {
                return (quote! {}, quote! {});
            }
            return merged(cx, group);
        }
        let geo = cx.geo();
        let (x, dx_ok) = (cx.x(0), cx.wants(0));
        let (w, dw) = (cx.param("weight"), cx.grad("weight"));
        let (b, db) = cx.bias_args(self.bias);
        let fwd = self.forward_tokens(cx, quote! { &#w }, b);
        let call = |name: &str| self.algo.call(name);
        if let Some((_, d, slot)) = layer_in_place(cx, cx.n) {
            let (data_fn, tile) = call("conv2d_backward_data_slot_acc");
            let data = cx.add_dx(0, |dx| {
                quote! {
                    #data_fn(&#geo, #tile n, &#w, &#d, #slot, &mut #dx, &mut ws.col);
                }
            });
            let (weight_fn, tile) = call("conv2d_backward_weight_slot");
            let bwd = quote! {
                #weight_fn(&#geo, #tile n, &#x, &#d, #slot, &mut #dw, #db, &mut ws.col);
                #data
            };
            return (fwd, bwd);
        }
        let dy = cx.dy();
        let data = if dx_ok {
            let (data_fn, tile) = call("conv2d_backward_data_acc");
            cx.add_dx(0, |dx| {
                quote! {
                    #data_fn(&#geo, #tile n, &#w, &#dy, &mut #dx, &mut ws.col);
                }
            })
        } else {
            quote! {}
        };
        let (weight_fn, tile) = call("conv2d_backward_weight");
        let bwd = quote! {
            #weight_fn(&#geo, #tile n, &#x, &#dy, &mut #dw, #db, &mut ws.col);
            #data
        };
        (fwd, bwd)
    }

    /// With a batchnorm folded in: the folded weight and bias into `ws.fold`, then the
    /// conv with them (and the activation after the batchnorm in its epilogue). Without,
    /// the training forward serves.
    fn emit_infer(&self, cx: &Cx) -> Option<TokenStream> {
        let fold = self.fold.as_ref()?;
        let w = cx.param("weight");
        let (b, _) = cx.bias_args(self.bias);
        let bn = |suffix: &str| cx.param_at(&fold.bn, suffix);
        let (gamma, beta) = (bn("weight"), bn("bias"));
        let (mean, var) = (
            cx.state_at(&fold.bn, "running_mean"),
            cx.state_at(&fold.bn, "running_var"),
        );
        let (eps, len, out) = (fold.eps as f32, self.weight_len(cx.shapes[0]), self.out);
        let conv = self.forward_tokens(cx, quote! { wf }, quote! { Some(&bf[..]) });
        Some(quote! {
            let (wf, bf) = ws.fold.split_at_mut(#len);
            let bf = &mut bf[..#out];
            rt::norm::fold_batchnorm(#eps, &#w, #b, &#gamma, &#beta, &#mean, &#var, wf, bf);
            #conv
        })
    }

    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        if self.act.is_some() || self.fold.is_some() || self.residual {
            return Err(OpError::new(
                "a fused conv (export reads the unfused graph)",
            ));
        }
        let window = [self.k, self.s, self.p, self.dil];
        conv_node(cx, "Conv", self.bias, window, self.groups, vec![]);
        Ok(())
    }
}

impl Conv {
    /// The forward call with weight `w` and bias `b` (expressions): into its concat's slot
    /// if it has one; with a residual, onto the value added, which is in the output's buffer
    /// already where the layer runs in place on it (`inplace`), else copied there first.
    fn forward_tokens(&self, cx: &Cx, w: TokenStream, b: TokenStream) -> TokenStream {
        let (geo, x) = (cx.geo(), cx.x(0));
        let act = ActFn::epilogue_tokens(self.act);
        if let Some((t, _, slot)) = layer_in_place(cx, cx.n) {
            let (f, tile) = self.algo.call("conv2d_forward_slot_act");
            return quote! {
                #f(&#geo, #tile n, &#x, #w, #b, #act, &mut #t, #slot, &mut ws.col);
            };
        }
        let y = cx.y();
        if !self.residual {
            let (f, tile) = self.algo.call("conv2d_forward_act");
            return quote! {
                #f(&#geo, #tile n, &#x, #w, #b, #act, &mut #y, &mut ws.col);
            };
        }
        let len = cx.g.node(cx.n).shape.iter().product::<usize>();
        let on_it = cx.g.aliases.get(&cx.n) == cx.g.inputs_of(cx.n).get(1);
        let copy = if on_it {
            quote! {}
        } else {
            let r = cx.x(1);
            quote! { #y.copy_from_slice(&#r); }
        };
        let (f, tile) = self.algo.call("conv2d_forward_slot_act_acc");
        quote! {
            #copy
            #f(&#geo, #tile n, &#x, #w, #b, #act, &mut #y,
                rt::tensor::Slot::dense(#len), &mut ws.col);
        }
    }
}

/// The forward and backward of a group of sibling pointwise convs merged into one GEMM
/// (`merge_1x1`), led by the layer of `cx`, reading its input and adding to its gradient.
fn merged(cx: &Cx, group: &[petgraph::stable_graph::NodeIndex]) -> (TokenStream, TokenStream) {
    let g = cx.g;
    let Op::Conv(c) = &g.node(group[0]).op else {
        unreachable!("the verifier checks merged groups are convs")
    };
    let geo = cx.geo();
    // Each member's output buffers (its own, or its concat's) and slot; buffers shared by
    // two members are passed once.
    let (mut tbufs, mut dbufs, mut dests) = (Vec::new(), Vec::new(), Vec::new());
    for &j in group {
        let (t, d, slot) = layer_in_place(cx, j).unwrap_or_else(|| {
            let len = g.node(j).shape.iter().product::<usize>();
            (
                cx.buffer('t', j),
                cx.buffer('d', j),
                quote! { rt::tensor::Slot::dense(#len) },
            )
        });
        let b = tbufs
            .iter()
            .position(|x: &TokenStream| x.to_string() == t.to_string())
            .unwrap_or_else(|| {
                tbufs.push(t);
                dbufs.push(d);
                tbufs.len() - 1
            });
        dests.push(quote! { (#b, #slot) });
    }
    let field_of = |j: &petgraph::stable_graph::NodeIndex, what: &str| {
        crate::codegen::field(&format!("{}.{what}", g.node(*j).path))
    };
    let ws_: Vec<_> = group.iter().map(|j| field_of(j, "weight")).collect();
    let bs: Vec<_> = group.iter().map(|j| field_of(j, "bias")).collect();
    let (b_fwd, db) = if c.bias {
        (
            quote! { Some(&[#(&p.#bs[..]),*]) },
            quote! { Some(&mut [#(&mut g.#bs[..]),*]) },
        )
    } else {
        (quote! { None }, quote! { None })
    };
    let act = ActFn::epilogue_tokens(c.act);
    let tx = cx.x(0);
    let backward = |dx_arg: TokenStream| {
        quote! {
            rt::conv::conv1x1_merged_backward_acc(&#geo, n, &#tx, &[#(&p.#ws_[..]),*], &[#(&#dbufs[..]),*],
                &[#(#dests),*], &mut [#(&mut g.#ws_[..]),*], #db, #dx_arg, &mut ws.col);
        }
    };
    let data = if cx.wants(0) {
        let dx = cx.dx(0);
        backward(quote! { Some(&mut #dx) })
    } else {
        backward(quote! { None })
    };
    (
        quote! {
            rt::conv::conv1x1_merged_forward_act(&#geo, n, &#tx, &[#(&p.#ws_[..]),*], #b_fwd, #act,
                &mut [#(&mut #tbufs[..]),*], &[#(#dests),*], &mut ws.col);
        },
        data,
    )
}
