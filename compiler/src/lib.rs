//! netc-compiler: from `.net` source to a checked graph. Loading (`use`), name resolution,
//! lowering with shape inference, costs, pruning, and the report and picture of a network.

#![forbid(unsafe_code)]

pub mod codegen;
pub mod dot;
pub mod graph;
pub mod interp;
pub mod load;
pub mod lower;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod plan;
mod repeat;
pub mod report;
pub mod resolve;
pub mod train;
pub mod value;
pub mod verify;

use std::collections::HashSet;
use std::path::Path;

use netc_dsl::ast::Item;
use netc_dsl::diag::did_you_mean;
use netc_dsl::{Diagnostic, SourceMap};

pub use graph::Graph;
pub use load::{FsLoader, Loader};
pub use report::Report;

/// The result of checking a program: its networks as graphs, and every diagnostic.
#[derive(Debug)]
pub struct Checked {
    pub sources: SourceMap,
    /// The networks checked, in source order (empty when there were errors).
    pub graphs: Vec<Graph>,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// How many blocks and consts were defined (for a file that defines no network).
    pub blocks: usize,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    /// Drops the warnings of the kinds `allowed` names (see [`WARNINGS`]); errors stay.
    pub fn allow(&mut self, allowed: &[&str]) {
        self.diagnostics
            .retain(|d| d.is_error() || !allowed.contains(&d.code));
    }

    /// Every diagnostic rendered with source context, without colour.
    pub fn render(&self) -> String {
        netc_dsl::diag::render_all(&self.diagnostics, &self.sources, false)
    }
}

/// Every kind of warning, by the code it is shown with (`netc::window-drops`), and what it
/// is about: the names `netc --allow` takes.
pub const WARNINGS: &[(&str, &str)] = &[
    ("duplicate", "an output listed twice"),
    ("no-output", "a network without an `output` line"),
    (
        "unused",
        "a binding, input, block parameter, const or block that nothing uses",
    ),
    (
        "window-drops",
        "a conv or pool window that never reads the last rows or columns of its input",
    ),
];

/// Checks the file at `path` (and the files it uses). With `network`, only that network.
pub fn check_file(path: &Path, network: Option<&str>) -> Checked {
    let (prog, diags) = load::load_file(path, &FsLoader);
    check_program(prog, diags, network)
}

/// Checks source text; `use` paths resolve against the directory of `path`.
pub fn check_source(name: &str, text: &str, path: &Path, network: Option<&str>) -> Checked {
    let (prog, diags) = load::load_source(name, text, path, &FsLoader);
    check_program(prog, diags, network)
}

/// Checks a loaded program: resolution of every block, then lowering of the networks.
pub fn check_program(
    prog: load::Program,
    mut diags: Vec<Diagnostic>,
    network: Option<&str>,
) -> Checked {
    let mut graphs = Vec::new();
    let mut blocks = 0;
    if !diags.iter().any(Diagnostic::is_error) {
        let defs = load::defs(&prog, &mut diags);
        blocks = defs.blocks.len();
        let mut globals = HashSet::new();
        for (_, file) in prog.parsed() {
            for item in &file.items {
                match item {
                    Item::Block(b) => diags.extend(resolve::block(&defs, b, &mut globals)),
                    Item::Const(c) => resolve::constant(c, &mut globals),
                    Item::Use(_) | Item::Network(_) => {}
                }
            }
        }
        let consts = lower::consts(&defs, &mut diags);
        let all = prog.networks();
        for (i, n) in all.iter().enumerate() {
            if let Some(first) = all[..i].iter().find(|m| m.name.name == n.name.name) {
                diags.push(
                    Diagnostic::error(
                        "duplicate",
                        format!("network `{}` is defined twice", n.name.name),
                    )
                    .label(n.name.span, "defined again here")
                    .label(first.name.span, "first defined here"),
                );
            }
        }
        let selected: Vec<_> = match network {
            None => all.clone(),
            Some(name) => {
                let found: Vec<_> = all
                    .iter()
                    .copied()
                    .filter(|n| n.name.name == name)
                    .collect();
                if found.is_empty() {
                    let names: Vec<&str> = all.iter().map(|n| n.name.name.as_str()).collect();
                    let mut d = Diagnostic::error(
                        "no-network",
                        format!(
                            "`{}` defines no network `{name}`",
                            prog.sources.get(prog.root).name
                        ),
                    );
                    d = match did_you_mean(name, names.iter().copied()) {
                        Some(h) => d.help(h),
                        None if names.is_empty() => d.help("the file defines no network"),
                        None => d.help(format!("its networks are {}", names.join(", "))),
                    };
                    diags.push(d);
                }
                found
            }
        };
        for net in &all {
            let mut d = resolve::network(&defs, net, &mut globals);
            if selected.iter().any(|s| std::ptr::eq(*s, *net)) {
                diags.append(&mut d);
            }
        }
        if !all.is_empty() {
            unused_globals(&prog, &globals, &mut diags);
        }
        for net in selected {
            let g = lower::network(&defs, &consts, net, &mut diags);
            if !diags.iter().any(Diagnostic::is_error) {
                if let Err(e) = verify::graph(&g) {
                    diags.push(
                        Diagnostic::error("internal", format!("after lowering: {e}"))
                            .label(net.name.span, "")
                            .help("this is a bug in netc; please report it with the .net file"),
                    );
                }
            }
            graphs.push(g);
        }
    }
    // Source order, errors of one place before its warnings; identical ones once.
    diags.sort_by_key(|d| {
        (
            d.span().map(|s| (s.file, s.start)),
            std::cmp::Reverse(d.severity),
        )
    });
    diags.dedup();
    if diags.iter().any(Diagnostic::is_error) {
        graphs.clear();
    }
    Checked {
        sources: prog.sources,
        graphs,
        diagnostics: diags,
        blocks,
    }
}

/// Warns about the consts and blocks of the root file that nothing uses (a file without a
/// network is a library, and is not warned about).
fn unused_globals(prog: &load::Program, used: &HashSet<String>, diags: &mut Vec<Diagnostic>) {
    let Some(root) = &prog.files[prog.root.0 as usize] else {
        return;
    };
    for item in &root.items {
        let (what, id) = match item {
            Item::Const(c) => ("const", &c.name),
            Item::Block(b) => ("block", &b.name),
            Item::Use(_) | Item::Network(_) => continue,
        };
        if !used.contains(&id.name) {
            diags.push(
                Diagnostic::warning("unused", format!("{what} `{}` is never used", id.name))
                    .label(id.span, "defined here"),
            );
        }
    }
}

/// FNV-1a, 64 bits, over `parts` each followed by a zero byte: a stable content hash (the
/// cached crates' folder names, a network's identity in checkpoints).
pub fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    /// Every `Diagnostic::warning("CODE", ...)` in the compiler's sources names a kind that
    /// [`super::WARNINGS`] lists, and every kind listed is given somewhere.
    #[test]
    fn warnings_lists_every_kind_of_warning() {
        fn sources(dir: &std::path::Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut text = String::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut text,
        );
        let mut given: Vec<&str> = text
            .split("Diagnostic::warning(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .collect();
        given.sort();
        given.dedup();
        let listed: Vec<&str> = super::WARNINGS.iter().map(|(name, _)| *name).collect();
        assert_eq!(given, listed);
    }
}
