//! Graph invariants, checked after lowering and after every pass: acyclic, input ports
//! numbered 0..n, unique paths, every shape equal to what its op infers from its inputs, and
//! outputs and losses that name live nodes. A failure is a bug in netc, never the user's.

use std::collections::HashSet;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use crate::graph::{Graph, Slot};
use crate::ops::Op;

/// Checks `g`; the error says what is broken.
pub fn graph(g: &Graph) -> Result<(), String> {
    petgraph::algo::toposort(&g.g, None).map_err(|c| {
        format!(
            "the graph has a cycle through `{}`",
            g.node(c.node_id()).path
        )
    })?;
    // Code follows node order: it must be a topological order (a pass that adds a node
    // may get a freed, lower index from the StableGraph).
    for e in g.g.edge_references() {
        if e.source() >= e.target() {
            return Err(format!(
                "`{}` comes before `{}`, which feeds it: node order is not topological",
                g.node(e.target()).path,
                g.node(e.source()).path
            ));
        }
    }
    let mut paths = HashSet::new();
    for n in g.g.node_indices() {
        let node = g.node(n);
        if !paths.insert(node.path.as_str()) {
            return Err(format!("two nodes are named `{}`", node.path));
        }
        let mut ports: Vec<usize> =
            g.g.edges_directed(n, Direction::Incoming)
                .map(|e| e.weight().port)
                .collect();
        ports.sort_unstable();
        if ports.iter().enumerate().any(|(i, &p)| i != p) {
            return Err(format!("`{}` has input ports {ports:?}", node.path));
        }
        if let Op::Input(_) = node.op {
            if !ports.is_empty() {
                return Err(format!("input `{}` has producers", node.path));
            }
            continue;
        }
        let ins = g.inputs_of(n);
        if ins.is_empty() {
            return Err(format!("`{}` has no input", node.path));
        }
        let shapes: Vec<&Vec<usize>> = ins.iter().map(|&i| &g.node(i).shape).collect();
        match node.op.infer(&shapes) {
            Ok(s) if s == node.shape => {}
            Ok(s) => {
                return Err(format!(
                    "`{}` has shape {:?} but its op gives {:?}",
                    node.path, node.shape, s
                ))
            }
            Err(e) => return Err(format!("`{}`: {}", node.path, e.message)),
        }
    }
    let live = |n: petgraph::stable_graph::NodeIndex| g.g.contains_node(n);
    for (name, n) in &g.outputs {
        if !live(*n) {
            return Err(format!("output `{name}` names a removed node"));
        }
    }
    for l in &g.losses {
        if !l.inputs.iter().all(|&n| live(n)) {
            return Err(format!("a `{}` loss reads a removed node", l.kind.name()));
        }
    }
    let graded = g.graded();
    for (&layer, slot) in &g.slots {
        in_place(g, layer, *slot, &graded)?;
    }
    for (&a, &x) in &g.aliases {
        aliased(g, a, x, &graded)?;
    }
    let mut seen = HashSet::new();
    for group in &g.merged {
        merged(g, group)?;
        if !group.iter().all(|&n| seen.insert(n)) {
            return Err("a conv is in two merged groups".into());
        }
    }
    Ok(())
}

/// A layer `a` running in place on its input `x`'s buffers: see `passes::inplace`.
fn aliased(g: &Graph, a: NodeIndex, x: NodeIndex, graded: &[bool]) -> Result<(), String> {
    if !g.g.contains_node(a) || !g.g.contains_node(x) {
        return Err("an in-place layer names a removed node".into());
    }
    if !crate::passes::inplace::legal(g, a, x, graded) {
        return Err(format!(
            "`{}` runs in place on `{}`, which is not legal",
            g.node(a).path,
            g.node(x).path
        ));
    }
    Ok(())
}

/// A merged group: two or more pointwise convs in node order, reading one tensor, with the
/// same bias and fused ReLU, and no batchnorm folded in.
fn merged(g: &Graph, group: &[NodeIndex]) -> Result<(), String> {
    if group.len() < 2 || !group.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!(
            "merged group {group:?} is not two or more convs in order"
        ));
    }
    if !group.iter().all(|&n| g.g.contains_node(n)) {
        return Err("a merged group names a removed node".into());
    }
    let first = g.node(group[0]);
    let key = |n: NodeIndex| match &g.node(n).op {
        Op::Conv(c) if crate::passes::merge_1x1::pointwise(c) && c.fold.is_none() => {
            Some((g.inputs_of(n), c.bias, c.act.map(|f| f.name())))
        }
        _ => None,
    };
    let want = key(group[0]);
    if want.is_none() || group.iter().any(|&n| key(n) != want) {
        return Err(format!(
            "the group merged with `{}` is not pointwise convs of one input with the same bias and ReLU and no folded batchnorm",
            first.path
        ));
    }
    Ok(())
}

/// A layer written in place into a concat: a conv whose one use is that concat, at the
/// channel where the concat puts it, that nothing else names, and whose output, if its
/// backward reads it, no activation in place overwrites.
fn in_place(g: &Graph, layer: NodeIndex, slot: Slot, graded: &[bool]) -> Result<(), String> {
    if !g.g.contains_node(layer) || !g.g.contains_node(slot.concat) {
        return Err("a concat slot names a removed node".into());
    }
    let path = &g.node(layer).path;
    if !matches!(g.node(layer).op, Op::Conv(_)) || !matches!(g.node(slot.concat).op, Op::Concat(_))
    {
        return Err(format!(
            "`{path}` is in a concat slot but is not a conv feeding a concat"
        ));
    }
    let uses: Vec<_> = g.g.edges_directed(layer, Direction::Outgoing).collect();
    let [edge] = uses[..] else {
        return Err(format!(
            "`{path}` is in a concat slot but has {} uses",
            uses.len()
        ));
    };
    if edge.target() != slot.concat {
        return Err(format!(
            "`{path}` is in a concat slot of a concat it does not feed"
        ));
    }
    let c0: usize = g.inputs_of(slot.concat)[..edge.weight().port]
        .iter()
        .map(|&i| g.node(i).shape[0])
        .sum();
    if c0 != slot.c0 {
        return Err(format!(
            "`{path}` is at channel {} of its concat, not {c0}",
            slot.c0
        ));
    }
    let named = g.outputs.iter().any(|&(_, o)| o == layer)
        || g.losses.iter().any(|l| l.inputs.contains(&layer));
    if named {
        return Err(format!(
            "`{path}` is in a concat slot but is an output or a loss input"
        ));
    }
    let overwritten = g.aliases.values().any(|&x| x == slot.concat);
    if overwritten && graded[layer.index()] && g.node(layer).op.kind().reads().output {
        return Err(format!(
            "`{path}` reads its output in backward, but an activation overwrites its concat slot"
        ));
    }
    Ok(())
}
