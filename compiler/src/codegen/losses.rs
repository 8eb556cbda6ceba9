//! The losses at the end of `forward_train`: each term computes its value and seeds the
//! gradients of its inputs through the scratch buffer (a network input takes none). `ce`
//! reads a label; `mse`, `l1` and `bce` compare two tensors and seed both.

use petgraph::stable_graph::NodeIndex;

use super::*;

/// The statements of the losses: the sum's declaration, each term's statement (it adds its
/// weighted value to the sum and seeds the gradients of its inputs; network inputs take
/// none), and the expression of their weighted sum.
pub(super) fn losses(
    g: &Graph,
    name: &dyn Fn(char, NodeIndex) -> TokenStream,
    arena: &dyn Fn(TokenStream) -> TokenStream,
) -> (TokenStream, Vec<TokenStream>, TokenStream) {
    let takes_grad = |v: NodeIndex| !matches!(g.node(v).op, Op::Input(_));
    let mut loss_calls = Vec::new();
    for l in &g.losses {
        let [a, b] = l.inputs;
        let w = l.weight as f32;
        let (ta, da) = (name('t', a), name('d', a));
        let call = match l.kind {
            LossKind::Ce => {
                let classes = g.node(a).shape[0];
                let label = rust_ident(&g.node(b).path).expect("inputs are checked first");
                let seed = takes_grad(a).then(|| {
                    quote! { rt::tensor::accumulate(&ws.scratch[..#ta.len()], &mut #da); }
                });
                let smoothing = l.smoothing as f32;
                let call = if smoothing == 0.0 {
                    quote! { rt::loss::softmax_ce(#classes, &#ta, x.#label, #w, &mut ws.scratch[..#ta.len()]) }
                } else {
                    quote! { rt::loss::softmax_ce_smooth(#classes, &#ta, x.#label, #smoothing, #w, &mut ws.scratch[..#ta.len()]) }
                };
                quote! {
                    let l = #call;
                    #seed
                }
            }
            LossKind::Mse | LossKind::L1 | LossKind::Bce => {
                let f = match l.kind {
                    LossKind::Mse => quote! { rt::loss::mse },
                    LossKind::L1 => quote! { rt::loss::l1 },
                    _ => quote! { rt::loss::bce_logits },
                };
                let (tb, db) = (name('t', b), name('d', b));
                // A network input (a target) takes no gradient.
                let (ga, gb) = (takes_grad(a), takes_grad(b));
                let (arg_a, arg_b) = (
                    if ga {
                        quote! { Some(sa) }
                    } else {
                        quote! { None }
                    },
                    if gb {
                        quote! { Some(&mut sb[..len]) }
                    } else {
                        quote! { None }
                    },
                );
                let seed_a = ga.then(|| quote! { rt::tensor::accumulate(sa, &mut #da); });
                let seed_b = gb.then(|| quote! { rt::tensor::accumulate(&sb[..len], &mut #db); });
                let (pa, pb) = (
                    if ga {
                        quote! { sa }
                    } else {
                        quote! { _ }
                    },
                    if gb {
                        quote! { sb }
                    } else {
                        quote! { _ }
                    },
                );
                quote! {
                    let len = #ta.len();
                    let (#pa, #pb) = ws.scratch.split_at_mut(len);
                    let l = #f(&#ta, &#tb, #w, #arg_a, #arg_b);
                    #seed_a
                    #seed_b
                }
            }
        };
        let call = arena(quote! { #call loss += #w * l; });
        loss_calls.push(quote! { { #call } });
    }
    (
        quote! { let mut loss = 0.0f32; },
        loss_calls,
        quote! { loss },
    )
}
