//! residual: at inference, a residual `add` of a conv's output and another value (ResNet's
//! shortcut) is computed in the conv's GEMM epilogue, `y = act(conv(x) + r)`, instead of
//! as a pass of its own over memory; the ReLU after the add then fuses into the same
//! epilogue (`epilogue`), and where nothing else reads `r` the conv writes onto `r`'s
//! buffer (`inplace`), so the block's output costs no memory of its own. The pass gives
//! the conv the add's other input as its input 1 (`Conv::residual`) and removes the add,
//! moving its consumers, outputs and report row to the conv.
//!
//! It is a pass of the inference graph only (`passes::INFERENCE`), after `fold_bn` has
//! put each batchnorm into its conv: in training the add follows the batchnorm, and
//! backward needs the conv's own output. Of an add's two inputs, the one made later
//! absorbs it, so that node order stays topological; it must be a conv that feeds only
//! the add, with no activation of its own, whose value nothing else observes.

use netc_dsl::Diagnostic;

use crate::graph::{Edge, Graph};
use crate::ops::Op;
use crate::passes::Changed;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for add in g.nodes() {
        if !matches!(g.node(add).op, Op::Add(_)) {
            continue;
        }
        let [p, q] = g.inputs_of(add)[..] else {
            continue;
        };
        let (r, conv) = (p.min(q), p.max(q));
        let Op::Conv(c) = &g.node(conv).op else {
            continue;
        };
        let free = c.act.is_none() && !c.residual;
        let only_the_add = g.consumers_of(conv) == [add]
            && g.g
                .edges_directed(conv, petgraph::Direction::Outgoing)
                .count()
                == 1;
        let same = g.node(r).shape == g.node(conv).shape;
        if p == q || !free || !only_the_add || !same || g.is_observed(conv) {
            continue;
        }
        if let Op::Conv(c) = &mut g.g[conv].op {
            c.residual = true;
        }
        g.g.add_edge(r, conv, Edge { port: 1 });
        g.replace_all_uses(add, conv);
        g.g.remove_node(add);
        changed = true;
    }
    Ok(Changed(changed))
}
