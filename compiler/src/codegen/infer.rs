//! Inference in generated code: the plan's inference program (`plan::Plan::infer`: the
//! inference graph, batchnorms folded into convs, over an arena laid out by its own
//! schedule) becomes a function per layer, `inf_conv1`, and the body of `forward`, which
//! calls them in schedule order. A layer's inference function is its op's inference form
//! (`OpKind::emit_infer`), else its training forward, printed over inference's buffers.

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::NodeIndex;

use super::arena::{reference, uses_ident, with_views};
use super::format::{Kind, Run};
use super::functions::{fusion_note, signature, Phase};
use super::*;
use crate::plan::schedule::{Buffers, What};
use crate::plan::Program;

/// The inference half of a generated module.
pub(super) struct Inference {
    /// Each layer's items, by node: its geometry where training's differs (a merged group
    /// that pruning changed), and its function.
    pub items: BTreeMap<NodeIndex, Vec<TokenStream>>,
    /// The statements of `forward`.
    pub forward: Run,
    /// Whether `forward` reads the parameters, and the state.
    pub uses: [bool; 2],
    /// The path of each layer `forward` calls, in order: the rows of its timing table.
    pub paths: Vec<String>,
}

/// The inference half of the module for program `p`. `geometry` holds the text of each
/// training layer's geometry constant (`GEO_CONV1`), which an inference function uses when
/// its own is the same.
pub(super) fn inference(
    p: &Program,
    geometry: &HashMap<NodeIndex, String>,
) -> Result<Inference, String> {
    let (g, ws) = (&p.graph, &p.ws);
    let bufs = Buffers::new(g, &ws.buffers, &ws.stems);
    let arena = |body: TokenStream| with_views(body, &ws.arena);
    let mut items = BTreeMap::new();
    let mut calls = HashMap::new();
    let mut uses = [false; 2];
    let mut paths = Vec::new();
    for step in &ws.schedule.forward {
        let What::Infer(n) = step.what else {
            continue;
        };
        let node = g.node(n);
        let mut cx = layer::cx(g, n, ws, &bufs);
        let geo = node.op.kind().geometry(&cx);
        let mut layer_items = Vec::new();
        if let Some((ty, value)) = geo.filter(|(_, v)| geometry.get(&n) != Some(&v.to_string())) {
            let name = format_ident!("INF_GEO_{}", ws.stems[&n].to_uppercase());
            let doc = format!(" The geometry of `{}` at inference.", node.path);
            layer_items.push(quote! { #[doc = #doc] const #name: #ty = #value; });
            cx.rename_geometry(name);
        }
        let body = match node.op.kind().emit_infer(&cx) {
            Some(body) => body,
            None => {
                let (fwd, _) = layer::layer(&cx);
                // Inference reads the state; only an op's inference form knows how.
                if uses_ident(&fwd, "s") {
                    return Err(format!(
                        "internal error: `{}` updates state but has no inference form",
                        node.path
                    ));
                }
                fwd
            }
        };
        // A concat whose branches all wrote in place, a merged conv after the first of its
        // group: nothing to do.
        if body.is_empty() {
            continue;
        }
        let body = arena(body);
        let doc = format!(
            " Layer `{}` at inference: {}{} → {}.{}",
            node.path,
            node.op.name(),
            node.op
                .window()
                .map(|w| format!(" {w}"))
                .unwrap_or_default(),
            shape_str(&node.shape),
            fusion_note(g, n)
        );
        let f = format_ident!("inf_{}", ws.stems[&n]);
        let sig = signature(&body, Phase::Infer, &cx);
        layer_items.push(sig.function(&doc, &f, &body));
        uses[0] |= sig.params;
        uses[1] |= sig.state;
        let args = sig.args();
        let k = paths.len();
        paths.push(node.path.clone());
        calls.insert(n, quote! { timed(&mut times, #k, || #f(#args)); });
        items.insert(n, layer_items);
    }
    let mut forward = Run::new(Kind::Stmt, []);
    for step in &ws.schedule.forward {
        match step.what {
            What::Input(n) => {
                let Some((name, _)) = g.inputs.iter().find(|(_, i)| *i == n) else {
                    continue;
                };
                if matches!(g.node(n).op, Op::Input(InputKind::Tensor)) {
                    let id = rust_ident(name).map_err(|e| format!("input `{name}`: {e}"))?;
                    let t = reference(&ws.arena, &ws.buffers[step.writes[0]].name);
                    let copy = arena(quote! { #t.copy_from_slice(x.#id); });
                    forward.push(quote! { { #copy } });
                }
            }
            What::Infer(n) => forward.extend(calls.remove(&n)),
            _ => {}
        }
    }
    Ok(Inference {
        items,
        forward,
        uses,
        paths,
    })
}
