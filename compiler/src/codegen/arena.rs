//! Arena views: a buffer in the arena is a local slice of it in generated code, carved out
//! once at the top of each function that uses it. [`reference`] names a buffer as the code
//! uses it (`(*t_conv1)` for an arena buffer, `ws.a_pool1` for one of its own), and
//! [`with_views`] puts the carving before a body, for the arena buffers the body names.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::plan::Placement;

/// Buffer `name` as generated code uses it: `(*name)`, a view of the arena carved by
/// [`with_views`], or `ws.name`, a field of the workspace.
pub(crate) fn reference(arena: &BTreeMap<String, Placement>, name: &str) -> TokenStream {
    let id = format_ident!("{name}");
    if arena.contains_key(name) {
        quote! { (*#id) }
    } else {
        quote! { ws.#id }
    }
}

/// `body` after the views it uses: `let [t5, d7] = rt::tensor::carve(&mut ws.arena,
/// ws.batch, ..);` for every arena buffer it names through [`reference`].
pub(crate) fn with_views(body: TokenStream, arena: &BTreeMap<String, Placement>) -> TokenStream {
    let mut used = BTreeSet::new();
    views(&body, arena, &mut used);
    if used.is_empty() {
        return body;
    }
    let names: Vec<_> = used.iter().map(|n| format_ident!("{n}")).collect();
    let parts: Vec<TokenStream> = used
        .iter()
        .map(|n| {
            let p = arena[n];
            let (at, len) = (p.offset, p.elems);
            quote! { (#at, #len) }
        })
        .collect();
    quote! {
        let [#(#names),*] = rt::tensor::carve(&mut ws.arena, ws.batch, [#(#parts),*]);
        #body
    }
}

/// The arena buffers `ts` names as `(*name)`.
fn views(ts: &TokenStream, arena: &BTreeMap<String, Placement>, used: &mut BTreeSet<String>) {
    for t in ts.clone() {
        if let TokenTree::Group(g) = t {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            match (g.delimiter(), inner.as_slice()) {
                (Delimiter::Parenthesis, [TokenTree::Punct(star), TokenTree::Ident(name)])
                    if star.as_char() == '*' && arena.contains_key(&name.to_string()) =>
                {
                    used.insert(name.to_string());
                }
                _ => views(&g.stream(), arena, used),
            }
        }
    }
}

/// Whether `ts` mentions the identifier `name` anywhere.
pub(super) fn uses_ident(ts: &TokenStream, name: &str) -> bool {
    ts.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == name,
        proc_macro2::TokenTree::Group(g) => uses_ident(&g.stream(), name),
        _ => false,
    })
}
