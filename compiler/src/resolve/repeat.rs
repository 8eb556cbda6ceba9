//! Resolution of a `repeat(n, BLOCK, args.., index=NAME, prefix=.., start=..)` stage: what
//! can be known before anything is evaluated (that BLOCK is a block, that `index=` names one
//! of its parameters, that `prefix=` begins a name and `start=` has one to number).

use netc_dsl::ast::{self, source_name, ExprKind};
use netc_dsl::diag::did_you_mean;
use netc_dsl::Diagnostic;

use super::Body;
use crate::ops;
use crate::repeat::{valid_prefix, RepeatCall};

impl<'a> Body<'a, '_> {
    /// A `repeat(n, BLOCK, args.., index=NAME)` stage: what can be known without evaluating
    /// (that BLOCK is a block, that NAME is one of its parameters); `n` is checked when the
    /// network is lowered, where its value is known.
    pub(super) fn repeat(&mut self, st: &'a ast::Stage, c: &'a ast::Call, r: RepeatCall<'a>) {
        if let Some(a) = &st.alias {
            self.diags.push(
                Diagnostic::error("misplaced-as", "`as` cannot name a `repeat`: it makes several layers")
                    .label(a.span, "one name for several layers")
                    .help("the repeated stages are named by their positions in the chain (`b.0`, `b.1`, ..), or `prefix=\"name\"` names them `name0`, `name1`, ..; use `as` inside the block"),
            );
        }
        for a in r.n.iter().chain(&r.rest).chain(&r.start) {
            self.expr(&a.value);
        }
        for &(again, first) in &r.again {
            let (Some(name), Some(first)) = (&again.name, &first.name) else {
                continue; // only named arguments are repetition's own
            };
            self.diags.push(
                Diagnostic::error("duplicate", format!("`{name}=` is given twice"))
                    .label(name.span, "given again here")
                    .label(first.span, "first given here")
                    .help(format!(
                        "`{name}=` belongs to `repeat` and takes one value: remove one of them"
                    )),
            );
        }
        self.repeat_names(&r);
        let Some(block_arg) = r.block else {
            self.diags.push(
                Diagnostic::error("repeat", "`repeat` needs a count and a block")
                    .label(c.span, "nothing to repeat")
                    .help("`x -> repeat(3, block, args..)` calls `block(args..)` 3 times in a row"),
            );
            return;
        };
        let Some(id) = r.block_name() else {
            self.diags.push(
                Diagnostic::error(
                    "repeat",
                    "the second argument of `repeat` must be a block's name",
                )
                .label(block_arg.value.span, "not a block's name")
                .help("`repeat(3, block, args..)`: the block's arguments come after its name"),
            );
            return;
        };
        let Some(block) = self.defs.blocks.get(id.name.as_str()).copied() else {
            let mut d = Diagnostic::error(
                "repeat",
                format!("`repeat` repeats a block, and `{id}` is not one"),
            );
            d = if ops::lookup(&id.name).is_some() {
                d.label(id.span, "a built-in op").help(format!(
                    "wrap it in a block: `block f(x) {{ return x -> {id}; }}`, and repeat `f`"
                ))
            } else {
                d.label(id.span, "not a block").help(
                    did_you_mean(&id.name, self.defs.blocks.keys().copied()).unwrap_or_else(|| {
                        format!("define it: `block {id}(x, ..) {{ return x -> ..; }}`")
                    }),
                )
            };
            self.diags.push(d);
            return;
        };
        self.globals.insert(block.name.name.clone());
        let Some(index_arg) = r.index else { return };
        let Some(index) = r.index_name() else {
            self.diags.push(
                Diagnostic::error("repeat", "`index=` must name a parameter of the block")
                    .label(index_arg.value.span, "not a name")
                    .help(format!(
                        "`index=i` passes 0, 1, .. to the parameter `i` of `{id}`"
                    )),
            );
            return;
        };
        let params = || block.params.iter().map(|p| p.name.name.as_str());
        match block.params.iter().position(|p| p.name.name == index.name) {
            Some(0) => self.diags.push(
                Diagnostic::error(
                    "repeat",
                    format!("`index={index}` names the parameter that receives the piped value"),
                )
                .label(index.span, "the block's input")
                .help(format!("name another parameter of `{id}`")),
            ),
            Some(_) => {}
            None => self.diags.push(
                Diagnostic::error(
                    "repeat",
                    format!("block `{id}` has no parameter `{index}` to take the index"),
                )
                .label(index.span, "not a parameter")
                .help(
                    did_you_mean(&index.name, params().skip(1)).unwrap_or_else(|| {
                        format!(
                            "its parameters are {}",
                            params()
                                .map(|p| format!("`{}`", source_name(p)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }),
                ),
            ),
        }
    }

    /// `prefix="NAME"` and `start=K`: the prefix is a string that begins a name; `start`
    /// numbers the prefix's names, so it needs one (its value is checked when lowering).
    fn repeat_names(&mut self, r: &RepeatCall<'a>) {
        if let Some(p) = r.prefix {
            match &p.value.kind {
                ExprKind::Str(s) if valid_prefix(s) => {}
                ExprKind::Str(s) => self.diags.push(
                    Diagnostic::error(
                        "repeat",
                        format!("`prefix=\"{s}\"` does not begin a name"),
                    )
                    .label(p.value.span, "not a name's beginning")
                    .help("a prefix is a letter or `_`, then letters, digits and `_`: `prefix=\"denselayer\"` names `denselayer0`, `denselayer1`, .."),
                ),
                _ => self.diags.push(
                    Diagnostic::error("repeat", "`prefix=` takes a string")
                        .label(p.value.span, "not a string")
                        .help("write the prefix in quotes: `prefix=\"layer\"` names `layer0`, `layer1`, .."),
                ),
            }
        }
        if let (Some(k), None) = (r.start, r.prefix) {
            self.diags.push(
                Diagnostic::error(
                    "repeat",
                    "`start=` numbers the names `prefix=` gives, and there is no `prefix=`",
                )
                .label(k.span, "nothing to number")
                .help(
                    "add `prefix=\"name\"`: `prefix=\"name\", start=1` names `name1`, `name2`, ..",
                ),
            );
        }
    }
}
