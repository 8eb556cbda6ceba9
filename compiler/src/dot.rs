//! The graph as Graphviz DOT: block instances as nested clusters, edges labelled with the
//! shapes they carry, layers that only training needs (auxiliary heads) dashed, and the
//! loss terms as the sinks of the training graph.

use std::fmt::Write;

use crate::graph::{dims, Graph};
use crate::ops::{InputKind, Op};

/// Renders `g` as a DOT digraph. Deterministic: the same graph gives the same text.
pub fn to_dot(g: &Graph) -> String {
    let infer = g.inference_set();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&g.name));
    out.push_str(
        "  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=8];\n");

    // Nodes, grouped by the innermost instance; clusters nest by parent.
    let mut by_instance: Vec<Vec<String>> = vec![Vec::new(); g.instances.len() + 1];
    for n in g.nodes() {
        let node = g.node(n);
        let (label, attrs) = match &node.op {
            Op::Input(InputKind::Class(c)) => (
                format!("{}\\nclass({c})", node.path),
                "shape=ellipse".to_string(),
            ),
            Op::Input(InputKind::Tensor) => (
                format!("{}\\n{}", node.path, dims(&node.shape)),
                "shape=ellipse".to_string(),
            ),
            op => {
                let mut label = format!("{}\\n{}", node.path, op.name());
                if let Some(w) = op.window() {
                    let _ = write!(label, " {w}");
                }
                let mut attrs = String::new();
                if g.outputs.iter().any(|&(_, o)| o == n) {
                    attrs.push_str("peripheries=2");
                }
                if !infer[n.index()] {
                    if !attrs.is_empty() {
                        attrs.push_str(", ");
                    }
                    attrs.push_str("style=\"rounded,dashed\"");
                }
                (label, attrs)
            }
        };
        let sep = if attrs.is_empty() { "" } else { ", " };
        let line = format!("n{} [label=\"{}\"{sep}{attrs}];", n.index(), escape(&label));
        by_instance[node.instance.map_or(0, |i| i + 1)].push(line);
    }
    for line in &by_instance[0] {
        let _ = writeln!(out, "  {line}");
    }
    for (i, inst) in g.instances.iter().enumerate() {
        if inst.parent.is_none() {
            cluster(g, i, &by_instance, 1, &mut out);
        }
    }

    for n in g.nodes() {
        for (port, src) in g.inputs_of(n).into_iter().enumerate() {
            let label = dims(&g.node(src).shape);
            let port = if g.inputs_of(n).len() > 1 {
                format!(" ({port})")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  n{} -> n{} [label=\"{}{port}\"];",
                src.index(),
                n.index(),
                label
            );
        }
    }
    for (i, l) in g.losses.iter().enumerate() {
        let weight = if l.weight == 1.0 {
            String::new()
        } else {
            format!("{} × ", l.weight)
        };
        let _ = writeln!(
            out,
            "  loss{i} [label=\"{weight}{}\", shape=diamond];",
            l.kind.name()
        );
        for src in l.inputs {
            let _ = writeln!(out, "  n{} -> loss{i} [style=dashed];", src.index());
        }
    }
    out.push_str("}\n");
    out
}

fn cluster(g: &Graph, i: usize, nodes: &[Vec<String>], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let inst = &g.instances[i];
    let _ = writeln!(out, "{pad}subgraph cluster_{i} {{");
    let _ = writeln!(
        out,
        "{pad}  label=\"{}: {}\"; style=rounded; color=gray50;",
        escape(&inst.path),
        escape(&inst.block)
    );
    for line in &nodes[i + 1] {
        let _ = writeln!(out, "{pad}  {line}");
    }
    for (j, child) in g.instances.iter().enumerate() {
        if child.parent == Some(i) {
            cluster(g, j, nodes, depth + 1, out);
        }
    }
    let _ = writeln!(out, "{pad}}}");
}

fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}
