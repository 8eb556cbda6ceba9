//! The buffers of a network's workspace, as the generated code allocates them: an
//! activation and a gradient per value, what backward keeps (max-pool argmaxes, batchnorm
//! statistics, LRN denominators), and scratch. Code generation declares exactly these, and
//! `netc check --plan` reports their size; memory planning will shrink this list.

use crate::graph::{shape_str, Graph};
use crate::ops::{InputKind, Op};

/// One buffer of the workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// The field name in generated code (`t5`, `d5`, `a7`, ...).
    pub name: String,
    /// Elements per sample (the buffer holds `batch ×` this), or, with `fixed`, in all.
    pub elems: usize,
    /// Whether the size does not grow with the batch.
    pub fixed: bool,
    /// Whether the elements are `u32` (argmaxes) rather than `f32`.
    pub index: bool,
    /// A doc comment for public buffers (activations); private ones have none.
    pub doc: Option<String>,
}

/// Every buffer of one network's workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    pub buffers: Vec<Buffer>,
    /// im2col / col2im / LRN scratch, in elements (not per sample).
    pub col: usize,
    /// Gradient scratch, elements per sample.
    pub scratch: usize,
}

impl Workspace {
    /// Bytes of every buffer for a batch of `batch` (all elements are 4 bytes).
    pub fn bytes(&self, batch: usize) -> u64 {
        let per: u64 = self
            .buffers
            .iter()
            .map(|b| {
                if b.fixed {
                    b.elems as u64
                } else {
                    (batch * b.elems) as u64
                }
            })
            .sum();
        4 * (per + self.col as u64 + (batch * self.scratch) as u64)
    }
}

/// The workspace of `g` (after its codegen passes) for training, which inference shares.
pub fn workspace(g: &Graph) -> Workspace {
    let nodes = g.training_nodes();
    let mut buffers = Vec::new();
    let mut col = 0usize;
    for &n in &nodes {
        let node = g.node(n);
        if let Op::Input(InputKind::Class(_)) = node.op {
            continue;
        }
        let i = n.index();
        let elems: usize = node.shape.iter().product::<usize>().max(1);
        let doc = format!(
            " `{}`: {} {}",
            node.path,
            node.op.name(),
            shape_str(&node.shape)
        );
        let buf =
            |name: String, elems: usize, fixed: bool, index: bool, doc: Option<String>| Buffer {
                name,
                elems,
                fixed,
                index,
                doc,
            };
        buffers.push(buf(format!("t{i}"), elems, false, false, Some(doc)));
        buffers.push(buf(format!("d{i}"), elems, false, false, None));
        let x = g
            .inputs_of(n)
            .first()
            .map(|&j| g.node(j).shape.clone())
            .unwrap_or_default();
        match &node.op {
            Op::Conv(c) => col = col.max(crate::interp::conv_col_len(c, &x)),
            Op::ConvT(c) => col = col.max(crate::interp::conv_t_col_len(c, &x)),
            Op::MaxPool(_) => buffers.push(buf(format!("a{i}"), elems, false, true, None)),
            Op::BatchNorm { .. } => {
                buffers.push(buf(format!("m{i}"), x[0], true, false, None));
                buffers.push(buf(format!("r{i}"), x[0], true, false, None));
            }
            Op::Lrn { .. } => {
                buffers.push(buf(format!("s{i}"), elems, false, false, None));
                col = col.max(x.iter().product());
            }
            _ => {}
        }
    }
    let max_elems = nodes
        .iter()
        .map(|&n| g.node(n).shape.iter().product::<usize>())
        .max()
        .unwrap_or(1);
    Workspace {
        buffers,
        col: col.max(1),
        scratch: 2 * max_elems,
    }
}

/// What the codegen passes made of one network, and the memory its generated code takes:
/// `netc check --plan`.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Layers that run as a GEMM (conv, transposed conv, linear) before and after the
    /// passes.
    pub gemm_layers_before: usize,
    pub gemm_layers: usize,
    /// ReLUs in the checked graph, and how many of them the `epilogue` pass folded into
    /// the GEMM before them.
    pub relus: usize,
    pub relus_fused: usize,
    /// Concats, and the elements per sample they copy (concat is still a copy).
    pub concats: usize,
    pub concat_elems: usize,
    /// Trainable parameters (weights and biases) of the training graph.
    pub params: u64,
    pub workspace: Workspace,
}

impl Summary {
    /// Bytes of one training step at `batch`: the workspace, the parameters and their
    /// gradients (optimizer state, one or two more copies of the parameters, excluded).
    pub fn training_bytes(&self, batch: usize) -> u64 {
        self.workspace.bytes(batch) + 2 * 4 * self.params
    }
}

/// Runs the codegen passes (but those in `skip`) on a copy of `g` and sums up the result.
pub fn summary(g: &Graph, skip: &[&str]) -> Result<Summary, netc_dsl::Diagnostic> {
    // Training-graph nodes whose op passes `f`.
    let count = |g: &Graph, f: fn(&Op) -> bool| {
        g.training_nodes()
            .into_iter()
            .filter(|&n| f(&g.node(n).op))
            .count()
    };
    let gemm = |op: &Op| matches!(op, Op::Conv(_) | Op::ConvT(_) | Op::Linear { .. });
    let relu = |op: &Op| matches!(op, Op::Relu);
    let relus = count(g, relu);
    let mut planned = g.clone();
    crate::passes::run(&mut planned, crate::passes::CODEGEN, skip)?;
    let concats: Vec<_> = planned
        .training_nodes()
        .into_iter()
        .map(|n| planned.node(n))
        .filter(|n| matches!(n.op, Op::Concat))
        .collect();
    let params = crate::report::Report::new(&planned).total;
    Ok(Summary {
        gemm_layers_before: count(g, gemm),
        gemm_layers: count(&planned, gemm),
        relus,
        relus_fused: relus - count(&planned, relu),
        concats: concats.len(),
        concat_elems: concats
            .iter()
            .map(|n| n.shape.iter().product::<usize>())
            .sum(),
        params: params.weights + params.biases,
        workspace: workspace(&planned),
    })
}
