//! The generated `Workspace`: every buffer of one batch size, made for training
//! (`Workspace::new`, where `forward` runs too) or for inference alone
//! (`Workspace::for_inference`: inference's arena, no gradients, nothing kept for
//! backward). Each program lays its values out in the arena by its own plan, so the
//! workspace remembers which program ran last (its `Layout`): the outputs are where that
//! program put them. What each constructor allocates is `plan::Allocation`, to the element.

use super::format::{Item, Kind, Run, Sink, LONG_RUN};
use super::*;
use crate::plan::{Allocation, Buffer, Plan};

/// Pushes the workspace's items into `out`: `Layout`, the struct, its constructors and the
/// byte counts of each.
pub(super) fn workspace(plan: &Plan, out: &mut Sink) -> Result<(), String> {
    let (train, infer) = (plan.training_allocation(), plan.inference_allocation());
    let too_large = "the workspace holds more than usize::MAX elements per sample";
    let (per_sample, fixed) = train.elems().ok_or(too_large)?;
    let (infer_per_sample, infer_fixed) = infer.elems().ok_or(too_large)?;
    let (mut fields, mut init, mut init_infer) = (
        Run::new(Kind::Field, []),
        Run::new(Kind::Field, []),
        Run::new(Kind::Field, []),
    );
    let mut names: Vec<Ident> = Vec::new();
    for b in &train.own {
        let name = format_ident!("{}", b.name);
        let ty = if b.index {
            quote! { u32 }
        } else {
            quote! { f32 }
        };
        fields.push(match &b.doc {
            Some(doc) => quote! { #[doc = #doc] pub #name: Vec<#ty>, },
            None => quote! { #name: Vec<#ty>, },
        });
        init.push(alloc(b));
        // What inference does not write, an inference workspace leaves empty.
        init_infer.push(if infer.own.iter().any(|o| o.name == b.name) {
            alloc(b)
        } else {
            quote! { #name: Vec::new(), }
        });
        names.push(name);
    }
    let fold_field = (infer.fold > 0).then(|| {
        quote! {
            /// Folded conv weights and biases, each computed just before its conv at
            /// inference.
            fold: Vec<f32>,
        }
    });
    out.push(Item::whole(quote! {
        /// Which program's plan the arena's values are laid out by: each pass writes where
        /// its own plan puts them (`netc check --plan`), so the values are read where the
        /// last pass left them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Layout {
            /// `forward_train` and `backward`.
            Training,
            /// `forward`.
            Inference,
        }
    }))?;
    out.push(Item::with_runs(vec![fields], move |runs| {
        let fields = &runs[0];
        quote! {
            /// Every buffer one batch needs, allocated once for a batch size: for training
            /// (`Workspace::new`), which inference can use too, or for inference alone
            /// (`Workspace::for_inference`, a fraction of the memory).
            pub struct Workspace {
                /// Images per batch.
                pub batch: usize,
                /// Whether `forward_train` and `backward` can run in it.
                training: bool,
                /// The plan by which the arena holds the last pass's values.
                layout: Layout,
                /// Activations and gradients, placed by liveness (`netc check --plan`): buffers
                /// never live at the same time share memory.
                arena: Vec<f32>,
                #fields
                /// im2col and LRN scratch (unused by networks without them).
                #[allow(dead_code)]
                col: Vec<f32>,
                /// Gradients on their way to being summed (unused by networks without any).
                #[allow(dead_code)]
                scratch: Vec<f32>,
                #fold_field
                /// The generator of dropout and stochastic-depth masks in `forward_train`:
                /// `None` keeps every value (the deterministic gradients of `netc run
                /// --grads`); the trainer seeds it for every step.
                pub dropout: Option<rt::rng::Rng>,
                /// This workspace's shard among those that run a batch together
                /// (`Sharded`), through which batchnorm reads the whole batch's
                /// statistics; `None`: the batch is whole.
                pub peers: Option<rt::shard::Peers>,
            }
        }
    }))?;
    // The sum of the buffers' lengths, term by term; past a long run, over an array, whose
    // elements print a chunk at a time.
    let own = if names.len() <= LONG_RUN {
        Run::new(Kind::Elem, [])
    } else {
        Run::new(Kind::Elem, names.iter().map(|w| quote! { self.#w.len(), }))
    };
    let own_terms = if own.is_empty() {
        quote! { #(+ self.#names.len())* }
    } else {
        quote! { + own.iter().sum::<usize>() }
    };
    let own_count = names.len();
    let own_array = !own.is_empty();
    let sizes = |a: &Allocation| {
        let (arena, col, scratch) = (per_batch(a.arena), a.col, per_batch(a.scratch));
        let scratch = if a.scratch > 0 {
            quote! { vec![0.0; #scratch] }
        } else {
            quote! { Vec::new() }
        };
        let f = a.fold;
        let fold = (f > 0).then(|| quote! { fold: vec![0.0; #f], });
        (arena, col, scratch, fold)
    };
    let (arena, col, scratch, fold) = sizes(&train);
    let fold_len = (train.fold > 0).then(|| quote! { + self.fold.len() });
    let (infer_arena, infer_col, infer_scratch, infer_fold) = sizes(&infer);
    out.push(Item::with_runs(
        vec![init, init_infer, own],
        move |runs| {
            let (init, init_infer, own) = (&runs[0], &runs[1], &runs[2]);
            let own = own_array.then(|| quote! { let own: [usize; #own_count] = [#own]; });
            quote! {
                impl Workspace {
                    /// Buffers for training on batches of `batch` images, and for inference
                    /// (`forward`) too.
                    pub fn new(batch: usize) -> Workspace {
                        assert!(workspace_bytes(batch).is_some(), "a workspace for batches of {batch} takes more than usize::MAX bytes");
                        Workspace {
                            batch,
                            training: true,
                            layout: Layout::Training,
                            arena: vec![0.0; #arena],
                            #init
                            col: vec![0.0; #col],
                            scratch: #scratch,
                            #fold
                            dropout: None,
                            peers: None,
                        }
                    }

                    /// Buffers for inference alone (`forward`) on batches of `batch` images:
                    /// inference's own arena, without gradients or what backward reads.
                    /// `forward_train` and `backward` refuse it.
                    pub fn for_inference(batch: usize) -> Workspace {
                        assert!(inference_workspace_bytes(batch).is_some(), "a workspace for batches of {batch} takes more than usize::MAX bytes");
                        Workspace {
                            batch,
                            training: false,
                            layout: Layout::Inference,
                            arena: vec![0.0; #infer_arena],
                            #init_infer
                            col: vec![0.0; #infer_col],
                            scratch: #infer_scratch,
                            #infer_fold
                            dropout: None,
                            peers: None,
                        }
                    }

                    /// Bytes held by every buffer (each element is 4 bytes).
                    pub fn bytes(&self) -> usize {
                        #own
                        4 * (self.arena.len() + self.col.len() + self.scratch.len() #fold_len #own_terms)
                    }
                }

                /// Bytes `Workspace::new(batch)` allocates (what its `bytes()` reports), or `None`
                /// when they overflow a `usize`.
                pub fn workspace_bytes(batch: usize) -> Option<usize> {
                    batch.checked_mul(#per_sample)?.checked_add(#fixed)?.checked_mul(4)
                }

                /// Bytes `Workspace::for_inference(batch)` allocates, or `None` when they
                /// overflow a `usize`.
                pub fn inference_workspace_bytes(batch: usize) -> Option<usize> {
                    batch.checked_mul(#infer_per_sample)?.checked_add(#infer_fixed)?.checked_mul(4)
                }
            }
        },
    ))
}

/// The field of buffer `b` allocated for a batch of `batch`.
fn alloc(b: &Buffer) -> TokenStream {
    let name = format_ident!("{}", b.name);
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
    quote! { #name: vec![#zero; #len], }
}
