//! The plan as data: after the passes, each of a network's programs lowers to flat
//! schedules of steps over its workspace's buffers: inference (`forward`, over the inference
//! graph), and the training step, a forward with its losses (`forward_train`) then
//! `backward`. Each step says which buffers it reads and which it writes. That is all the memory plan needs (a buffer lives from the first step that
//! touches it to the last), all [`verify`] needs (nothing is read before it is written), and
//! what `netc check --plan --steps` prints; the code generator prints the steps in order, and
//! `plan::run` executes them with the runtime's kernels.
//!
//! What the passes did is decided here, once, as which buffer holds which value: a layer
//! written in place into a concat holds its value in the concat's buffers, an activation
//! run in place in its input's, and the first conv of a merged group writes (and reads the
//! gradients of) every member. Nothing downstream asks about slots, aliases or groups.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use petgraph::stable_graph::NodeIndex;

use crate::graph::Graph;
use crate::ops::{Conv, Op};

use super::{buffer_name, Buffer};

/// A buffer of the workspace, by its index in `Workspace::buffers`.
pub type BufId = usize;

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Copies the network input at this node into its buffer.
    Input(NodeIndex),
    /// A layer's forward in a training step (the first conv of a merged group: the group's).
    Forward(NodeIndex),
    /// A layer's forward at inference.
    Infer(NodeIndex),
    /// Zeroes a gradient before the first step that adds into it.
    Zero(BufId),
    /// Loss term `k`: reads its inputs, adds to their gradients.
    Loss(usize),
    /// A layer's backward.
    Backward(NodeIndex),
    /// The network's outputs, read after the schedule (they stay alive to the end).
    Outputs,
}

/// One step: what it does and the buffers it reads and writes. A step that adds into a
/// buffer reads and writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub what: What,
    pub reads: Vec<BufId>,
    pub writes: Vec<BufId>,
}

/// A program's schedules: `forward` for inference, `forward_train` and `backward` for the
/// training step (the other program's lists are empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub forward: Vec<Step>,
    pub forward_train: Vec<Step>,
    pub backward: Vec<Step>,
}

impl Schedule {
    /// A training step's steps in order: `forward_train` then `backward`.
    pub fn training(&self) -> impl Iterator<Item = &Step> {
        self.forward_train.iter().chain(&self.backward)
    }
}

/// Which buffers hold what: every value's activation and gradient, and what a layer keeps.
pub struct Buffers<'g> {
    ids: BTreeMap<String, BufId>,
    stems: &'g BTreeMap<NodeIndex, String>,
    /// The node whose buffers hold each value that is not its own (see [`Buffers::owner`]),
    /// resolved once: a chain of layers in place (20,000 ReLUs at inference) would make
    /// following it at every lookup quadratic.
    owners: HashMap<NodeIndex, NodeIndex>,
}

impl<'g> Buffers<'g> {
    pub fn new(
        g: &'g Graph,
        buffers: &[Buffer],
        stems: &'g BTreeMap<NodeIndex, String>,
    ) -> Buffers<'g> {
        let ids = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.clone(), i))
            .collect();
        // One step from a value to the node whose buffers it uses: a layer written into a
        // concat to the concat, a layer in place to its input.
        let step = |n: NodeIndex| {
            g.slots
                .get(&n)
                .map(|s| s.concat)
                .or_else(|| g.aliases.get(&n).copied())
        };
        let mut owners: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        for n in g.slots.keys().chain(g.aliases.keys()).copied() {
            // Down the chain to a node with an owner already known, or its end; then every
            // node passed on the way has that owner.
            let mut path = vec![n];
            let mut at = n;
            let end = loop {
                if let Some(&o) = owners.get(&at) {
                    break o;
                }
                match step(at) {
                    Some(next) => {
                        path.push(next);
                        at = next;
                    }
                    None => break at,
                }
            };
            for p in path.into_iter().filter(|&p| p != end) {
                owners.insert(p, end);
            }
        }
        Buffers { ids, stems, owners }
    }

    /// The node whose buffers hold `n`'s value: a concat for a layer written into it, the
    /// input of a layer run in place (followed to the end), else `n`.
    pub fn owner(&self, n: NodeIndex) -> NodeIndex {
        self.owners.get(&n).copied().unwrap_or(n)
    }

    /// Buffer `kind` of node `n` itself (`a`, `m`, ... what a layer keeps), if it has one.
    pub fn own(&self, kind: char, n: NodeIndex) -> Option<BufId> {
        self.ids.get(&buffer_name(self.stems, kind, n)).copied()
    }

    /// The buffer that holds `n`'s activation (`'t'`) or gradient (`'d'`).
    pub fn value(&self, kind: char, n: NodeIndex) -> Option<BufId> {
        self.own(kind, self.owner(n))
    }
}

/// The reads and writes of node `n`'s forward step: its inputs (a concat only those it
/// copies; an activation in place also the value it overwrites), the values it computes
/// (every member's, for the first conv of a merged group), and what it keeps for backward.
fn forward_step(g: &Graph, b: &Buffers, n: NodeIndex) -> (Vec<BufId>, Vec<BufId>, Vec<BufId>) {
    let kind = g.node(n).op.kind();
    let concat = matches!(g.node(n).op, Op::Concat(_));
    let ins = g.inputs_of(n);
    // A concat reads the inputs it copies; one written in place was written already.
    let mut reads: Vec<BufId> = ins
        .iter()
        .filter(|&x| !(concat && g.slots.contains_key(x)))
        .filter_map(|&x| b.value('t', x))
        .collect();
    let writes: Vec<BufId> = g
        .members(n)
        .into_iter()
        .filter_map(|m| b.value('t', m))
        .collect();
    // An activation in place reads the value it overwrites.
    if g.aliases.contains_key(&n) {
        reads.extend(b.value('t', n));
    }
    dedup(&mut reads);
    let shapes: Vec<&Vec<usize>> = ins.iter().map(|&x| &g.node(x).shape).collect();
    let kept = kind
        .saved(&shapes, &g.node(n).shape)
        .into_iter()
        .filter_map(|saved| b.own(saved.letter, n))
        .collect();
    (reads, writes, kept)
}

/// Whether node `n` runs as a step of a schedule whose nodes are `set`: the first conv of a
/// merged group runs the group, when any member is in the set; the others never do.
fn runs(g: &Graph, n: NodeIndex, set: &[bool]) -> bool {
    match g.group_of(n) {
        Some(group) if group[0] != n => false,
        Some(group) => group.iter().any(|j| set[j.index()]),
        None => set[n.index()],
    }
}

/// The `Input` steps of the inputs in `set`.
fn input_steps(g: &Graph, b: &Buffers, set: &[bool]) -> Vec<Step> {
    g.inputs
        .iter()
        .filter(|&&(_, n)| set[n.index()])
        .filter_map(|&(_, n)| {
            let t = b.value('t', n)?;
            Some(Step {
                what: What::Input(n),
                reads: vec![],
                writes: vec![t],
            })
        })
        .collect()
}

/// The `Outputs` step: the outputs are read when the schedule ends.
fn outputs_step(g: &Graph, b: &Buffers) -> Step {
    Step {
        what: What::Outputs,
        reads: g
            .outputs
            .iter()
            .filter_map(|&(_, o)| b.value('t', o))
            .collect(),
        writes: vec![],
    }
}

/// Lowers `g` (the inference graph after its codegen passes) to inference's schedule,
/// `forward`, over `b`. A layer keeps what its inference form still writes.
pub fn lower_inference(g: &Graph, b: &Buffers) -> Schedule {
    let infer = g.inference_set();
    let mut forward = input_steps(g, b, &infer);
    for n in g.nodes() {
        if matches!(g.node(n).op, Op::Input(_)) || !runs(g, n, &infer) {
            continue;
        }
        let (reads, mut writes, kept) = forward_step(g, b, n);
        if g.node(n).op.kind().keeps_at_inference() {
            writes.extend(kept);
        }
        dedup(&mut writes);
        forward.push(Step {
            what: What::Infer(n),
            reads,
            writes,
        });
    }
    forward.push(outputs_step(g, b));
    Schedule {
        forward,
        ..Schedule::default()
    }
}

/// Lowers `g` (after its codegen passes) to the training step's schedules over `b`:
/// `forward_train`, then `backward`.
pub fn lower_training(g: &Graph, b: &Buffers) -> Schedule {
    let train = g.training_set();
    let nodes = g.training_nodes();
    let members = |n: NodeIndex| g.members(n);
    // Gradients flow back from the losses: a layer that reaches none has no backward.
    let graded = g.graded();
    let takes_grad = |n: NodeIndex| !matches!(g.node(n).op, Op::Input(_));
    let ins_of = |n: NodeIndex| g.inputs_of(n);

    let mut s = Schedule {
        forward_train: input_steps(g, b, &train),
        ..Schedule::default()
    };
    for &n in &nodes {
        if matches!(g.node(n).op, Op::Input(_)) || !runs(g, n, &train) {
            continue;
        }
        let (reads, mut writes, kept) = forward_step(g, b, n);
        writes.extend(kept);
        dedup(&mut writes);
        s.forward_train.push(Step {
            what: What::Forward(n),
            reads,
            writes,
        });
    }

    // The losses add into the gradients of their inputs.
    for (k, l) in g.losses.iter().enumerate() {
        let reads: Vec<BufId> = l.inputs.iter().filter_map(|&v| b.value('t', v)).collect();
        let grads: Vec<BufId> = l
            .inputs
            .iter()
            .filter(|&&v| takes_grad(v))
            .filter_map(|&v| b.value('d', v))
            .collect();
        s.forward_train.push(Step {
            what: What::Loss(k),
            reads: reads.into_iter().chain(grads.iter().copied()).collect(),
            writes: grads,
        });
    }

    for &n in nodes.iter().rev() {
        if matches!(g.node(n).op, Op::Input(_)) || !runs(g, n, &graded) {
            continue;
        }
        let op = &g.node(n).op;
        let kind = op.kind();
        let ins = ins_of(n);
        let shapes: Vec<&Vec<usize>> = ins.iter().map(|&x| &g.node(x).shape).collect();
        let reads_what = kind.reads();
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        for m in members(n).into_iter().filter(|m| graded[m.index()]) {
            reads.extend(b.value('d', m));
            // A fused ReLU masks the gradient with the output first.
            let fused = g.node(m).op.fused().is_some();
            if fused {
                writes.extend(b.value('d', m));
            }
            if reads_what.output || fused {
                reads.extend(b.value('t', m));
            }
        }
        if reads_what.input {
            reads.extend(ins.iter().filter_map(|&x| b.value('t', x)));
        }
        for saved in kind.saved(&shapes, &g.node(n).shape) {
            reads.extend(b.own(saved.letter, n));
        }
        // Each input's gradient: added into (read and written); an activation in place
        // rewrites the gradient it shares with its input.
        let concat = matches!(op, Op::Concat(_));
        for &x in &ins {
            if !takes_grad(x) || (concat && g.slots.contains_key(&x)) {
                continue;
            }
            if let Some(d) = b.value('d', x) {
                reads.push(d);
                writes.push(d);
            }
        }
        dedup(&mut reads);
        dedup(&mut writes);
        // A layer that writes no gradient and has no parameters has no backward.
        let has_params = members(n)
            .iter()
            .any(|&m| !g.node(m).op.kind().params(&shapes).iter().all(|p| p.state));
        if writes.is_empty() && !has_params {
            continue;
        }
        s.backward.push(Step {
            what: What::Backward(n),
            reads,
            writes,
        });
    }
    // The outputs stay alive to the end of the step.
    s.backward.push(outputs_step(g, b));
    zero_gradients(&mut s);
    s
}

/// Puts a `Zero` step before the first step that adds into each gradient, in the training
/// schedule (its memory held other buffers until then).
fn zero_gradients(s: &mut Schedule) {
    let mut seen = std::collections::HashSet::new();
    let mut place = |list: &mut Vec<Step>| {
        let mut out = Vec::with_capacity(list.len());
        for step in list.drain(..) {
            // Gradients are the buffers a step both reads and writes before anyone wrote
            // them: additions.
            for &w in &step.writes {
                if step.reads.contains(&w) && seen.insert(w) {
                    out.push(Step {
                        what: What::Zero(w),
                        reads: vec![],
                        writes: vec![w],
                    });
                }
            }
            for &w in &step.writes {
                seen.insert(w);
            }
            out.push(step);
        }
        *list = out;
    };
    place(&mut s.forward_train);
    place(&mut s.backward);
}

fn dedup(v: &mut Vec<BufId>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(*x));
}

/// Checks that every step of each schedule reads only buffers an earlier step of the same
/// pass wrote (a training step's backward may read what its forward wrote).
pub fn verify(s: &Schedule, buffers: &[Buffer]) -> Result<(), String> {
    let check = |steps: &mut dyn Iterator<Item = &Step>, pass: &str| -> Result<(), String> {
        let mut written = std::collections::HashSet::new();
        for (k, step) in steps.enumerate() {
            for &r in &step.reads {
                if !written.contains(&r) {
                    return Err(format!(
                        "{pass} step {k} ({:?}) reads `{}` before any step writes it",
                        step.what, buffers[r].name
                    ));
                }
            }
            written.extend(step.writes.iter().copied());
        }
        Ok(())
    };
    check(&mut s.forward.iter(), "forward")?;
    check(&mut s.training(), "training")
}

/// The schedules as text (those with steps), a step per line with what it reads and
/// writes (`netc check --plan --steps`).
pub fn describe(s: &Schedule, g: &Graph, buffers: &[Buffer]) -> String {
    let names = |ids: &[BufId]| -> String {
        ids.iter()
            .map(|&i| buffers[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    for (title, steps) in [
        ("forward", &s.forward),
        ("forward_train", &s.forward_train),
        ("backward", &s.backward),
    ] {
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for (k, step) in steps.iter().enumerate() {
            let what = match step.what {
                What::Input(n) => format!("input {}", g.node(n).path),
                What::Forward(n) | What::Infer(n) => {
                    let (op, path) = (&g.node(n).op, &g.node(n).path);
                    match op {
                        Op::Conv(Conv { fold, residual, .. }) if fold.is_some() || *residual => {
                            let mut s = format!("conv {path}");
                            if let Some(f) = fold {
                                s += &format!(" (fold {} into {path})", f.bn);
                            }
                            if *residual {
                                let r = g.inputs_of(n)[1];
                                s += &format!(" (+ {} in the epilogue)", g.node(r).path);
                            }
                            s
                        }
                        _ => format!("{} {path}", op.name()),
                    }
                }
                What::Backward(n) => format!("{}' {}", g.node(n).op.name(), g.node(n).path),
                What::Zero(b) => format!("zero {}", buffers[b].name),
                What::Loss(l) => format!("loss {}", g.losses[l].kind.name()),
                What::Outputs => "outputs".to_string(),
            };
            let _ = write!(out, "  {k:>4}  {what}");
            if !step.reads.is_empty() {
                let _ = write!(out, "  reads {}", names(&step.reads));
            }
            if !step.writes.is_empty() {
                let _ = write!(out, "  writes {}", names(&step.writes));
            }
            out.push('\n');
        }
    }
    out
}
