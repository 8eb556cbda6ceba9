//! inplace: a pointwise activation that the `epilogue` pass could not fold into a GEMM
//! (after batchnorm, an add, a pool, a concat) overwrites its input's buffers instead of
//! taking its own: forward `x ← f(x)`, backward `dy ← dy·f'(y)` on the shared gradient; and,
//! where no gradient flows (inference), a residual `add` overwrites one of its inputs
//! (`x ← x + Σ others`), and a conv that the `residual` pass gave an add's other input writes
//! onto that input (`r ← act(conv(x) + r)`). That is legal when the op is its input's only use, and the input is
//! no network input, output or loss term, nor in a concat's slot or a merged group. Where a
//! gradient flows, backward must not need the overwritten value: the activation's derivative
//! follows from its output (ReLU, ReLU6, hardtanh, sigmoid, tanh), and the input's own
//! backward does not read the input's value (each op says what it reads, `OpKind::reads`).
//! Where none does (the inference graph, a branch that reaches only outputs), every
//! activation may, and an add (whose backward would share its gradient with one input) too.
//! The graph keeps its nodes; the pass records each pair in `Graph::aliases`.

use netc_dsl::Diagnostic;
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

use crate::graph::Graph;
use crate::ops::Op;
use crate::passes::Changed;

/// Whether `op` is an activation that can run in place where a gradient flows: pointwise,
/// with a derivative that its output decides.
pub fn activation(op: &Op) -> bool {
    op.act().is_some_and(|f| f.from_output())
}

/// Whether the backward of `op` reads the op's own output.
pub fn reads_own_output(op: &Op) -> bool {
    op.kind().reads().output
}

/// Whether layer `a` may overwrite the buffers of its input `x` (see the module's header);
/// `graded` is `g.graded()`.
pub fn legal(g: &Graph, a: NodeIndex, x: NodeIndex, graded: &[bool]) -> bool {
    let op = &g.node(a).op;
    let input = &g.node(x).op;
    // A gradient reaches `x` only through `a`, its one use: where none reaches `a`, no
    // backward reads either value.
    let (kind, backward) = if graded[a.index()] {
        (activation(op), !reads_own_output(input))
    } else {
        // A residual conv (`residual`) may write onto the value it adds, not onto its input.
        let residual = matches!(op, Op::Conv(c) if c.residual)
            && g.inputs_of(a).get(1) == Some(&x)
            && g.inputs_of(a)[0] != x;
        (matches!(op, Op::Act(_) | Op::Add(_)) || residual, true)
    };
    kind && backward
        && g.inputs_of(a).contains(&x)
        && g.g.edges_directed(x, Direction::Outgoing).count() == 1
        && !g.is_observed(x)
        && !matches!(input, Op::Input(_))
        && !g.slots.contains_key(&x)
        && g.group_of(x).is_none()
}

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    let graded = g.graded();
    for a in g.nodes() {
        let residual = matches!(&g.node(a).op, Op::Conv(c) if c.residual);
        if !matches!(g.node(a).op, Op::Act(_) | Op::Add(_)) && !residual {
            continue;
        }
        // An activation overwrites its input; an add the first of its inputs that it may; a
        // residual conv the value it adds.
        let x = g
            .inputs_of(a)
            .into_iter()
            .skip(usize::from(residual))
            .find(|&x| legal(g, a, x, &graded));
        if let Some(x) = x {
            g.aliases.insert(a, x);
            changed = true;
        }
    }
    Ok(Changed(changed))
}
