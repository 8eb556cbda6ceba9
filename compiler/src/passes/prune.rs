//! prune: the inference graph. Removes every node from which no `output` can be reached —
//! auxiliary classifiers, and inputs such as labels that only losses read — and the loss
//! terms themselves, so that auxiliary heads cost nothing at inference. Keeps node indices
//! (the graph is a StableGraph), paths and shapes of what remains.

use netc_dsl::Diagnostic;

use crate::graph::Graph;
use crate::passes::Changed;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let keep = g.inference_set();
    let dead: Vec<_> = g.g.node_indices().filter(|n| !keep[n.index()]).collect();
    let changed = !dead.is_empty() || !g.losses.is_empty();
    for n in dead {
        g.g.remove_node(n);
    }
    g.losses.clear();
    g.inputs.retain(|&(_, n)| keep[n.index()]);
    for row in &mut g.rows {
        if row.output.is_some_and(|n| !keep[n.index()]) {
            row.output = None;
        }
    }
    Ok(Changed(changed))
}
