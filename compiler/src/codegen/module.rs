//! The items of one generated module, made in order into [`Sink`]s: the parameter and
//! state structs, the workspace, the schedule functions (`forward`, `forward_train`,
//! `backward`, `train_step_timed`), the tables of layers and activations, and a function
//! per layer forward and backward. The lists that grow with the network are [`Run`]s, so
//! that `netc emit` prints them a chunk at a time (see `format`).

use std::collections::{BTreeMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use super::arena::{arena_views, uses_ident};
use super::format::{Item, Kind, Run, Sink, LONG_RUN};
use super::losses;
use super::tensors::tensor_struct;
use super::*;

/// Makes the module for `g` (after its codegen passes): every item but the layer
/// functions into `out`, the layer functions into `layers`, which go after them.
pub(super) fn module(
    g: &Graph,
    runtime: &TokenStream,
    out: &mut Sink,
    layers: &mut Sink,
) -> Result<(), String> {
    let shapes = param_shapes(g);
    let mut seen = std::collections::HashMap::new();
    for (name, _) in &shapes {
        let f = field(name).to_string();
        if let Some(other) = seen.insert(f.clone(), name.clone()) {
            return Err(format!(
                "parameters `{other}` and `{name}` would share the field `{f}`"
            ));
        }
    }
    let trained: Vec<&(String, Vec<usize>)> = shapes.iter().filter(|(n, _)| !is_state(n)).collect();
    let state: Vec<&(String, Vec<usize>)> = shapes.iter().filter(|(n, _)| is_state(n)).collect();

    let train_set = g.training_set();
    let infer_set = g.inference_set();
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
    // Activations run in place use their input's buffers.
    let renames: BTreeMap<String, String> = g
        .aliases
        .iter()
        .flat_map(|(a, x)| {
            let (a, x) = (a.index(), x.index());
            [
                (format!("t{a}"), format!("t{x}")),
                (format!("d{a}"), format!("d{x}")),
            ]
        })
        .collect();
    let buffer = |name: String| renames.get(&name).cloned().unwrap_or(name);
    let arena = |body: TokenStream| arena_views(body, &plan.arena, &renames);

    // Inputs.
    let mut input_fields = Vec::new();
    let mut input_copy = Vec::new();
    for (name, n) in &g.inputs {
        if !train_set[n.index()] {
            continue;
        }
        let id = rust_ident(name).map_err(|e| format!("input `{name}`: {e}"))?;
        let t = format_ident!("t{}", n.index());
        match g.node(*n).op {
            Op::Input(InputKind::Class(_)) => input_fields.push(quote! { pub #id: &'a [i64], }),
            _ => {
                input_fields.push(quote! { pub #id: &'a [f32], });
                let copy = arena(quote! { ws.#t.copy_from_slice(x.#id); });
                input_copy.push(quote! { { #copy } });
            }
        }
    }

    // Layers, forward and backward.
    // Gradients are zeroed when they come alive (their memory held other buffers before):
    // at the end of the forward pass (loss seeds), or just before the backward of their first
    // writer. Step `k` of the schedule is the forward of `nodes[k]`, step `2·len-1-k` its
    // backward.
    let steps = nodes.len();
    let mut zeroed: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (name, place) in &plan.arena {
        if name.starts_with('d') {
            zeroed.entry(place.first).or_default().push(name);
        }
    }
    let zero_at = |step: usize| -> Vec<TokenStream> {
        zeroed
            .get(&step)
            .into_iter()
            .flatten()
            .map(|name| {
                let d = format_ident!("{name}");
                let fill = arena(quote! { ws.#d.fill(0.0); });
                quote! { { #fill } }
            })
            .collect()
    };
    // The bodies of the schedule functions, filled as the layers are made (as text: a
    // token takes tens of bytes). `train_step_timed` makes the same calls as `forward_train`
    // and `backward`, timed per layer, for `netc bench`.
    let mut forward = Run::new(Kind::Stmt, [quote! { let mut s = s.clone(); }]);
    forward.extend(input_copy.iter().cloned());
    let mut forward_train = Run::new(Kind::Stmt, input_copy.iter().cloned());
    let mut timed = Run::new(Kind::Stmt, input_copy.iter().cloned());
    // Each step's backward function and its index in `LAYERS`, if it has one.
    let mut backward_at: Vec<Option<(Ident, usize)>> = vec![None; steps];
    let mut layer_paths = Vec::new();
    for (step, &n) in nodes.iter().enumerate() {
        let node = g.node(n);
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let i = n.index();
        let (fwd, bwd) = (format_ident!("forward_{i}"), format_ident!("backward_{i}"));
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
        let (fwd_body, bwd_body) = layer::layer(g, n);
        // A ReLU fused into the layer: its gradient first, on the layer's own output.
        let fused_relu = matches!(&node.op, Op::Conv(c) if c.relu)
            || matches!(&node.op, Op::Linear(l) if l.relu);
        let bwd_body = if fused_relu {
            if let Some((t, d, slot)) = layer::layer_in_place(g, n) {
                let len = node.shape.iter().product::<usize>();
                quote! { rt::act::relu_backward_inplace_slot(n, #len, #slot, &ws.#t, &mut ws.#d); #bwd_body }
            } else {
                let (t, d) = (format_ident!("t{i}"), format_ident!("d{i}"));
                quote! { rt::act::relu_backward_inplace(&ws.#t, &mut ws.#d); #bwd_body }
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
        let batch = |body: &TokenStream| {
            if uses_ident(body, "n") {
                quote! { let n = ws.batch; }
            } else {
                quote! {}
            }
        };
        let (fwd_body, bwd_body) = (arena(fwd_body), arena(bwd_body));
        let (fwd_n, bwd_n) = (batch(&fwd_body), batch(&bwd_body));
        if !fwd_body.is_empty() {
            layers.push(Item::whole(quote! {
                #[doc = #doc]
                #[inline(never)]
                fn #fwd(p: &Params, s: &mut State, ws: &mut Workspace, train: bool) {
                    let _ = (&p, &s, train);
                    #fwd_n
                    #fwd_body
                }
            }))?;
            // The first conv of a merged group computes the group: it runs when any does.
            let inferred = match g.group_of(n) {
                Some(group) => group.iter().any(|j| infer_set[j.index()]),
                None => infer_set[i],
            };
            if inferred {
                forward.push(quote! { #fwd(p, &mut s, ws, false); });
            }
            forward_train.push(quote! { #fwd(p, s, ws, true); });
            timed.push(quote! {
                let t = std::time::Instant::now();
                #fwd(p, s, ws, true);
                fwd[#k] += t.elapsed().as_secs_f64();
            });
        }
        // A layer whose input takes no gradient and that has no parameters has no backward.
        if !bwd_body.is_empty() {
            layers.push(Item::whole(quote! {
                #[doc = #doc]
                #[inline(never)]
                fn #bwd(p: &Params, g: &mut Grads, ws: &mut Workspace) {
                    let _ = (&p, &g);
                    #bwd_n
                    #bwd_body
                }
            }))?;
            backward_at[step] = Some((bwd, k));
        }
        layer_paths.push(node.path.clone());
    }
    let layer_count = layer_paths.len();

    // The losses, after the forward pass, zeroing first the gradients that come alive when
    // it ends (those the losses seed).
    let (loss_stmts, loss_tail) = losses::losses(g, &arena);
    let zero_grads = zero_at(steps);
    forward_train.extend(zero_grads.iter().chain(&loss_stmts).cloned());
    timed.push(quote! {
        let loss = {
            #(#zero_grads)*
            #(#loss_stmts)*
            #loss_tail
        };
    });
    // Backward: the steps in reverse, each zeroing the gradients that come alive there
    // (but the first, step `len`, which is the losses' too: `forward_train` zeroes those).
    let mut backward = Run::new(Kind::Stmt, []);
    for step in (0..steps).rev() {
        if step + 1 < steps {
            for zero in zero_at(2 * steps - 1 - step) {
                backward.push(zero.clone());
                timed.push(zero);
            }
        }
        if let Some((bwd, k)) = &backward_at[step] {
            backward.push(quote! { #bwd(p, g, ws); });
            timed.push(quote! {
                let t = std::time::Instant::now();
                #bwd(p, g, ws);
                bwd[#k] += t.elapsed().as_secs_f64();
            });
        }
    }
    timed.push(quote! { let _ = (&fwd, &bwd); });

    let scratch_len = per_batch(plan.scratch);
    let mut outputs = Vec::new();
    for (name, n) in &g.outputs {
        let f = format_ident!("output_{}", name);
        let place = plan.arena[&buffer(format!("t{}", n.index()))];
        let (at, end) = (place.offset, place.offset + place.elems);
        let doc = format!(
            " The output `{name}` (`{}`): `{}` per sample, batch first.",
            g.node(*n).path,
            shape_str(&g.node(*n).shape)
        );
        outputs.push(Item::whole(
            quote! { #[doc = #doc] pub fn #f(ws: &Workspace) -> &[f32] { &ws.arena[#at * ws.batch..#end * ws.batch] } },
        ));
    }
    // Where each value's activation lies in the arena, by path (layers written in place
    // into a concat are inside the concat's; an activation run in place holds its input's
    // buffer, whose own value is then gone).
    let overwritten: HashSet<NodeIndex> = g.aliases.values().copied().collect();
    let activations = Run::new(
        Kind::Elem,
        nodes
            .iter()
            .filter(|n| !overwritten.contains(n))
            .filter_map(|&n| {
                let place = plan.arena.get(&buffer(format!("t{}", n.index())))?;
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

    out.push(Item::with_runs(vec![forward], |runs| {
        let body = &runs[0];
        quote! {
            /// Inference: batchnorm on its running statistics, dropout the identity.
            pub fn forward(p: &Params, s: &State, ws: &mut Workspace, x: &Inputs) {
                #body
            }
        }
    }))?;
    out.push(Item::with_runs(vec![forward_train], move |runs| {
        let body = &runs[0];
        quote! {
            /// One training forward pass (batchnorm on batch statistics, updating `s`; dropout
            /// the identity): returns the weighted loss and seeds the gradients for `backward`.
            pub fn forward_train(p: &Params, s: &mut State, ws: &mut Workspace, x: &Inputs) -> f32 {
                #body
                #loss_tail
            }
        }
    }))?;
    out.push(Item::with_runs(vec![backward], |runs| {
        let body = &runs[0];
        quote! {
            /// The gradient of the loss of the last `forward_train` with respect to every
            /// parameter (overwrites `g`).
            pub fn backward(p: &Params, g: &mut Grads, ws: &mut Workspace) {
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
    out.push(Item::with_runs(vec![timed], move |runs| {
        let body = &runs[0];
        quote! {
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
                #body
                loss
            }
        }
    }))?;
    for item in outputs {
        out.push(item)?;
    }
    out.push(Item::with_runs(vec![activations], |runs| {
        let activations = &runs[0];
        quote! {
            /// Every value's activation in the arena, per sample: path, offset, elements.
            pub const ACTIVATIONS: &[(&str, usize, usize)] = &[#activations];

            /// The activation of the value at `path` (`i3a.b2.0`, an input's name), batch first.
            /// Valid after `forward` or `forward_train`, until `backward` reuses its memory.
            pub fn activation<'w>(ws: &'w Workspace, path: &str) -> Option<&'w [f32]> {
                let &(_, at, len) = ACTIVATIONS.iter().find(|(p, _, _)| *p == path)?;
                Some(&ws.arena[at * ws.batch..(at + len) * ws.batch])
            }
        }
    }))?;
    Ok(())
}

/// What the passes did to layer `n`, for its doc comment: merged into one GEMM with its
/// siblings, written in place into a concat.
fn fusion_note(g: &Graph, n: NodeIndex) -> String {
    let mut note = String::new();
    if let Some(group) = g.group_of(n) {
        let paths = |js: &[NodeIndex]| {
            js.iter()
                .map(|&j| format!("`{}`", g.node(j).path))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if group[0] == n {
            note += &format!(
                " One GEMM computes it with {} (merge_1x1).",
                paths(&group[1..])
            );
        } else {
            note += &format!(" Computed with {} (merge_1x1).", paths(&group[..1]));
        }
    }
    if let Some(slot) = g.slots.get(&n) {
        let c = g.node(n).shape[0];
        note += &format!(
            " Written in place as channels {}..{} of the concat `{}` (concat_in_place).",
            slot.c0,
            slot.c0 + c,
            g.node(slot.concat).path
        );
    }
    note
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
