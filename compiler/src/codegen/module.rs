//! The items of one generated module, made in order into [`Sink`]s: the parameter and
//! state structs, the workspace, the schedule functions (`forward`, `forward_train`,
//! `backward`, `train_step_timed`), the tables of layers and activations, and a function
//! per layer forward and backward. The lists that grow with the network are [`Run`]s, so
//! that `netc emit` prints them a chunk at a time (see `format`).

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use super::arena::{reference, with_views};
use super::format::{Item, Kind, Run, Sink, LONG_RUN};
use super::functions::{fusion_note, signature, Calls, Phase};
use super::losses;
use super::tensors::tensor_struct;
use super::*;
use crate::plan::schedule::Buffers;
use crate::plan::schedule::{BufId, What};

/// Makes the module for `g` (after its codegen passes): every item but the layer
/// functions into `out`, the layer functions into `layers`, which go after them.
pub(super) fn module(
    g: &Graph,
    runtime: &TokenStream,
    out: &mut Sink,
    layers: &mut Sink,
) -> Result<(), String> {
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

    // Workspace: the buffers of `plan::workspace`, declared and allocated.
    let plan = crate::plan::workspace(g)
        .ok_or("one sample's buffers take more than 2^64 bytes: the network is too large")?;
    let mut ws_fields = Run::new(Kind::Field, []);
    let mut ws_init = Run::new(Kind::Field, []);
    let mut ws_names: Vec<Ident> = Vec::new();
    for b in plan.buffers.iter().filter(|b| !b.in_arena()) {
        let name = format_ident!("{}", b.name);
        let ty = if b.index {
            quote! { u32 }
        } else {
            quote! { f32 }
        };
        let zero = if b.index {
            quote! { 0 }
        } else {
            quote! { 0.0 }
        };
        let len = if b.fixed {
            let e = b.elems;
            quote! { #e }
        } else {
            per_batch(b.elems)
        };
        ws_fields.push(match &b.doc {
            Some(doc) => quote! { #[doc = #doc] pub #name: Vec<#ty>, },
            None => quote! { #name: Vec<#ty>, },
        });
        ws_init.push(quote! { #name: vec![#zero; #len], });
        ws_names.push(name);
    }
    let col_len = plan.col;
    let arena_len = per_batch(plan.arena_elems);
    // What `Workspace::new(batch)` allocates is `batch × per_sample + fixed` elements.
    let too_large = "the workspace holds more than usize::MAX elements per sample";
    let (mut per_sample, mut fixed) = (plan.arena_elems.checked_add(plan.scratch), Some(plan.col));
    for b in plan.buffers.iter().filter(|b| !b.in_arena()) {
        let sum = if b.fixed { &mut fixed } else { &mut per_sample };
        *sum = sum.and_then(|s| s.checked_add(b.elems));
    }
    let (per_sample, fixed) = (per_sample.ok_or(too_large)?, fixed.ok_or(too_large)?);
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
    let (mut infer_uses, mut train_uses, mut backward_uses) = ([false; 2], [false; 2], [false; 2]);
    let mut calls: HashMap<NodeIndex, Calls> = HashMap::new();
    let graded = g.graded();
    let inferred: HashSet<NodeIndex> = plan
        .schedule
        .forward
        .iter()
        .filter_map(|s| match s.what {
            What::Infer(n) => Some(n),
            _ => None,
        })
        .collect();
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
        let cx = layer::cx(g, n, &plan, &bufs);
        let (fwd_body, bwd_body) = layer::layer(&cx);
        // An activation fused into the layer: its gradient first, on the layer's own output.
        let bwd_body = if let Some(f) = node.op.fused() {
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
        // A concat whose branches all wrote in place has nothing left to do; a merged conv
        // after the first of its group only masks its gradient.
        if fwd_body.is_empty() && bwd_body.is_empty() {
            continue;
        }
        let k = layer_paths.len();
        let infer_body = node.op.kind().emit_infer(&cx).map(&arena);
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
            // A layer that updates state in training has a function of its own for
            // inference, which reads the state.
            let train_fn = signature(&fwd_body, Phase::Train);
            layers.push(Item::whole(train_fn.function(&doc, &fwd, &fwd_body)))?;
            // Only for a layer inference runs.
            if inferred.contains(&n) {
                match &infer_body {
                    Some(body) => {
                        let inf = format_ident!("inf_{}", stems[&n]);
                        let infer_fn = signature(body, Phase::Infer);
                        layers.push(Item::whole(infer_fn.function(&doc, &inf, body)))?;
                        let args = infer_fn.args();
                        call.infer =
                            Some((quote! { #inf(#args); }, infer_fn.params, infer_fn.state));
                    }
                    None if train_fn.state => {
                        return Err(format!(
                            "internal error: `{}` updates state but has no inference form",
                            node.path
                        ))
                    }
                    None => {
                        let sig = signature(&fwd_body, Phase::Infer);
                        let args = sig.args();
                        call.infer = Some((quote! { #fwd(#args); }, sig.params, false));
                    }
                }
            }
            let args = train_fn.args();
            train_uses[0] |= train_fn.params;
            train_uses[1] |= train_fn.state;
            call.train = Some(quote! { timed(&mut times, #k, || #fwd(#args)); });
        }
        // A layer whose input takes no gradient and that has no parameters has no backward.
        // Nor has a layer that reaches no loss: no gradient comes back to it.
        if !bwd_body.is_empty() && graded[n.index()] {
            let bwd_fn = signature(&bwd_body, Phase::Backward);
            layers.push(Item::whole(bwd_fn.function(&doc, &bwd, &bwd_body)))?;
            backward_uses[0] |= bwd_fn.params;
            backward_uses[1] |= bwd_fn.state;
            let args = bwd_fn.args();
            call.backward = Some(quote! { timed(&mut times, #k, || #bwd(#args)); });
        }
        calls.insert(n, call);
        layer_paths.push(node.path.clone());
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
    let mut forward = Run::new(Kind::Stmt, []);
    for step in &plan.schedule.forward {
        match step.what {
            What::Input(n) => forward.extend(input_copy.get(&n).cloned()),
            What::Infer(n) => {
                if let Some((call, p, s)) = calls.get(&n).and_then(|c| c.infer.clone()) {
                    infer_uses[0] |= p;
                    infer_uses[1] |= s;
                    forward.push(call);
                }
            }
            _ => {}
        }
    }
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

    let scratch_len = per_batch(plan.scratch);
    let mut outputs = Vec::new();
    for (name, n) in &g.outputs {
        let f = format_ident!("output_{}", name);
        let place = plan.arena[name_of('t', *n).expect("outputs have buffers")];
        let (at, end) = (place.offset, place.offset + place.elems);
        let doc = format!(
            " The output `{name}` (`{}`): `{}` per sample, batch first.",
            g.node(*n).path,
            shape_str(&g.node(*n).shape)
        );
        // (`0 * ws.batch` would be a lint in the user's crate.)
        let start = (at > 0).then(|| quote! { #at * ws.batch });
        outputs.push(Item::whole(
            quote! { #[doc = #doc] pub fn #f(ws: &Workspace) -> &[f32] { &ws.arena[#start..#end * ws.batch] } },
        ));
    }
    // Where each value's activation lies in the arena, by path (layers written in place
    // into a concat are inside the concat's; an activation run in place holds its input's
    // buffer, whose own value is then gone).
    // Only values the backward reads (and the outputs) are still there when a forward pass
    // ends: the memory of the others is reused as soon as their last reader is done.
    let overwritten: HashSet<NodeIndex> = g.aliases.values().copied().collect();
    let kept: HashSet<&str> = plan
        .schedule
        .backward
        .iter()
        .flat_map(|step| &step.reads)
        .map(|&b| plan.buffers[b].name.as_str())
        .collect();
    let activations = Run::new(
        Kind::Elem,
        nodes
            .iter()
            // A layer written into a concat is a slice of it, not a buffer: not listed.
            .filter(|n| !overwritten.contains(n) && !g.slots.contains_key(n))
            .filter_map(|&n| {
                let name = name_of('t', n)?;
                if !kept.contains(name) {
                    return None;
                }
                let place = plan.arena.get(name)?;
                let (path, at, len) = (&g.node(n).path, place.offset, place.elems);
                Some(quote! { (#path, #at, #len), })
            }),
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
    out.push(Item::with_runs(vec![ws_fields], |runs| {
        let ws_fields = &runs[0];
        quote! {
            /// Every buffer one batch needs, allocated once for a batch size.
            pub struct Workspace {
                /// Images per batch.
                pub batch: usize,
                /// Activations and gradients, placed by liveness (`netc check --plan`): buffers
                /// never live at the same time share memory.
                arena: Vec<f32>,
                #ws_fields
                /// im2col and LRN scratch (unused by networks without them).
                #[allow(dead_code)]
                col: Vec<f32>,
                /// Gradients on their way to being summed (unused by networks without any).
                #[allow(dead_code)]
                scratch: Vec<f32>,
                /// The generator of dropout and stochastic-depth masks in `forward_train`:
                /// `None` keeps every value (the deterministic gradients of `netc run
                /// --grads`); the trainer seeds it for every step.
                pub dropout: Option<rt::rng::Rng>,
            }
        }
    }))?;
    // The sum of the buffers' lengths, term by term; past a long run, over an array, whose
    // elements print a chunk at a time.
    let own = if ws_names.len() <= LONG_RUN {
        Run::new(Kind::Elem, [])
    } else {
        Run::new(
            Kind::Elem,
            ws_names.iter().map(|w| quote! { self.#w.len(), }),
        )
    };
    let own_terms = if own.is_empty() {
        quote! { #(+ self.#ws_names.len())* }
    } else {
        quote! { + own.iter().sum::<usize>() }
    };
    let own_count = ws_names.len();
    let own_array = !own.is_empty();
    out.push(Item::with_runs(
        vec![ws_init, own],
        move |runs| {
            let (ws_init, own) = (&runs[0], &runs[1]);
            let own = own_array.then(|| quote! { let own: [usize; #own_count] = [#own]; });
            quote! {
                impl Workspace {
                    /// Buffers for batches of `batch` images.
                    pub fn new(batch: usize) -> Workspace {
                        assert!(workspace_bytes(batch).is_some(), "a workspace for batches of {batch} takes more than usize::MAX bytes");
                        Workspace { batch, arena: vec![0.0; #arena_len], #ws_init col: vec![0.0; #col_len], scratch: vec![0.0; #scratch_len], dropout: None }
                    }

                    /// Bytes held by every buffer (each element is 4 bytes).
                    pub fn bytes(&self) -> usize {
                        #own
                        4 * (self.arena.len() + self.col.len() + self.scratch.len() #own_terms)
                    }
                }

                /// Bytes `Workspace::new(batch)` allocates (what its `bytes()` reports), or `None`
                /// when they overflow a `usize`.
                pub fn workspace_bytes(batch: usize) -> Option<usize> {
                    batch.checked_mul(#per_sample)?.checked_add(#fixed)?.checked_mul(4)
                }
            }
        },
    ))?;

    let name = |used: bool, name: &str| {
        if used {
            format_ident!("{name}")
        } else {
            format_ident!("_{name}")
        }
    };
    let (ip, is) = (name(infer_uses[0], "p"), name(infer_uses[1], "s"));
    let (tp, ts) = (name(train_uses[0], "p"), name(train_uses[1], "s"));
    let (bp, bg) = (name(backward_uses[0], "p"), name(backward_uses[1], "g"));
    // With no layer, nothing is timed.
    let allow = quote! { #[allow(unused_variables, unused_mut)] };
    let quiet = (layer_count == 0).then(|| allow.clone());
    // A network without a loss has nothing to take gradients of.
    let quiet_bwd = backward.is_empty().then(|| allow.clone());
    out.push(Item::with_runs(vec![forward], move |runs| {
        let body = &runs[0];
        quote! {
            /// Inference: batchnorm on its running statistics, dropout the identity.
            pub fn forward(#ip: &Params, #is: &State, ws: &mut Workspace, x: &Inputs) {
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
                backward_timed(p, g, ws, None)
            }

            /// [`backward`], adding each layer's seconds to `times` when given.
            #quiet_bwd
            fn backward_timed(#bp: &Params, #bg: &mut Grads, ws: &mut Workspace, mut times: Option<&mut [f64]>) {
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
            backward_timed(p, g, ws, Some(bwd));
            loss
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
    out.push(Item::with_runs(vec![activations], |runs| {
        let activations = &runs[0];
        quote! {
            /// The activations still in the arena when a forward pass ends (those backward reads,
            /// and the outputs), per sample: path, offset, elements.
            pub const ACTIVATIONS: &[(&str, usize, usize)] = &[#activations];

            /// The activation of the value at `path` (`i3a.b2.0`, an input's name), batch first,
            /// if it is one of [`ACTIVATIONS`]. Valid after `forward` or `forward_train`, until
            /// `backward` reuses its memory.
            pub fn activation<'w>(ws: &'w Workspace, path: &str) -> Option<&'w [f32]> {
                let &(_, at, len) = ACTIVATIONS.iter().find(|(p, _, _)| *p == path)?;
                Some(&ws.arena[at * ws.batch..(at + len) * ws.batch])
            }
        }
    }))?;
    Ok(())
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
