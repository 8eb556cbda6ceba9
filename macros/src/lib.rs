//! netc-macros: `network! { ... }` and `include_net!("file.net")`, re-exported by the `netc`
//! crate. Both run the whole compiler at build time: a network that does not check is a
//! `compile_error!` at the offending token (or, from a file, with the file, line and column),
//! and one that does becomes the module `netc emit` writes, plus `Net`, its
//! `netc::train::Network` for the library trainer.
//!
//! The `.net` language is made of Rust tokens, so `network!` rebuilds its text from the
//! tokens it is given, remembering where each one came from, and maps the spans of
//! diagnostics back onto those tokens.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use netc_compiler::load::{self, Loader};
use netc_compiler::Checked;
use netc_dsl::{Diagnostic, FileId};
use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};

/// Networks written in the `.net` language (docs/language.md), checked and compiled as the crate
/// builds: one module per network, named after it, with what `netc emit` writes (`Params`,
/// `Grads`, `State`, `Workspace`, `Inputs`, `forward`, `forward_train`, `backward`, the
/// outputs and activations by path), and `Net`, the network for `netc::train::Trainer` (for
/// the networks `netc train` takes; otherwise `Net`'s documentation says why not).
/// `use "FILE"` paths are relative to the crate's `Cargo.toml`.
#[proc_macro]
pub fn network(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let tokens = Tokens::new(input.into());
    let root = manifest_dir().join("network!");
    let loader = Recording::default();
    let (prog, diags) = load::load_source("network!", tokens.text.clone(), &root, &loader);
    let checked = netc_compiler::check_program(prog, diags, None);
    let spans = |d: &Diagnostic| {
        d.span()
            .filter(|s| s.file == FileId(0))
            .map(|s| tokens.spans(s.start as usize, s.end as usize))
    };
    expand(&checked, &loader, Span::call_site(), &spans).into()
}

/// The networks of a `.net` file, as [`network!`] would expand its text; the path is relative
/// to the crate's `Cargo.toml`. Cargo rebuilds the crate when the file, or any file it
/// `use`s, changes. A network that does not check is a `compile_error!` naming the file, line
/// and column.
#[proc_macro]
pub fn include_net(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let lit = match syn::parse2::<syn::LitStr>(input.into()) {
        Ok(lit) => lit,
        Err(e) => {
            let msg = format!("{e}; include_net! takes the path of a .net file, such as include_net!(\"examples/lenet.net\")");
            return syn::Error::new(e.span(), msg).to_compile_error().into();
        }
    };
    let name = lit.value();
    let path = manifest_dir().join(&name);
    let text = match load::read_source(&path) {
        Ok(text) => text,
        Err(e) => {
            let msg = format!(
                "cannot read `{}`: {e}\nhelp: the path is relative to the crate's Cargo.toml",
                path.display()
            );
            return syn::Error::new(lit.span(), msg).to_compile_error().into();
        }
    };
    let loader = Recording::default();
    loader.read.borrow_mut().push(path.clone());
    let (prog, diags) = load::load_source(name, text, &path, &loader);
    let checked = netc_compiler::check_program(prog, diags, None);
    expand(&checked, &loader, lit.span(), &|_| None).into()
}

/// The crate being built: where `use` and `include_net!` paths start.
fn manifest_dir() -> PathBuf {
    // The test hook of the UI tests, which trybuild builds in a crate of its own.
    std::env::var_os("NETC_MANIFEST_DIR")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The modules of `checked`'s networks, or its errors as `compile_error!`s: at the tokens
/// `spans` gives for a diagnostic, else at `fallback` with the diagnostic rendered with its
/// file, line and column.
fn expand(
    checked: &Checked,
    loader: &Recording,
    fallback: Span,
    spans: &dyn Fn(&Diagnostic) -> Option<(Span, Span)>,
) -> TokenStream {
    // Cargo rebuilds the crate when a file it read changes.
    let tracked = loader
        .read
        .borrow()
        .iter()
        .map(|p| {
            let p = p.display().to_string();
            quote! { const _: &[u8] = include_bytes!(#p); }
        })
        .collect::<Vec<_>>();
    let mut errors: Vec<Diagnostic> = checked.errors().cloned().collect();
    if errors.is_empty() {
        errors = rust_names(checked);
    }
    if !errors.is_empty() {
        let errors = errors.iter().map(|d| match spans(d) {
            Some((first, last)) => error(first, last, &summary(d)),
            None => error(fallback, fallback, &located(d, &checked.sources)),
        });
        return quote! { #(#errors)* #(#tracked)* };
    }
    if checked.graphs.is_empty() {
        return error(
            fallback,
            fallback,
            "no network here: `network NAME(INPUTS) { ... }` defines one",
        );
    }
    let modules = checked.graphs.iter().map(|g| {
        let name = netc_compiler::codegen::rust_ident(&g.name).expect("names checked above");
        let runtime = quote! { ::netc::rt };
        let items = match netc_compiler::codegen::module_tokens(g, &runtime, &[]) {
            Ok(items) => items,
            Err(e) => return error(fallback, fallback, &format!("network `{}`: {e}", g.name)),
        };
        // Networks the trainer cannot take (see `netc train`) have no `Network`; `Net`'s
        // documentation says why.
        let (imp, net_doc) =
            match netc_compiler::codegen::network_impl(g, &quote! { ::netc::train }, &quote! { self }) {
                Ok(imp) => (imp, " The network, for `netc::train::Trainer`.".to_string()),
                Err(why) => (TokenStream::new(), format!(" The network. It has no `netc::train::Network`, so no `Trainer`: {why}.")),
            };
        let doc = format!(
            " Network `{}`, generated by netc from its `.net` text.",
            g.name
        );
        quote! {
            #[doc = #doc]
            #[allow(clippy::all, clippy::pedantic, unused, missing_docs, non_snake_case, non_camel_case_types, non_upper_case_globals)]
            pub mod #name {
                #items

                #[doc = #net_doc]
                pub struct Net;

                #imp
            }
        }
    });
    quote! { #(#modules)* #(#tracked)* }
}

/// Names Rust cannot take for a module or a field (`self`, `super`, `crate`, `Self`, `_`),
/// given to a network or an input: errors at the name. Other Rust keywords become raw
/// identifiers (`r#type`).
fn rust_names(checked: &Checked) -> Vec<Diagnostic> {
    let root = checked.sources.get(FileId(0));
    let mut out = Vec::new();
    for g in &checked.graphs {
        if let Err(e) = netc_compiler::codegen::rust_ident(&g.name) {
            let mut d = Diagnostic::error("rust-name", format!("network `{}`: {e}", g.name));
            if let Some((start, end)) = network_name(&root.text, &g.name) {
                d = d.label(
                    netc_dsl::Span::new(FileId(0), start, end),
                    "the module's name",
                );
            }
            out.push(d);
        }
        for (name, n) in &g.inputs {
            if let Err(e) = netc_compiler::codegen::rust_ident(name) {
                out.push(
                    Diagnostic::error("rust-name", format!("input `{name}`: {e}"))
                        .label(g.node(*n).span, "a field of `Inputs`"),
                );
            }
        }
    }
    out
}

/// Where `network NAME` names `name` in `text`: its byte range.
fn network_name(text: &str, name: &str) -> Option<(usize, usize)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices("network").find_map(|(at, _)| {
        let rest = &text[at + "network".len()..];
        let trimmed = rest.trim_start();
        let start = text.len() - trimmed.len();
        let after = trimmed.strip_prefix(name)?;
        (rest.len() > trimmed.len() && !after.starts_with(ident))
            .then_some((start, start + name.len()))
    })
}

/// A diagnostic in one message: what, the labels, the hint and the notes.
fn summary(d: &Diagnostic) -> String {
    let mut out = d.message.clone();
    for l in d.labels.iter().filter(|l| !l.message.is_empty()) {
        out += &format!("\n{}", l.message);
    }
    if let Some(help) = &d.help {
        out += &format!("\nhelp: {help}");
    }
    for n in &d.notes {
        out += &format!("\nnote: {n}");
    }
    out
}

/// A diagnostic in a file, in rustc's manner: the message, `--> file:line:column`, the line
/// with the primary label underlined, the hint and the notes.
fn located(d: &Diagnostic, sources: &netc_dsl::SourceMap) -> String {
    let mut out = d.message.clone();
    if let Some(label) = d.labels.first() {
        let file = sources.get(label.span.file);
        let start = (label.span.start as usize).min(file.text.len());
        let end = (label.span.end as usize).clamp(start, file.text.len());
        let line_start = file.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = file.text[start..]
            .find('\n')
            .map_or(file.text.len(), |i| start + i);
        let line = file.text[..start].matches('\n').count() + 1;
        let column = file.text[line_start..start].chars().count() + 1;
        let width = file.text[start..end.min(line_end)].chars().count().max(1);
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        out += &format!(
            "\n{pad}--> {}:{line}:{column}\n{pad} |\n{number} | {}\n{pad} | {}{} {}",
            // Files reached by `use` have absolute names: shown from the crate's folder.
            Path::new(&file.name)
                .strip_prefix(manifest_dir())
                .map_or(file.name.clone(), |p| p.display().to_string()),
            file.text[line_start..line_end].trim_end_matches('\r'),
            " ".repeat(column - 1),
            "^".repeat(width),
            label.message
        );
    }
    if let Some(help) = &d.help {
        out += &format!("\nhelp: {help}");
    }
    for n in &d.notes {
        out += &format!("\nnote: {n}");
    }
    out
}

/// `compile_error!(message)` over the tokens from `first` to `last` (rustc joins the spans of
/// a macro call's path and its brackets, which is how an error covers several tokens).
fn error(first: Span, last: Span, message: &str) -> TokenStream {
    let path = quote_spanned! { first => ::core::compile_error! };
    let args = quote_spanned! { last => { #message } };
    quote! { #path #args }
}

/// Every file the compiler read, for cargo's rebuild tracking.
#[derive(Default)]
struct Recording {
    read: RefCell<Vec<PathBuf>>,
}

impl Loader for Recording {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let text = load::read_source(path)?;
        self.read.borrow_mut().push(path.to_path_buf());
        Ok(text)
    }
}

/// The text of a macro's tokens, and where each token's text starts and ends in it.
struct Tokens {
    text: String,
    at: Vec<(usize, usize, Span)>,
}

impl Tokens {
    fn new(stream: TokenStream) -> Tokens {
        let mut t = Tokens {
            text: String::new(),
            at: Vec::new(),
        };
        t.push_stream(stream);
        t
    }

    fn push_stream(&mut self, stream: TokenStream) {
        let mut trees = stream.into_iter().peekable();
        while let Some(tree) = trees.next() {
            match tree {
                // `///` doc comments reach a macro as `#[doc = "..."]`: comments to the
                // language, so they are skipped.
                TokenTree::Punct(p) if p.as_char() == '#' && trees.peek().is_some_and(is_doc) => {
                    trees.next();
                }
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        // A `$x:expr` from `macro_rules!` arrives in an invisible group that
                        // Rust reads as parenthesized: `$c * 2` with `$c` = `1 + 2` is 6. An
                        // operator inside needs the parentheses written out (a call such as
                        // `conv(8, k=3)`, which may stand where parentheses may not, has none
                        // at its top level).
                        Delimiter::None if has_operator(&g.stream()) => ("(", ")"),
                        Delimiter::None => ("", ""),
                    };
                    self.push(open, g.span_open());
                    self.push_stream(g.stream());
                    self.push(close, g.span_close());
                }
                // `->` and other two-character operators stay together.
                TokenTree::Punct(p) => {
                    self.push(&p.as_char().to_string(), p.span());
                    if p.spacing() == Spacing::Joint {
                        self.text.pop();
                    }
                }
                // A raw identifier stays raw: the language reads `r#type` as the name `type`,
                // and `r#block` as the name `block`, which plain would be a keyword.
                TokenTree::Ident(i) => self.push(&i.to_string(), i.span()),
                TokenTree::Literal(l) => self.push(&l.to_string(), l.span()),
            }
        }
    }

    /// Appends a token's text and a space.
    fn push(&mut self, text: &str, span: Span) {
        if text.is_empty() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(text);
        self.at.push((start, self.text.len(), span));
        self.text.push(' ');
    }

    /// The first and last tokens that the text `start..end` touches. An empty range (an
    /// error between tokens) is the token after it, or the last token at the end.
    fn spans(&self, start: usize, end: usize) -> (Span, Span) {
        let touched: Vec<Span> = self
            .at
            .iter()
            .filter(|&&(s, e, _)| s < end.max(start + 1) && e > start)
            .map(|&(_, _, span)| span)
            .collect();
        match (touched.first(), touched.last()) {
            (Some(&first), Some(&last)) => (first, last),
            _ => {
                let next = self.at.iter().find(|&&(s, _, _)| s >= start);
                let at = next
                    .or(self.at.last())
                    .map_or(Span::call_site(), |&(_, _, s)| s);
                (at, at)
            }
        }
    }
}

/// Whether a token tree is the `[doc = ...]` of a doc comment.
fn is_doc(tree: &TokenTree) -> bool {
    match tree {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => g
            .stream()
            .into_iter()
            .next()
            .is_some_and(|t| matches!(t, TokenTree::Ident(i) if i == "doc")),
        _ => false,
    }
}

/// Whether a stream has an arithmetic operator at its top level (not inside a group).
fn has_operator(stream: &TokenStream) -> bool {
    stream
        .clone()
        .into_iter()
        .any(|t| matches!(t, TokenTree::Punct(p) if matches!(p.as_char(), '+' | '-' | '*' | '/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw identifiers reach the language as written, and each maps back to its token.
    #[test]
    fn raw_identifiers_stay_raw() {
        let t = Tokens::new(quote! { r#block = x -> relu as r#type; });
        assert_eq!(t.text, "r#block = x -> relu as r#type ; ");
        let words: Vec<&str> = t.at.iter().map(|&(s, e, _)| &t.text[s..e]).collect();
        assert_eq!(
            words,
            ["r#block", "=", "x", "-", ">", "relu", "as", "r#type", ";"]
        );
        let prog = netc_dsl::parse(FileId(0), &format!("network n(x: [1]) {{ {} }}", t.text));
        let file = prog.unwrap();
        let netc_dsl::ast::Item::Network(n) = &file.items[0] else {
            panic!("a network")
        };
        let netc_dsl::ast::Stmt::Bind(b) = &n.stmts[0] else {
            panic!("a binding")
        };
        assert_eq!(b.name.name, "block");
        assert_eq!(b.chain.stages[0].alias.as_ref().unwrap().name, "type");
    }
}
