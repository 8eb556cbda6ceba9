//! `netc train`: LeNet learns the bundled digits end to end, bad flags and data are refused
//! with the reason and exit status 2, and networks the trainer cannot take are named.

use std::process::{Command, Output};

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The validation top-1 of every epoch summary, in percent.
fn top1(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split("top-1 ").nth(1))
        .map(|rest| rest.split('%').next().unwrap().parse().unwrap())
        .collect()
}

/// The end-to-end check: real digits, three epochs, at least 95% on the held-out
/// tenth. One test runs every case so that the trainer is built once.
#[test]
fn lenet_learns_the_bundled_digits_and_bad_input_is_refused() {
    let out = netc(&["train", "examples/lenet.net", "--epochs", "3"]);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("lenet: 9000 training and 1000 validation images, batch 64, 3 epochs, sgd(lr=0.05, momentum=0.9"),
        "{log}"
    );
    let acc = top1(&log);
    assert_eq!(acc.len(), 3, "{log}");
    assert!(acc[2] >= 95.0, "validation top-1 {acc:?}\n{log}");

    let again = text(&netc(&["train", "examples/lenet.net", "--epochs", "1", "--quiet"]).stderr);
    assert_eq!(again, "", "--quiet prints nothing");

    for (args, want) in [
        (&["--data", "mnist:x"][..], "unknown data source `mnist:x`"),
        (
            &["--data", "idx:no/such/folder"][..],
            "cannot read the folder",
        ),
        (&["--batch", "0"][..], "--batch must be at least 1"),
        (
            &["--val-split", "1.5"][..],
            "a validation split of 1.5 is not in [0, 1)",
        ),
        (&["--optimizer", "lion"][..], "unknown optimizer `lion`"),
        (
            &["--optimizer", "adam", "--momentum", "0.5"][..],
            "--momentum is SGD's",
        ),
        (
            &["--lr", "fast"][..],
            "invalid value 'fast' for '--lr <LR>'",
        ),
        (
            &["--data", "synthetic:10", "--batch", "64"][..],
            "fewer than one batch of 64",
        ),
    ] {
        let mut all = vec!["train", "examples/lenet.net"];
        all.extend_from_slice(args);
        let out = netc(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Adam from the flags, on synthetic data: it runs.
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--data",
        "synthetic:256",
        "--optimizer",
        "adamw",
        "--lr",
        "0.001",
        "--epochs",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("adamw(lr=0.001"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn networks_the_trainer_cannot_take_are_named() {
    let out = netc(&["train", "examples/autoencoder.net"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`autoencoder` has 0 `class(N)` labels"),
        "{err}"
    );
}
