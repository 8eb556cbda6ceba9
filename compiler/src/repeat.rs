//! The parts of a `repeat(n, BLOCK, args.., index=NAME)` stage (docs/language.md
//! "Repetition"), split once so that resolution and lowering read a call the same way:
//! `n` and `BLOCK` are its first two positional arguments, `index=NAME` is repetition's own,
//! and every other argument goes to each call of the block.

use netc_dsl::ast::{Arg, Call, Ident};

/// A `repeat` call taken apart.
pub(crate) struct RepeatCall<'a> {
    /// How many times: the first positional argument.
    pub n: Option<&'a Arg>,
    /// The block: the second positional argument.
    pub block: Option<&'a Arg>,
    /// `index=NAME`: the block parameter that receives the repetition's index.
    pub index: Option<&'a Arg>,
    /// The arguments of each call of the block, in the order written.
    pub rest: Vec<&'a Arg>,
}

/// The name of the argument that passes the index.
pub(crate) const INDEX: &str = "index";

impl<'a> RepeatCall<'a> {
    pub fn split(call: &'a Call) -> RepeatCall<'a> {
        let mut r = RepeatCall {
            n: None,
            block: None,
            index: None,
            rest: Vec::new(),
        };
        for a in &call.args {
            match &a.name {
                Some(id) if id.name == INDEX && r.index.is_none() => r.index = Some(a),
                None if r.n.is_none() => r.n = Some(a),
                None if r.block.is_none() => r.block = Some(a),
                _ => r.rest.push(a),
            }
        }
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
