//! Formatting the generated module a piece at a time. A network of 38,000 convolutions held
//! as one token tree, parsed into one `syn::File` and printed, took 7 GB (about 220 KB per
//! layer for 3 KB of text). So the module is made of [`Item`]s that go to a [`Sink`] as
//! they are made: `netc emit` parses and prints each one on its own and keeps only text;
//! the macros keep tokens.
//!
//! An item that grows with the network (the schedule functions, `LAYERS`, the parameter
//! structs) keeps its long lists apart as [`Run`]s of children, and is printed a chunk of
//! each run at a time: the item around a chunk, with a marker child before and after it,
//! shows which lines are the chunk's. prettyplease puts each statement, field and match arm
//! on its own line, and each element of an array too long for one line, so a child prints
//! the same in a chunk as among all of them; that the lines around the chunks come out the
//! same in every round is checked, and the whole item printed at once if not.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// Runs longer than this print in chunks (one round of each run per chunk); no network of
/// the examples comes near it, so their items print whole.
pub(super) const LONG_RUN: usize = 512;

/// What a run's children are, for the marker child that brackets a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Statements of a block.
    Stmt,
    /// Elements of an array, each with its comma.
    Elem,
    /// Fields of a struct or of a struct expression, each with its comma.
    Field,
    /// Arms of a match, each with its comma.
    Arm,
}

/// One long list inside an item. The children are kept as the text of their tokens, read
/// again when printed: a token takes tens of bytes, its text a few.
pub(super) struct Run {
    pub kind: Kind,
    children: Vec<String>,
}

impl Run {
    pub fn new(kind: Kind, children: impl IntoIterator<Item = TokenStream>) -> Run {
        let children = children.into_iter().map(|c| c.to_string()).collect();
        Run { kind, children }
    }

    pub fn push(&mut self, child: TokenStream) {
        self.children.push(child.to_string());
    }

    pub fn extend(&mut self, children: impl IntoIterator<Item = TokenStream>) {
        self.children
            .extend(children.into_iter().map(|c| c.to_string()));
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The tokens of children `range`.
    fn tokens(&self, range: std::ops::Range<usize>) -> TokenStream {
        self.children[range]
            .iter()
            .map(|c| {
                c.parse::<TokenStream>()
                    .expect("the text of tokens reads back")
            })
            .collect()
    }
}

/// A function from the tokens of each run to the tokens of the whole item.
type Template = Box<dyn Fn(&[TokenStream]) -> TokenStream>;

/// One or more items of the module, with their long lists as runs.
pub(super) struct Item {
    template: Template,
    runs: Vec<Run>,
}

impl Item {
    /// Items with no run.
    pub fn whole(tokens: TokenStream) -> Item {
        Item {
            template: Box::new(move |_| tokens.clone()),
            runs: Vec::new(),
        }
    }

    /// An item made by `template` from the tokens of each of `runs`, in order.
    pub fn with_runs(
        runs: Vec<Run>,
        template: impl Fn(&[TokenStream]) -> TokenStream + 'static,
    ) -> Item {
        Item {
            template: Box::new(template),
            runs,
        }
    }

    /// The tokens of the whole item.
    fn tokens(&self) -> TokenStream {
        let runs: Vec<TokenStream> = self
            .runs
            .iter()
            .map(|r| r.tokens(0..r.children.len()))
            .collect();
        (self.template)(&runs)
    }
}

/// Where the items of a module go, in order.
pub(super) enum Sink {
    /// One token stream (for the macros).
    Tokens(TokenStream),
    /// Formatted source text (for `netc emit`), item by item.
    Text(Vec<String>),
}

impl Sink {
    pub fn push(&mut self, item: Item) -> Result<(), String> {
        match self {
            Sink::Tokens(all) => all.extend(item.tokens()),
            Sink::Text(text) => text.push(format(&item)?),
        }
        Ok(())
    }
}

/// `tokens` (whole items) printed by prettyplease, integer suffixes removed.
pub(super) fn unparse(tokens: TokenStream) -> Result<String, String> {
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| format!("internal error: generated code does not parse: {e}"))?;
    Ok(super::unsuffix(&prettyplease::unparse(&file)))
}

/// The text of `item`: whole, or a chunk of each run at a time when a run is long.
fn format(item: &Item) -> Result<String, String> {
    let longest = item.runs.iter().map(|r| r.children.len()).max();
    let rounds = longest.unwrap_or(0).div_ceil(LONG_RUN);
    if rounds < 2 {
        return unparse(item.tokens());
    }
    match chunked(item, rounds)? {
        Some(text) => Ok(text),
        None => {
            #[cfg(test)]
            WHOLE.with(|n| n.set(n.get() + 1));
            unparse(item.tokens())
        }
    }
}

// Items with a long run printed whole after all, on this thread: the tests want none.
#[cfg(test)]
thread_local! {
    pub(super) static WHOLE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The marker child before (`end` false) or after a chunk of run `i`, and the line it
/// prints as.
fn marker(kind: Kind, i: usize, end: bool) -> (TokenStream, String) {
    let id: Ident = format_ident!("__netc_run_{}_{}", i, if end { "end" } else { "begin" });
    match kind {
        Kind::Stmt => (quote! { #id; }, format!("{id};")),
        Kind::Elem => (quote! { #id, }, format!("{id},")),
        Kind::Field => (quote! { #id: (), }, format!("{id}: (),")),
        Kind::Arm => (quote! { #id => {} }, format!("{id} => {{}}")),
    }
}

/// `item` printed in `rounds` rounds, each with the next chunk of every run; `None` when
/// the markers do not come out on lines of their own or the lines around the chunks
/// differ from one round to the next.
fn chunked(item: &Item, rounds: usize) -> Result<Option<String>, String> {
    let m = item.runs.len();
    // The lines outside every run (m + 1 pieces) and the order the runs print in, from
    // the first round; each run's text.
    let mut around: Option<(Vec<String>, Vec<usize>)> = None;
    let mut inside = vec![String::new(); m];
    for round in 0..rounds {
        let runs: Vec<TokenStream> = item
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let n = run.children.len();
                let chunk = run.tokens(round * n / rounds..(round + 1) * n / rounds);
                let (begin, end) = (marker(run.kind, i, false).0, marker(run.kind, i, true).0);
                quote! { #begin #chunk #end }
            })
            .collect();
        let text = unparse((item.template)(&runs))?;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        // Where each run's markers are, in the order they print.
        let mut spans = Vec::with_capacity(m);
        for (i, run) in item.runs.iter().enumerate() {
            let at = |end: bool| {
                let want = marker(run.kind, i, end).1;
                let mut hits = lines.iter().enumerate().filter(|(_, l)| l.trim() == want);
                match (hits.next(), hits.next()) {
                    (Some((k, _)), None) => Some(k),
                    _ => None,
                }
            };
            match (at(false), at(true)) {
                (Some(b), Some(e)) if b < e => spans.push((b, e, i)),
                _ => return Ok(None),
            }
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].1 > w[1].0) {
            return Ok(None);
        }
        let mut pieces = Vec::with_capacity(m + 1);
        let mut from = 0;
        for &(b, e, i) in &spans {
            pieces.push(lines[from..b].concat());
            inside[i].push_str(&lines[b + 1..e].concat());
            from = e + 1;
        }
        pieces.push(lines[from..].concat());
        let order: Vec<usize> = spans.iter().map(|&(_, _, i)| i).collect();
        match &around {
            None => around = Some((pieces, order)),
            Some(first) if *first == (pieces, order) => {}
            Some(_) => return Ok(None),
        }
    }
    let (pieces, order) = around.expect("two rounds or more");
    let mut text = String::new();
    for (piece, &i) in pieces.iter().zip(&order) {
        text.push_str(piece);
        text.push_str(&inside[i]);
    }
    text.push_str(&pieces[m]);
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item with a long run of each kind.
    fn long_item(n: usize) -> Item {
        let stmts = (0..n).map(|i| {
            let f = format_ident!("forward_{i}");
            quote! { #f(p, s, ws, true); }
        });
        let elems = (0..n).map(|i| {
            let path = format!("block_{i}.branch.conv");
            quote! { (#path, #i, 7), }
        });
        let fields = (0..n).map(|i| {
            let (f, doc) = (format_ident!("t{i}"), format!(" buffer {i}"));
            quote! { #[doc = #doc] pub #f: Vec<f32>, }
        });
        let arms = (0..n).map(|i| {
            let (path, f) = (format!("p.{i}"), format_ident!("t{i}"));
            quote! { #path => Some(&self.#f), }
        });
        let runs = vec![
            Run::new(Kind::Stmt, stmts),
            Run::new(Kind::Elem, elems),
            Run::new(Kind::Field, fields),
            Run::new(Kind::Arm, arms),
        ];
        Item::with_runs(runs, |runs| {
            let [stmts, elems, fields, arms] = runs else {
                unreachable!("four runs")
            };
            quote! {
                /// Runs every layer.
                pub fn forward(p: &P, s: &S, ws: &mut W) -> f32 { let t = 1; #stmts t as f32 }
                pub const ACTIVATIONS: &[(&str, usize, usize)] = &[#elems];
                pub struct W { pub batch: usize, #fields col: Vec<f32> }
                impl W {
                    pub fn get(&self, name: &str) -> Option<&[f32]> { match name { #arms _ => None } }
                }
            }
        })
    }

    #[test]
    fn chunks_print_as_the_whole_item_does() {
        let item = long_item(3 * LONG_RUN + 7);
        let whole = unparse(item.tokens()).unwrap();
        let chunks = chunked(&item, 4).unwrap();
        assert_eq!(chunks.as_deref(), Some(whole.as_str()));
        assert_eq!(format(&item).unwrap(), whole);
    }

    #[test]
    fn a_chunk_too_short_to_break_falls_back_to_the_whole_item() {
        // Four rounds of a run of two elements: `[begin, end]` fits on one line.
        let short = (0..2usize).map(|i| quote! { #i, });
        let long = (0..4 * LONG_RUN).map(|i| quote! { f(#i); });
        let item = Item::with_runs(
            vec![Run::new(Kind::Elem, short), Run::new(Kind::Stmt, long)],
            |runs| {
                let (short, long) = (&runs[0], &runs[1]);
                quote! { const A: [usize; 2] = [#short]; fn g() { #long } }
            },
        );
        assert_eq!(chunked(&item, 4).unwrap(), None);
        assert_eq!(format(&item).unwrap(), unparse(item.tokens()).unwrap());
        assert_eq!(WHOLE.get(), 1);
    }
}
