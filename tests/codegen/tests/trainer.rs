//! The library trainer against issue 12's faults, in process: a step too large for the
//! machine is refused with the batch that fits instead of aborting in the allocator; the
//! generated `workspace_bytes` is what `Workspace::new` allocates; a non-finite loss names
//! the layer whose weights hold the NaN, not the activation that shares its buffer.

use netc::train::{Error, Network, Trainer};
use netc_codegen_tests as t;

netc::network! {
    // One 60,000-channel convolution on a 3×4096×4096 image: terabytes per image.
    network huge(image: [3, 4096, 4096], label: class(10)) {
        y = image -> conv(60000, k=3, p=1) -> global_avgpool -> flatten -> linear(10);
        loss ce(y, label);
        output y;
    }

    // A convolution whose output a sigmoid overwrites in place (as in vanishing.net).
    network sig(image: [1, 6, 6], label: class(3)) {
        h = image -> conv(4, k=3, p=1) as c -> sigmoid -> flatten -> linear(3) as fc;
        loss ce(h, label);
        output h;
    }
}

fn out(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("netc-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn refusal<N: Network>(trainer: Trainer<N>) -> String {
    match trainer.run() {
        Err(Error::Failed(e)) => e,
        Err(e) => panic!("not a refusal: {e}"),
        Ok(_) => panic!("trained"),
    }
}

#[test]
fn a_step_that_does_not_fit_is_refused_before_it_is_allocated() {
    let e = refusal(
        Trainer::<huge::Net>::new()
            .data("synthetic:1")
            .batch(1)
            .epochs(1)
            .quiet(true)
            .out(out("huge")),
    );
    assert!(e.starts_with("a training step at batch 1 needs "), "{e}");
    assert!(e.contains("does not fit even at --batch 1"), "{e}");
    // GoogLeNet at a batch no machine here holds: refused with the batch that fits.
    let e = refusal(
        Trainer::<t::inline::googlenet::Net>::new()
            .data("synthetic:1")
            .batch(1 << 20)
            .epochs(1)
            .quiet(true)
            .out(out("googlenet")),
    );
    assert!(
        e.starts_with("a training step at batch 1048576 needs "),
        "{e}"
    );
    assert!(
        e.contains("help: --batch ") && e.contains(" fits, which needs "),
        "{e}"
    );
}

#[test]
fn workspace_bytes_is_what_the_workspace_allocates() {
    for batch in [1, 3, 8] {
        assert_eq!(
            t::googlenet::workspace_bytes(batch),
            Some(t::googlenet::Workspace::new(batch).bytes())
        );
        assert_eq!(
            t::lenet::workspace_bytes(batch),
            Some(t::lenet::Workspace::new(batch).bytes())
        );
        assert_eq!(
            t::autoencoder::workspace_bytes(batch),
            Some(t::autoencoder::Workspace::new(batch).bytes())
        );
    }
    assert_eq!(t::googlenet::workspace_bytes(usize::MAX / 2), None);
    assert!(huge::workspace_bytes(1).unwrap() > 1 << 40);
}

/// The case: a NaN in a conv's weights was blamed on the sigmoid after it.
#[test]
fn a_non_finite_loss_names_the_layer_whose_weights_hold_it() {
    use sig::Net;
    let mut p = Net::params();
    for (name, _) in Net::SHAPES {
        for (k, v) in Net::param_mut(&mut p, name).unwrap().iter_mut().enumerate() {
            *v = 0.01 * (k % 7) as f32;
        }
    }
    Net::param_mut(&mut p, "c.weight").unwrap()[5] = f32::NAN;
    let mut s = Net::state();
    let mut ws = Net::workspace(2);
    let images = vec![0.5f32; 2 * 36];
    let loss = Net::forward_train(&p, &mut s, &mut ws, &images, &[0, 2]);
    assert!(loss.is_nan());
    assert_eq!(
        Net::first_non_finite(&p, &ws).as_deref(),
        Some("`c` (its parameter `c.weight`)")
    );
    // Finite weights and a NaN pixel: the input is named.
    Net::param_mut(&mut p, "c.weight").unwrap()[5] = 0.0;
    let mut images = images;
    images[3] = f32::INFINITY;
    let loss = Net::forward_train(&p, &mut s, &mut ws, &images, &[0, 2]);
    assert!(!loss.is_finite());
    assert_eq!(
        Net::first_non_finite(&p, &ws).as_deref(),
        Some("the input `image`")
    );
}

/// Issue 13: `Trainer::from_args().epochs(3)` trained 3 epochs when run with `--epochs 1`.
#[test]
fn the_command_line_wins_over_the_builder() {
    type T = Trainer<t::inline::lenet::Net>;
    let given = T::try_from_args(["lenet", "--epochs", "1", "--quiet"]).unwrap();
    let s = given.epochs(3).batch(16).settings();
    assert_eq!((s.epochs, s.batch, s.quiet), (Some(1), Some(16), true));
    // Without a command line, the builder decides.
    assert_eq!(T::new().epochs(3).settings().epochs, Some(3));
}
