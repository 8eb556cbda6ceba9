//! merge_1x1: sibling pointwise convs (1×1, stride 1, no padding, one group) that read the
//! same tensor run as one GEMM with their output channels stacked, so the input is packed
//! once and the GEMM is taller: in an Inception block, the 1×1 branch and the 3×3 and 5×5
//! reductions. Backward computes the weight gradients with one GEMM and the input gradient
//! with one more (`Σ_j W_jᵀ·dY_j` is `Wᵀ·dY` over the stacked gradient).
//!
//! The graph keeps its nodes, so paths, parameters and reports do not change: the pass
//! records each group in `Graph::merged`, in node order. Code generation computes the whole
//! group at the first member's forward (every member's input exists by then) and its
//! gradients at the first member's backward (which runs after every member's consumers').
//! Members must agree on bias and fused ReLU, which the GEMM epilogue applies to all rows,
//! and have no batchnorm folded in (`fold_bn`, at inference).

use std::collections::BTreeMap;

use netc_dsl::Diagnostic;

use crate::graph::Graph;
use crate::ops::{Conv, Op};
use crate::passes::Changed;

/// Whether `c` is a conv whose input already is its GEMM operand.
pub fn pointwise(c: &Conv) -> bool {
    c.k == [1, 1] && c.s == [1, 1] && c.p == [0, 0] && c.groups == 1
}

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for x in g.nodes() {
        let mut siblings: BTreeMap<(bool, Option<&str>), Vec<_>> = BTreeMap::new();
        for c in g.consumers_of(x) {
            if g.group_of(c).is_some() {
                continue;
            }
            if let Op::Conv(conv) = &g.node(c).op {
                // A conv with a batchnorm folded in computes its own weight first (see
                // `ops::fold`): it runs alone, as does one that adds a residual.
                if pointwise(conv) && conv.fold.is_none() && !conv.residual {
                    let act = conv.act.map(|f| f.name());
                    siblings.entry((conv.bias, act)).or_default().push(c);
                }
            }
        }
        for (_, group) in siblings {
            if group.len() > 1 {
                g.merged.push(group);
                changed = true;
            }
        }
    }
    Ok(Changed(changed))
}
