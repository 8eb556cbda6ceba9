//! concat_in_place: a conv whose only use is a channel concat writes its output straight
//! into its slice of the concat's buffer, and its backward reads its gradient from the same
//! slice of the concat's gradient, so the concat copies nothing either way. NCHW makes this
//! cheap: one image's channel slice is contiguous, so the conv's per-image GEMM just writes
//! at another address (`rt::tensor::Slot`). The graph keeps its nodes; the pass records the
//! slots in `Graph::slots`, which code generation and the memory plan read.
//!
//! Only convs take slots (Inception's branches end in one, with its ReLU fused by
//! `epilogue`); a layer that is also an output or a loss input keeps its own buffer, and so
//! does one whose backward reads its own output (a fused ReLU masks its gradient with it)
//! when a layer after the concat overwrites the concat's buffer in place (`inplace`).

use netc_dsl::Diagnostic;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::graph::{Graph, Slot};
use crate::ops::Op;
use crate::passes::Changed;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    let graded = g.graded();
    for concat in g.nodes() {
        if !matches!(g.node(concat).op, Op::Concat(_)) {
            continue;
        }
        let overwritten = g.aliases.values().any(|&x| x == concat);
        let mut c0 = 0;
        for layer in g.inputs_of(concat) {
            let at = c0;
            c0 += g.node(layer).shape[0];
            let one_use = g.g.edges_directed(layer, Direction::Outgoing).count() == 1
                && g.g
                    .edges_directed(layer, Direction::Outgoing)
                    .all(|e| e.target() == concat);
            let reads_output = graded[layer.index()] && g.node(layer).op.kind().reads().output;
            let kept = !(overwritten && reads_output);
            // A residual conv adds onto its own buffer (`residual`): it keeps it.
            let plain = matches!(&g.node(layer).op, Op::Conv(c) if !c.residual);
            if plain && one_use && kept && !g.is_observed(layer) {
                g.slots.insert(layer, Slot { concat, c0: at });
                changed = true;
            }
        }
    }
    Ok(Changed(changed))
}
