//! `netc train`: LeNet learns the bundled digits end to end, bad flags and data are refused
//! with the reason and exit status 2, and networks the trainer cannot take are named.

#[path = "../common/mod.rs"]
mod common;
mod ctrl_c;
mod distributed;
mod dropout;
mod faults;
mod finetune;

use common::*;
use std::process::Command;

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
    let dir = tmp("run");
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--epochs",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let log = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "{log}");
    // Results on stdout (so that `> log` keeps them), progress and notes on stderr; the run
    // ends with where its files are.
    let results = text(&out.stdout);
    assert!(
        results.contains("top-1") && !text(&out.stderr).contains("top-1"),
        "{log}"
    );
    assert!(
        results.trim_end().ends_with(&format!(
            "lenet: checkpoints in {}, metrics in {}, charts in {}",
            dir.join("checkpoints").display(),
            dir.join("metrics.csv").display(),
            dir.join("plots").display()
        )),
        "{results}"
    );
    // The run's files: checkpoints, metrics and charts, under --out (runs/lenet by default).
    for file in [
        "checkpoints/lenet-epoch0003.safetensors",
        "metrics.csv",
        "plots/loss.svg",
        "plots/accuracy.svg",
    ] {
        assert!(dir.join(file).exists(), "{file}: {log}");
    }
    assert!(
        log.contains("lenet: 9000 training and 1000 validation images, batch 64, 3 epochs, sgd(lr=0.05, momentum=0.9"),
        "{log}"
    );
    let acc = top1(&log);
    assert_eq!(acc.len(), 3, "{log}");
    assert!(acc[2] >= 95.0, "validation top-1 {acc:?}\n{log}");

    let quiet = tmp("quiet");
    let again = netc(&[
        "train",
        "examples/lenet.net",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        quiet.to_str().unwrap(),
    ]);
    assert!(again.status.success());
    assert_eq!(text(&again.stderr), "", "--quiet prints nothing");
    assert_eq!(text(&again.stdout), "", "--quiet prints nothing");

    for (args, want) in [
        (&["--data", "mnist:x"][..], "unknown data source `mnist:x`"),
        (
            &["--data", "idx:no/such/folder"][..],
            "cannot read the folder",
        ),
        (&["--batch", "0"][..], "--batch must be at least 1"),
        // It exited quietly, having written nothing.
        (&["--epochs", "0"][..], "--epochs must be at least 1"),
        // It reported a shape mismatch.
        (
            &["--data", "cifar10:/nonexistent"][..],
            "/nonexistent: no such folder",
        ),
        // It panicked (10,000) or hung (100,000) starting the thread pool.
        (
            &["--threads", "10000"][..],
            "--threads 10000: 10000 threads are more than",
        ),
        (
            &["--threads", "100000"][..],
            "--threads 100000: 100000 threads are more than",
        ),
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
        // A folder of its own: the default, runs/lenet, may hold the README command's run.
        let bad = tmp("bad-flags");
        let mut all = vec![
            "train",
            "examples/lenet.net",
            "--out",
            bad.to_str().unwrap(),
        ];
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
        "--out",
        tmp("adamw").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("adamw(lr=0.001"),
        "{}",
        text(&out.stderr)
    );
    // Synthetic data says what it is: noise, from which nothing is learned.
    assert!(
        text(&out.stderr).contains("nothing can be learned from them"),
        "{}",
        text(&out.stderr)
    );
}

/// A network without labels trains on its loss alone: the autoencoder learns to rebuild the
/// digits, its summaries and metrics carry no accuracy, and it gets no accuracy chart.
#[test]
fn the_autoencoder_trains_on_its_loss() {
    let dir = tmp("autoencoder");
    let out = netc(&[
        "train",
        "examples/autoencoder.net",
        "--epochs",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let log = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "{log}");
    let val: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split("validation loss ").nth(1))
        .map(|rest| rest.split(';').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(val.len(), 2, "{log}");
    // Predicting every pixel's mean gives about 0.1 on MNIST; a trained autoencoder does far
    // better, and better in the second epoch than in the first.
    assert!(
        val[1] < val[0] && val[1] < 0.02,
        "validation losses {val:?}\n{log}"
    );
    assert!(!log.contains("accuracy") && !log.contains("top-1"), "{log}");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let last = metrics.lines().last().unwrap();
    let cols: Vec<&str> = last.split(',').collect();
    assert_eq!((cols[0], cols[5], cols[7]), ("epoch", "", ""), "{last}");
    assert!(dir.join("plots/loss.svg").exists());
    assert!(!dir.join("plots/accuracy.svg").exists());
    assert!(dir
        .join("checkpoints/autoencoder-epoch0002.safetensors")
        .exists());
}

#[test]
fn networks_the_trainer_cannot_take_are_named() {
    let dir = tmp("unfit");
    std::fs::create_dir_all(&dir).unwrap();
    for (text_, want) in [
        (
            "network pair(a: [1, 8, 8], b: [1, 8, 8]) {\n    d = add(a, b) -> flatten -> linear(4);\n    loss mse(d, d);\n    output d;\n}\n",
            "`pair` has 2 tensor inputs",
        ),
        (
            "network two(x: [1, 8, 8], y: class(3), z: class(3)) {\n    s = x -> flatten -> linear(3);\n    loss ce(s, y);\n    loss ce(s, z);\n    output s;\n}\n",
            "`two` has 2 `class(N)` labels",
        ),
        (
            "network vec(x: [16], y: class(3)) {\n    s = x -> linear(3);\n    loss ce(s, y);\n    output s;\n}\n",
            "`vec` has an input that is not an image",
        ),
    ] {
        let file = dir.join("net.net");
        std::fs::write(&file, text_).unwrap();
        let out = netc(&["train", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}

/// A checkpoint's tensors (name, bytes) and metadata (key, value), sorted.
type Contents = (Vec<(String, Vec<u8>)>, Vec<(String, String)>);

/// The tensors and metadata of a checkpoint (the header's order is not fixed: safetensors
/// writes its metadata from a hash map).
fn checkpoint(path: &std::path::Path) -> Contents {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    tensors.sort();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: Vec<(String, String)> = meta.metadata().clone().unwrap().into_iter().collect();
    meta.sort();
    (tensors, meta)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("netc-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The rows of `DIR/metrics.csv` without their measured speed (column 8), which is all
/// that may differ between two runs of the same training.
fn metrics_rows(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut cols: Vec<&str> = l.split(',').collect();
            cols.remove(8);
            cols.join(",")
        })
        .collect()
}

/// Two epochs straight equal one epoch, a checkpoint, a resume and one more, bitwise; one
/// thread equals two; another network's checkpoint, a corrupt one and a diverging run are
/// refused with the reason.
#[test]
fn checkpoints_resume_bit_for_bit_and_threads_do_not_matter() {
    let (a, b) = (tmp("straight"), tmp("resumed"));
    let lenet = |dir: &std::path::Path, extra: &[&str]| {
        let metrics = dir.join("metrics.csv");
        let mut args = vec![
            "train",
            "examples/lenet.net",
            "--checkpoint-dir",
            dir.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = netc(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stderr) + &text(&out.stdout)
    };
    lenet(&a, &["--epochs", "2", "--quiet", "--threads", "2"]);
    lenet(&b, &["--epochs", "1", "--quiet", "--threads", "1"]);
    let log = lenet(&b, &["--epochs", "2", "--resume"]);
    assert!(
        log.contains("resuming from") && log.contains("(epoch 1 done)"),
        "{log}"
    );
    assert!(
        !log.contains("epoch 1/2"),
        "the first epoch is not run again: {log}"
    );
    let name = "lenet-epoch0002.safetensors";
    assert_eq!(checkpoint(&a.join(name)), checkpoint(&b.join(name)));
    // The resumed run's metrics keep the first epoch's rows: the same file as the straight
    // run's, but for the measured speed.
    let (ra, rb) = (metrics_rows(&a), metrics_rows(&b));
    assert!(ra.iter().filter(|r| r.starts_with("epoch,")).count() == 2);
    assert_eq!(ra, rb);
    // Resumed with other columns (--grad-norms), the old file is set aside, not lost.
    let log = lenet(&b, &["--epochs", "3", "--resume", "--grad-norms"]);
    assert!(log.contains("kept as"), "{log}");
    let aside = b.join("metrics.old.csv");
    let old = std::fs::read_to_string(&aside).unwrap();
    assert_eq!(old.lines().count(), ra.len(), "{old}");
    assert!(old.starts_with("kind,epoch,step,lr,loss,"));
    let new = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    assert!(new
        .lines()
        .next()
        .unwrap()
        .contains(",grad_norm:c1.0.weight"));
    std::fs::remove_file(aside).unwrap();
    // Momentum buffers are saved, under names PyTorch ignores when loading by name.
    let (tensors, meta) = checkpoint(&a.join(name));
    assert!(tensors.iter().any(|(n, _)| n == "optimizer.m.c1.0.weight"));
    assert!(tensors.iter().any(|(n, _)| n == "c1.0.weight"));
    assert!(meta.contains(&("epoch".into(), "2".into())));

    // --eval scores a checkpoint: the same top-1 as the epoch summary that wrote it.
    let straight = lenet(
        &b,
        &["--epochs", "2", "--resume", b.join(name).to_str().unwrap()],
    );
    assert!(
        !straight.contains("epoch 2/2"),
        "nothing left to train: {straight}"
    );
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--eval",
        a.join(name).to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let scores = text(&out.stdout);
    assert!(
        scores.starts_with("validation: 1000 images, loss "),
        "{scores}"
    );
    assert!(scores.contains(", top-5 "), "{scores}");
    let top1: f64 = scores
        .split("top-1 ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(top1 > 90.0, "{scores}");

    // Another network's checkpoint: the same file with another hash.
    let bytes = std::fs::read(a.join(name)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let hash = meta.metadata().as_ref().unwrap()["hash"].clone();
    let mut other = bytes.clone();
    let at = other
        .windows(hash.len())
        .position(|w| w == hash.as_bytes())
        .unwrap();
    other[at..at + hash.len()].copy_from_slice(b"0123456789abcdef");
    let forged = a.join("forged.safetensors");
    std::fs::write(&forged, &other).unwrap();
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--resume",
        forged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("a checkpoint of network `lenet` (hash 0123456789abcdef), not of `lenet`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&forged, &bytes[..bytes.len() / 2]).unwrap();
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--resume",
        forged.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("not a valid netc checkpoint"),
        "{}",
        text(&out.stderr)
    );

    // A learning rate that makes the loss NaN in the second epoch stops training, names the
    // layer and points at the first epoch's checkpoint.
    let diverged = tmp("diverged");
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--epochs",
        "2",
        "--schedule",
        "step:1:1e12",
        "--out",
        diverged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("the loss is NaN, first produced by `"),
        "{err}"
    );
    assert!(
        err.contains("the last good checkpoint is")
            && err.contains("lenet-epoch0001.safetensors")
            && err.contains("lower --lr"),
        "{err}"
    );
}

/// `--metrics`, `--grad-norms` and `--plot`: a CSV row per step and per epoch with a gradient
/// norm per layer, and three SVG charts.
#[test]
fn metrics_gradient_norms_and_plots_are_written() {
    let dir = tmp("plots");
    let csv = dir.join("m.csv");
    let plots = dir.join("plots");
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--data",
        "synthetic:640",
        "--epochs",
        "2",
        "--grad-norms",
        "--metrics",
        csv.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
        "--checkpoint-dir",
        dir.join("ck").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    let header = rows[0];
    assert!(header.ends_with(",grad_norm:c1.0.weight,grad_norm:c3.0.weight,grad_norm:f5.1.weight,grad_norm:f6.0.weight,grad_norm:logits.weight"), "{header}");
    let width = header.split(',').count();
    assert!(
        rows.iter().all(|r| r.split(',').count() == width),
        "{table}"
    );
    // 576 training images in batches of 64: 9 steps an epoch, then the epoch's row.
    assert_eq!(rows.iter().filter(|r| r.starts_with("step,")).count(), 18);
    assert_eq!(rows.iter().filter(|r| r.starts_with("epoch,")).count(), 2);
    let norm: f64 = rows[1].split(',').nth(9).unwrap().parse().unwrap();
    assert!(norm > 0.0 && norm.is_finite(), "{}", rows[1]);
    for (chart, label) in [
        ("loss.svg", "validation"),
        ("accuracy.svg", "training"),
        ("grad_norms.svg", "c3.0.weight"),
    ] {
        let svg = std::fs::read_to_string(plots.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{chart}"
        );
        assert!(svg.contains(label), "{chart} names {label}");
    }
}
