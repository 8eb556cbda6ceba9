//! A scope of bindings, the form of any module that is not an `nn.Sequential` (and of the
//! network itself): its items in chains, each chain bound to a name (the module's name for a
//! sequential child, the graph output's, or a fresh one), layers with weights named by `as`;
//! and the chains with positions (a sequential module's children, with the layers beside it
//! that fill its gaps).

use std::collections::HashSet;

use super::blocks::{Stmt, Tok};
use super::emit::{join, Em, Item, Names};
use super::names::{is_ident, sanitize, write_ident};

impl Em<'_> {
    /// A scope of bindings: `items` (made from `layers` when `None`) in chains, the values
    /// of `outs` bound to their names (an empty name: the block's `return`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn named(
        &mut self,
        mpath: &[String],
        prefix: &str,
        layers: &[usize],
        params: Vec<(usize, String)>,
        outs: &[(usize, String)],
        items: Option<Vec<Item>>,
        names: &mut Names,
    ) -> Vec<(Stmt, Option<usize>)> {
        let items = items.unwrap_or_else(|| self.items(mpath, layers));
        let here: HashSet<usize> = layers.iter().copied().collect();
        names.values.extend(params.iter().cloned());
        for (_, n) in &params {
            names.taken.insert(n.clone());
        }
        // Sequential children (chains of their own, named by the module) and their positions.
        let seqs: Vec<Option<Vec<usize>>> = items
            .iter()
            .map(|it| match &it.seg {
                Some(s) if it.container && is_ident(s) => {
                    let inner = self.items(&[mpath, std::slice::from_ref(s)].concat(), &it.layers);
                    self.sequential(&inner, it.args[0])
                }
                _ => None,
            })
            .collect();
        // Names for `as` and for sequential children.
        let mut as_names: Vec<Option<String>> = Vec::new();
        for it in &items {
            let weighty = it.container || !self.layer(it.layers[0]).params.is_empty();
            let name = match (&it.seg, weighty) {
                (Some(s), true) if is_ident(s) && !names.taken.contains(s) => {
                    names.taken.insert(s.clone());
                    Some(s.clone())
                }
                (Some(_), true) | (None, true) => {
                    let l = self.layer(it.layers[0]);
                    let rest = l
                        .path
                        .get(mpath.len()..)
                        .filter(|r| !r.is_empty())
                        .map(|r| r.join("_"))
                        .unwrap_or_else(|| l.op.to_string());
                    Some(names.fresh(&sanitize(&rest)))
                }
                _ => None,
            };
            as_names.push(name);
        }
        // A block instance with a name is a binding of its own, so that its path is the
        // binding's: `i3a = stem -> inception(..)`, not a stage `as i3a` of a longer chain.
        let instance = |k: usize| {
            items[k].container && seqs[k].is_none() && as_names[k].as_ref() == items[k].seg.as_ref()
        };
        // Chains: an item continues the chain before it when it alone reads that chain's
        // value, through its only tensor argument.
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for (k, it) in items.iter().enumerate() {
            let extend = chains.last().is_some_and(|c| {
                let t = *c.last().expect("chains are not empty");
                let tail = &items[t];
                let set: HashSet<usize> = it.layers.iter().copied().collect();
                seqs[k].is_none()
                    && seqs[t].is_none()
                    && !instance(k)
                    && !instance(t)
                    && it.args == [tail.output]
                    && !self.outputs.contains(&tail.output)
                    && !outs.iter().any(|(v, _)| *v == tail.output)
                    && self.readers[tail.output].iter().all(|r| set.contains(r))
            });
            match (extend, chains.last_mut()) {
                (true, Some(c)) => c.push(k),
                _ => chains.push(vec![k]),
            }
        }
        let positions = self.absorb(&items, &seqs, &as_names, &mut chains, outs);
        // Chain names.
        let mut chain_names: Vec<Option<String>> = Vec::new();
        for c in &chains {
            let tail = items[*c.last().expect("not empty")].output;
            let out = outs
                .iter()
                .find(|(v, _)| *v == tail)
                .map(|(_, o)| o.as_str());
            let seq = c.iter().find(|&&k| seqs[k].is_some());
            // A lone item with weights takes its own name as the binding's (its path then),
            // unless the binding must have an output's other name.
            let own = match c[..] {
                [k] if seq.is_none() => as_names[k]
                    .clone()
                    .filter(|a| Some(a) == items[k].seg.as_ref())
                    .filter(|a| out.is_none_or(|o| o == a)),
                _ => None,
            };
            let name = if let Some(&k) = seq {
                as_names[k].clone()
            } else if let Some(a) = own {
                as_names[c[0]] = None;
                Some(a)
            } else if let Some(o) = out {
                if o.is_empty() && !self.readers[tail].iter().any(|r| here.contains(r)) {
                    None
                } else if o.is_empty() {
                    Some(names.fresh("y"))
                } else {
                    Some(names.fresh(o))
                }
            } else if prefix.is_empty() && chain_names.is_empty() {
                Some(names.fresh("stem"))
            } else if prefix.is_empty() {
                Some(names.fresh("h"))
            } else {
                Some(names.fresh("y"))
            };
            if let Some(n) = &name {
                names.values.push((tail, n.clone()));
            }
            chain_names.push(name);
        }
        let mut stmts = Vec::new();
        let mut returned = None;
        for (ci, (c, name)) in chains.iter().zip(&chain_names).enumerate() {
            let bound = name
                .as_deref()
                .map(|n| join(prefix, n))
                .unwrap_or_else(|| prefix.to_string());
            let mut toks = vec![Tok::Text(match name {
                Some(n) => format!("{} = ", write_ident(n)),
                None => "return ".into(),
            })];
            let arg_name =
                |names: &Names, v: usize| names.value(v).unwrap_or_else(|| format!("v{v}"));
            if let Some(pos) = &positions[ci] {
                let mut stages = Vec::new();
                for (&k, &p) in c.iter().zip(pos) {
                    if seqs[k].is_some() {
                        let it = &items[k];
                        let sub = [mpath, &[it.seg.clone().expect("a segment")]].concat();
                        let inner = self.items(&sub, &it.layers);
                        let idx = seqs[k].clone().expect("checked sequential");
                        stages.extend(inner.into_iter().zip(idx).map(|(item, pos)| Stage {
                            item,
                            pos,
                            mpath: sub.clone(),
                            as_name: None,
                        }));
                    } else {
                        stages.push(Stage {
                            item: items[k].clone(),
                            pos: p,
                            mpath: mpath.to_vec(),
                            as_name: as_names[k].clone(),
                        });
                    }
                }
                let head: Vec<String> = stages[0]
                    .item
                    .args
                    .iter()
                    .map(|&v| arg_name(names, v))
                    .collect();
                toks.extend(self.seq_chain(&stages, prefix, &bound, &head));
            } else {
                for (pos, &k) in c.iter().enumerate() {
                    let it = &items[k];
                    let path = match (&as_names[k], c.len()) {
                        (Some(a), _) => join(prefix, a),
                        (None, 1) => bound.clone(),
                        (None, _) => join(&bound, &pos.to_string()),
                    };
                    let single = it.args.len() == 1 && !(it.container && it.args.len() > 1);
                    let s = if pos == 0 && single {
                        toks.push(Tok::Text(format!("{} -> ", arg_name(names, it.args[0]))));
                        self.stage(it, mpath, &path, vec![])
                    } else if pos == 0 {
                        let all: Vec<String> =
                            it.args.iter().map(|&v| arg_name(names, v)).collect();
                        self.stage(it, mpath, &path, all)
                    } else {
                        toks.push(Tok::Text(" -> ".into()));
                        let rest: Vec<String> =
                            it.args[1..].iter().map(|&v| arg_name(names, v)).collect();
                        self.stage(it, mpath, &path, rest)
                    };
                    toks.extend(s);
                    if let Some(a) = &as_names[k] {
                        toks.push(Tok::Text(format!(" as {}", write_ident(a))));
                    }
                }
            }
            toks.push(Tok::Text(";".into()));
            let tail = items[*c.last().expect("not empty")].output;
            if name.is_none() {
                returned = Some(toks);
            } else {
                stmts.push((toks, Some(tail)));
            }
        }
        if let Some(r) = returned {
            stmts.push((r, None));
        } else if let Some((v, o)) = outs.first().filter(|(_, o)| o.is_empty()) {
            let _ = o;
            stmts.push((
                vec![Tok::Text(format!(
                    "return {};",
                    names.value(*v).unwrap_or_default()
                ))],
                None,
            ));
        }
        stmts
    }

    /// Layers with weights beside a sequential module (PyTorch's paths: a module of its
    /// own) join its chain at the positions they fill, with `as`: `stem = x -> conv(..) as
    /// conv1 -> relu` is `conv1` and `stem.1`, and `logits = x -> flatten -> linear(10) as
    /// fc` is `logits.0` and `fc`. Returns each chain's positions (for the chains of a
    /// sequential module), and drops the chains this empties.
    fn absorb(
        &self,
        items: &[Item],
        seqs: &[Option<Vec<usize>>],
        as_names: &[Option<String>],
        chains: &mut Vec<Vec<usize>>,
        outs: &[(usize, String)],
    ) -> Vec<Option<Vec<usize>>> {
        let free =
            |k: usize| !items[k].container && as_names[k].is_some() && items[k].args.len() == 1;
        // Whether value `v` goes to item `k` and nowhere else.
        let only_into = |v: usize, k: usize| {
            let set: HashSet<usize> = items[k].layers.iter().copied().collect();
            !self.outputs.contains(&v)
                && !outs.iter().any(|(o, _)| *o == v)
                && self.readers[v].iter().all(|r| set.contains(r))
        };
        let mut positions = vec![None; chains.len()];
        for ci in 0..chains.len() {
            let [s] = chains[ci][..] else {
                continue;
            };
            let Some(idx) = &seqs[s] else {
                continue;
            };
            let (Some(&first), Some(&last)) = (idx.first(), idx.last()) else {
                continue;
            };
            let mut before = Vec::new();
            // A head that reads more than one tensor starts its chain.
            let (mut input, mut reader, mut p) = (items[s].args[0], s, first);
            while p > 0 && items[reader].args.len() == 1 {
                let Some(cj) = chains
                    .iter()
                    .position(|c| c.last().is_some_and(|&t| items[t].output == input))
                else {
                    break;
                };
                let t = *chains[cj].last().expect("not empty");
                if cj == ci || !free(t) || !only_into(input, reader) {
                    break;
                }
                chains[cj].pop();
                p -= 1;
                before.push((t, p));
                (input, reader) = (items[t].args[0], t);
            }
            let mut after = Vec::new();
            let (mut tail, mut p) = (items[s].output, last);
            while let Some(cj) = chains
                .iter()
                .position(|c| c.first().is_some_and(|&u| items[u].args == [tail]))
            {
                let u = chains[cj][0];
                // An output named as the layer is that layer's binding (`head = x -> conv(..)`).
                let own_output = outs
                    .iter()
                    .any(|(v, o)| *v == items[u].output && Some(o) == as_names[u].as_ref());
                if cj == ci || !free(u) || !only_into(tail, u) || own_output {
                    break;
                }
                chains[cj].remove(0);
                p += 1;
                after.push((u, p));
                tail = items[u].output;
            }
            before.reverse();
            let all: Vec<(usize, usize)> = before
                .into_iter()
                .chain(std::iter::once((s, first)))
                .chain(after)
                .collect();
            chains[ci] = all.iter().map(|&(k, _)| k).collect();
            positions[ci] = Some(all.iter().map(|&(_, p)| p).collect());
        }
        let mut kept = Vec::new();
        for (c, p) in std::mem::take(chains).into_iter().zip(positions) {
            if !c.is_empty() {
                chains.push(c);
                kept.push(p);
            }
        }
        kept
    }

    /// A chain whose stages have positions (a sequential module's children, and the layers
    /// beside it that fill its gaps with `as`), read from `head` (one name, piped in, or the
    /// first stage's tensor arguments). A stage is at `bound.POSITION`, or `scope.NAME` with
    /// `as NAME`; a gap before a layer with weights is filled by `dropout(0.0)`, and so is the
    /// position after a lone stage 0 with weights (else the stage would take `bound`).
    pub(super) fn seq_chain(
        &mut self,
        stages: &[Stage],
        scope: &str,
        bound: &str,
        head: &[String],
    ) -> Stmt {
        let weighty =
            |em: &Self, it: &Item| it.layers.iter().any(|&i| !em.layer(i).params.is_empty());
        let mut toks = Vec::new();
        if let [one] = head {
            toks.push(Tok::Text(one.clone()));
        }
        let lone = stages.len() == 1 && stages[0].pos == 0 && stages[0].as_name.is_none();
        let pad_lone = lone && weighty(self, &stages[0].item);
        let mut next = 0;
        let filler = |em: &mut Self, toks: &mut Stmt, gap: usize| {
            em.fillers += 1;
            em.notes.push(format!("`{}` is not in the ONNX model (an identity at inference: a dropout or nn.Identity); written `dropout(0.0)` to keep the positions of the layers beside it", join(bound, &gap.to_string())));
            toks.push(Tok::Text(" -> dropout(0.0)".into()));
        };
        for (k, st) in stages.iter().enumerate() {
            if st.pos > next && stages[k..].iter().any(|o| weighty(self, &o.item)) {
                for gap in next..st.pos {
                    filler(self, &mut toks, gap);
                }
            }
            next = st.pos + 1;
            let path = match &st.as_name {
                Some(a) => join(scope, a),
                None if lone && !pad_lone => bound.to_string(),
                None => join(bound, &st.pos.to_string()),
            };
            let s = if k == 0 && head.len() != 1 {
                self.stage(&st.item, &st.mpath, &path, head.to_vec())
            } else {
                toks.push(Tok::Text(" -> ".into()));
                self.stage(&st.item, &st.mpath, &path, vec![])
            };
            toks.extend(s);
            if let Some(a) = &st.as_name {
                toks.push(Tok::Text(format!(" as {}", write_ident(a))));
            }
        }
        if pad_lone {
            filler(self, &mut toks, 1);
        }
        toks
    }
}

/// A stage of a chain with positions: the item, its position, the module path its item's
/// segment is under, and its `as` name when its path is not the chain's.
#[derive(Clone)]
pub(super) struct Stage {
    pub(super) item: Item,
    pub(super) pos: usize,
    pub(super) mpath: Vec<String>,
    pub(super) as_name: Option<String>,
}
