//! The generated `Sharded` workspace: a batch cut by images into shards (`plan::shards`),
//! each with a `Workspace` of its own and run through the whole network on one thread
//! (`rt::shard::run`; `rt::shard::Group::run` where batchnorm's shards run together and
//! exchange its sums). Its passes are methods with the free functions' contracts: the loss
//! is the shards' losses weighted by their images, the gradients likewise (summed in shard
//! order), and the outputs are gathered batch first. With one shard it is the workspace
//! itself, to the bit. The trainer and `netc bench` run in it; `netc run` and the tests
//! that compare with the interpreter run the plain `Workspace`.

use super::*;
use crate::plan::Plan;

/// The `Sharded` struct, its constructors and passes, for the network of `plan`.
pub(super) fn sharded(plan: &Plan) -> Result<TokenStream, String> {
    let g = &plan.train.graph;
    let train_set = g.training_set();
    // Each input's slice for a shard: `Inputs` has a field per input training uses.
    let mut parts = Vec::new();
    for (name, n) in &g.inputs {
        if !train_set[n.index()] {
            continue;
        }
        let id = rust_ident(name).map_err(|e| format!("input `{name}`: {e}"))?;
        let per = match g.node(*n).op {
            Op::Input(InputKind::Class(_)) => 1,
            _ => g.node(*n).shape.iter().product::<usize>(),
        };
        parts.push(quote! { #id: rt::shard::part(x.#id, #per, r), });
    }
    // Each output's accessor, and its values per sample.
    let mut gathers = Vec::new();
    let mut accessors = Vec::new();
    let mut lens = Vec::new();
    for (j, (name, n)) in g.outputs.iter().enumerate() {
        let f = format_ident!("output_{}", name);
        let per = g.node(*n).shape.iter().product::<usize>();
        lens.push(quote! { #per, });
        gathers.push(quote! {
            for (r, ws) in &self.parts {
                self.gathered[#j][r.start * #per..r.end * #per].copy_from_slice(#f(ws));
            }
        });
        let doc = format!(
            " The output `{name}` of the last pass, batch first: [`{f}`] over every shard."
        );
        accessors.push(quote! {
            #[doc = #doc]
            pub fn #f(&self) -> &[f32] {
                match self.parts.as_slice() {
                    [(_, ws)] => #f(ws),
                    _ => &self.gathered[#j],
                }
            }
        });
    }
    let (train_images, infer_images) = (plan.shards.train_images, plan.shards.infer_images);
    let together = plan.shards.together;
    let together_doc = match &plan.shards.mixing {
        Some(path) => format!(
            " Whether training's shards run together, one per thread: `{path}` mixes the \
             images of a batch, and the shards exchange its sums."
        ),
        None => " Whether training's shards run together: no, no layer mixes the images of a \
                  batch, and a batch is cut by its size alone."
            .to_string(),
    };
    Ok(quote! {
        /// The fewest images of a training shard.
        pub const TRAIN_SHARD_IMAGES: usize = #train_images;
        #[doc = #together_doc]
        pub const TRAIN_SHARDS_TOGETHER: bool = #together;
        /// The fewest images of an inference shard (one shard per thread).
        pub const INFER_SHARD_IMAGES: usize = #infer_images;
        /// Values per sample of each output, in the order of the accessors.
        const OUTPUT_LENS: &[usize] = &[#(#lens)*];

        /// A batch cut by images into shards, each run through the whole network on one
        /// thread with a `Workspace` of its own (`netc check --plan`, "shards"). Inference
        /// gets a shard per thread and computes the bits one workspace does. A training
        /// step is cut by its batch alone, or, where a layer mixes the images (batchnorm),
        /// into a shard per thread that run together and exchange that layer's sums; its
        /// loss and gradients are the shards', weighted by their images.
        pub struct Sharded {
            /// Images per batch.
            pub batch: usize,
            /// Each shard's images and workspace.
            parts: Vec<(std::ops::Range<usize>, Workspace)>,
            /// The gradients of each shard after the first, which writes the caller's.
            grads: Vec<Grads>,
            /// Each output, gathered from the shards after a pass (several shards).
            gathered: Vec<Vec<f32>>,
            /// The generator of dropout masks, as `Workspace::dropout`: with several
            /// shards, each draws from a generator seeded by it in shard order.
            pub dropout: Option<rt::rng::Rng>,
            /// The shards of a training step that run together (`TRAIN_SHARDS_TOGETHER`,
            /// several shards).
            group: Option<rt::shard::Group>,
        }

        impl Sharded {
            /// Buffers for training steps on batches of `batch` (and inference).
            pub fn new(batch: usize) -> Sharded {
                Sharded::with(batch, train_shards(batch), Workspace::new)
            }

            /// Buffers for inference alone on batches of `batch`: a shard per thread.
            pub fn for_inference(batch: usize) -> Sharded {
                Sharded::with(batch, rt::shard::infer_shards(batch, INFER_SHARD_IMAGES), Workspace::for_inference)
            }

            fn with(batch: usize, shards: usize, make: fn(usize) -> Workspace) -> Sharded {
                let mut parts: Vec<_> = rt::shard::ranges(batch, shards)
                    .into_iter()
                    .map(|r| {
                        let ws = make(r.len());
                        (r, ws)
                    })
                    .collect();
                let several = parts.len() > 1;
                let training = parts[0].1.training;
                let group = (TRAIN_SHARDS_TOGETHER && several && training).then(|| {
                    let ranges: Vec<_> = parts.iter().map(|(r, _)| r.clone()).collect();
                    let group = rt::shard::Group::new(&rt::shard::weights(&ranges, batch));
                    for (k, (_, ws)) in parts.iter_mut().enumerate() {
                        ws.peers = Some(group.peer(k));
                    }
                    group
                });
                Sharded {
                    batch,
                    grads: if several && training {
                        (1..parts.len()).map(|_| Params::new()).collect()
                    } else {
                        Vec::new()
                    },
                    gathered: if several {
                        OUTPUT_LENS.iter().map(|&len| vec![0.0; batch * len]).collect()
                    } else {
                        Vec::new()
                    },
                    parts,
                    dropout: None,
                    group,
                }
            }

            /// How many shards a batch is cut into.
            pub fn shards(&self) -> usize {
                self.parts.len()
            }

            /// Each shard's workspace, in batch order.
            pub fn parts(&self) -> impl Iterator<Item = &Workspace> {
                self.parts.iter().map(|(_, ws)| ws)
            }

            /// Bytes held: every shard's workspace, the shards' gradients and the gathered
            /// outputs.
            pub fn bytes(&self) -> usize {
                self.parts().map(Workspace::bytes).sum::<usize>()
                    + 4 * Sharded::param_count() * self.grads.len()
                    + 4 * self.gathered.iter().map(Vec::len).sum::<usize>()
            }

            /// Bytes `Sharded::new(batch)` allocates, or `None` when they overflow.
            pub fn training_bytes(batch: usize) -> Option<usize> {
                Sharded::bytes_for(batch, train_shards(batch), workspace_bytes, true)
            }

            /// Bytes `Sharded::for_inference(batch)` allocates, or `None` when they overflow.
            pub fn inference_bytes(batch: usize) -> Option<usize> {
                let shards = rt::shard::infer_shards(batch, INFER_SHARD_IMAGES);
                Sharded::bytes_for(batch, shards, inference_workspace_bytes, false)
            }

            fn bytes_for(batch: usize, shards: usize, each: fn(usize) -> Option<usize>, training: bool) -> Option<usize> {
                let ranges = rt::shard::ranges(batch, shards);
                let mut total: usize = 0;
                for r in &ranges {
                    total = total.checked_add(each(r.len())?)?;
                }
                if ranges.len() > 1 {
                    let grads = if training { Sharded::param_count() * (ranges.len() - 1) } else { 0 };
                    let outputs = OUTPUT_LENS.iter().sum::<usize>().checked_mul(batch)?;
                    total = total.checked_add(grads.checked_add(outputs)?.checked_mul(4)?)?;
                }
                Some(total)
            }

            /// Values of every parameter (each shard after the first keeps its gradients).
            fn param_count() -> usize {
                Params::SHAPES.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
            }

            /// [`forward`] over the shards.
            pub fn forward(&mut self, p: &Params, s: &State, x: &Inputs) {
                if let [(_, ws)] = self.parts.as_mut_slice() {
                    return forward(p, s, ws, x);
                }
                rt::shard::run(&mut self.parts, |_, (r, ws)| forward(p, s, ws, &shard_inputs(x, r)));
                self.gather();
            }

            /// [`forward_train`] over the shards: the loss of the whole batch.
            pub fn forward_train(&mut self, p: &Params, s: &mut State, x: &Inputs) -> f32 {
                if let [(_, ws)] = self.parts.as_mut_slice() {
                    ws.dropout = self.dropout.take();
                    let loss = forward_train(p, s, ws, x);
                    self.dropout = ws.dropout.take();
                    return loss;
                }
                for (_, ws) in &mut self.parts {
                    ws.dropout = self.dropout.as_mut().map(|r| rt::rng::Rng::new(r.next_u64()));
                }
                let losses = match &self.group {
                    // Every shard computes the whole batch's batchnorm statistics, and so the
                    // same running statistics: the first shard updates `s`, the others
                    // copies.
                    Some(group) => {
                        let mut copies: Vec<State> = (1..self.parts.len()).map(|_| s.clone()).collect();
                        let mut jobs: Vec<_> = self
                            .parts
                            .iter_mut()
                            .zip(std::iter::once(s).chain(copies.iter_mut()))
                            .collect();
                        group.run(&mut jobs, |_, ((r, ws), s)| forward_train(p, s, ws, &shard_inputs(x, r)))
                    }
                    // No layer mixes the images: the state is only read, and each shard
                    // reads its own copy.
                    None => {
                        let s: &State = s;
                        rt::shard::run(&mut self.parts, |_, (r, ws)| {
                            forward_train(p, &mut s.clone(), ws, &shard_inputs(x, r))
                        })
                    }
                };
                self.gather();
                let w = self.weights();
                losses.iter().zip(&w).map(|(&l, &w)| l as f64 * w as f64).sum::<f64>() as f32
            }

            /// [`backward`] over the shards: each shard's gradients, then their mean
            /// weighted by images, in shard order, into `g`.
            pub fn backward(&mut self, p: &Params, g: &mut Grads) {
                if let [(_, ws)] = self.parts.as_mut_slice() {
                    return backward(p, g, ws);
                }
                let w = self.weights();
                let mut jobs: Vec<(&mut Workspace, &mut Grads)> = self
                    .parts
                    .iter_mut()
                    .map(|(_, ws)| ws)
                    .zip(std::iter::once(&mut *g).chain(self.grads.iter_mut()))
                    .collect();
                match &self.group {
                    Some(group) => group.run(&mut jobs, |_, (ws, gk)| backward(p, gk, ws)),
                    None => rt::shard::run(&mut jobs, |_, (ws, gk)| backward(p, gk, ws)),
                };
                let mut rest: Vec<_> = self.grads.iter().map(Params::iter).collect();
                for (_, d) in g.iter_mut() {
                    let parts: Vec<&[f32]> = rest
                        .iter_mut()
                        .map(|it| it.next().expect("every shard has every parameter").1)
                        .collect();
                    rt::shard::combine(d, &w, &parts);
                }
            }

            /// [`backward_observed`] over the shards: with several, `after` hears of every
            /// layer once the shards' gradients are summed.
            pub fn backward_observed(&mut self, p: &Params, g: &mut Grads, after: &mut dyn FnMut(usize, &Grads)) {
                if let [(_, ws)] = self.parts.as_mut_slice() {
                    return backward_observed(p, g, ws, after);
                }
                self.backward(p, g);
                for k in (0..LAYERS.len()).rev() {
                    after(k, g);
                }
            }

            /// The activation at `path` in each shard, in batch order (see [`activation`]).
            pub fn activations<'w>(&'w self, path: &'w str) -> impl Iterator<Item = &'w [f32]> + 'w {
                self.parts().filter_map(move |ws| activation(ws, path))
            }

            #(#accessors)*

            /// Each shard's share of the batch.
            fn weights(&self) -> Vec<f32> {
                let ranges: Vec<_> = self.parts.iter().map(|(r, _)| r.clone()).collect();
                rt::shard::weights(&ranges, self.batch)
            }

            /// Copies each shard's outputs into `gathered`.
            fn gather(&mut self) {
                #(#gathers)*
            }
        }

        /// How many shards `Sharded::new(batch)` cuts a training batch into.
        fn train_shards(batch: usize) -> usize {
            rt::shard::train_shards(batch, TRAIN_SHARD_IMAGES, TRAIN_SHARDS_TOGETHER)
        }

        /// The inputs of shard `r`'s images.
        fn shard_inputs<'a>(x: &Inputs<'a>, r: &std::ops::Range<usize>) -> Inputs<'a> {
            Inputs { #(#parts)* }
        }
    })
}
