//! epilogue: a ReLU or ReLU6 that follows a conv or a linear layer is applied in that
//! layer's GEMM epilogue, and one that follows a batchnorm in its normalizing pass, instead
//! of as a pass of its own over memory (the clamps those kernels apply:
//! `ActFn::in_epilogue`). The pass sets the layer's `act` and
//! removes the activation node, moving its consumers, outputs and loss terms (and the
//! report row it ended) to the layer. It assumes the layer feeds only the activation: a
//! layer whose pre-activation is also used elsewhere is left alone. Backward then masks the
//! layer's gradient with its own (post-activation) output, which is all a clamp needs.

use crate::graph::Graph;
use crate::ops::Op;
use crate::passes::Changed;
use netc_dsl::Diagnostic;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for act in g.nodes() {
        let Some(f) = g.node(act).op.act().filter(|f| f.in_epilogue()) else {
            continue;
        };
        let layer = g.inputs_of(act)[0];
        let gemm = matches!(
            &g.node(layer).op,
            Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_)
        );
        let free = g.node(layer).op.fused().is_none();
        let only_the_act = g.consumers_of(layer) == [act];
        if !gemm || !free || !only_the_act || g.is_observed(layer) {
            continue;
        }
        match &mut g.g[layer].op {
            Op::Conv(c) => c.act = Some(f),
            Op::Linear(l) => l.act = Some(f),
            Op::BatchNorm(b) => b.act = Some(f),
            _ => unreachable!("checked above"),
        }
        g.replace_all_uses(act, layer);
        g.g.remove_node(act);
        changed = true;
    }
    Ok(Changed(changed))
}
