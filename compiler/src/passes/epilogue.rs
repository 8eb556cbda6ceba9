//! epilogue: a ReLU that follows a conv or a linear layer is applied in that layer's GEMM
//! epilogue instead of as a pass of its own over memory. The pass sets the layer's `relu`
//! flag and removes the ReLU node, moving its consumers, outputs and loss terms (and the
//! report row it ended) to the layer. It assumes the layer feeds only the ReLU: a layer
//! whose pre-activation is also used elsewhere is left alone. Backward then masks the
//! layer's gradient with its own (post-ReLU) output.

use crate::graph::Graph;
use crate::ops::Op;
use crate::passes::Changed;
use netc_dsl::Diagnostic;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for relu in g.nodes() {
        if g.node(relu).op.act() != Some(crate::ops::ActFn::Relu) {
            continue;
        }
        let ins = g.inputs_of(relu);
        let layer = ins[0];
        let fusable = matches!(&g.node(layer).op, Op::Conv(c) if !c.relu)
            || matches!(&g.node(layer).op, Op::Linear(l) if !l.relu);
        let only_the_relu = g.consumers_of(layer) == [relu];
        if !fusable || !only_the_relu || g.is_observed(layer) {
            continue;
        }
        match &mut g.g[layer].op {
            Op::Conv(c) => c.relu = true,
            Op::Linear(l) => l.relu = true,
            _ => unreachable!("checked above"),
        }
        g.replace_all_uses(relu, layer);
        g.g.remove_node(relu);
        changed = true;
    }
    Ok(Changed(changed))
}
