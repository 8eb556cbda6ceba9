//! Graph rewrites, as data: each pass has a name (shared by its file, its CLI switch and its
//! log lines) and a `run`, and the graph is verified after every pass, so a broken rewrite
//! is caught where it happens ("after pass NAME").

pub mod concat_in_place;
pub mod epilogue;
pub mod inplace;
pub mod merge_1x1;
pub mod prune;

use netc_dsl::Diagnostic;

use crate::graph::Graph;
use crate::verify;

/// Whether a pass rewrote anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed(pub bool);

/// One rewrite of the graph.
#[derive(Clone, Copy)]
pub struct Pass {
    pub name: &'static str,
    pub run: fn(&mut Graph) -> Result<Changed, Diagnostic>,
}

/// The passes that turn the checked training graph into the inference graph.
pub const INFERENCE: &[Pass] = &[Pass {
    name: "prune",
    run: prune::run,
}];

/// The passes that turn the checked graph into the one code is generated from (training
/// and inference both run it; inference skips what reaches no output).
pub const CODEGEN: &[Pass] = &[
    Pass {
        name: "epilogue",
        run: epilogue::run,
    },
    // After `epilogue`: members must agree on the ReLU it fuses.
    Pass {
        name: "merge_1x1",
        run: merge_1x1::run,
    },
    // After `epilogue`, which folds the ReLUs it can into GEMMs.
    Pass {
        name: "inplace",
        run: inplace::run,
    },
    // Last: it records where layers write, so nodes must not move after it.
    Pass {
        name: "concat_in_place",
        run: concat_in_place::run,
    },
];

/// Every pass, by name (for `--skip-pass`).
pub fn names() -> Vec<&'static str> {
    INFERENCE.iter().chain(CODEGEN).map(|p| p.name).collect()
}

/// Runs `passes` in order, skipping those named in `skip`, verifying the graph after each.
/// Returns the names of the passes that changed something.
pub fn run(g: &mut Graph, passes: &[Pass], skip: &[&str]) -> Result<Vec<&'static str>, Diagnostic> {
    let mut changed = Vec::new();
    for pass in passes.iter().filter(|p| !skip.contains(&p.name)) {
        if (pass.run)(g)?.0 {
            changed.push(pass.name);
        }
        verify::graph(g).map_err(|e| {
            Diagnostic::error("internal", format!("after pass {}: {e}", pass.name))
                .help("this is a bug in netc; please report it with the .net file")
        })?;
    }
    Ok(changed)
}
