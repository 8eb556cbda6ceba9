//! The report of a checked network, in the manner of Table 1 of the GoogLeNet paper: one
//! row per top-level binding (or per layer, expanded) with its kernel and stride, output
//! size, depth, parameters and multiply-accumulates, then totals for training and for
//! inference. Rendered as a text table or as JSON.

use petgraph::stable_graph::NodeIndex;
use serde_json::{json, Value as Json};

use crate::graph::{dims, shape_str, Graph, Shape};
use crate::ops::{self, Cost, InputKind, Op};

/// One layer with its cost.
#[derive(Clone, Debug)]
pub struct Layer {
    pub node: NodeIndex,
    pub path: String,
    pub op: &'static str,
    pub window: Option<String>,
    pub output: Shape,
    pub cost: Cost,
    /// Whether inference needs it (false for auxiliary heads).
    pub inference: bool,
    /// Whether training needs it: it reaches an output or a loss.
    pub training: bool,
    /// Conv and linear layers on the longest path from an input to this layer, itself
    /// included.
    pub depth: usize,
}

/// One top-level binding with the summed cost of its layers.
#[derive(Clone, Debug)]
pub struct RowReport {
    pub name: String,
    pub kind: String,
    pub window: Option<String>,
    pub output: Option<Shape>,
    /// Conv and linear layers on the longest path through the row.
    pub depth: usize,
    pub cost: Cost,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub network: String,
    pub inputs: Vec<(String, Op, Shape)>,
    pub outputs: Vec<(String, Shape)>,
    pub layers: Vec<Layer>,
    pub rows: Vec<RowReport>,
    pub total: Cost,
    pub inference: Cost,
    /// Conv and linear layers on the longest path from an input to an output: GoogLeNet's
    /// "22 layers".
    pub depth: usize,
}

impl Report {
    pub fn new(g: &Graph) -> Report {
        let infer = g.inference_set();
        let train = g.training_set();
        let depths = depths(g);
        let layers: Vec<Layer> = g
            .layers()
            .into_iter()
            .map(|n| {
                let node = g.node(n);
                let ins: Vec<&crate::graph::Shape> =
                    g.inputs_of(n).iter().map(|&i| &g.node(i).shape).collect();
                Layer {
                    node: n,
                    path: node.path.clone(),
                    op: node.op.name(),
                    window: node.op.window(),
                    output: node.shape.clone(),
                    cost: ops::cost(&node.op, &ins, &node.shape),
                    inference: infer[n.index()],
                    training: train[n.index()],
                    depth: depths[n.index()],
                }
            })
            .collect();
        // Layers that reach neither an output nor a loss are computed by nothing: they count
        // toward neither total (the check warns about them).
        let mut total = Cost::default();
        let mut inference = Cost::default();
        for l in &layers {
            if l.training {
                total += l.cost;
            }
            if l.inference {
                inference += l.cost;
            }
        }
        // One pass over the layers for every row's sum, layers and depth.
        let mut row_cost = vec![Cost::default(); g.rows.len()];
        let mut row_layers: Vec<Vec<&Layer>> = vec![Vec::new(); g.rows.len()];
        for l in &layers {
            if let Some(r) = g.node(l.node).row {
                row_cost[r] += l.cost;
                row_layers[r].push(l);
            }
        }
        let row_depth = row_depths(g);
        let rows = g
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                // The window column applies to a binding that is a single op.
                let window = match (row.stages.len(), row_layers[i].as_slice()) {
                    (1, [only]) => only.window.clone(),
                    _ => None,
                };
                RowReport {
                    name: row.name.clone(),
                    kind: describe_stages(&row.stages),
                    window,
                    output: row.output.map(|n| g.node(n).shape.clone()),
                    depth: row_depth[i],
                    cost: row_cost[i],
                }
            })
            .collect();
        Report {
            network: g.name.clone(),
            inputs: g
                .inputs
                .iter()
                .map(|(name, n)| {
                    (
                        name.clone(),
                        g.node(*n).op.clone(),
                        g.node(*n).shape.clone(),
                    )
                })
                .collect(),
            outputs: g
                .outputs
                .iter()
                .map(|(name, n)| (name.clone(), g.node(*n).shape.clone()))
                .collect(),
            depth: g
                .outputs
                .iter()
                .map(|(_, n)| depths[n.index()])
                .max()
                .unwrap_or(0),
            layers,
            rows,
            total,
            inference,
        }
    }

    /// The report as JSON; `g` supplies each layer's inputs and arguments.
    pub fn to_json(&self, g: &Graph) -> Json {
        let inputs: serde_json::Map<String, Json> = self
            .inputs
            .iter()
            .map(|(name, op, shape)| {
                let v = match op {
                    Op::Input(InputKind::Class(c)) => json!({ "classes": c }),
                    _ => json!(shape),
                };
                (name.clone(), v)
            })
            .collect();
        let outputs: serde_json::Map<String, Json> = self
            .outputs
            .iter()
            .map(|(name, shape)| (name.clone(), json!(shape)))
            .collect();
        let layers: Vec<Json> = self
            .layers
            .iter()
            .map(|l| {
                let node = g.node(l.node);
                json!({
                    "path": l.path,
                    "op": l.op,
                    "output": l.output,
                    "params": l.cost.params(),
                    "weights": l.cost.weights,
                    "macs": l.cost.macs,
                    "inference": l.inference,
                    "training": l.training,
                    "depth": l.depth,
                    "inputs": g.inputs_of(l.node).iter().map(|&i| g.node(i).path.clone()).collect::<Vec<_>>(),
                    "attrs": node.op.attrs(),
                })
            })
            .collect();
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "kind": r.kind,
                    "window": r.window,
                    "output": r.output,
                    "depth": r.depth,
                    "params": r.cost.params(),
                    "weights": r.cost.weights,
                    "macs": r.cost.macs,
                })
            })
            .collect();
        let losses: Vec<Json> = g
            .losses
            .iter()
            .map(|l| {
                // A loss's options, as a layer's: `ce`'s label smoothing.
                let attrs = match l.kind {
                    crate::graph::LossKind::Ce => json!({ "smoothing": l.smoothing }),
                    _ => json!({}),
                };
                json!({
                    "op": l.kind.name(),
                    "weight": l.weight,
                    "attrs": attrs,
                    "inputs": l.inputs.iter().map(|&i| g.node(i).path.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "network": self.network,
            "inputs": inputs,
            "outputs": outputs,
            "layers": layers,
            "rows": rows,
            "output_nodes": g.outputs.iter().map(|(name, n)| (name.clone(), json!(g.node(*n).path))).collect::<serde_json::Map<_, _>>(),
            "losses": losses,
            "depth": self.depth,
            "total": { "params": self.total.params(), "weights": self.total.weights, "macs": self.total.macs },
            "inference": { "params": self.inference.params(), "weights": self.inference.weights, "macs": self.inference.macs },
            "train": g.train.to_json(),
        })
    }

    /// The report as a text table: one row per binding, or per layer with `expand`.
    pub fn table(&self, expand: bool) -> String {
        let mut rows: Vec<[String; 7]> = Vec::new();
        rows.push(
            [
                "name",
                "type",
                "patch/stride",
                "output",
                "depth",
                "params",
                "MACs",
            ]
            .map(String::from),
        );
        if expand {
            rows[0][0] = "path".into();
            for l in &self.layers {
                rows.push([
                    format!(
                        "{}{}",
                        l.path,
                        match (l.inference, l.training) {
                            (true, _) => "",
                            (false, true) => " *",
                            (false, false) => " -",
                        }
                    ),
                    l.op.to_string(),
                    l.window.clone().unwrap_or_default(),
                    dims(&l.output),
                    l.depth.to_string(),
                    thousands(l.cost.params()),
                    thousands(l.cost.macs),
                ]);
            }
        } else {
            for r in &self.rows {
                rows.push([
                    r.name.clone(),
                    r.kind.clone(),
                    r.window.clone().unwrap_or_default(),
                    r.output.as_ref().map(|s| dims(s)).unwrap_or_default(),
                    r.depth.to_string(),
                    thousands(r.cost.params()),
                    thousands(r.cost.macs),
                ]);
            }
        }
        let totals = [
            ("total (training)", self.total),
            ("total (inference)", self.inference),
        ];
        let mut widths = [0usize; 7];
        for r in rows.iter() {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for (name, c) in &totals {
            widths[0] = widths[0].max(name.chars().count());
            widths[5] = widths[5].max(thousands(c.params()).len());
            widths[6] = widths[6].max(thousands(c.macs).len());
        }
        let line = |r: &[String; 7]| -> String {
            let mut s = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                let pad = w - c.chars().count();
                if i >= 4 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
                if i < 6 {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        let ins: Vec<String> = self
            .inputs
            .iter()
            .map(|(name, op, shape)| match op {
                Op::Input(InputKind::Class(c)) => format!("{name}: class({c})"),
                _ => format!("{name}: {}", shape_str(shape)),
            })
            .collect();
        out.push_str(&format!("network {}({})\n\n", self.network, ins.join(", ")));
        let width: usize = widths.iter().sum::<usize>() + 12;
        for (i, r) in rows.iter().enumerate() {
            out.push_str(&line(r));
            out.push('\n');
            if i == 0 {
                out.push_str(&"─".repeat(width));
                out.push('\n');
            }
        }
        out.push_str(&"─".repeat(width));
        out.push('\n');
        for (name, c) in totals {
            let mut r: [String; 7] = Default::default();
            r[0] = name.to_string();
            r[5] = thousands(c.params());
            r[6] = thousands(c.macs);
            out.push_str(&line(&r));
            out.push('\n');
        }
        // The column counts within a binding, or from the input to a layer: say which.
        out.push_str(&format!(
            "depth: {} on the longest path from input to output; {}\n",
            count(self.depth, "conv or linear layer", "conv and linear layers"),
            if expand {
                "per layer, those from the input to it"
            } else {
                "per row, those within the row"
            }
        ));
        if expand && self.layers.iter().any(|l| !l.inference && l.training) {
            out.push_str("* trained through a loss, left out of inference\n");
        }
        if expand && self.layers.iter().any(|l| !l.training) {
            out.push_str(
                "- reaches neither an output nor a loss: computed by nothing, counted nowhere\n",
            );
        }
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|(n, s)| format!("{n} {}", shape_str(s)))
            .collect();
        if !outs.is_empty() {
            out.push_str(&format!("outputs: {}\n", outs.join(", ")));
        }
        out
    }
}

/// For every node, the conv and linear layers on the longest path from an input to it.
fn depths(g: &Graph) -> Vec<usize> {
    let mut d = vec![0usize; g.g.node_indices().map(|n| n.index() + 1).max().unwrap_or(0)];
    for n in g.nodes() {
        let before = g
            .inputs_of(n)
            .iter()
            .map(|i| d[i.index()])
            .max()
            .unwrap_or(0);
        d[n.index()] = before + usize::from(g.node(n).op.is_weighted_layer());
    }
    d
}

/// For every row, the conv and linear layers on the longest path through its own nodes.
fn row_depths(g: &Graph) -> Vec<usize> {
    let mut d = vec![0usize; g.g.node_indices().map(|n| n.index() + 1).max().unwrap_or(0)];
    let mut best = vec![0usize; g.rows.len()];
    for n in g.nodes() {
        let node = g.node(n);
        let Some(row) = node.row else { continue };
        let before = g
            .inputs_of(n)
            .iter()
            .filter(|&&i| g.node(i).row == Some(row))
            .map(|i| d[i.index()])
            .max()
            .unwrap_or(0);
        d[n.index()] = before + usize::from(node.op.is_weighted_layer());
        best[row] = best[row].max(d[n.index()]);
    }
    best
}

/// `inception`, or `conv → relu → maxpool`, shortened past a few stages.
fn describe_stages(stages: &[String]) -> String {
    match stages.len() {
        0 => "=".to_string(),
        1..=3 => stages.join(" → "),
        n => format!("{} → … → {} ({n} stages)", stages[0], stages[n - 1]),
    }
}

/// `1 epoch`, `3 epochs`: `n` and the singular or plural noun.
pub fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// `13,378,280`
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_agrees_in_number() {
        assert_eq!(count(1, "epoch", "epochs"), "1 epoch");
        assert_eq!(count(0, "epoch", "epochs"), "0 epochs");
        assert_eq!(count(2, "conv layer", "conv layers"), "2 conv layers");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(13378280), "13,378,280");
    }
}
