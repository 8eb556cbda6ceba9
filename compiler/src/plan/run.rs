//! The plan runner: executes a program's schedule (`plan::schedule`) step by step over one
//! arena laid out as generated code lays it out (each buffer at its planned offset, scaled by
//! the batch), running each layer's interpreter forward and backward on what its step reads
//! (a conv with a batchnorm folded in folds it as generated code does, see `ops::fold`).
//! It tests what the passes and the memory plan decided (which buffer holds which value,
//! what lives when, where gradients are zeroed, what each backward reads) without rustc:
//! its results equal the unfused interpreter's, and a buffer reused too early, or a backward
//! that reads more than it declares, shows as a wrong number.
//!
//! Each layer below its crossover batch runs on the calling thread alone, as in generated
//! code (`plan::threads`). Dropout and stochastic depth keep every value here, as in
//! `netc run --grads`.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use netc_runtime as rt;

use crate::graph::{Graph, Shape};
use crate::interp::{loss_term, Bwd, BwdOut, Feed, Fwd, FwdOut, Mode, Params, Saved, Tensor};
use crate::ops::{InputKind, Op};

use super::schedule::{BufId, Buffers, Step, What};
use super::{Program, Workspace};

/// What a training step of the plan gives.
pub struct Outcome {
    pub loss: f32,
    /// Gradients of the trained parameters, by name.
    pub grads: Params,
    pub outputs: BTreeMap<String, Tensor>,
}

/// The workspace's memory for one batch: the arena and the buffers of their own.
struct Memory<'w> {
    g: &'w Graph,
    ws: &'w Workspace,
    b: Buffers<'w>,
    batch: usize,
    arena: Vec<f32>,
    own: BTreeMap<BufId, Vec<f32>>,
    index: BTreeMap<BufId, Vec<u32>>,
    /// What each layer's last forward kept, by letter (dropout keeps nothing when it does
    /// not draw).
    kept: BTreeMap<NodeIndex, BTreeSet<char>>,
}

impl<'w> Memory<'w> {
    fn new(g: &'w Graph, ws: &'w Workspace, batch: usize) -> Memory<'w> {
        // NaN everywhere: whatever is read before it is written shows.
        let mut m = Memory {
            g,
            ws,
            b: Buffers::new(g, &ws.buffers, &ws.stems),
            batch,
            arena: vec![f32::NAN; ws.arena_elems * batch],
            own: BTreeMap::new(),
            index: BTreeMap::new(),
            kept: BTreeMap::new(),
        };
        for (id, buf) in ws.buffers.iter().enumerate() {
            if ws.arena.contains_key(&buf.name) {
                continue;
            }
            let len = if buf.fixed {
                buf.elems
            } else {
                buf.elems * batch
            };
            if buf.index {
                m.index.insert(id, vec![u32::MAX; len]);
            } else {
                m.own.insert(id, vec![f32::NAN; len]);
            }
        }
        m
    }

    /// Buffer `id`'s memory.
    fn buf(&mut self, id: BufId) -> &mut [f32] {
        let name = &self.ws.buffers[id].name;
        match self.ws.arena.get(name) {
            Some(p) => &mut self.arena[p.offset * self.batch..(p.offset + p.elems) * self.batch],
            None => self.own.get_mut(&id).expect("every own buffer exists"),
        }
    }

    /// Node `v`'s activation (`'t'`) or gradient (`'d'`), batch-major: its own buffer, or
    /// its channels of a concat's.
    fn read(&mut self, kind: char, v: NodeIndex) -> Vec<f32> {
        let id = self.b.value(kind, v).expect("the value has a buffer");
        let (batch, slot) = (self.batch, self.slot(v));
        let data = self.buf(id);
        match slot {
            None => data.to_vec(),
            Some((c, c0, cy, plane)) => {
                let mut out = vec![0.0; batch * c * plane];
                rt::tensor::slice_channels(batch, plane, c, c0, cy, data, &mut out);
                out
            }
        }
    }

    fn write(&mut self, kind: char, v: NodeIndex, values: &[f32]) {
        let id = self.b.value(kind, v).expect("the value has a buffer");
        let (batch, slot) = (self.batch, self.slot(v));
        let data = self.buf(id);
        match slot {
            None => data.copy_from_slice(values),
            Some((c, c0, cy, plane)) => {
                rt::tensor::concat_channels(batch, plane, c, c0, cy, values, data)
            }
        }
    }

    fn add(&mut self, kind: char, v: NodeIndex, values: &[f32]) {
        let mut sum = self.read(kind, v);
        rt::tensor::accumulate(values, &mut sum);
        self.write(kind, v, &sum);
    }

    /// For a layer written into a concat: its channels, first channel, the concat's
    /// channels and plane.
    fn slot(&self, v: NodeIndex) -> Option<(usize, usize, usize, usize)> {
        let s = self.g.slots.get(&v)?;
        let concat = &self.g.node(s.concat).shape;
        let plane = concat[1..].iter().product();
        Some((self.g.node(v).shape[0], s.c0, concat[0], plane))
    }

    /// What layer `n` kept in its last forward, from its buffers.
    fn saved(&mut self, n: NodeIndex) -> Saved {
        let mut saved = Saved::default();
        let letters = self.kept.get(&n).cloned().unwrap_or_default();
        for letter in letters {
            let id = self.b.own(letter, n).expect("kept buffers exist");
            if self.ws.buffers[id].index {
                saved.u.insert(letter, self.index[&id].clone());
            } else {
                saved.f.insert(letter, self.buf(id).to_vec());
            }
        }
        saved
    }
}

/// Runs layer `n`'s forward (each member's, for the first conv of a merged group).
fn forward(m: &mut Memory, n: NodeIndex, params: &mut Params, mode: Mode) {
    let g = m.g;
    for v in g.members(n) {
        let node = g.node(v);
        let ins = g.inputs_of(v);
        let xs: Vec<Vec<f32>> = ins.iter().map(|&x| m.read('t', x)).collect();
        let mut out = FwdOut {
            y: vec![0.0; m.batch * node.shape.iter().product::<usize>()],
            saved: Saved::default(),
            state: Vec::new(),
            rng: None,
        };
        let cx = Fwd {
            batch: m.batch,
            mode,
            path: &node.path,
            xs: xs.iter().map(Vec::as_slice).collect(),
            shapes: ins
                .iter()
                .map(|&x| &g.node(x).shape)
                .collect::<Vec<&Shape>>(),
            y_shape: &node.shape,
            params: &*params,
            drop: false,
        };
        node.op.kind().forward(&cx, &mut out);
        if let Some(f) = node.op.fused() {
            f.forward_inplace(&mut out.y);
        }
        m.write('t', v, &out.y);
        // At inference, what the layer's inference form does not write has no buffer.
        if mode == Mode::Infer && !node.op.kind().keeps_at_inference() {
            continue;
        }
        let mut kept = BTreeSet::new();
        for (letter, data) in out.saved.f {
            let id = m.b.own(letter, v).expect("kept buffers exist");
            m.buf(id).copy_from_slice(&data);
            kept.insert(letter);
        }
        for (letter, data) in out.saved.u {
            let id = m.b.own(letter, v).expect("kept buffers exist");
            m.index.insert(id, data);
            kept.insert(letter);
        }
        m.kept.insert(v, kept);
        for (suffix, data) in out.state {
            params
                .get_mut(&format!("{}.{suffix}", node.path))
                .expect("state tensors exist")
                .data = data;
        }
    }
}

/// Runs layer `n`'s backward (each member's, last the group's first), adding input
/// gradients into their buffers and parameter gradients into `grads`.
fn backward(m: &mut Memory, n: NodeIndex, params: &Params, grads: &mut Params) {
    let g = m.g;
    // The members gradients reach (those of a merged group may not all).
    let graded = g.graded();
    let mut members = g.members(n);
    members.retain(|j| graded[j.index()]);
    members.reverse();
    for v in members {
        let node = g.node(v);
        let ins = g.inputs_of(v);
        let mut dy = m.read('d', v);
        let y = m.read('t', v);
        if let Some(f) = node.op.fused() {
            f.backward_inplace(&y, &mut dy);
            m.write('d', v, &dy);
        }
        let xs: Vec<Vec<f32>> = ins.iter().map(|&x| m.read('t', x)).collect();
        let saved = m.saved(v);
        let cx = Bwd {
            batch: m.batch,
            path: &node.path,
            xs: xs.iter().map(Vec::as_slice).collect(),
            shapes: ins.iter().map(|&x| &g.node(x).shape).collect(),
            y: &y,
            y_shape: &node.shape,
            dy: &dy,
            params,
            saved: &saved,
            wants: ins
                .iter()
                .map(|&x| !matches!(g.node(x).op, Op::Input(_)))
                .collect(),
        };
        let mut out = BwdOut::default();
        node.op.kind().backward(&cx, &mut out);
        for (suffix, grad) in out.grads {
            let name = format!("{}.{suffix}", node.path);
            let shape = params[&name].shape.clone();
            grads.insert(name, Tensor { shape, data: grad });
        }
        // An input whose value lives in this layer's buffers has its gradient there too: an
        // activation in place replaces it with the input's; for a layer written into a
        // concat, the concat's gradient already is it. Every other input adds its part.
        let aliased = g.aliases.contains_key(&v);
        for (i, dx) in out.dxs.into_iter().enumerate() {
            let Some(dx) = dx.filter(|_| cx.wants[i]) else {
                continue;
            };
            let shared = m.b.owner(ins[i]) == m.b.owner(v);
            match (shared, aliased) {
                (true, true) => m.write('d', ins[i], &dx),
                (true, false) => {}
                (false, _) => m.add('d', ins[i], &dx),
            }
        }
    }
}

/// Runs `steps` over `m`, adding the losses' values to the returned sum.
fn run(
    m: &mut Memory,
    steps: &[Step],
    params: &mut Params,
    grads: &mut Params,
    feed: &Feed,
) -> f32 {
    let g = m.g;
    let mut loss = 0.0f32;
    for step in steps {
        // As generated code does: a layer below its crossover on the calling thread alone.
        let _threads = rt::gemm::one_thread_if(m.batch < m.ws.crossover(step.what));
        match step.what {
            What::Input(n) => {
                if let Op::Input(InputKind::Tensor) = g.node(n).op {
                    let data = feed.tensors[&g.node(n).path].data.clone();
                    m.write('t', n, &data);
                }
            }
            What::Forward(n) => forward(m, n, params, Mode::Train),
            What::Infer(n) => forward(m, n, params, Mode::Infer),
            What::Zero(b) => m.buf(b).fill(0.0),
            What::Loss(k) => {
                let term = &g.losses[k];
                let [a, b] = term.inputs;
                let va = m.read('t', a);
                let vb = if m.b.value('t', b).is_some() {
                    m.read('t', b)
                } else {
                    Vec::new()
                };
                let (l, da, db) = loss_term(g, term, &va, &vb, feed);
                loss += term.weight as f32 * l;
                for (v, d) in [(a, Some(da)), (b, db)] {
                    if let Some(d) = d.filter(|_| m.b.value('d', v).is_some()) {
                        m.add('d', v, &d);
                    }
                }
            }
            What::Backward(n) => backward(m, n, params, grads),
            What::Outputs => {}
        }
    }
    loss
}

fn outputs(m: &mut Memory) -> BTreeMap<String, Tensor> {
    let g = m.g;
    g.outputs
        .iter()
        .map(|(name, n)| {
            let mut shape = vec![m.batch];
            shape.extend(&g.node(*n).shape);
            (
                name.clone(),
                Tensor {
                    shape,
                    data: m.read('t', *n),
                },
            )
        })
        .collect()
}

/// One training step by the training program `p` (`Plan::train`): `forward_train` then
/// `backward`, batchnorm state in `params` updated.
pub fn train_step(p: &Program, params: &mut Params, feed: &Feed) -> Outcome {
    let mut m = Memory::new(&p.graph, &p.ws, feed.batch());
    let mut grads = Params::new();
    let schedule = &p.ws.schedule;
    let loss = run(&mut m, &schedule.forward_train, params, &mut grads, feed);
    let outputs = outputs(&mut m);
    run(&mut m, &schedule.backward, params, &mut grads, feed);
    Outcome {
        loss,
        grads,
        outputs,
    }
}

/// Inference by the inference program `p` (`Plan::infer`): the outputs.
pub fn infer(p: &Program, params: &Params, feed: &Feed) -> BTreeMap<String, Tensor> {
    let mut m = Memory::new(&p.graph, &p.ws, feed.batch());
    let mut params = params.clone();
    let forward = &p.ws.schedule.forward;
    run(&mut m, forward, &mut params, &mut Params::new(), feed);
    outputs(&mut m)
}
