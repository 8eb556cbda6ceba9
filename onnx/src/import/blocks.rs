//! Blocks from repeated structure: every container module's body is written once per
//! instance with its integer arguments as holes; instances whose bodies read alike but for
//! the holes share one `block`, whose parameters are the holes that differ between instances
//! (one parameter for holes that always agree, `k * c` for one that is always a multiple of
//! another), the rest written as literals.

use std::collections::{HashMap, HashSet};

use super::lower::Arg;

/// An integer argument that may become a block parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HoleVal {
    Int(i64),
    Pair(i64, i64),
}

impl HoleVal {
    pub fn of(a: &Arg) -> Option<HoleVal> {
        match *a {
            Arg::Int(v) => Some(HoleVal::Int(v)),
            Arg::Pair(h, w) => Some(HoleVal::Pair(h, w)),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match *self {
            HoleVal::Int(v) => v.to_string(),
            HoleVal::Pair(h, w) if h == w => h.to_string(),
            HoleVal::Pair(h, w) => format!("[{h}, {w}]"),
        }
    }

    /// `k` when `self` is `k` times `base` (k ≥ 2).
    fn times(&self, base: &HoleVal) -> Option<i64> {
        match (self, base) {
            (HoleVal::Int(a), HoleVal::Int(b)) if *b > 0 && a % b == 0 && a / b >= 2 => Some(a / b),
            _ => None,
        }
    }
}

/// A piece of a statement.
#[derive(Clone, Debug)]
pub(crate) enum Tok {
    Text(String),
    /// An integer argument, with the name a parameter for it would take.
    Hole(&'static str, HoleVal),
    /// An optional integer argument: `sep` (`, s=`) and its value, written only where it is
    /// not `default`.
    Opt {
        sep: String,
        hint: &'static str,
        val: HoleVal,
        default: HoleVal,
    },
    /// A block call: its template, tensor arguments, and the instance's holes (flattened).
    Call {
        tpl: usize,
        tensors: Vec<String>,
        holes: Vec<HoleVal>,
    },
}

/// A statement: a line of a body.
pub(crate) type Stmt = Vec<Tok>;

/// How a hole of a block body is written.
#[derive(Clone, Debug)]
enum Expr {
    Lit(HoleVal),
    Param(usize),
    Times(i64, usize),
}

/// One block: a body and its instances' holes.
pub(crate) struct Template {
    pub name: String,
    /// Names of its tensor parameters (`x`, `x2`, ...).
    pub inputs: Vec<String>,
    body: Vec<Stmt>,
    /// Names the body defines, which a parameter may not take.
    taken: HashSet<String>,
    instances: Vec<Vec<HoleVal>>,
    /// After [`Blocks::finish`]: parameter names, and how each hole is written.
    params: Vec<String>,
    /// The hole each parameter stands for (its first).
    reps: Vec<usize>,
    exprs: Vec<Option<Expr>>,
}

/// Every template, in the order they were made (a block's callees before it).
#[derive(Default)]
pub(crate) struct Blocks {
    pub templates: Vec<Template>,
    by_key: HashMap<String, usize>,
}

/// The holes of a body, in order, a call's flattened in place.
fn holes(body: &[Stmt]) -> Vec<HoleVal> {
    let mut out = Vec::new();
    for t in body.iter().flatten() {
        match t {
            Tok::Hole(_, v) | Tok::Opt { val: v, .. } => out.push(v.clone()),
            Tok::Call { holes, .. } => out.extend(holes.iter().cloned()),
            Tok::Text(_) => {}
        }
    }
    out
}

fn key(inputs: usize, body: &[Stmt]) -> String {
    let mut k = format!("{inputs}|");
    for stmt in body {
        for t in stmt {
            match t {
                Tok::Text(s) => k.push_str(s),
                Tok::Hole(..) => k.push('?'),
                Tok::Opt { sep, .. } => {
                    k.push_str(sep);
                    k.push('?');
                }
                Tok::Call { tpl, tensors, .. } => {
                    k.push_str(&format!("#{tpl}({})", tensors.join(",")))
                }
            }
        }
        k.push('\n');
    }
    k
}

impl Blocks {
    /// Registers an instance's body; returns the call that stands for it.
    pub fn instance(
        &mut self,
        name_hint: String,
        inputs: Vec<String>,
        tensors: Vec<String>,
        body: Vec<Stmt>,
        taken: HashSet<String>,
    ) -> Tok {
        let k = key(inputs.len(), &body);
        let hs = holes(&body);
        let tpl = match self.by_key.get(&k) {
            Some(&t) => t,
            None => {
                self.templates.push(Template {
                    name: name_hint,
                    inputs,
                    body,
                    taken,
                    instances: Vec::new(),
                    params: Vec::new(),
                    reps: Vec::new(),
                    exprs: Vec::new(),
                });
                self.by_key.insert(k, self.templates.len() - 1);
                self.templates.len() - 1
            }
        };
        self.templates[tpl].instances.push(hs.clone());
        Tok::Call {
            tpl,
            tensors,
            holes: hs,
        }
    }

    /// Decides every template's parameters (callees first), and makes names unique.
    pub fn finish(&mut self, reserved: &HashSet<String>) {
        let mut used: HashSet<String> = reserved.clone();
        for t in 0..self.templates.len() {
            let live = self.live(t);
            let tp = &mut self.templates[t];
            let n = tp.instances[0].len();
            let mut exprs: Vec<Option<Expr>> = vec![None; n];
            let mut params: Vec<String> = Vec::new();
            let mut reps: Vec<usize> = Vec::new();
            let column =
                |h: usize| -> Vec<&HoleVal> { tp.instances.iter().map(|i| &i[h]).collect() };
            for (h, hint) in live {
                let col = column(h);
                if col.iter().all(|v| *v == col[0]) {
                    exprs[h] = Some(Expr::Lit(col[0].clone()));
                    continue;
                }
                let same = reps.iter().position(|&r| column(r) == col);
                let times = reps.iter().enumerate().find_map(|(p, &r)| {
                    let base = column(r);
                    let k = col[0].times(base[0])?;
                    col.iter()
                        .zip(&base)
                        .all(|(v, b)| v.times(b) == Some(k))
                        .then_some((k, p))
                });
                exprs[h] = Some(match (same, times) {
                    (Some(p), _) => Expr::Param(p),
                    (None, Some((k, p))) => Expr::Times(k, p),
                    _ => {
                        let mut name = hint.to_string();
                        let mut i = 2;
                        while params.contains(&name)
                            || tp.inputs.contains(&name)
                            || tp.taken.contains(&name)
                        {
                            name = format!("{hint}{i}");
                            i += 1;
                        }
                        params.push(name);
                        reps.push(h);
                        Expr::Param(params.len() - 1)
                    }
                });
            }
            tp.exprs = exprs;
            tp.params = params;
            tp.reps = reps;
            let base = tp.name.clone();
            let mut name = base.clone();
            let mut i = 2;
            while used.contains(&name) {
                name = format!("{base}_{i}");
                i += 1;
            }
            used.insert(name.clone());
            tp.name = name;
        }
    }

    /// The holes of template `t` that its text shows (its own, and those its callees take
    /// as parameters), with the name a parameter for each would take.
    fn live(&self, t: usize) -> Vec<(usize, &'static str)> {
        let mut out = Vec::new();
        let mut at = 0;
        for tok in self.templates[t].body.iter().flatten() {
            match tok {
                Tok::Hole(hint, _) | Tok::Opt { hint, .. } => {
                    out.push((at, *hint));
                    at += 1;
                }
                Tok::Call { tpl, holes, .. } => {
                    let callee = &self.templates[*tpl];
                    for (p, &r) in callee.reps.iter().enumerate() {
                        let hint = leak_hint(&callee.params[p]);
                        out.push((at + r, hint));
                    }
                    at += holes.len();
                }
                Tok::Text(_) => {}
            }
        }
        out.sort_by_key(|(h, _)| *h);
        out.dedup_by_key(|(h, _)| *h);
        out
    }

    /// A call's text, its arguments written by `hole` (a hole's index in the caller's
    /// flattened holes → text).
    fn call_text(
        &self,
        tpl: usize,
        tensors: &[String],
        at: usize,
        hole: &dyn Fn(usize) -> String,
    ) -> String {
        let callee = &self.templates[tpl];
        let mut args: Vec<String> = tensors.to_vec();
        args.extend(callee.reps.iter().map(|&r| hole(at + r)));
        if args.is_empty() {
            callee.name.clone()
        } else {
            format!("{}({})", callee.name, args.join(", "))
        }
    }

    /// A statement's text, holes written by `hole`.
    pub fn stmt_text(
        &self,
        stmt: &Stmt,
        first_hole: usize,
        hole: &dyn Fn(usize) -> String,
    ) -> (String, usize) {
        let mut s = String::new();
        let mut at = first_hole;
        for t in stmt {
            match t {
                Tok::Text(x) => s.push_str(x),
                Tok::Hole(..) => {
                    s.push_str(&hole(at));
                    at += 1;
                }
                Tok::Opt { sep, default, .. } => {
                    let v = hole(at);
                    if v != default.text() {
                        s.push_str(sep);
                        s.push_str(&v);
                    }
                    at += 1;
                }
                Tok::Call {
                    tpl,
                    tensors,
                    holes,
                } => {
                    s.push_str(&self.call_text(*tpl, tensors, at, hole));
                    at += holes.len();
                }
            }
        }
        (s, at)
    }

    /// The top level's statements: every hole a literal.
    pub fn literal_text(&self, stmt: &Stmt) -> String {
        let hs = holes(std::slice::from_ref(stmt));
        self.stmt_text(stmt, 0, &|h| hs[h].text()).0
    }

    /// The definition of template `t`.
    pub fn definition(&self, t: usize) -> (String, Vec<String>) {
        let tp = &self.templates[t];
        let mut params = tp.inputs.clone();
        params.extend(tp.params.iter().cloned());
        let head = format!("block {}({})", tp.name, params.join(", "));
        let hole = |h: usize| match &tp.exprs[h] {
            Some(Expr::Lit(v)) => v.text(),
            Some(Expr::Param(p)) => tp.params[*p].clone(),
            Some(Expr::Times(k, p)) => format!("{k} * {}", tp.params[*p]),
            // Not shown (a callee's literal).
            None => tp.instances[0][h].text(),
        };
        let mut at = 0;
        let mut lines = Vec::new();
        for stmt in &tp.body {
            let (s, next) = self.stmt_text(stmt, at, &hole);
            at = next;
            lines.push(s);
        }
        (head, lines)
    }

    /// How many instances template `t` has.
    pub fn count(&self, t: usize) -> usize {
        self.templates[t].instances.len()
    }
}

/// Parameter names are short and few; the hint of a callee's parameter is one of them.
fn leak_hint(name: &str) -> &'static str {
    const HINTS: &[&str] = &[
        "c", "k", "s", "p", "dil", "g", "from", "to", "size", "scale", "op", "n",
    ];
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    HINTS.iter().find(|h| **h == base).copied().unwrap_or("n")
}
