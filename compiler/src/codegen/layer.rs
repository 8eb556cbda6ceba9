//! The forward and backward statements of each op: kernel calls with constant geometry over
//! the workspace's buffers; a gradient reaches its input's buffer through the scratch buffer
//! and an accumulate, so fan-out sums come for free.

use super::*;

/// The forward and backward statements of one layer.
pub(super) fn layer(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> (TokenStream, TokenStream) {
    let node = g.node(n);
    let ins = g.inputs_of(n);
    let x = ins
        .first()
        .map(|&i| g.node(i).shape.clone())
        .unwrap_or_default();
    let i = n.index();
    let (t, d) = (format_ident!("t{i}"), format_ident!("d{i}"));
    let (tx, dx) = ins
        .first()
        .map(|j| {
            (
                format_ident!("t{}", j.index()),
                format_ident!("d{}", j.index()),
            )
        })
        .unwrap_or_else(|| (t.clone(), d.clone()));
    // Whether the first input takes a gradient (a network input does not).
    let wants = |j: petgraph::stable_graph::NodeIndex| !matches!(g.node(j).op, Op::Input(_));
    let accumulate_dx = |body: TokenStream| -> TokenStream {
        if ins.first().is_some_and(|&j| wants(j)) {
            quote! {
                let len = ws.#tx.len();
                #body
                rt::tensor::accumulate(&ws.scratch[..len], &mut ws.#dx);
            }
        } else {
            quote! {}
        }
    };
    let pw = |suffix: &str| field(&format!("{}.{suffix}", node.path));
    // An activation run in place: `t{i}` and `d{i}` name its input's buffers (see
    // `arena_views`), and the gradient is masked where it is.
    if g.aliases.contains_key(&n) {
        let (fwd, bwd) = match node.op {
            Op::Relu => (quote! { relu_inplace }, quote! { relu_backward_inplace }),
            Op::Sigmoid => (
                quote! { sigmoid_inplace },
                quote! { sigmoid_backward_inplace },
            ),
            Op::Tanh => (quote! { tanh_inplace }, quote! { tanh_backward_inplace }),
            _ => unreachable!("the verifier checks in-place activations"),
        };
        return (
            quote! { rt::act::#fwd(&mut ws.#t); },
            quote! { rt::act::#bwd(&ws.#t, &mut ws.#d); },
        );
    }
    match &node.op {
        Op::Input(_) => (quote! {}, quote! {}),
        Op::Conv(c) => {
            let (kh, kw, sh, sw, ph, pwd, dh, dw) = (
                c.k[0], c.k[1], c.s[0], c.s[1], c.p[0], c.p[1], c.dil[0], c.dil[1],
            );
            let (cin, h, w, out, groups) = (x[0], x[1], x[2], c.out, c.groups);
            let geo = quote! {
                let geo = rt::conv::Conv2d { c: #cin, h: #h, w: #w, out: #out, kh: #kh, kw: #kw, sh: #sh, sw: #sw,
                                             ph: #ph, pw: #pwd, dh: #dh, dw: #dw, groups: #groups };
            };
            let (wt, bias) = (pw("weight"), pw("bias"));
            let (b_fwd, db) = bias_args(c.bias, &bias);
            let relu = c.relu;
            if let Some(group) = g.group_of(n) {
                // The first member computes the group; the others have nothing to do.
                if group[0] != n {
                    return (quote! {}, quote! {});
                }
                let wants_dx = ins.first().is_some_and(|&j| wants(j));
                return merged(g, group, (&tx, &dx), wants_dx);
            }
            if let Some((t, d, slot)) = in_place(g, n) {
                let fwd = quote! {
                    #geo rt::conv::conv2d_forward_slot(&geo, n, &ws.#tx, &p.#wt, #b_fwd, #relu, &mut ws.#t, #slot, &mut ws.col);
                };
                let data = accumulate_dx(quote! {
                    rt::conv::conv2d_backward_data_slot(&geo, n, &p.#wt, &ws.#d, #slot, &mut ws.scratch[..len], &mut ws.col);
                });
                let bwd = quote! {
                    #geo
                    rt::conv::conv2d_backward_weight_slot(&geo, n, &ws.#tx, &ws.#d, #slot, &mut g.#wt, #db, &mut ws.col);
                    #data
                };
                return (fwd, bwd);
            }
            let fwd = quote! { #geo rt::conv::conv2d_forward(&geo, n, &ws.#tx, &p.#wt, #b_fwd, #relu, &mut ws.#t, &mut ws.col); };
            let data = accumulate_dx(quote! {
                rt::conv::conv2d_backward_data(&geo, n, &p.#wt, &ws.#d, &mut ws.scratch[..len], &mut ws.col);
            });
            let bwd = quote! {
                #geo
                rt::conv::conv2d_backward_weight(&geo, n, &ws.#tx, &ws.#d, &mut g.#wt, #db, &mut ws.col);
                #data
            };
            (fwd, bwd)
        }
        Op::ConvT(c) => {
            let (kh, kw, sh, sw, ph, pwd, oph, opw, dh, dw) = (
                c.k[0], c.k[1], c.s[0], c.s[1], c.p[0], c.p[1], c.op[0], c.op[1], c.dil[0],
                c.dil[1],
            );
            let (cin, h, w, out, groups) = (x[0], x[1], x[2], c.out, c.groups);
            let geo = quote! {
                let geo = rt::conv_t::ConvT2d { c: #cin, h: #h, w: #w, out: #out, kh: #kh, kw: #kw, sh: #sh, sw: #sw,
                    ph: #ph, pw: #pwd, oph: #oph, opw: #opw, dh: #dh, dw: #dw, groups: #groups };
            };
            let (wt, bias) = (pw("weight"), pw("bias"));
            let (b_fwd, db) = bias_args(c.bias, &bias);
            let fwd = quote! { #geo rt::conv_t::conv_t2d_forward(&geo, n, &ws.#tx, &p.#wt, #b_fwd, &mut ws.#t, &mut ws.col); };
            let data = accumulate_dx(quote! {
                rt::conv_t::conv_t2d_backward_data(&geo, n, &p.#wt, &ws.#d, &mut ws.scratch[..len], &mut ws.col);
            });
            let bwd = quote! {
                #geo
                rt::conv_t::conv_t2d_backward_weight(&geo, n, &ws.#tx, &ws.#d, &mut g.#wt, #db, &mut ws.col);
                #data
            };
            (fwd, bwd)
        }
        Op::MaxPool(pl) | Op::AvgPool(pl) => {
            let (c, h, w) = (x[0], x[1], x[2]);
            let (k, s, p, ceil) = (pair(pl.k), pair(pl.s), pair(pl.p), pl.ceil);
            let geo = quote! {
                let [kh, kw] = [#k]; let [sh, sw] = [#s]; let [ph, pw] = [#p];
                let geo = rt::pool::Pool2d { c: #c, h: #h, w: #w, kh, kw, sh, sw, ph, pw, ceil: #ceil };
            };
            if matches!(node.op, Op::MaxPool(_)) {
                let a = format_ident!("a{i}");
                (
                    // Inference needs no argmaxes.
                    quote! {
                        #geo
                        if train {
                            rt::pool::maxpool2d_forward(&geo, n, &ws.#tx, &mut ws.#t, &mut ws.#a);
                        } else {
                            rt::pool::maxpool2d_forward_values(&geo, n, &ws.#tx, &mut ws.#t);
                        }
                    },
                    accumulate_dx(
                        quote! { #geo rt::pool::maxpool2d_backward(&geo, n, &ws.#d, &ws.#a, &mut ws.scratch[..len]); },
                    ),
                )
            } else {
                (
                    quote! { #geo rt::pool::avgpool2d_forward(&geo, n, &ws.#tx, &mut ws.#t); },
                    accumulate_dx(
                        quote! { #geo rt::pool::avgpool2d_backward(&geo, n, &ws.#d, &mut ws.scratch[..len]); },
                    ),
                )
            }
        }
        Op::GlobalAvgPool => {
            let plane = x[1] * x[2];
            (
                quote! { rt::pool::global_avgpool_forward(#plane, &ws.#tx, &mut ws.#t); },
                accumulate_dx(
                    quote! { rt::pool::global_avgpool_backward(#plane, &ws.#d, &mut ws.scratch[..len]); },
                ),
            )
        }
        Op::Relu => (
            quote! { rt::act::relu_forward(&ws.#tx, &mut ws.#t); },
            accumulate_dx(
                quote! { rt::act::relu_backward(&ws.#t, &ws.#d, &mut ws.scratch[..len]); },
            ),
        ),
        Op::Sigmoid => (
            quote! { rt::act::sigmoid_forward(&ws.#tx, &mut ws.#t); },
            accumulate_dx(
                quote! { rt::act::sigmoid_backward(&ws.#t, &ws.#d, &mut ws.scratch[..len]); },
            ),
        ),
        Op::Tanh => (
            quote! { rt::act::tanh_forward(&ws.#tx, &mut ws.#t); },
            accumulate_dx(
                quote! { rt::act::tanh_backward(&ws.#t, &ws.#d, &mut ws.scratch[..len]); },
            ),
        ),
        Op::LeakyRelu { slope } => {
            let s = *slope as f32;
            (
                quote! { rt::act::leaky_relu_forward(#s, &ws.#tx, &mut ws.#t); },
                accumulate_dx(
                    quote! { rt::act::leaky_relu_backward(#s, &ws.#tx, &ws.#d, &mut ws.scratch[..len]); },
                ),
            )
        }
        Op::Softmax => {
            let (c, plane) = (x[0], x[1..].iter().product::<usize>());
            (
                quote! { rt::act::softmax_forward(#c, #plane, &ws.#tx, &mut ws.#t); },
                accumulate_dx(
                    quote! { rt::act::softmax_backward(#c, #plane, &ws.#t, &ws.#d, &mut ws.scratch[..len]); },
                ),
            )
        }
        Op::Dropout { .. } | Op::Flatten => (
            quote! { ws.#t.copy_from_slice(&ws.#tx); },
            if ins.first().is_some_and(|&j| wants(j)) {
                quote! { rt::tensor::accumulate(&ws.#d, &mut ws.#dx); }
            } else {
                quote! {}
            },
        ),
        Op::BatchNorm { eps, momentum } => {
            let (c, plane) = (x[0], x[1..].iter().product::<usize>());
            let (eps, mom) = (*eps as f32, *momentum as f32);
            let (gw, gb) = (pw("weight"), pw("bias"));
            let (rm, rv) = (pw("running_mean"), pw("running_var"));
            let (m, r) = (format_ident!("m{i}"), format_ident!("r{i}"));
            (
                quote! {
                    if train {
                        rt::norm::batchnorm_train_forward(n, #c, #plane, #eps, #mom, &ws.#tx, &p.#gw, &p.#gb,
                            &mut s.#rm, &mut s.#rv, &mut ws.#t, &mut ws.#m, &mut ws.#r);
                    } else {
                        rt::norm::batchnorm_eval_forward(n, #c, #plane, #eps, &ws.#tx, &p.#gw, &p.#gb, &s.#rm, &s.#rv, &mut ws.#t);
                    }
                },
                {
                    let body = quote! {
                        let len = ws.#tx.len();
                        rt::norm::batchnorm_train_backward(n, #c, #plane, &ws.#tx, &p.#gw, &ws.#m, &ws.#r, &ws.#d,
                            &mut ws.scratch[..len], &mut g.#gw, &mut g.#gb);
                    };
                    if ins.first().is_some_and(|&j| wants(j)) {
                        quote! { #body rt::tensor::accumulate(&ws.scratch[..len], &mut ws.#dx); }
                    } else {
                        body
                    }
                },
            )
        }
        Op::Lrn {
            size,
            alpha,
            beta,
            k,
        } => {
            let (c, plane) = (x[0], x[1..].iter().product::<usize>());
            let (a, b, k) = (*alpha as f32, *beta as f32, *k as f32);
            let s = format_ident!("s{i}");
            let cp = c * plane;
            (
                quote! { rt::norm::lrn_forward(n, #c, #plane, #size, #a, #b, #k, &ws.#tx, &mut ws.#t, &mut ws.#s); },
                accumulate_dx(quote! {
                    rt::norm::lrn_backward(n, #c, #plane, #size, #a, #b, &ws.#tx, &ws.#s, &ws.#d,
                        &mut ws.scratch[..len], &mut ws.col[..#cp]);
                }),
            )
        }
        Op::Linear { out, bias, relu } => {
            let fin = x[0];
            let (wt, bs) = (pw("weight"), pw("bias"));
            let (b_fwd, db) = bias_args(*bias, &bs);
            let data = accumulate_dx(quote! {
                rt::linear::linear_backward_data(n, #fin, #out, &p.#wt, &ws.#d, &mut ws.scratch[..len]);
            });
            (
                quote! { rt::linear::linear_forward(n, #fin, #out, &ws.#tx, &p.#wt, #b_fwd, #relu, &mut ws.#t); },
                quote! {
                    rt::linear::linear_backward_weight(n, #fin, #out, &ws.#tx, &ws.#d, &mut g.#wt, #db);
                    #data
                },
            )
        }
        Op::Concat => {
            let (cy, plane) = (node.shape[0], node.shape[1..].iter().product::<usize>());
            let mut fwd = Vec::new();
            let mut bwd = Vec::new();
            let mut c0 = 0usize;
            for &j in &ins {
                let cx = g.node(j).shape[0];
                // A layer that wrote its slice in place leaves nothing to copy.
                if g.slots.contains_key(&j) {
                    c0 += cx;
                    continue;
                }
                let (tj, dj) = (
                    format_ident!("t{}", j.index()),
                    format_ident!("d{}", j.index()),
                );
                fwd.push(quote! { rt::tensor::concat_channels(n, #plane, #cx, #c0, #cy, &ws.#tj, &mut ws.#t); });
                if wants(j) {
                    bwd.push(quote! {
                        let len = ws.#tj.len();
                        rt::tensor::slice_channels(n, #plane, #cx, #c0, #cy, &ws.#d, &mut ws.scratch[..len]);
                        rt::tensor::accumulate(&ws.scratch[..len], &mut ws.#dj);
                    });
                }
                c0 += cx;
            }
            (quote! { #(#fwd)* }, quote! { #(#bwd)* })
        }
        Op::Add => {
            let ts: Vec<Ident> = ins
                .iter()
                .map(|j| format_ident!("t{}", j.index()))
                .collect();
            let bwd: Vec<TokenStream> = ins
                .iter()
                .filter(|&&j| wants(j))
                .map(|j| {
                    let dj = format_ident!("d{}", j.index());
                    quote! { rt::tensor::accumulate(&ws.#d, &mut ws.#dj); }
                })
                .collect();
            (
                quote! { rt::tensor::add_forward(&[#(&ws.#ts[..]),*], &mut ws.#t); },
                quote! { #(#bwd)* },
            )
        }
    }
}

/// The forward and backward of a group of sibling pointwise convs merged into one GEMM
/// (`merge_1x1`), reading `tx` and adding to its gradient `dx` when `wants_dx`.
fn merged(
    g: &Graph,
    group: &[petgraph::stable_graph::NodeIndex],
    (tx, dx): (&Ident, &Ident),
    wants_dx: bool,
) -> (TokenStream, TokenStream) {
    let first = g.node(group[0]);
    let Op::Conv(c) = &first.op else {
        unreachable!("the verifier checks merged groups are convs")
    };
    let x = &g.node(g.inputs_of(group[0])[0]).shape;
    let (cin, h, w) = (x[0], x[1], x[2]);
    let total: usize = group.iter().map(|&j| g.node(j).shape[0]).sum();
    let geo = quote! {
        let geo = rt::conv::Conv2d { c: #cin, h: #h, w: #w, out: #total, kh: 1, kw: 1, sh: 1, sw: 1,
                                     ph: 0, pw: 0, dh: 1, dw: 1, groups: 1 };
    };
    // Each member's output buffers (its own, or its concat's) and slot; buffers shared by
    // two members are passed once.
    let (mut tbufs, mut dbufs, mut dests): (Vec<Ident>, Vec<Ident>, Vec<TokenStream>) =
        Default::default();
    for &j in group {
        let (t, d, slot) = in_place(g, j).unwrap_or_else(|| {
            let len = g.node(j).shape.iter().product::<usize>();
            (
                format_ident!("t{}", j.index()),
                format_ident!("d{}", j.index()),
                quote! { rt::tensor::Slot::dense(#len) },
            )
        });
        let b = tbufs.iter().position(|x| *x == t).unwrap_or_else(|| {
            tbufs.push(t);
            dbufs.push(d);
            tbufs.len() - 1
        });
        dests.push(quote! { (#b, #slot) });
    }
    let field_of = |j: &petgraph::stable_graph::NodeIndex, what: &str| {
        field(&format!("{}.{what}", g.node(*j).path))
    };
    let ws_: Vec<Ident> = group.iter().map(|j| field_of(j, "weight")).collect();
    let bs: Vec<Ident> = group.iter().map(|j| field_of(j, "bias")).collect();
    let (b_fwd, db) = if c.bias {
        (
            quote! { Some(&[#(&p.#bs[..]),*]) },
            quote! { Some(&mut [#(&mut g.#bs[..]),*]) },
        )
    } else {
        (quote! { None }, quote! { None })
    };
    let relu = c.relu;
    let backward = |dx_arg: TokenStream| {
        quote! {
            rt::conv::conv1x1_merged_backward(&geo, n, &ws.#tx, &[#(&p.#ws_[..]),*], &[#(&ws.#dbufs[..]),*],
                &[#(#dests),*], &mut [#(&mut g.#ws_[..]),*], #db, #dx_arg, &mut ws.col);
        }
    };
    let data = if wants_dx {
        let call = backward(quote! { Some(&mut ws.scratch[..len]) });
        quote! {
            let len = ws.#tx.len();
            #call
            rt::tensor::accumulate(&ws.scratch[..len], &mut ws.#dx);
        }
    } else {
        backward(quote! { None })
    };
    (
        quote! {
            #geo
            rt::conv::conv1x1_merged_forward(&geo, n, &ws.#tx, &[#(&p.#ws_[..]),*], #b_fwd, #relu,
                &mut [#(&mut ws.#tbufs[..]),*], &[#(#dests),*], &mut ws.col);
        },
        quote! { #geo #data },
    )
}

/// For a layer that the `concat_in_place` pass put in a concat's buffers: those buffers
/// (activation and gradient) and the `rt::tensor::Slot` of the layer's channels.
pub(super) fn in_place(
    g: &Graph,
    n: petgraph::stable_graph::NodeIndex,
) -> Option<(Ident, Ident, TokenStream)> {
    let slot = g.slots.get(&n)?;
    let concat = g.node(slot.concat);
    let (c0, cy, plane) = (
        slot.c0,
        concat.shape[0],
        concat.shape[1..].iter().product::<usize>(),
    );
    let k = slot.concat.index();
    Some((
        format_ident!("t{k}"),
        format_ident!("d{k}"),
        quote! { rt::tensor::Slot::channels(#c0, #cy, #plane) },
    ))
}

/// The bias arguments of a GEMM layer's forward and weight gradient: `Some` of the
/// parameter and of its gradient, or `None` twice for a layer without bias.
fn bias_args(has_bias: bool, bias: &Ident) -> (TokenStream, TokenStream) {
    if has_bias {
        (
            quote! { Some(&p.#bias[..]) },
            quote! { Some(&mut g.#bias[..]) },
        )
    } else {
        (quote! { None }, quote! { None })
    }
}
