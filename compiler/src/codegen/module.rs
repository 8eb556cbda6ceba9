//! The items of one generated module, made in order into [`Sink`]s: the parameter and
//! state structs, the workspace (`workspace.rs`), the schedule functions (`forward`,
//! `forward_train`, `backward`, `train_step_timed`), the tables of layers and activations,
//! and the functions of each layer: forward and backward for the training step, and its
//! inference function (`infer.rs`), each program over its own arena layout. The lists that
//! grow with the network are [`Run`]s, so that `netc emit` prints them a chunk at a time
//! (see `format`).

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use super::arena::{reference, with_views};
use super::format::{Item, Kind, Run, Sink};
use super::functions::{fusion_note, signature, Calls, Phase};
use super::infer::inference;
use super::losses;
use super::tensors::tensor_struct;
use super::*;
use crate::plan::schedule::Buffers;
use crate::plan::schedule::{BufId, What};
use crate::plan::Plan;

/// Makes the module of `whole` (the plan of a network, `plan::plan`): every item but the
/// layer functions into `out`, the layer functions into `layers`, which go after them.
pub(super) fn module(
    whole: &Plan,
    runtime: &TokenStream,
    out: &mut Sink,
    layers: &mut Sink,
) -> Result<(), String> {
    let g = &whole.train.graph;
    let decls = param_decls(g);
    let mut seen = std::collections::HashMap::new();
    for (name, _) in &decls {
        let f = field(name).to_string();
        if let Some(other) = seen.insert(f.clone(), name.clone()) {
            return Err(format!(
                "parameters `{other}` and `{name}` would share the field `{f}`"
            ));
        }
    }
    let trained: Vec<&(String, ParamDecl)> = decls.iter().filter(|(_, d)| !d.state).collect();
    let state: Vec<&(String, ParamDecl)> = decls.iter().filter(|(_, d)| d.state).collect();

    let train_set = g.training_set();
    let nodes = g.training_nodes();

    // The training step's buffers (`plan::workspace`).
    let plan = &whole.train.ws;
    // Which buffer holds which value (an activation in place uses its input's, a layer
    // written into a concat the concat's), as the code names them.
    let stems = &plan.stems;
    let bufs = Buffers::new(g, &plan.buffers, stems);
    let name_of = |kind: char, n: NodeIndex| -> Option<&str> {
        bufs.value(kind, n).map(|b| plan.buffers[b].name.as_str())
    };
    // (A network input has no gradient; the code that would name it is never made.)
    let refer = |kind: char, n: NodeIndex| -> TokenStream {
        match name_of(kind, n) {
            Some(name) => reference(&plan.arena, name),
            None => reference(&plan.arena, &crate::plan::buffer_name(stems, kind, n)),
        }
    };
    let arena = |body: TokenStream| with_views(body, &plan.arena);

    // Inputs.
    let mut input_fields = Vec::new();
    let mut input_copy: HashMap<NodeIndex, TokenStream> = HashMap::new();
    for (name, n) in &g.inputs {
        if !train_set[n.index()] {
            continue;
        }
        let id = rust_ident(name).map_err(|e| format!("input `{name}`: {e}"))?;
        match g.node(*n).op {
            Op::Input(InputKind::Class(_)) => input_fields.push(quote! { pub #id: &'a [i64], }),
            _ => {
                input_fields.push(quote! { pub #id: &'a [f32], });
                let t = refer('t', *n);
                let copy = arena(quote! { #t.copy_from_slice(x.#id); });
                input_copy.insert(*n, quote! { { #copy } });
            }
        }
    }

    // Layers: each one's functions, and the calls the schedules make of them.
    // Whether each schedule reads the parameters and the state (or gradients): a
    // parameter it does not read is named `_p`.
    let (mut train_uses, mut backward_uses) = ([false; 2], [false; 2]);
    let mut calls: HashMap<NodeIndex, Calls> = HashMap::new();
    let graded = g.graded();
    // Inference's functions go with their layer's training functions; they share
    // geometry constants where inference's is the same.
    let geometry: HashMap<NodeIndex, String> = nodes
        .iter()
        .filter_map(|&n| {
            let cx = layer::cx(g, n, plan, &bufs);
            let (_, value) = g.node(n).op.kind().geometry(&cx)?;
            Some((n, value.to_string()))
        })
        .collect();
    let mut infer = inference(&whole.infer, &geometry)?;
    let mut layer_paths = Vec::new();
    for &n in &nodes {
        let node = g.node(n);
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let mut call = Calls::default();
        let (fwd, bwd) = (
            format_ident!("fwd_{}", stems[&n]),
            format_ident!("bwd_{}", stems[&n]),
        );
        let mut doc = format!(
            " Layer `{}`: {}{} → {}.",
            node.path,
            node.op.name(),
            node.op
                .window()
                .map(|w| format!(" {w}"))
                .unwrap_or_default(),
            shape_str(&node.shape)
        );
        doc.push_str(&fusion_note(g, n));
        let cx = layer::cx(g, n, plan, &bufs);
        let (fwd_body, bwd_body) = layer::layer(&cx);
        // An activation fused into the layer: its gradient first, on the layer's own output.
        let masks_first = node
            .op
            .fused()
            .filter(|_| !node.op.kind().masks_own_gradient());
        let bwd_body = if let Some(f) = masks_first {
            let k = f.kernel();
            if let Some((t, d, slot)) = layer::layer_in_place(&cx, n) {
                let len = node.shape.iter().product::<usize>();
                quote! { rt::act::backward_inplace_slot(#k, n, #len, #slot, &#t, &mut #d); #bwd_body }
            } else {
                let (t, d) = (cx.y(), cx.dy());
                quote! { rt::act::backward_inplace(#k, &#t, &mut #d); #bwd_body }
            }
        } else {
            bwd_body
        };
        let infer_items = infer.items.remove(&n).unwrap_or_default();
        // A concat whose branches all wrote in place has nothing left to do; a merged conv
        // after the first of its group only masks its gradient.
        if fwd_body.is_empty() && bwd_body.is_empty() {
            for item in infer_items {
                layers.push(Item::whole(item))?;
            }
            continue;
        }
        let k = layer_paths.len();
        // The layer's geometry, once, for its functions.
        if let Some((ty, value)) = node.op.kind().geometry(&cx) {
            let geo = cx.geo();
            let doc = format!(" The geometry of `{}`.", node.path);
            layers.push(Item::whole(
                quote! { #[doc = #doc] const #geo: #ty = #value; },
            ))?;
        }
        let (fwd_body, bwd_body) = (arena(fwd_body), arena(bwd_body));
        if !fwd_body.is_empty() {
            let train_fn = signature(&fwd_body, Phase::Train, &cx);
            layers.push(Item::whole(train_fn.function(&doc, &fwd, &fwd_body)))?;
            let args = train_fn.args();
            train_uses[0] |= train_fn.params;
            train_uses[1] |= train_fn.state;
            call.train = Some(quote! { timed(&mut times, #k, || #fwd(#args)); });
        }
        for item in infer_items {
            layers.push(Item::whole(item))?;
        }
        // A layer whose input takes no gradient and that has no parameters has no backward.
        // Nor has a layer that reaches no loss: no gradient comes back to it.
        if !bwd_body.is_empty() && graded[n.index()] {
            let bwd_fn = signature(&bwd_body, Phase::Backward, &cx);
            layers.push(Item::whole(bwd_fn.function(&doc, &bwd, &bwd_body)))?;
            backward_uses[0] |= bwd_fn.params;
            backward_uses[1] |= bwd_fn.state;
            let args = bwd_fn.args();
            // A layer that writes gradients tells `backward_observed`'s caller they are final.
            let ready = bwd_fn.state.then(|| quote! { ready(&mut after, #k, g); });
            call.backward = Some(quote! { timed(&mut times, #k, || #bwd(#args)); #ready });
        }
        calls.insert(n, call);
        layer_paths.push(node.path.clone());
    }
    // (Inference's nodes are training's: this is only for a layer that has nothing to do
    // in training.)
    for item in std::mem::take(&mut infer.items).into_values().flatten() {
        layers.push(Item::whole(item))?;
    }
    let layer_count = layer_paths.len();

    // The schedules, printed step by step (`plan::schedule`).
    let (loss_head, loss_terms, loss_tail) = losses::losses(g, &refer, &arena);
    let zero = |b: BufId| -> TokenStream {
        let d = reference(&plan.arena, &plan.buffers[b].name);
        let fill = arena(quote! { #d.fill(0.0); });
        quote! { { #fill } }
    };
    // The first conv of a merged group runs the group: its step calls every member's
    // backward (the others' only mask their gradients with a fused ReLU), last the leader's.
    let members = |n: NodeIndex| -> Vec<NodeIndex> {
        let mut m = g.members(n);
        m.retain(|j| graded[j.index()]);
        m.reverse();
        m
    };
    let mut forward_train = Run::new(Kind::Stmt, []);
    let mut losses_begun = false;
    for step in &plan.schedule.forward_train {
        match step.what {
            What::Input(n) => forward_train.extend(input_copy.get(&n).cloned()),
            What::Forward(n) => forward_train.extend(calls.get(&n).and_then(|c| c.train.clone())),
            What::Zero(b) => forward_train.push(zero(b)),
            What::Loss(k) => {
                if !losses_begun {
                    forward_train.push(loss_head.clone());
                    losses_begun = true;
                }
                forward_train.push(loss_terms[k].clone());
            }
            _ => {}
        }
    }
    let loss_tail = if losses_begun {
        loss_tail
    } else {
        quote! { 0.0 }
    };
    let mut backward = Run::new(Kind::Stmt, []);
    for step in &plan.schedule.backward {
        match step.what {
            What::Zero(b) => backward.push(zero(b)),
            What::Backward(n) => {
                for m in members(n) {
                    backward.extend(calls.get(&m).and_then(|c| c.backward.clone()));
                }
            }
            _ => {}
        }
    }

    // Each output where each program leaves it.
    let (gi, wi) = (&whole.infer.graph, &whole.infer.ws);
    let infer_bufs = Buffers::new(gi, &wi.buffers, &wi.stems);
    let mut outputs = Vec::new();
    for (name, n) in &g.outputs {
        let f = format_ident!("output_{}", name);
        let at_training = plan.arena[name_of('t', *n).expect("outputs have buffers")];
        let ni = gi
            .outputs
            .iter()
            .find(|(o, _)| o == name)
            .map(|&(_, ni)| ni);
        let at_inference = ni
            .and_then(|ni| infer_bufs.value('t', ni))
            .map(|b| wi.arena[&wi.buffers[b].name])
            .ok_or_else(|| format!("internal error: inference has no output `{name}`"))?;
        let view = |p: crate::plan::Placement| {
            let (at, end) = (p.offset, p.offset + p.elems);
            // (`0 * ws.batch` would be a lint in the user's crate.)
            let start = (at > 0).then(|| quote! { #at * ws.batch });
            quote! { &ws.arena[#start..#end * ws.batch] }
        };
        // Where both programs leave it at the same place, that place.
        let body = if at_training == at_inference {
            view(at_training)
        } else {
            let (training, inference) = (view(at_training), view(at_inference));
            quote! {
                match ws.layout {
                    Layout::Training => #training,
                    Layout::Inference => #inference,
                }
            }
        };
        let doc = format!(
            " The output `{name}` (`{}`): `{}` per sample, batch first, where the last pass \
             (`forward` or `forward_train`) left it.",
            g.node(*n).path,
            shape_str(&g.node(*n).shape)
        );
        outputs.push(Item::whole(quote! {
            #[doc = #doc]
            pub fn #f(ws: &Workspace) -> &[f32] {
                #body
            }
        }));
    }
    // Where each value's activation lies in the arena after each program's forward pass:
    // in training, the values the backward reads (and the outputs); at inference, the
    // outputs. The memory of the others is reused as soon as their last reader is done.
    let alive = |ws: &crate::plan::Workspace, steps: &[crate::plan::schedule::Step]| {
        steps
            .iter()
            .flat_map(|step| &step.reads)
            .map(|&b| ws.buffers[b].name.clone())
            .collect::<HashSet<String>>()
    };
    let train_activations = Run::new(
        Kind::Elem,
        activations(g, plan, &alive(plan, &plan.schedule.backward)),
    );
    let outputs_step = wi.schedule.forward.last().map(std::slice::from_ref);
    let infer_activations = Run::new(
        Kind::Elem,
        activations(gi, wi, &alive(wi, outputs_step.unwrap_or_default())),
    );

    let name = &g.name;
    out.push(Item::whole(quote! {
        use #runtime as rt;

        /// The network's name.
        pub const NAME: &str = #name;
    }))?;
    tensor_struct(
        out,
        "Params",
        " Trainable parameters, by PyTorch name and in PyTorch's layouts.",
        &trained,
    )?;
    tensor_struct(
        out,
        "State",
        " Batchnorm running statistics (updated by `forward_train`).",
        &state,
    )?;
    out.push(Item::whole(quote! {
        /// Gradients of the training objective: one per parameter, same names and shapes.
        pub type Grads = Params;

        /// The network's inputs for one batch, batch first.
        pub struct Inputs<'a> { #(#input_fields)* }
    }))?;
    super::workspace::workspace(whole, out)?;

    let name = |used: bool, name: &str| {
        if used {
            format_ident!("{name}")
        } else {
            format_ident!("_{name}")
        }
    };
    let (ip, is) = (name(infer.uses[0], "p"), name(infer.uses[1], "s"));
    let (tp, ts) = (name(train_uses[0], "p"), name(train_uses[1], "s"));
    let (bp, bg) = (name(backward_uses[0], "p"), name(backward_uses[1], "g"));
    // Only a layer that writes gradients calls `ready`.
    let after = if backward_uses[1] {
        quote! { mut after }
    } else {
        quote! { _after }
    };
    // With no layer, nothing is timed.
    let allow = quote! { #[allow(unused_variables, unused_mut)] };
    let quiet = (layer_count == 0).then(|| allow.clone());
    // A network without a loss has nothing to take gradients of.
    let quiet_bwd = backward.is_empty().then(|| allow.clone());
    let infer_count = infer.paths.len();
    let quiet_infer = (infer_count == 0).then(|| allow.clone());
    out.push(Item::with_runs(vec![infer.forward], move |runs| {
        let body = &runs[0];
        quote! {
            /// Inference: batchnorm on its running statistics (folded into the conv before it
            /// where it can be), dropout the identity. Runs in a workspace made by either
            /// constructor, laying the arena out by inference's own plan.
            pub fn forward(p: &Params, s: &State, ws: &mut Workspace, x: &Inputs) {
                forward_timed_opt(p, s, ws, x, None)
            }

            /// [`forward`], adding each layer's seconds to `times` (indexed as
            /// [`INFER_LAYERS`]).
            pub fn forward_timed(p: &Params, s: &State, ws: &mut Workspace, x: &Inputs, times: &mut [f64; #infer_count]) {
                forward_timed_opt(p, s, ws, x, Some(times))
            }

            #quiet_infer
            fn forward_timed_opt(#ip: &Params, #is: &State, ws: &mut Workspace, x: &Inputs, mut times: Option<&mut [f64]>) {
                ws.layout = Layout::Inference;
                #body
            }
        }
    }))?;
    let quiet_fwd = quiet.clone();
    out.push(Item::with_runs(vec![forward_train], move |runs| {
        let body = &runs[0];
        quote! {
            /// One training forward pass (batchnorm on batch statistics, updating `s`; dropout
            /// drawing from `ws.dropout` when it is set): returns the weighted loss and seeds
            /// the gradients for `backward`.
            pub fn forward_train(p: &Params, s: &mut State, ws: &mut Workspace, x: &Inputs) -> f32 {
                forward_train_timed(p, s, ws, x, None)
            }

            /// [`forward_train`], adding each layer's seconds to `times` (indexed as
            /// [`LAYERS`]) when given.
            #quiet_fwd
            fn forward_train_timed(
                #tp: &Params,
                #ts: &mut State,
                ws: &mut Workspace,
                x: &Inputs,
                mut times: Option<&mut [f64]>,
            ) -> f32 {
                assert!(ws.training, "forward_train needs a workspace for training (`Workspace::new`)");
                ws.layout = Layout::Training;
                #body
                #loss_tail
            }
        }
    }))?;
    out.push(Item::with_runs(vec![backward], move |runs| {
        let body = &runs[0];
        quote! {
            /// The gradient of the loss of the last `forward_train` with respect to every
            /// parameter (overwrites `g`).
            pub fn backward(p: &Params, g: &mut Grads, ws: &mut Workspace) {
                backward_timed(p, g, ws, None, None)
            }

            /// [`backward`], calling `after(k, g)` as soon as the gradients of layer `k`'s
            /// parameters (`LAYERS[k]`) are final, so that a caller can send them on while the
            /// layers before it still compute (data-parallel training's allreduce).
            pub fn backward_observed(p: &Params, g: &mut Grads, ws: &mut Workspace, after: &mut dyn FnMut(usize, &Grads)) {
                backward_timed(p, g, ws, None, Some(after))
            }

            /// [`backward`], adding each layer's seconds to `times` when given, and telling
            /// `after` of the gradients each layer finished.
            #quiet_bwd
            fn backward_timed(#bp: &Params, #bg: &mut Grads, ws: &mut Workspace, mut times: Option<&mut [f64]>, #after: Option<Observer<'_>>) {
                // What backward reads, `forward_train` left; `forward` lays the arena out
                // otherwise.
                assert!(ws.layout == Layout::Training, "backward follows forward_train");
                #body
            }
        }
    }))?;
    let paths = layer_paths.iter().map(|p| quote! { #p, });
    out.push(Item::with_runs(
        vec![Run::new(Kind::Elem, paths)],
        move |runs| {
            let paths = &runs[0];
            quote! {
                /// Every layer's path, in the order of `forward_train`.
                pub const LAYERS: [&str; #layer_count] = [#paths];
            }
        },
    ))?;
    let paths = infer.paths.iter().map(|p| quote! { #p, });
    out.push(Item::with_runs(
        vec![Run::new(Kind::Elem, paths)],
        move |runs| {
            let paths = &runs[0];
            quote! {
                /// The path of every layer `forward` runs, in its order (batchnorms folded
                /// into convs and fused activations have none).
                pub const INFER_LAYERS: [&str; #infer_count] = [#paths];
            }
        },
    ))?;
    out.push(Item::whole(quote! {
        /// `forward_train` then `backward`, adding each layer's seconds forward to `fwd` and
        /// backward to `bwd` (indexed as [`LAYERS`]). Returns the loss.
        pub fn train_step_timed(
            p: &Params,
            s: &mut State,
            g: &mut Grads,
            ws: &mut Workspace,
            x: &Inputs,
            fwd: &mut [f64; #layer_count],
            bwd: &mut [f64; #layer_count],
        ) -> f32 {
            let loss = forward_train_timed(p, s, ws, x, Some(fwd));
            backward_timed(p, g, ws, Some(bwd), None);
            loss
        }

        /// What `backward_observed` tells of each layer whose gradients are final.
        type Observer<'a> = &'a mut dyn FnMut(usize, &Grads);

        /// Tells `after`, if any, that layer `k`'s parameter gradients in `g` are final.
        #[allow(dead_code)]
        fn ready(after: &mut Option<Observer<'_>>, k: usize, g: &Grads) {
            if let Some(f) = after {
                f(k, g);
            }
        }

        /// Runs `f`, adding its seconds to `times[k]` when there is a table.
        #[allow(dead_code)]
        #[inline(always)]
        fn timed(times: &mut Option<&mut [f64]>, k: usize, f: impl FnOnce()) {
            match times {
                Some(t) => {
                    let start = std::time::Instant::now();
                    f();
                    t[k] += start.elapsed().as_secs_f64();
                }
                None => f(),
            }
        }
    }))?;
    for item in outputs {
        out.push(item)?;
    }
    // Each table an item of its own: a long run prints in chunks, and a short one beside it
    // would then print otherwise than whole (see `format`).
    out.push(Item::with_runs(vec![train_activations], |runs| {
        let activations = &runs[0];
        quote! {
            /// The activations still in the arena when `forward_train` ends (those backward
            /// reads, and the outputs), per sample: path, offset, elements.
            pub const ACTIVATIONS: &[(&str, usize, usize)] = &[#activations];
        }
    }))?;
    out.push(Item::with_runs(vec![infer_activations], |runs| {
        let activations = &runs[0];
        quote! {
            /// The activations still in the arena when `forward` ends (the outputs), per
            /// sample: path, offset, elements.
            pub const INFERENCE_ACTIVATIONS: &[(&str, usize, usize)] = &[#activations];
        }
    }))?;
    out.push(Item::whole(quote! {
        /// The activation of the value at `path` (`i3a.b2.0`, an input's name), batch first,
        /// if the last pass left it: one of [`ACTIVATIONS`] after `forward_train` (until
        /// `backward` reuses its memory), of [`INFERENCE_ACTIVATIONS`] after `forward`.
        pub fn activation<'w>(ws: &'w Workspace, path: &str) -> Option<&'w [f32]> {
            let list = match ws.layout {
                Layout::Training => ACTIVATIONS,
                Layout::Inference => INFERENCE_ACTIVATIONS,
            };
            let &(_, at, len) = list.iter().find(|(p, _, _)| *p == path)?;
            Some(&ws.arena[at * ws.batch..(at + len) * ws.batch])
        }
    }))?;
    out.push(Item::whole(super::shards::sharded(whole)?))?;
    Ok(())
}

/// Where each value of program `ws` over graph `g` whose buffer is in `alive` lies in the
/// arena, by path (layers written in place into a concat are inside the concat's; an
/// activation run in place holds its input's buffer, whose own value is then gone):
/// `(path, offset, elements)`, per sample.
fn activations(
    g: &Graph,
    ws: &crate::plan::Workspace,
    alive: &HashSet<String>,
) -> Vec<TokenStream> {
    let bufs = Buffers::new(g, &ws.buffers, &ws.stems);
    let overwritten: HashSet<NodeIndex> = g.aliases.values().copied().collect();
    g.nodes()
        .into_iter()
        // A layer written into a concat is a slice of it, not a buffer: not listed.
        .filter(|n| !overwritten.contains(n) && !g.slots.contains_key(n))
        .filter_map(|n| {
            let name = &ws.buffers[bufs.value('t', n)?].name;
            if !alive.contains(name) {
                return None;
            }
            let place = ws.arena.get(name)?;
            let (path, at, len) = (&g.node(n).path, place.offset, place.elems);
            Some(quote! { (#path, #at, #len), })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network whose lists are long (900 layers, 600 batchnorm statistics, 1,200
    /// parameters): `netc emit` prints it a chunk at a time, exactly as it prints whole.
    #[test]
    fn a_long_network_prints_in_chunks_as_it_prints_whole() {
        let stages = vec!["conv(2, k=1) -> batchnorm -> relu"; 300].join(" -> ");
        let src = format!(
            "network long(x: [2, 3, 3], t: [2, 3, 3]) {{\n    y = x -> {stages};\n    loss mse(y, t);\n    output y;\n}}\n"
        );
        let path = std::path::Path::new("long.net");
        let checked = crate::check_source("long.net", &src, path, None);
        assert!(!checked.has_errors(), "{}", checked.render());
        let g = &checked.graphs[0];
        let text = emit(g, "long.net").unwrap();
        let tokens = module_tokens(g, &quote! { netc_runtime }, &[]).unwrap();
        let whole = super::super::format::unparse(tokens).unwrap();
        let header = "// Network `long` from `long.net`, generated by netc. Do not edit.\n\n";
        assert!(text == format!("{header}{whole}"), "chunks print otherwise");
        assert_eq!(
            super::super::format::WHOLE.get(),
            0,
            "every long item in chunks"
        );
        assert!(text.contains("let own: [usize; 600] = ["));
    }
}
