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
                    let block = crate::repeat::RepeatCall::split(c, self.defs)
                        .block_name()
                        .map_or_else(String::new, |b| b.name.clone());
                    self.repeats.push(RepeatFrame {
                        at: e.at,
                        block,
                        n: e.n,
                        k: 0,
                        before: self.stages,
                        before_k: self.stages,
                        sites: self.sites.len(),
                    });
                    for k in 0..e.n {
                        if let Some(f) = self.repeats.last_mut() {
                            (f.k, f.before_k) = (k, self.stages);
                        }
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
                    self.repeats.pop();
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
        if self.stages == MAX_STAGES + 1 && !self.repeat_past_limit() {
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

impl Lowerer<'_> {
    /// At the stage limit, reports the `repeat` whose repetitions pushed past it, if one did:
    /// the outermost one that has made a whole repetition, whose count times that
    /// repetition's layer calls does not fit (an inner one only repeats within one of its
    /// repetitions). `false` when no repeat has made a whole repetition.
    fn repeat_past_limit(&mut self) -> bool {
        let Some(f) = self.repeats.iter().find(|f| f.k > 0) else {
            return false;
        };
        let made = f.before_k - f.before;
        let each = made.div_ceil(f.k);
        let total = (f.n as u128) * (each as u128);
        let calls = if made % f.k == 0 {
            format!(
                "each repetition of `{}` makes {each} layer calls (its call and {} in its body): {} × {each} = {total}",
                f.block,
                each - 1,
                f.n
            )
        } else {
            format!(
                "its first {} repetitions made {made} layer calls, about {each} each: about {total} for {}",
                f.k, f.n
            )
        };
        let left = match f.before {
            0 => String::new(),
            b => format!(" after the {b} made before it"),
        };
        let d = Diagnostic::error(
            "too-large",
            format!(
                "`repeat({}, {}, ..)` expands past the limit of {MAX_STAGES} layer calls",
                f.n, f.block
            ),
        )
        .label(f.at, format!("{} repetitions of {each} layer calls", f.n))
        .help(format!(
            "{calls}, and {} fit{left}; repeat fewer times, or make the block smaller",
            MAX_STAGES - f.before,
        ));
        let depth = f.sites;
        self.error_within(d, depth);
        true
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
