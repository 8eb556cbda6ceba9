//! A layer's functions in generated code: the parameters each takes (those its body uses:
//! the parameters, the state or the gradients; the workspace always), whether it runs on the
//! calling thread alone (below its crossover batch, `plan::threads`), and the calls the
//! schedules make of them.

use petgraph::stable_graph::NodeIndex;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::arena::uses_ident;
use super::Cx;
use crate::graph::Graph;
use crate::plan::schedule::What;

/// The calls the training step's schedules make of one layer's functions: forward and
/// backward.
#[derive(Default)]
pub(super) struct Calls {
    pub train: Option<TokenStream>,
    pub backward: Option<TokenStream>,
}

/// Which schedule a layer function serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Train,
    Infer,
    Backward,
}

/// A layer function's parameters: the parameters `p` and the state `s` (or the gradients
/// `g` in backward) when its body uses them; the workspace always. And the batch from which
/// it runs on all threads.
pub(super) struct Signature {
    phase: Phase,
    pub params: bool,
    pub state: bool,
    crossover: usize,
}

/// The signature of the function of `cx`'s layer in `phase` with `body`.
pub(super) fn signature(body: &TokenStream, phase: Phase, cx: &Cx) -> Signature {
    let state = if phase == Phase::Backward { "g" } else { "s" };
    let what = match phase {
        Phase::Train => What::Forward(cx.n),
        Phase::Infer => What::Infer(cx.n),
        Phase::Backward => What::Backward(cx.n),
    };
    Signature {
        phase,
        params: uses_ident(body, "p"),
        state: uses_ident(body, state),
        crossover: cx.ws.crossover(what),
    }
}

impl Signature {
    /// The function `name` with `body`, documented `doc`.
    pub(super) fn function(&self, doc: &str, name: &Ident, body: &TokenStream) -> TokenStream {
        let batch = uses_ident(body, "n").then(|| quote! { let n = ws.batch; });
        // Below its crossover the layer is faster on the calling thread alone.
        let threads = match self.crossover {
            0 | 1 => None,
            // A kernel that never splits (`plan::threads`, `Work::Serial`).
            usize::MAX => Some(quote! { let _threads = rt::gemm::one_thread(); }),
            b => {
                let b = proc_macro2::Literal::usize_unsuffixed(b);
                Some(quote! { let _threads = rt::gemm::one_thread_if(ws.batch < #b); })
            }
        };
        let mut params = Vec::new();
        if self.params {
            params.push(quote! { p: &Params });
        }
        if self.state {
            params.push(match self.phase {
                Phase::Train => quote! { s: &mut State },
                Phase::Infer => quote! { s: &State },
                Phase::Backward => quote! { g: &mut Grads },
            });
        }
        params.push(quote! { ws: &mut Workspace });
        quote! {
            #[doc = #doc]
            #[inline(never)]
            fn #name(#(#params),*) {
                #threads
                #batch
                #body
            }
        }
    }

    /// The arguments of a call from the schedule of its phase.
    pub(super) fn args(&self) -> TokenStream {
        let mut args = Vec::new();
        if self.params {
            args.push(quote! { p });
        }
        if self.state {
            args.push(match self.phase {
                Phase::Backward => quote! { g },
                _ => quote! { s },
            });
        }
        args.push(quote! { ws });
        quote! { #(#args),* }
    }
}

/// What the passes did to layer `n`, for its doc comment: a batchnorm folded in, merged
/// into one GEMM with its siblings, written in place into a concat.
pub(super) fn fusion_note(g: &Graph, n: NodeIndex) -> String {
    let mut note = String::new();
    if let crate::ops::Op::Conv(crate::ops::Conv { fold: Some(f), .. }) = &g.node(n).op {
        note += &format!(" Batchnorm `{}` folded in (fold_bn).", f.bn);
    }
    if let crate::ops::Op::Conv(crate::ops::Conv { residual: true, .. }) = &g.node(n).op {
        let r = g.inputs_of(n)[1];
        note += &format!(" Adds `{}` in its epilogue (residual).", g.node(r).path);
    }
    if let Some(group) = g.group_of(n) {
        let paths = |js: &[NodeIndex]| {
            js.iter()
                .map(|&j| format!("`{}`", g.node(j).path))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if group[0] == n {
            note += &format!(
                " One GEMM computes it with {} (merge_1x1).",
                paths(&group[1..])
            );
        } else {
            note += &format!(" Computed with {} (merge_1x1).", paths(&group[..1]));
        }
    }
    if let Some(slot) = g.slots.get(&n) {
        let c = g.node(n).shape[0];
        note += &format!(
            " Written in place as channels {}..{} of the concat `{}` (concat_in_place).",
            slot.c0,
            slot.c0 + c,
            g.node(slot.concat).path
        );
    }
    note
}
