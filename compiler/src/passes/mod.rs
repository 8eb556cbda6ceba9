//! Graph rewrites, as data: each pass has a name (shared by its file, its CLI switch and its
//! log lines), the passes it must follow when they run (`requires`), and a `run`; the graph
//! is verified after every pass, so a broken rewrite is caught where it happens ("after
//! pass NAME"). Passes share the graph's helpers for what they all ask
//! ([`Graph::is_observed`], [`Graph::replace_all_uses`]).
//!
//! `prune` makes the inference graph (`netc graph --after prune`, the report's inference
//! totals) and `fold_bn` and `residual` rewrite it for inference alone; the codegen passes make the graphs
//! code is generated from: [`training`] from the checked graph, [`inference`] from the
//! inference graph.

pub mod concat_in_place;
pub mod conv_algo;
pub mod epilogue;
pub mod fold_bn;
pub mod inplace;
pub mod merge_1x1;
pub mod prune;
pub mod residual;

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
    /// Passes that, when they run, must have run before this one (why: at the list).
    pub requires: &'static [&'static str],
    pub run: fn(&mut Graph) -> Result<Changed, Diagnostic>,
}

/// The passes that turn the checked training graph into the inference graph.
pub const INFERENCE: &[Pass] = &[
    Pass {
        name: "prune",
        requires: &[],
        run: prune::run,
    },
    // Pruned, a conv whose other consumers reach no output, or that only a loss read, folds.
    Pass {
        name: "fold_bn",
        requires: &["prune"],
        run: fold_bn::run,
    },
    // A batchnorm between the conv and the add folds first; then the conv adds.
    Pass {
        name: "residual",
        requires: &["prune", "fold_bn"],
        run: residual::run,
    },
];

/// The passes that turn the checked graph into the one code is generated from (training
/// and inference both run it; inference skips what reaches no output).
pub const CODEGEN: &[Pass] = &[
    Pass {
        name: "epilogue",
        requires: &[],
        run: epilogue::run,
    },
    // Members of a group must agree on the ReLU that `epilogue` fuses into them.
    Pass {
        name: "merge_1x1",
        requires: &["epilogue"],
        run: merge_1x1::run,
    },
    // `epilogue` folds the ReLUs it can into GEMMs first; the others run in place.
    Pass {
        name: "inplace",
        requires: &["epilogue", "merge_1x1"],
        run: inplace::run,
    },
    // It records where layers write, so nodes must not move after it.
    Pass {
        name: "concat_in_place",
        requires: &["epilogue", "merge_1x1", "inplace"],
        run: concat_in_place::run,
    },
    // Merged groups (1×1 convs) stay on im2col's GEMM.
    Pass {
        name: "conv_algo",
        requires: &["merge_1x1"],
        run: conv_algo::run,
    },
];

/// The passes that may be left out, by name (for `--skip-pass`): every pass but `prune`,
/// which is what inference means.
pub fn names() -> Vec<&'static str> {
    all_names().into_iter().filter(|&p| p != "prune").collect()
}

/// Every pass, by name (for `netc graph --after`).
pub fn all_names() -> Vec<&'static str> {
    INFERENCE.iter().chain(CODEGEN).map(|p| p.name).collect()
}

/// Runs `passes` in order, skipping those named in `skip`, verifying the graph after each.
/// Returns the names of the passes that changed something. A pass whose `requires` names a
/// pass of the list that has not run yet is a bug in the list (the order is checked here,
/// so a reordering cannot slip through).
pub fn run(g: &mut Graph, passes: &[Pass], skip: &[&str]) -> Result<Vec<&'static str>, Diagnostic> {
    let mut changed = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for pass in passes.iter().filter(|p| !skip.contains(&p.name)) {
        let later = |r: &&&str| {
            !done.contains(*r) && !skip.contains(*r) && passes.iter().any(|p| p.name == **r)
        };
        if let Some(r) = pass.requires.iter().find(later) {
            return Err(Diagnostic::error(
                "internal",
                format!("pass {} runs before {r}, which it requires", pass.name),
            )
            .help("this is a bug in netc; please report it"));
        }
        done.push(pass.name);
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

/// A copy of `g` after the codegen passes but those in `skip`: the graph of the training
/// step's code.
pub fn training(g: &Graph, skip: &[&str]) -> Result<Graph, Diagnostic> {
    let mut g = g.clone();
    run(&mut g, CODEGEN, skip)?;
    Ok(g)
}

/// A copy of `g` made the inference graph and then put through the codegen passes, but
/// those in `skip`: the graph of inference's code. Its nodes are some of the training
/// graph's, by the same indices (passes only remove nodes, and prune and fold remove more).
pub fn inference(g: &Graph, skip: &[&str]) -> Result<Graph, Diagnostic> {
    let mut g = g.clone();
    let passes: Vec<Pass> = INFERENCE.iter().chain(CODEGEN).copied().collect();
    run(&mut g, &passes, skip)?;
    Ok(g)
}

/// The graph after the passes up to and including `pass` (the inference passes, or the
/// codegen passes), for `netc graph --after`. `None` for an unknown name.
pub fn after(g: &Graph, pass: &str) -> Option<Result<Graph, Diagnostic>> {
    let list = [INFERENCE, CODEGEN]
        .into_iter()
        .find(|l| l.iter().any(|p| p.name == pass))?;
    let upto = list.iter().position(|p| p.name == pass)? + 1;
    let mut g = g.clone();
    Some(run(&mut g, &list[..upto], &[]).map(|_| g))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each list's order satisfies its passes' `requires`, and `run` refuses one that does
    /// not.
    #[test]
    fn every_pass_follows_what_it_requires() {
        for list in [INFERENCE, CODEGEN] {
            for (i, p) in list.iter().enumerate() {
                for r in p.requires {
                    let at = list.iter().position(|q| q.name == *r);
                    assert!(at.is_some_and(|at| at < i), "{} requires {r}", p.name);
                }
            }
        }
        let reversed: Vec<Pass> = CODEGEN.iter().rev().copied().collect();
        let mut g = Graph::new("empty");
        let e = run(&mut g, &reversed, &[]).unwrap_err();
        assert!(e.message.contains("runs before"), "{}", e.message);
        // Skipping a required pass is allowed: it is not pending.
        run(&mut g, CODEGEN, &["epilogue"]).unwrap();
    }
}
