//! Chains: `a -> f(args) -> g` applied stage by stage, each stage named by its position in
//! the chain (docs/language.md "Names"). A `repeat(n, ..)` stage takes the next `n`
//! positions, so the paths are those of the same chain with the `n` calls written out (or,
//! with `prefix=`, the calls are named as `as` would name them).

use super::repeat::Expansion;
use super::*;

/// What one stage of a chain stands for once `repeat` counts are known.
enum Width<'p> {
    /// An op or block call: one position.
    One,
    /// `repeat(n, ..)`: `n` positions (`None` after an error in it: one poisoned position).
    Repeat(&'p ast::Call, Option<Expansion<'p>>),
}

impl Width<'_> {
    fn positions(&self) -> usize {
        match self {
            Width::One | Width::Repeat(_, None) => 1,
            Width::Repeat(_, Some(e)) => e.n,
        }
    }
}

impl<'p> Lowerer<'p> {
    /// Evaluates a chain bound to the path `base` in scope `s`.
    pub(super) fn chain(&mut self, s: usize, chain: &'p Chain, base: &str) -> Value {
        let head_is_call = matches!(chain.head.target, Target::Call(_));
        let widths: Vec<Width<'p>> = chain
            .stages
            .iter()
            .map(|st| match self.repeat_of(st) {
                Some(c) => {
                    let e = self.repeat_expansion(s, c);
                    if let Some(e) = &e {
                        self.repeat_counts.insert(st.span, e.n);
                    }
                    Width::Repeat(c, e)
                }
                None => Width::One,
            })
            .collect();
        let count = widths.iter().map(Width::positions).sum::<usize>() + usize::from(head_is_call);
        let path_of = |l: &Self, i: usize, st: &'p ast::Stage| match &st.alias {
            Some(a) => join(&l.scopes[s].prefix, &a.name),
            None if count == 1 => base.to_string(),
            None => format!("{base}.{i}"),
        };
        let mut cur = match &chain.head.target {
            Target::Name(id) => self.lookup(s, &id.name),
            Target::Call(_) => {
                let path = path_of(self, 0, &chain.head);
                self.stage(s, &chain.head, None, path)
            }
        };
        let mut cur_span = chain.head.span;
        let mut pos = usize::from(head_is_call);
        for (st, width) in chain.stages.iter().zip(&widths) {
            match width {
                Width::One => {
                    let path = path_of(self, pos, st);
                    cur = self.stage(s, st, Some((cur, cur_span)), path);
                }
                Width::Repeat(_, None) => cur = Value::Poison,
                Width::Repeat(c, Some(e)) => {
                    for k in 0..e.n {
                        // `as` on a repeat is an error (resolution): `prefix=` or positions
                        // name them.
                        let path = match e.names {
                            Some((prefix, start)) => join(
                                &self.scopes[s].prefix,
                                &format!("{prefix}{}", i128::from(start) + k as i128),
                            ),
                            None if count == 1 => base.to_string(),
                            None => format!("{base}.{}", pos + k),
                        };
                        cur = self.repeat_stage(s, st, c, (k, e.n), (cur, cur_span), path);
                        if self.stages > MAX_STAGES {
                            break; // reported once, where the limit was reached
                        }
                    }
                }
            }
            pos += width.positions();
            cur_span = cur_span.to(st.span);
        }
        cur
    }

    /// Counts one more stage against [`MAX_STAGES`]; `false` (after reporting it, once) past
    /// the limit.
    pub(super) fn count_stage(&mut self, span: Span) -> bool {
        self.stages += 1;
        if self.stages == MAX_STAGES + 1 {
            self.error(
                Diagnostic::error(
                    "too-large",
                    format!("the network expands to more than {MAX_STAGES} layer calls"),
                )
                .label(span, "the limit was reached here")
                .help("blocks that call other blocks several times multiply: check the nesting"),
            );
        }
        self.stages <= MAX_STAGES
    }
}

/// The op or block name of each stage of a chain (the head only when it is a call), a
/// `repeat` written out as its block's name `n` times.
pub(super) fn stage_names(
    defs: &Defs,
    chain: &Chain,
    repeats: &HashMap<Span, usize>,
) -> Vec<String> {
    let head = match &chain.head.target {
        Target::Call(c) => Some(c.callee.name.clone()),
        Target::Name(_) => None,
    };
    let mut names: Vec<String> = head.into_iter().collect();
    for st in &chain.stages {
        match (&st.target, repeats.get(&st.span)) {
            (Target::Call(c), Some(&n)) if defs.is_repeat(&c.callee.name) => {
                let block = crate::repeat::RepeatCall::split(c, defs)
                    .block_name()
                    .map_or_else(|| c.callee.name.clone(), |b| b.name.clone());
                names.extend(std::iter::repeat_n(block, n));
            }
            _ => names.push(st.target.ident().name.clone()),
        }
    }
    names
}
