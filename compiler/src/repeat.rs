//! The parts of a `repeat(n, BLOCK, args.., index=NAME)` stage (docs/language.md
//! "Repetition"), split once so that resolution and lowering read a call the same way:
//! `n` and `BLOCK` are its first two positional arguments, `index=NAME` is repetition's own,
//! as are `prefix="NAME"` and `start=K` unless the block has a parameter of that name (they
//! were the block's before they were repetition's), and every other argument goes to each
//! call of the block.

use netc_dsl::ast::{Arg, Call, Ident};

use crate::load::Defs;

/// A `repeat` call taken apart.
pub(crate) struct RepeatCall<'a> {
    /// How many times: the first positional argument.
    pub n: Option<&'a Arg>,
    /// The block: the second positional argument.
    pub block: Option<&'a Arg>,
    /// `index=NAME`: the block parameter that receives the repetition's index.
    pub index: Option<&'a Arg>,
    /// `prefix="NAME"`: the repetitions are named `NAME0`, `NAME1`, .. in the scope.
    pub prefix: Option<&'a Arg>,
    /// `start=K`: the number of the first name given by `prefix`.
    pub start: Option<&'a Arg>,
    /// The arguments of each call of the block, in the order written.
    pub rest: Vec<&'a Arg>,
    /// Repetition's own arguments given again (`index=i, index=i`): each later one with the
    /// first. They go nowhere; resolution reports them.
    pub again: Vec<(&'a Arg, &'a Arg)>,
}

/// The name of the argument that passes the index.
pub(crate) const INDEX: &str = "index";
/// The name of the argument that names the repetitions.
pub(crate) const PREFIX: &str = "prefix";
/// The name of the argument that numbers the first repetition.
pub(crate) const START: &str = "start";

impl<'a> RepeatCall<'a> {
    pub fn split(call: &'a Call, defs: &Defs<'_>) -> RepeatCall<'a> {
        RepeatCall::split_args(&call.args.iter().collect::<Vec<_>>(), defs)
    }

    /// [`RepeatCall::split`] of a call's arguments (without one that should have been piped
    /// in, for a `repeat` at a chain's head).
    pub fn split_args(args: &[&'a Arg], defs: &Defs<'_>) -> RepeatCall<'a> {
        let block = args
            .iter()
            .filter(|a| a.name.is_none())
            .nth(1)
            .and_then(|a| a.value.as_name())
            .and_then(|id| defs.blocks.get(id.name.as_str()));
        // A parameter of the block takes its argument, as it did before repetition had one.
        let own = |name: &str| !block.is_some_and(|b| b.params.iter().any(|p| p.name.name == name));
        let mut r = RepeatCall {
            n: None,
            block: None,
            index: None,
            prefix: None,
            start: None,
            rest: Vec::new(),
            again: Vec::new(),
        };
        let mut again = Vec::new();
        for &a in args {
            let slot = match &a.name {
                Some(id) if id.name == INDEX => Some(&mut r.index),
                Some(id) if id.name == PREFIX && own(PREFIX) => Some(&mut r.prefix),
                Some(id) if id.name == START && own(START) => Some(&mut r.start),
                _ => None,
            };
            if let Some(slot) = slot {
                match *slot {
                    Some(first) => again.push((a, first)),
                    None => *slot = Some(a),
                }
                continue;
            }
            match &a.name {
                None if r.n.is_none() => r.n = Some(a),
                None if r.block.is_none() => r.block = Some(a),
                _ => r.rest.push(a),
            }
        }
        r.again = again;
        r
    }

    /// The block's name, when the block argument is a bare name.
    pub fn block_name(&self) -> Option<&'a Ident> {
        self.block.and_then(|a| a.value.as_name())
    }

    /// The parameter named by `index=`, when it is a bare name.
    pub fn index_name(&self) -> Option<&'a Ident> {
        self.index.and_then(|a| a.value.as_name())
    }
}

/// Whether `prefix` followed by digits is a name: a letter or `_`, then letters, digits and
/// `_`.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
