//! `Params` and `State`: a struct with a `Vec<f32>` per tensor, by PyTorch name, with its
//! table of shapes, which tensors the initialization scheme draws, a constructor that gives
//! every other tensor its op's constant, and access by name. Every list in them is a [`Run`], one
//! child per tensor.

use super::format::{Item, Kind, Run, Sink};
use super::*;

/// The struct `name` (documented `doc`) of `tensors` and its impl, into `out`.
pub(super) fn tensor_struct(
    out: &mut Sink,
    name: &str,
    doc: &str,
    tensors: &[&(String, ParamDecl)],
) -> Result<(), String> {
    let id = format_ident!("{}", name);
    let fields: Vec<Ident> = tensors.iter().map(|(n, _)| field(n)).collect();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let decls = tensors.iter().zip(&fields).map(|((n, d), f)| {
        let doc = format!(" `{n}` {}", shape_str(&d.shape));
        quote! { #[doc = #doc] pub #f: Vec<f32>, }
    });
    let doc = doc.to_string();
    let ty = id.clone();
    out.push(Item::with_runs(
        vec![Run::new(Kind::Field, decls)],
        move |runs| {
            let decls = &runs[0];
            quote! {
                #[doc = #doc]
                #[derive(Clone, Debug, Default, PartialEq)]
                pub struct #ty { #decls }
            }
        },
    ))?;
    // Each tensor its op's constant (biases 0, a norm's γ 1, a running variance 1, a layer
    // scale its `init`); those the initialization scheme draws start at 0 until it does.
    let inits = tensors.iter().zip(&fields).map(|((_, d), f)| {
        let fill = match d.init {
            Init::Const(v) => v,
            Init::Random => 0.0,
        };
        let len: usize = d.shape.iter().product();
        quote! { #f: vec![#fill; #len], }
    });
    let shapes = tensors.iter().map(|(n, d)| {
        let shape = usizes(&d.shape);
        quote! { (#n, #shape), }
    });
    // An arm per drawn tensor: arms print one per line, so long lists print in chunks.
    let none_drawn = !tensors.iter().any(|(_, d)| d.init == Init::Random);
    let drawn = tensors
        .iter()
        .filter(|(_, d)| d.init == Init::Random)
        .map(|(n, _)| quote! { #n => true, });
    let each = |f: &dyn Fn(&str, &Ident) -> TokenStream| -> Vec<TokenStream> {
        names.iter().zip(&fields).map(|(n, id)| f(n, id)).collect()
    };
    let gets = each(&|n, f| quote! { #n => Some(&self.#f), });
    let gets_mut = each(&|n, f| quote! { #n => Some(&mut self.#f), });
    let alls = each(&|n, f| quote! { (#n, &self.#f), });
    let alls_mut = each(&|n, f| quote! { (#n, &mut self.#f), });
    let (count, empty) = (tensors.len(), tensors.is_empty());
    let runs = vec![
        Run::new(Kind::Elem, shapes),
        Run::new(Kind::Field, inits),
        Run::new(Kind::Arm, gets),
        Run::new(Kind::Arm, gets_mut),
        Run::new(Kind::Elem, alls),
        Run::new(Kind::Elem, alls_mut),
    ];
    out.push(Item::with_runs(runs, move |runs| {
        let [shapes, inits, gets, gets_mut, alls, alls_mut] = runs else {
            unreachable!("six runs")
        };
        let (get, get_mut) = if empty {
            (quote! { let _ = name; None }, quote! { let _ = name; None })
        } else {
            (
                quote! { match name { #gets _ => None } },
                quote! { match name { #gets_mut _ => None } },
            )
        };
        quote! {
            impl #id {
                /// Every tensor's name and shape, in order.
                pub const SHAPES: &'static [(&'static str, &'static [usize])] = &[#shapes];


                /// Every tensor at its op's constant (biases 0, a norm's γ 1, a running
                /// variance 1, a layer scale its `init`), and zeros where [`Self::drawn`].
                pub fn new() -> #id {
                    #id { #inits }
                }

                /// The tensor named `name`.
                pub fn get(&self, name: &str) -> Option<&[f32]> {
                    #get
                }

                /// The tensor named `name`, mutably.
                pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
                    #get_mut
                }

                /// Every tensor with its name, in [`Self::SHAPES`] order.
                pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[f32])> {
                    let all: [(&'static str, &[f32]); #count] = [#alls];
                    all.into_iter()
                }

                /// Every tensor with its name, mutably, in [`Self::SHAPES`] order.
                pub fn iter_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut [f32])> {
                    let all: [(&'static str, &mut [f32]); #count] = [#alls_mut];
                    all.into_iter()
                }
            }
        }
    }))?;
    // Which tensors the scheme draws, an item of its own (one arm per drawn tensor).
    let ty = format_ident!("{}", name);
    out.push(Item::with_runs(
        vec![Run::new(Kind::Arm, drawn)],
        move |runs| {
            let drawn = &runs[0];
            let body = if none_drawn {
                quote! { let _ = name; false }
            } else {
                quote! { match name { #drawn _ => false } }
            };
            quote! {
                impl #ty {
                    /// Whether the initialization scheme (He, Xavier) draws the tensor named
                    /// `name`: the weights of convolutions and linear layers.
                    #[allow(clippy::match_like_matches_macro)]
                    pub fn drawn(name: &str) -> bool {
                        #body
                    }
                }
            }
        },
    ))
}
