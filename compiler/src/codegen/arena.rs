//! Arena views: a layer's statements name buffers as workspace fields (`ws.t5`); those that
//! live in the arena become local slices of it, carved out once at the top of the function.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::plan::Placement;

/// `body` with every arena buffer it names (`ws.t5`) turned into a local view of the arena,
/// carved out up front: `let [t5, d7] = rt::tensor::carve(&mut ws.arena, ws.batch, ..);`. A
/// view taken by reference without indexing (`&ws.t5`, `&mut ws.t5`) becomes `&*t5`.
pub(super) fn arena_views(
    body: TokenStream,
    arena: &BTreeMap<String, Placement>,
    renames: &BTreeMap<String, String>,
) -> TokenStream {
    let mut used = BTreeSet::new();
    let body = rewrite(body, arena, renames, &mut used);
    if used.is_empty() {
        return body;
    }
    let names: Vec<Ident> = used.iter().map(|n| format_ident!("{n}")).collect();
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

/// The token rewrite of [`arena_views`]; a name in `renames` stands for another buffer.
fn rewrite(
    ts: TokenStream,
    arena: &BTreeMap<String, Placement>,
    renames: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> TokenStream {
    use proc_macro2::{Delimiter, Group, Punct, Spacing, TokenTree};
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let buffer = match (&tokens[i], tokens.get(i + 1), tokens.get(i + 2)) {
            (TokenTree::Ident(ws), Some(TokenTree::Punct(dot)), Some(TokenTree::Ident(name)))
                if ws == "ws" && dot.as_char() == '.' =>
            {
                let name = name.to_string();
                let name = renames.get(&name).cloned().unwrap_or(name);
                arena.contains_key(&name).then(|| format_ident!("{name}"))
            }
            _ => None,
        };
        if let Some(name) = buffer {
            used.insert(name.to_string());
            let indexed = matches!(tokens.get(i + 3), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket);
            let borrowed = match out.last() {
                Some(TokenTree::Punct(p)) => p.as_char() == '&',
                Some(TokenTree::Ident(m)) => m == "mut",
                _ => false,
            };
            if borrowed && !indexed {
                out.push(TokenTree::Punct(Punct::new('*', Spacing::Alone)));
            }
            out.push(TokenTree::Ident(name));
            i += 3;
            continue;
        }
        out.push(match &tokens[i] {
            TokenTree::Group(g) => {
                let mut inner =
                    Group::new(g.delimiter(), rewrite(g.stream(), arena, renames, used));
                inner.set_span(g.span());
                TokenTree::Group(inner)
            }
            t => t.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}

/// Whether `ts` mentions the identifier `name` anywhere.
pub(super) fn uses_ident(ts: &TokenStream, name: &str) -> bool {
    ts.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == name,
        proc_macro2::TokenTree::Group(g) => uses_ident(&g.stream(), name),
        _ => false,
    })
}
