//! A scope of bindings, the form of any module that is not an `nn.Sequential` (and of the
//! network itself): its items in chains, each chain bound to a name (the module's name for a
//! sequential child, the graph output's, or a fresh one), layers with weights named by `as`.

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
        // Names for `as` and for sequential children.
        let mut as_names: Vec<Option<String>> = Vec::new();
        let mut seqs: Vec<Option<Vec<usize>>> = Vec::new();
        for it in &items {
            let weighty = it.container || !self.layer(it.layers[0]).params.is_empty();
            let seq = match &it.seg {
                Some(s) if it.container && is_ident(s) && it.args.len() == 1 => {
                    let inner = self.items(&[mpath, std::slice::from_ref(s)].concat(), &it.layers);
                    self.sequential(&inner, it.args[0]).map(|_| ())
                }
                _ => None,
            };
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
            seqs.push(seq.map(|_| Vec::new()));
            as_names.push(name);
        }
        // Chains: an item continues the chain before it when it alone reads that chain's
        // value, through its only tensor argument.
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for (k, it) in items.iter().enumerate() {
            let extend = chains.last().is_some_and(|c| {
                let tail = &items[*c.last().expect("chains are not empty")];
                let set: HashSet<usize> = it.layers.iter().copied().collect();
                seqs[k].is_none()
                    && seqs[*c.last().expect("not empty")].is_none()
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
        // Chain names.
        let mut chain_names: Vec<Option<String>> = Vec::new();
        for c in &chains {
            let tail = items[*c.last().expect("not empty")].output;
            let name = if let Some(s) = seqs[c[0]].as_ref().and(as_names[c[0]].clone()) {
                Some(s)
            } else if let Some((_, o)) = outs.iter().find(|(v, _)| *v == tail) {
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
        for (c, name) in chains.iter().zip(&chain_names) {
            let first = &items[c[0]];
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
            if let Some(_seq) = &seqs[c[0]] {
                let sub = [mpath, &[first.seg.clone().expect("a segment")]].concat();
                let inner = self.items(&sub, &first.layers);
                let idx = self
                    .sequential(&inner, first.args[0])
                    .expect("checked sequential");
                let input = arg_name(names, first.args[0]);
                toks.extend(self.seq_chain(&inner, &idx, &sub, &bound, &input));
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
}
