//! `--freeze PATH`: which parameters stay fixed, and the optimizer step that passes them
//! over. A frozen parameter takes no step at all, so it gets no optimizer state (momentum,
//! Adam's moments) and no weight decay, and stays bitwise what it was. Its gradient is still
//! computed (the generated backward pass computes every one), and batchnorm running
//! statistics of frozen layers still update in training, as PyTorch's do for parameters with
//! `requires_grad=False` in `train()` mode.

use crate::{rt, Network, Optimizer};

/// Whether the parameter `name` lies under the layer path `path`: equal to it, or continued
/// by a `.` (`c1` holds `c1.0.weight` but not `c10.weight`, so that freezing one layer never
/// freezes another by accident). A path ending in `.` is a plain prefix.
pub(crate) fn under(name: &str, path: &str) -> bool {
    match name.strip_prefix(path) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || path.ends_with('.'),
        None => false,
    }
}

/// Which of `N`'s parameters, in [`Network::SHAPES`] order, `paths` freeze. A path under
/// which no parameter lies is an error: a typo must not leave a run training what it meant
/// to keep.
pub(crate) fn frozen<N: Network>(paths: &[String]) -> Result<Vec<bool>, String> {
    let names = || N::SHAPES.iter().map(|(name, _)| *name);
    if let Some(bad) = paths.iter().find(|p| !names().any(|n| under(n, p))) {
        let mut layers: Vec<&str> = names().map(|n| n.split('.').next().unwrap_or(n)).collect();
        layers.dedup();
        return Err(format!(
            "--freeze {bad}: no parameter of `{}` lies under `{bad}`\n  help: its layers with parameters are {} (a path names a layer and everything in it: `{}` freezes {})",
            N::NAME,
            layers.join(", "),
            layers.first().unwrap_or(&"?"),
            names().next().unwrap_or("?"),
        ));
    }
    Ok(names().map(|n| paths.iter().any(|p| under(n, p))).collect())
}

/// What a run with `frozen` parameters says about them before training (`None` when none
/// is).
pub(crate) fn describe<N: Network>(frozen: &[bool]) -> Option<String> {
    let count = frozen.iter().filter(|&&f| f).count();
    if count == 0 {
        return None;
    }
    let values: usize = N::SHAPES
        .iter()
        .zip(frozen)
        .filter(|(_, &f)| f)
        .map(|((_, s), _)| s.iter().product::<usize>())
        .sum();
    let all = if count == frozen.len() {
        " (every parameter: training updates the batchnorm statistics alone)"
    } else {
        ""
    };
    let stats = if N::STATE_SHAPES.is_empty() {
        ""
    } else {
        "; batchnorm statistics still update"
    };
    Some(format!(
        "{count} of {} parameters frozen ({values} values){all}: no optimizer steps or state for them{stats}",
        frozen.len()
    ))
}

/// One optimizer step of every parameter of `params` that is not `frozen`, with its
/// gradient in `g` and its state in `states` (both in [`Network::SHAPES`] order).
pub(crate) fn step<N: Network>(
    optimizer: &Optimizer,
    params: &mut N::Params,
    g: &N::Params,
    states: &mut [rt::optim::OptState],
    frozen: &[bool],
) {
    for (((name, _), st), &fixed) in N::SHAPES.iter().zip(states).zip(frozen) {
        if fixed {
            continue;
        }
        let grad = N::param(g, name).expect("every listed gradient exists");
        let param = N::param_mut(params, name).expect("every listed parameter exists");
        optimizer.step(param, grad, st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Tiny;

    #[test]
    fn paths_hold_whole_layers() {
        assert!(under("c1.0.weight", "c1"));
        assert!(under("c1.0.weight", "c1.0"));
        assert!(under("c1.0.weight", "c1.0.weight"));
        assert!(!under("c10.weight", "c1"));
        assert!(!under("c1.0.weight", "c1.0.w"));
        // A path ending in `.` is a plain prefix, and so matches the same.
        assert!(under("c1.0.weight", "c1."));
        assert!(!under("c1.0.weight", ""));
        let f = frozen::<Tiny>(&["c1".into(), "bn".into()]).unwrap();
        assert_eq!(f, [true, true, true, true, false, false]);
        assert_eq!(frozen::<Tiny>(&[]).unwrap(), [false; 6]);
    }

    #[test]
    fn a_path_that_freezes_nothing_is_refused() {
        let e = frozen::<Tiny>(&["c1".into(), "c".into()]).unwrap_err();
        assert_eq!(
            e,
            "--freeze c: no parameter of `tiny` lies under `c`\n  help: its layers with parameters are c1, bn, fc (a path names a layer and everything in it: `c1` freezes c1.0.weight)"
        );
        assert!(frozen::<Tiny>(&["fc.w".into()]).is_err());
    }

    /// Frozen parameters are bitwise unchanged after steps with momentum and weight decay
    /// (which would move a parameter even with a zero gradient), and get no state; the
    /// others move.
    #[test]
    fn frozen_parameters_take_no_steps_and_keep_no_state() {
        let sgd = Optimizer::Sgd(rt::optim::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            nesterov: false,
        });
        let adamw = Optimizer::Adam(rt::optim::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        });
        for optimizer in [sgd, adamw] {
            let fixed = frozen::<Tiny>(&["c1".into(), "fc.bias".into()]).unwrap();
            let mut params = Tiny::start();
            let before = params.clone();
            let mut g = Tiny::start();
            for t in &mut g.0 {
                t.iter_mut().for_each(|v| *v = 0.5);
            }
            let mut states = vec![rt::optim::OptState::default(); Tiny::SHAPES.len()];
            for _ in 0..3 {
                step::<Tiny>(&optimizer, &mut params, &g, &mut states, &fixed);
            }
            for (i, (name, _)) in Tiny::SHAPES.iter().enumerate() {
                let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                if fixed[i] {
                    assert_eq!(bits(&params.0[i]), bits(&before.0[i]), "{name}");
                    assert_eq!(states[i], Default::default(), "{name}");
                } else {
                    assert_ne!(params.0[i], before.0[i], "{name}");
                    assert_eq!(states[i].step, 3, "{name}");
                }
            }
        }
    }
}
