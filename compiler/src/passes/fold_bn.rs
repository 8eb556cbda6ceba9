//! fold_bn: at inference a batchnorm is an affine map per channel, which the conv before it
//! can absorb into its weight and bias (see `ops::fold` for the formula and when the folded
//! weight is computed). The pass records the batchnorm in the conv (`Conv::fold`) and
//! removes it, moving its consumers, outputs and report row to the conv, which then holds the
//! batchnorm's value: the `epilogue` pass after it can fuse the ReLU that follows, and
//! `concat_in_place` can give the conv a concat's slot.
//!
//! It is a pass of the inference graph only (`passes::INFERENCE`): training normalizes with
//! each batch's statistics and needs the conv's own output for backward. It assumes the
//! conv feeds only the batchnorm and nothing observes the conv's value (an output, a loss
//! term); otherwise both stay. Groups do not matter (a depthwise conv folds the same way:
//! the map is per output channel). It runs before the codegen passes and leaves alone a
//! conv they have already rewritten.

use netc_dsl::Diagnostic;

use crate::graph::Graph;
use crate::ops::fold::Fold;
use crate::ops::Op;
use crate::passes::Changed;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let mut changed = false;
    for bn in g.nodes() {
        let Op::BatchNorm(b) = &g.node(bn).op else {
            continue;
        };
        let eps = b.eps;
        let [conv] = g.inputs_of(bn)[..] else {
            continue;
        };
        let Op::Conv(c) = &g.node(conv).op else {
            continue;
        };
        let free = c.act.is_none() && c.fold.is_none();
        let untouched = g.group_of(conv).is_none()
            && !g.slots.contains_key(&conv)
            && !g.aliases.values().any(|&x| x == bn);
        let only_the_bn = g.consumers_of(conv) == [bn];
        if !free || !untouched || !only_the_bn || g.is_observed(conv) {
            continue;
        }
        let path = g.node(bn).path.clone();
        if let Op::Conv(c) = &mut g.g[conv].op {
            c.fold = Some(Fold { bn: path, eps });
        }
        g.replace_all_uses(bn, conv);
        g.g.remove_node(bn);
        changed = true;
    }
    Ok(Changed(changed))
}
