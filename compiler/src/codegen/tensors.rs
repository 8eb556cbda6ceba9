//! `Params` and `State`: a struct with a `Vec<f32>` per tensor, by PyTorch name, with its
//! table of shapes, a constructor and access by name. Every list in them is a [`Run`], one
//! child per tensor.

use super::format::{Item, Kind, Run, Sink};
use super::*;

/// The struct `name` (documented `doc`) of `tensors` and its impl, into `out`.
pub(super) fn tensor_struct(
    out: &mut Sink,
    name: &str,
    doc: &str,
    tensors: &[&(String, Vec<usize>)],
) -> Result<(), String> {
    let id = format_ident!("{}", name);
    let fields: Vec<Ident> = tensors.iter().map(|(n, _)| field(n)).collect();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let decls = tensors.iter().zip(&fields).map(|((n, s), f)| {
        let doc = format!(" `{n}` {}", shape_str(s));
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
    // Running variances start at 1, everything else at 0 (PyTorch's initial state).
    let inits = tensors.iter().zip(&fields).map(|((n, s), f)| {
        let fill: f32 = if n.ends_with(".running_var") {
            1.0
        } else {
            0.0
        };
        let len: usize = s.iter().product();
        quote! { #f: vec![#fill; #len], }
    });
    let shapes = tensors.iter().map(|(n, s)| {
        let shape = usizes(s);
        quote! { (#n, #shape), }
    });
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

                /// Zeros, and ones for running variances.
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
    }))
}
