//! A network for the trainer's unit tests: a handful of named tensors with PyTorch names (a
//! convolution, a batchnorm with running statistics, a linear head) and no computation, so
//! that loading by name, freezing and checkpoints can be tested without generated code.

use crate::{rt, Defaults, Network, Optimizer, Schedule};

/// Tensors in [`Tiny::SHAPES`] (or [`Tiny::STATE_SHAPES`]) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensors(pub Vec<Vec<f32>>);

impl Tensors {
    fn of(shapes: &[(&str, &[usize])], fill: impl Fn(usize, usize) -> f32) -> Tensors {
        Tensors(
            shapes
                .iter()
                .enumerate()
                .map(|(t, (_, s))| (0..s.iter().product()).map(|i| fill(t, i)).collect())
                .collect(),
        )
    }

    fn find(shapes: &[(&str, &[usize])], name: &str) -> Option<usize> {
        shapes.iter().position(|(n, _)| *n == name)
    }
}

pub struct Tiny;

impl Tiny {
    /// Parameters of distinct, nonzero values, as a trained network's.
    pub fn start() -> Tensors {
        Tensors::of(Self::SHAPES, |t, i| 1.0 + t as f32 + 0.125 * i as f32)
    }
}

impl Network for Tiny {
    type Params = Tensors;
    type State = Tensors;
    type Workspace = ();
    const NAME: &'static str = "tiny";
    const INPUT: [usize; 3] = [1, 4, 4];
    const CLASSES: usize = 3;
    const SHAPES: &'static [(&'static str, &'static [usize])] = &[
        ("c1.0.weight", &[2, 1, 3, 3]),
        ("c1.0.bias", &[2]),
        ("bn.weight", &[2]),
        ("bn.bias", &[2]),
        ("fc.weight", &[3, 8]),
        ("fc.bias", &[3]),
    ];
    const STATE_SHAPES: &'static [(&'static str, &'static [usize])] =
        &[("bn.running_mean", &[2]), ("bn.running_var", &[2])];
    const DEFAULTS: Defaults = Defaults {
        epochs: 1,
        batch: 2,
        optimizer: Optimizer::Sgd(rt::optim::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        }),
        seed: 1,
        he: true,
        schedule: Schedule::Constant,
    };
    const HASH: u64 = 0x7177;

    fn drawn(name: &str) -> bool {
        matches!(name, "c1.0.weight" | "fc.weight")
    }
    fn params() -> Tensors {
        Tensors::of(Self::SHAPES, |_, _| 0.0)
    }
    fn state() -> Tensors {
        Tensors::of(Self::STATE_SHAPES, |t, _| t as f32)
    }
    fn workspace(_: usize) {}
    fn inference_workspace(_: usize) {}
    fn param_mut<'p>(p: &'p mut Tensors, name: &str) -> Option<&'p mut [f32]> {
        Some(&mut p.0[Tensors::find(Self::SHAPES, name)?])
    }
    fn param<'p>(p: &'p Tensors, name: &str) -> Option<&'p [f32]> {
        Some(&p.0[Tensors::find(Self::SHAPES, name)?])
    }
    fn set_dropout(_: &mut (), _: Option<rt::rng::Rng>) {}
    fn forward_train(_: &Tensors, _: &mut Tensors, _: &mut (), _: &[f32], _: &[i64]) -> f32 {
        0.0
    }
    fn backward(_: &Tensors, _: &mut Tensors, _: &mut ()) {}
    fn forward(_: &Tensors, _: &Tensors, _: &mut (), _: &[f32]) {}
    fn loss(_: &Tensors, _: &Tensors, _: &mut (), _: &[f32], _: &[i64]) -> f32 {
        0.0
    }
    fn logits(_: &()) -> &[f32] {
        &[]
    }
    fn state_mut<'s>(s: &'s mut Tensors, name: &str) -> Option<&'s mut [f32]> {
        Some(&mut s.0[Tensors::find(Self::STATE_SHAPES, name)?])
    }
    fn state_ref<'s>(s: &'s Tensors, name: &str) -> Option<&'s [f32]> {
        Some(&s.0[Tensors::find(Self::STATE_SHAPES, name)?])
    }
    fn first_non_finite(_: &Tensors, _: &()) -> Option<String> {
        None
    }
    fn workspace_bytes(_: usize) -> Option<usize> {
        Some(0)
    }
    fn inference_workspace_bytes(_: usize) -> Option<usize> {
        Some(0)
    }
}
