//! The graph IR: nodes are ops with their dotted paths, spans and inferred per-sample shapes;
//! edges are tensors and carry the input port they feed, because petgraph returns incoming
//! neighbours in reverse insertion order and the order of `concat`'s inputs matters.

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;

use netc_dsl::Span;

use crate::ops::Op;
use crate::train::TrainConfig;

/// A per-sample shape: `[C, H, W]` for images, `[F]` for features, `[]` for a class label.
pub type Shape = Vec<usize>;

/// One layer (or input) of the network.
#[derive(Clone, Debug)]
pub struct Node {
    /// The dotted path of docs/language.md "Names" (`i3a.b2.0`), or the input's name.
    pub path: String,
    pub op: Op,
    /// Output shape per sample.
    pub shape: Shape,
    /// The stage or call that made this node.
    pub span: Span,
    /// The top-level binding (report row) this node was made for.
    pub row: Option<usize>,
    /// The innermost block instance this node belongs to.
    pub instance: Option<usize>,
}

/// An edge: the producer's output feeds input `port` of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub port: usize,
}

/// A top-level binding of the network: one row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub span: Span,
    /// The op or block name of each stage of the bound chain, in order.
    pub stages: Vec<String>,
    /// The value the binding names, when it is a tensor.
    pub output: Option<NodeIndex>,
}

/// A block instance: a cluster in pictures, a prefix of paths.
#[derive(Clone, Debug)]
pub struct Instance {
    pub path: String,
    pub block: String,
    pub parent: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy of logits `[C]` against a `class(C)` label, mean over the batch.
    Ce,
    /// Mean squared error over all elements.
    Mse,
    /// Mean absolute error over all elements.
    L1,
    /// Sigmoid binary cross-entropy of logits against a target of their shape, mean over
    /// all elements.
    Bce,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Ce => "ce",
            LossKind::Mse => "mse",
            LossKind::L1 => "l1",
            LossKind::Bce => "bce",
        }
    }

    /// How a call reads, for hints.
    pub fn usage(self) -> &'static str {
        match self {
            LossKind::Ce => "`ce(logits, label)` or `ce(logits, label, smoothing=0.1)`",
            LossKind::Mse => "`mse(prediction, target)`",
            LossKind::L1 => "`l1(prediction, target)`",
            LossKind::Bce => "`bce(logits, target)`",
        }
    }
}

/// One weighted term of the training objective.
#[derive(Clone, Debug)]
pub struct LossTerm {
    pub kind: LossKind,
    pub weight: f64,
    /// `ce`'s label smoothing (PyTorch's `label_smoothing`); 0 for the others.
    pub smoothing: f64,
    pub inputs: [NodeIndex; 2],
    pub span: Span,
}

/// A whole network after lowering.
#[derive(Clone, Debug)]
pub struct Graph {
    pub name: String,
    pub g: StableDiGraph<Node, Edge>,
    /// Network inputs by name, in declaration order.
    pub inputs: Vec<(String, NodeIndex)>,
    /// What inference returns, by name, in `output` order.
    pub outputs: Vec<(String, NodeIndex)>,
    pub losses: Vec<LossTerm>,
    pub rows: Vec<Row>,
    pub instances: Vec<Instance>,
    pub train: TrainConfig,
    /// Set by the `concat_in_place` pass: layers that write their output (and read their
    /// gradient) in place, in their channel slice of a concat's buffers, keyed by layer:
    /// the concat and the first channel.
    pub slots: BTreeMap<NodeIndex, Slot>,
    /// Set by the `merge_1x1` pass: groups of sibling pointwise convs computed as one GEMM,
    /// each in node order (the first member computes the group).
    pub merged: Merged,
    /// Set by the `inplace` pass: activations that overwrite their input's buffers, keyed
    /// by activation, with the input whose buffers they use.
    pub aliases: BTreeMap<NodeIndex, NodeIndex>,
    /// What `--conv-algo` asks of the `conv_algo` pass (the cost model by default).
    pub conv_algo: crate::passes::conv_algo::Pin,
}

/// Where a layer's output lives when it is written in place into a concat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub concat: NodeIndex,
    pub c0: usize,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            g: StableDiGraph::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            losses: Vec::new(),
            rows: Vec::new(),
            instances: Vec::new(),
            train: TrainConfig::default(),
            slots: BTreeMap::new(),
            merged: Merged::default(),
            aliases: BTreeMap::new(),
            conv_algo: Default::default(),
        }
    }

    pub fn node(&self, n: NodeIndex) -> &Node {
        &self.g[n]
    }

    /// Adds a node fed by `inputs` in port order.
    pub fn add(&mut self, node: Node, inputs: &[NodeIndex]) -> NodeIndex {
        let n = self.g.add_node(node);
        for (port, &src) in inputs.iter().enumerate() {
            self.g.add_edge(src, n, Edge { port });
        }
        n
    }

    /// Whether `n`'s value is seen beyond the graph's edges: it is an output or a loss
    /// term reads it. A pass must not fold it away or overwrite it.
    pub fn is_observed(&self, n: NodeIndex) -> bool {
        self.outputs.iter().any(|&(_, o)| o == n)
            || self.losses.iter().any(|l| l.inputs.contains(&n))
    }

    /// Makes every use of `old` a use of `new`: its consumers (at the same ports), the
    /// outputs and loss terms that name it, and the report rows that end with it. `old`
    /// keeps its own inputs; the caller removes it.
    pub fn replace_all_uses(&mut self, old: NodeIndex, new: NodeIndex) {
        let uses: Vec<(NodeIndex, usize)> = self
            .g
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.target(), e.weight().port))
            .collect();
        for (consumer, port) in uses {
            self.g.add_edge(new, consumer, Edge { port });
        }
        let edges: Vec<_> = self
            .g
            .edges_directed(old, Direction::Outgoing)
            .map(|e| e.id())
            .collect();
        for e in edges {
            self.g.remove_edge(e);
        }
        let swap = |n: &mut NodeIndex| {
            if *n == old {
                *n = new;
            }
        };
        self.outputs.iter_mut().for_each(|(_, n)| swap(n));
        self.losses
            .iter_mut()
            .for_each(|l| l.inputs.iter_mut().for_each(swap));
        for row in self.rows.iter_mut() {
            if row.output == Some(old) {
                row.output = Some(new);
            }
        }
    }

    /// The graph as text, a line per node in node order (index, path, op with the
    /// batchnorm folded into it and its fused ReLU, shape, inputs), then what the passes
    /// recorded: for `netc graph --after` and the passes' snapshot tests.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let id = |n: NodeIndex| format!("n{}", n.index());
        for n in self.nodes() {
            let node = self.node(n);
            let mut fused = String::new();
            if let Op::Conv(crate::ops::Conv { fold: Some(f), .. }) = &node.op {
                fused += &format!("+batchnorm({})", f.bn);
            }
            if let Op::Conv(crate::ops::Conv { residual: true, .. }) = &node.op {
                fused += "+add";
            }
            if let Some(f) = node.op.fused() {
                fused += &format!("+{}", f.name());
            }
            let ins: Vec<String> = self.inputs_of(n).into_iter().map(id).collect();
            out += &format!(
                "{} {} {}{} {} <- [{}]\n",
                id(n),
                node.path,
                node.op.name(),
                fused,
                shape_str(&node.shape),
                ins.join(", ")
            );
        }
        for (name, n) in &self.outputs {
            out += &format!("output {name} = {}\n", id(*n));
        }
        for l in &self.losses {
            out += &format!(
                "loss {} * {}({}, {})\n",
                l.weight,
                l.kind.name(),
                id(l.inputs[0]),
                id(l.inputs[1])
            );
        }
        for group in &self.merged {
            let ids: Vec<String> = group.iter().map(|&n| id(n)).collect();
            out += &format!("merged [{}]\n", ids.join(", "));
        }
        for (a, x) in &self.aliases {
            out += &format!("in place {} on {}\n", id(*a), id(*x));
        }
        for (l, s) in &self.slots {
            out += &format!("slot {} in {} at channel {}\n", id(*l), id(s.concat), s.c0);
        }
        out
    }

    /// The nodes a gradient reaches: those a loss term reads, and their ancestors.
    pub fn graded(&self) -> Vec<bool> {
        self.ancestors(self.losses.iter().flat_map(|l| l.inputs))
    }

    /// The layers node `n` computes: its merged group if it leads one, else itself.
    pub fn members(&self, n: NodeIndex) -> Vec<NodeIndex> {
        self.group_of(n).map_or(vec![n], <[_]>::to_vec)
    }

    /// The merged group `n` belongs to (see `merge_1x1`), if any.
    pub fn group_of(&self, n: NodeIndex) -> Option<&[NodeIndex]> {
        self.merged.group_of(n)
    }

    /// The producers of `n`'s inputs, in port order.
    pub fn inputs_of(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut ins: Vec<(usize, NodeIndex)> = self
            .g
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().port, e.source()))
            .collect();
        ins.sort_unstable_by_key(|&(port, _)| port);
        ins.into_iter().map(|(_, src)| src).collect()
    }

    /// The consumers of `n`, in node order.
    pub fn consumers_of(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut outs: Vec<NodeIndex> = self.g.neighbors_directed(n, Direction::Outgoing).collect();
        outs.sort_unstable();
        outs.dedup();
        outs
    }

    /// Every node in creation order, which is a topological order: a node is always made
    /// after the nodes that feed it.
    pub fn nodes(&self) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self.g.node_indices().collect();
        v.sort_unstable();
        v
    }

    /// Every node except the network inputs: the layers.
    pub fn layers(&self) -> Vec<NodeIndex> {
        self.nodes()
            .into_iter()
            .filter(|&n| !matches!(self.g[n].op, Op::Input(_)))
            .collect()
    }

    /// Finds a node by its path.
    pub fn find(&self, path: &str) -> Option<NodeIndex> {
        self.g.node_indices().find(|&n| self.g[n].path == path)
    }

    /// The nodes from which some node of `roots` can be reached (roots included).
    pub fn ancestors(&self, roots: impl IntoIterator<Item = NodeIndex>) -> Vec<bool> {
        let mut seen = vec![false; self.g.node_bound()];
        let mut stack: Vec<NodeIndex> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n.index()], true) {
                continue;
            }
            stack.extend(self.g.neighbors_directed(n, Direction::Incoming));
        }
        seen
    }

    /// The nodes that inference needs: those that reach an `output`.
    pub fn inference_set(&self) -> Vec<bool> {
        self.ancestors(self.outputs.iter().map(|&(_, n)| n))
    }

    /// The nodes that training needs: those that reach an output or a loss.
    pub fn training_set(&self) -> Vec<bool> {
        self.ancestors(
            self.outputs
                .iter()
                .map(|&(_, n)| n)
                .chain(self.losses.iter().flat_map(|l| l.inputs)),
        )
    }

    /// The nodes of `training_set`, in the order of `nodes`.
    pub fn training_nodes(&self) -> Vec<NodeIndex> {
        let train = self.training_set();
        self.nodes()
            .into_iter()
            .filter(|n| train[n.index()])
            .collect()
    }
}

/// The groups of `merge_1x1`, with each member's group at hand: looking a node's group up
/// by scanning every group is quadratic over a network of many groups.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    groups: Vec<Vec<NodeIndex>>,
    /// Each member's first group (the verifier rejects a conv in two).
    of: HashMap<NodeIndex, usize>,
}

impl Merged {
    pub fn push(&mut self, group: Vec<NodeIndex>) {
        for &n in &group {
            self.of.entry(n).or_insert(self.groups.len());
        }
        self.groups.push(group);
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Vec<NodeIndex>> {
        self.groups.iter()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group `n` belongs to, if any.
    pub fn group_of(&self, n: NodeIndex) -> Option<&[NodeIndex]> {
        self.of.get(&n).map(|&i| &self.groups[i][..])
    }
}

impl<'a> IntoIterator for &'a Merged {
    type Item = &'a Vec<NodeIndex>;
    type IntoIter = std::slice::Iter<'a, Vec<NodeIndex>>;
    fn into_iter(self) -> Self::IntoIter {
        self.groups.iter()
    }
}

/// `[3, 224, 224]`
pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// `256×28×28`, `1000`: a shape as Table 1 writes it.
pub fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}
