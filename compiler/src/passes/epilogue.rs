//! epilogue: a ReLU that follows a conv or a linear layer is applied in that layer's GEMM
//! epilogue instead of as a pass of its own over memory. The pass sets the layer's `relu`
//! flag and removes the ReLU node, moving its consumers, outputs and loss terms (and the
//! report row it ended) to the layer. It assumes the layer feeds only the ReLU: a layer
//! whose pre-activation is also used elsewhere is left alone. Backward then masks the
//! layer's gradient with its own (post-ReLU) output.

use netc_dsl::Diagnostic;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::graph::{Edge, Graph};
use crate::ops::Op;
use crate::passes::Changed;

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
        let layer_is_named = g.outputs.iter().any(|&(_, n)| n == layer)
            || g.losses.iter().any(|l| l.inputs.contains(&layer));
        if !fusable || !only_the_relu || layer_is_named {
            continue;
        }
        match &mut g.g[layer].op {
            Op::Conv(c) => c.relu = true,
            Op::Linear(l) => l.relu = true,
            _ => unreachable!("checked above"),
        }
        let consumers: Vec<(petgraph::stable_graph::NodeIndex, usize)> =
            g.g.edges_directed(relu, Direction::Outgoing)
                .map(|e| (e.target(), e.weight().port))
                .collect();
        for (consumer, port) in consumers {
            g.g.add_edge(layer, consumer, Edge { port });
        }
        for (_, n) in g.outputs.iter_mut() {
            if *n == relu {
                *n = layer;
            }
        }
        for l in g.losses.iter_mut() {
            for n in l.inputs.iter_mut() {
                if *n == relu {
                    *n = layer;
                }
            }
        }
        for row in g.rows.iter_mut() {
            if row.output == Some(relu) {
                row.output = Some(layer);
            }
        }
        g.g.remove_node(relu);
        changed = true;
    }
    Ok(Changed(changed))
}
