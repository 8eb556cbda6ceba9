//! `mul`: the elementwise product of two values of one shape, or of `[C,H,W]` and a
//! `[C,1,1]` gate broadcast over the plane (squeeze-and-excitation), in either order.

use proc_macro2::TokenStream;
use quote::quote;

use netc_runtime as rt;

use super::args::{Arity, OpSpec};
use super::OnnxCx;
use super::{channels, elems, Op, OpError, OpKind};
use crate::codegen::Cx;
use crate::graph::{shape_str, Shape};
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};

#[derive(Clone, Debug, PartialEq)]
pub struct Mul;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "mul",
    arity: Arity::Many,
    params: &[],
    build: |_| Ok(Op::Mul(Mul)),
}];

/// Which input is the full tensor and which the factor (the same shape, or its gate).
fn roles(shapes: &[&Shape]) -> (usize, usize) {
    if elems(shapes[0]) >= elems(shapes[1]) {
        (0, 1)
    } else {
        (1, 0)
    }
}

/// `n`-free geometry: channels, the full input's plane, the factor's plane.
fn geometry(shapes: &[&Shape]) -> (usize, usize, usize) {
    let (a, b) = roles(shapes);
    let (c, plane) = channels(shapes[a]);
    (c, plane, channels(shapes[b]).1)
}

impl OpKind for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        if ins.len() != 2 {
            return Err(OpError::new(format!(
                "`mul` multiplies two values, found {}",
                ins.len()
            )));
        }
        let (x, y) = (ins[0], ins[1]);
        if x == y {
            return Ok(x.clone());
        }
        let gate = |full: &Shape, g: &Shape| full.len() == 3 && *g == [full[0], 1, 1];
        if gate(x, y) {
            return Ok(x.clone());
        }
        if gate(y, x) {
            return Ok(y.clone());
        }
        Err(OpError::new(format!(
            "`mul` needs two values of one shape, or [C, H, W] and a [C, 1, 1] gate; found {} and {}",
            shape_str(x),
            shape_str(y)
        ))
        .help("a squeeze-and-excitation gate is `x -> global_avgpool -> conv(..) -> .. -> sigmoid`"))
    }

    fn forward(&self, cx: &Fwd, out: &mut FwdOut) {
        let (a, b) = roles(&cx.shapes);
        let (c, pa, pb) = geometry(&cx.shapes);
        rt::tensor::mul_forward(cx.batch, c, pa, pb, cx.xs[a], cx.xs[b], &mut out.y);
    }

    fn backward(&self, cx: &Bwd, out: &mut BwdOut) {
        let (a, b) = roles(&cx.shapes);
        let (c, pa, pb) = geometry(&cx.shapes);
        let (mut da, mut db) = (cx.zeros_like(a), cx.zeros_like(b));
        rt::tensor::mul_backward(
            cx.batch,
            c,
            pa,
            pb,
            cx.xs[a],
            cx.xs[b],
            cx.dy,
            Some(&mut da),
            Some(&mut db),
        );
        out.dx(a, da);
        out.dx(b, db);
    }

    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream) {
        let (a, b) = roles(&cx.shapes);
        let (c, pa, pb) = geometry(&cx.shapes);
        let (xa, xb, y, dy) = (cx.x(a), cx.x(b), cx.y(), cx.dy());
        // Each input's gradient on its own: the scratch holds one at a time.
        let da = cx.accumulate_dx(
            a,
            quote! { rt::tensor::mul_backward(n, #c, #pa, #pb, &#xa, &#xb, &#dy, Some(&mut ws.scratch[..len]), None); },
        );
        let db = cx.accumulate_dx(
            b,
            quote! { rt::tensor::mul_backward(n, #c, #pa, #pb, &#xa, &#xb, &#dy, None, Some(&mut ws.scratch[..len])); },
        );
        (
            quote! { rt::tensor::mul_forward(n, #c, #pa, #pb, &#xa, &#xb, &mut #y); },
            quote! { #da #db },
        )
    }

    /// ONNX's `Mul` broadcasts a `[N, C, 1, 1]` gate as PyTorch does.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError> {
        let (ins, y) = (cx.ins.clone(), cx.y.clone());
        cx.node("Mul", &ins, &[y], vec![]);
        Ok(())
    }
}
