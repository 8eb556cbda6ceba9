//! inplace: a pointwise activation whose derivative its output decides (ReLU, ReLU6,
//! hardtanh, sigmoid, tanh) that the `epilogue` pass could not fold
//! into a GEMM (after batchnorm, an add, a pool, a concat) overwrites its input's buffers
//! instead of taking its own: forward `x ← f(x)`, backward `dy ← dy·f'(y)` on the shared
//! gradient. That is legal when the activation is its input's only use, the input is no
//! network input, output or loss term, and the input's own backward does not read the
//! input's value (which the activation overwrites): each op says what it reads
//! (`OpKind::reads`).
//! The graph keeps its nodes; the pass records each pair in `Graph::aliases`.

use netc_dsl::Diagnostic;
use petgraph::Direction;

use crate::graph::Graph;
use crate::ops::Op;
use crate::passes::Changed;

/// Whether `op` is an activation the pass can run in place: pointwise, with a derivative
/// that its output decides.
pub fn activation(op: &Op) -> bool {
    op.act().is_some_and(|f| f.from_output())
}

/// Whether the backward of `op` reads the op's own output.
pub fn reads_own_output(op: &Op) -> bool {
    op.kind().reads().output
}

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for a in g.nodes() {
        if !activation(&g.node(a).op) {
            continue;
        }
        let x = g.inputs_of(a)[0];
        let only_use = g.g.edges_directed(x, Direction::Outgoing).count() == 1;
        let op = &g.node(x).op;
        let shared_elsewhere = g.slots.contains_key(&x) || g.group_of(x).is_some();
        if only_use
            && !g.is_observed(x)
            && !matches!(op, Op::Input(_))
            && !reads_own_output(op)
            && !shared_elsewhere
        {
            g.aliases.insert(a, x);
            changed = true;
        }
    }
    Ok(Changed(changed))
}
