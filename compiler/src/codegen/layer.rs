//! The forward and backward statements of each layer: its op's [`OpKind::emit`] with a
//! [`Cx`] that names the layer's buffers. A gradient reaches its input's buffer through the
//! scratch buffer and an accumulate ([`Cx::accumulate_dx`]), so fan-out sums come for free.
//!
//! [`OpKind::emit`]: crate::ops::OpKind::emit

use petgraph::stable_graph::NodeIndex;

use super::arena::reference;
use super::*;
use crate::plan::schedule::Buffers;
use crate::plan::Workspace;

/// What an op's code generation sees of its layer: the graph, the node, and the names of
/// the buffers and parameters in generated code (`(*t_conv1)` is the activation of `conv1`
/// as a view of the arena, `(*d_conv1)` its gradient, `ws.a_pool1` a buffer of its own,
/// `p.conv1_weight` a parameter, `g.conv1_weight` its gradient).
pub struct Cx<'g> {
    pub g: &'g Graph,
    pub n: NodeIndex,
    /// The workspace: its buffers, their names' stems and their places in the arena.
    pub ws: &'g Workspace,
    /// Which buffer holds which value (`plan::schedule::Buffers`).
    pub bufs: &'g Buffers<'g>,
    pub ins: Vec<NodeIndex>,
    /// The inputs' per-sample shapes, and the output's.
    pub shapes: Vec<&'g Shape>,
    pub y_shape: &'g Shape,
    /// The name of the layer's geometry constant (see [`Cx::geo`]).
    geo: Ident,
}

impl<'g> Cx<'g> {
    fn new(g: &'g Graph, n: NodeIndex, ws: &'g Workspace, bufs: &'g Buffers<'g>) -> Cx<'g> {
        let ins = g.inputs_of(n);
        Cx {
            g,
            n,
            ws,
            bufs,
            shapes: ins.iter().map(|&i| &g.node(i).shape).collect(),
            ins,
            y_shape: &g.node(n).shape,
            geo: format_ident!("GEO_{}", ws.stems[&n].to_uppercase()),
        }
    }

    /// Names the layer's geometry constant `name` (inference's, where it is not training's).
    pub(super) fn rename_geometry(&mut self, name: Ident) {
        self.geo = name;
    }

    /// The path of the layer.
    pub fn path(&self) -> &str {
        &self.g.node(self.n).path
    }

    /// Buffer `kind` of node `n` as the code uses it: for an activation (`'t'`) or a
    /// gradient (`'d'`), the buffer that holds the value (a concat's for a layer written
    /// into it, the input's for an activation in place).
    pub fn buffer(&self, kind: char, n: NodeIndex) -> TokenStream {
        let id = match kind {
            't' | 'd' => self.bufs.value(kind, n),
            _ => self.bufs.own(kind, n),
        };
        let name = match id {
            Some(id) => self.ws.buffers[id].name.clone(),
            None => crate::plan::buffer_name(&self.ws.stems, kind, n),
        };
        reference(&self.ws.arena, &name)
    }

    /// The activation of input `i`.
    pub fn x(&self, i: usize) -> TokenStream {
        self.buffer('t', self.ins[i])
    }

    /// The gradient of input `i`.
    pub fn dx(&self, i: usize) -> TokenStream {
        self.buffer('d', self.ins[i])
    }

    /// The layer's activation.
    pub fn y(&self) -> TokenStream {
        self.buffer('t', self.n)
    }

    /// The gradient of the layer's activation.
    pub fn dy(&self) -> TokenStream {
        self.buffer('d', self.n)
    }

    /// A buffer kept for backward (`SavedDecl::letter`).
    pub fn saved(&self, letter: char) -> TokenStream {
        self.buffer(letter, self.n)
    }

    /// The layer's geometry constant (see `OpKind::geometry`), `GEO_I3A_B2_0`.
    pub fn geo(&self) -> TokenStream {
        let c = &self.geo;
        quote! { #c }
    }

    /// The layer's parameter `PATH.suffix`.
    pub fn param(&self, suffix: &str) -> TokenStream {
        self.param_at(self.path(), suffix)
    }

    /// Parameter `path.suffix` of another layer (the batchnorm a conv folds in).
    pub fn param_at(&self, path: &str, suffix: &str) -> TokenStream {
        let f = field(&format!("{path}.{suffix}"));
        quote! { p.#f }
    }

    /// State tensor `path.suffix` of another layer (the batchnorm a conv folds in).
    pub fn state_at(&self, path: &str, suffix: &str) -> TokenStream {
        let f = field(&format!("{path}.{suffix}"));
        quote! { s.#f }
    }

    /// The gradient of the layer's parameter `PATH.suffix`.
    pub fn grad(&self, suffix: &str) -> TokenStream {
        let f = field(&format!("{}.{suffix}", self.path()));
        quote! { g.#f }
    }

    /// The layer's state tensor `PATH.suffix`.
    pub fn state(&self, suffix: &str) -> TokenStream {
        self.state_at(self.path(), suffix)
    }

    /// `Some(&p.PATH_bias[..])` and `Some(&mut g.PATH_bias[..])` for a layer with a bias,
    /// `None` twice otherwise: the bias arguments of a forward and of a weight gradient.
    pub fn bias_args(&self, has_bias: bool) -> (TokenStream, TokenStream) {
        if has_bias {
            let (b, db) = (self.param("bias"), self.grad("bias"));
            (quote! { Some(&#b[..]) }, quote! { Some(&mut #db[..]) })
        } else {
            (quote! { None }, quote! { None })
        }
    }

    /// Whether input `i` takes a gradient (a network input does not).
    pub fn wants(&self, i: usize) -> bool {
        self.ins
            .get(i)
            .is_some_and(|&j| !matches!(self.g.node(j).op, Op::Input(_)))
    }

    /// `body` writes input `i`'s gradient into `ws.scratch[..len]` (`len` its length);
    /// the result adds it to that input's gradient. Nothing when the input takes none.
    pub fn accumulate_dx(&self, i: usize, body: TokenStream) -> TokenStream {
        if !self.wants(i) {
            return quote! {};
        }
        let dx = self.dx(i);
        // The length from the shape: the input's activation need not be alive.
        let elems = self.shapes[i].iter().product::<usize>();
        quote! {
            let len = n * #elems;
            #body
            rt::tensor::accumulate(&ws.scratch[..len], &mut #dx);
        }
    }

    /// `call` writes input `i`'s gradient into `ws.scratch[..len]` along with the layer's
    /// parameter gradients (a norm's backward): it runs whether the input takes a gradient
    /// or not, and the input's gradient, if it takes one, is added to its buffer.
    pub fn scratch_dx(&self, i: usize, call: TokenStream) -> TokenStream {
        let elems = self.shapes[i].iter().product::<usize>();
        let add = self.wants(i).then(|| {
            let dx = self.dx(i);
            quote! { rt::tensor::accumulate(&ws.scratch[..len], &mut #dx); }
        });
        quote! {
            let len = n * #elems;
            #call
            #add
        }
    }

    /// `call`, given input `i`'s gradient buffer, adds that input's gradient into it (a
    /// kernel's accumulating form: GEMM beta 1, no scratch). Nothing when the input takes
    /// none.
    pub fn add_dx(&self, i: usize, call: impl FnOnce(TokenStream) -> TokenStream) -> TokenStream {
        if self.wants(i) {
            call(self.dx(i))
        } else {
            quote! {}
        }
    }

    /// Input `i`'s gradient plus `dy` (an op whose gradient passes through unchanged).
    pub fn pass_dx(&self, i: usize) -> TokenStream {
        if !self.wants(i) {
            return quote! {};
        }
        let (dy, dx) = (self.dy(), self.dx(i));
        quote! { rt::tensor::accumulate(&#dy, &mut #dx); }
    }
}

/// What the op of node `n` sees of it.
pub(super) fn cx<'g>(
    g: &'g Graph,
    n: NodeIndex,
    ws: &'g Workspace,
    bufs: &'g Buffers<'g>,
) -> Cx<'g> {
    Cx::new(g, n, ws, bufs)
}

/// The forward and backward statements of one layer.
pub(super) fn layer(cx: &Cx) -> (TokenStream, TokenStream) {
    let (g, n) = (cx.g, cx.n);
    let node = g.node(n);
    // A layer run in place: its buffers are its input's. An activation's gradient is
    // masked where it is; an add (only ever where no gradient flows) adds its other inputs
    // to the one it overwrites. (A residual conv in place on the value it adds is its op's
    // to print.)
    let pointwise = matches!(node.op, Op::Act(_) | Op::Add(_));
    if let Some(&x) = g.aliases.get(&n).filter(|_| pointwise) {
        let t = cx.y();
        return match &node.op {
            Op::Act(a) => {
                let (k, d) = (a.f.kernel(), cx.dy());
                (
                    quote! { rt::act::forward_inplace(#k, &mut #t); },
                    quote! { rt::act::backward_inplace(#k, &#t, &mut #d); },
                )
            }
            Op::Add(_) => {
                let others = (0..cx.ins.len())
                    .filter(|&i| cx.ins[i] != x)
                    .map(|i| cx.x(i));
                (
                    quote! { #(rt::tensor::accumulate(&#others, &mut #t);)* },
                    quote! {},
                )
            }
            _ => unreachable!("the verifier checks in-place layers"),
        };
    }
    node.op.kind().emit(cx)
}

/// For a layer that the `concat_in_place` pass put in a concat's buffers: those buffers
/// (activation and gradient) and the `rt::tensor::Slot` of the layer's channels.
pub(crate) fn layer_in_place(
    cx: &Cx,
    n: NodeIndex,
) -> Option<(TokenStream, TokenStream, TokenStream)> {
    let slot = cx.g.slots.get(&n)?;
    let concat = cx.g.node(slot.concat);
    let (c0, cy, plane) = (
        slot.c0,
        concat.shape[0],
        concat.shape[1..].iter().product::<usize>(),
    );
    Some((
        cx.buffer('t', n),
        cx.buffer('d', n),
        quote! { rt::tensor::Slot::channels(#c0, #cy, #plane) },
    ))
}
