//! The graph as Graphviz DOT: block instances as nested clusters titled beside their output,
//! edges labelled with the shapes they carry, layers that only training needs (auxiliary
//! heads) dashed, the loss terms as the sinks of the training graph, and one font throughout.

use std::fmt::Write;

use crate::graph::{dims, Graph};
use crate::ops::{InputKind, Op};

/// The font of every label: graph, clusters, nodes and edges.
const FONT: &str = "Helvetica";

/// Renders `g` as a DOT digraph. Deterministic: the same graph gives the same text.
pub fn to_dot(g: &Graph) -> String {
    let infer = g.inference_set();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&g.name));
    // One font for everything: Graphviz's default for graph and cluster labels is a serif.
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(out, "  graph [fontname=\"{FONT}\", fontsize=11];");
    let _ = writeln!(
        out,
        "  node [shape=box, style=rounded, fontname=\"{FONT}\", fontsize=10];"
    );
    // Heavy edges: a chain stays straight against the pull that keeps a cluster narrow,
    // which a cluster's title beside its last node would otherwise win.
    let _ = writeln!(
        out,
        "  edge [fontname=\"{FONT}\", fontsize=8, weight=1000];"
    );

    // Nodes, grouped by the innermost instance; clusters nest by parent.
    let mut by_instance: Vec<Vec<(usize, String)>> = vec![Vec::new(); g.instances.len() + 1];
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
        by_instance[node.instance.map_or(0, |i| i + 1)].push((n.index(), line));
    }
    for (_, line) in &by_instance[0] {
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
            "  loss{i} [label=\"{weight}{}\", shape=diamond, style=solid];",
            l.kind.name()
        );
        for src in l.inputs {
            let _ = writeln!(out, "  n{} -> loss{i} [style=dashed];", src.index());
        }
    }
    out.push_str("}\n");
    out
}

/// A block instance as a cluster. Its title is a node beside the block's last node (its
/// output, at the bottom): Graphviz routes edges around nodes but straight through cluster
/// labels, which the edges entering or leaving a narrow block cross wherever they go.
fn cluster(g: &Graph, i: usize, nodes: &[Vec<(usize, String)>], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let inst = &g.instances[i];
    let title = format!("{}: {}", escape(&inst.path), escape(&inst.block));
    let _ = writeln!(out, "{pad}subgraph cluster_{i} {{");
    let _ = writeln!(out, "{pad}  style=rounded; color=gray50;");
    for (_, line) in &nodes[i + 1] {
        let _ = writeln!(out, "{pad}  {line}");
    }
    if let Some((last, _)) = nodes[i + 1].last() {
        let _ = writeln!(
            out,
            "{pad}  title{i} [label=\"{title}\", shape=plaintext, fontsize=11, fontcolor=gray30];"
        );
        let _ = writeln!(out, "{pad}  {{ rank=same; n{last}; title{i}; }}");
    }
    for (j, child) in g.instances.iter().enumerate() {
        if child.parent == Some(i) {
            cluster(g, j, nodes, depth + 1, out);
        }
    }
    // A block that only calls other blocks has no node of its own to stand beside: a label
    // at its top left, where the edges into its first block pass least. It comes after the
    // inner clusters, which would otherwise inherit it.
    if nodes[i + 1].is_empty() {
        let _ = writeln!(
            out,
            "{pad}  label=\"{title}\"; labelloc=t; labeljust=l; fontcolor=gray30;"
        );
    }
    let _ = writeln!(out, "{pad}}}");
}

fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const SRC: &str = "
block pair(x, n) {
    return x -> conv(n, k=3, p=1) -> relu;
}

network tiny(image: [1, 8, 8], label: class(2)) {
    a = image -> pair(4);
    logits = a -> flatten -> linear(2);
    loss ce(logits, label);
    output logits;
}
";

    fn dot() -> String {
        let checked = crate::check_source("tiny.net", SRC, Path::new("tiny.net"), None);
        assert!(!checked.has_errors(), "{}", checked.render());
        super::to_dot(&checked.graphs[0])
    }

    #[test]
    fn one_font_for_graph_clusters_nodes_and_edges() {
        let d = dot();
        for kind in ["graph", "node", "edge"] {
            let line = d
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{kind} [")));
            let line = line.unwrap_or_else(|| panic!("no {kind} defaults:\n{d}"));
            assert!(line.contains("fontname=\"Helvetica\""), "{line}");
        }
        assert_eq!(d.matches("fontname=").count(), 3, "no other font:\n{d}");
    }

    #[test]
    fn a_cluster_title_is_a_node_beside_the_block_output() {
        let d = dot();
        let cluster = &d[d.find("subgraph cluster_0").unwrap()..];
        let cluster = &cluster[..cluster.find("\n  }").unwrap()];
        assert!(
            !cluster.contains("  label="),
            "no cluster label for edges to cross:\n{d}"
        );
        assert!(
            cluster.contains("title0 [label=\"a: pair\", shape=plaintext"),
            "{cluster}"
        );
        // The block's output, the relu, is its last node.
        let relu = cluster.lines().find(|l| l.contains("relu")).unwrap().trim();
        let relu = &relu[..relu.find(' ').unwrap()];
        assert!(
            cluster.contains(&format!("{{ rank=same; {relu}; title0; }}")),
            "{cluster}"
        );
        assert_eq!(d, dot(), "deterministic");
    }

    #[test]
    fn a_block_of_blocks_keeps_its_title_to_itself() {
        let src = "
block unit(x) {
    return x -> relu;
}

block two(x) {
    return x -> unit -> unit;
}

network nest(image: [1, 4, 4]) {
    out = image -> two;
    output out;
}
";
        let checked = crate::check_source("nest.net", src, Path::new("nest.net"), None);
        assert!(!checked.has_errors(), "{}", checked.render());
        let d = super::to_dot(&checked.graphs[0]);
        // Set after the inner clusters, so that they do not inherit it.
        let label = d.find("label=\"out: two\"; labelloc=t").expect(&d);
        assert!(
            label > d.rfind("title2 [label=\"out.1: unit\"").expect(&d),
            "{d}"
        );
        assert_eq!(d.matches("out: two").count(), 1, "{d}");
    }
}
