//! `netc train`: LeNet learns the bundled digits end to end, bad flags and data are refused
//! with the reason and exit status 2, and networks the trainer cannot take are named.

mod common;

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

/// Ctrl-C (SIGINT to netc's process group, as a terminal sends it) writes a checkpoint in the
/// middle of an epoch and exits with 130; resuming from it ends exactly where a run without
/// the interruption does.
#[test]
fn ctrl_c_checkpoints_mid_epoch_and_resumes_bit_for_bit() {
    use std::os::unix::process::CommandExt;
    let (a, b) = (tmp("uninterrupted"), tmp("interrupted"));
    let args = |dir: &std::path::Path| -> Vec<String> {
        [
            "train",
            "examples/lenet.net",
            "--epochs",
            "4",
            "--batch",
            "8",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--checkpoint-dir".into(), dir.display().to_string()])
        .chain(["--out".into(), dir.display().to_string()])
        .chain([
            "--metrics".into(),
            dir.join("metrics.csv").display().to_string(),
        ])
        .collect()
    };
    let straight = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args(&a))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(straight.status.success(), "{}", text(&straight.stderr));
    let child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args(&b))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Once the first epoch's checkpoint exists, the run is inside a later epoch.
    let first = b.join("lenet-epoch0001.safetensors");
    let t = std::time::Instant::now();
    while !first.exists() && t.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = text(&out.stderr);
    if out.status.code() == Some(130) {
        // Almost always inside a step of epoch 2; rarely between epochs, at a boundary.
        let mid_epoch = log.contains("lenet: interrupted in epoch ");
        assert!(
            mid_epoch || log.contains("lenet: interrupted after epoch "),
            "{log}"
        );
        // One numbering: the message, the file's name and the resume's line agree.
        let mut said = String::new();
        if mid_epoch {
            // "interrupted in epoch E after step K; checkpoint .../lenet-epochEEEE-stepKKKKKK"
            let at: Vec<usize> = log
                .split("interrupted in epoch ")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split(" after step ")
                .map(|n| n.parse().unwrap())
                .collect();
            let name = format!("lenet-epoch{:04}-step{:06}.safetensors", at[0], at[1]);
            assert!(b.join(&name).exists(), "{name}: {log}");
            assert!(log.contains(&name), "{name}: {log}");
            said = format!("(in epoch {} after step {})", at[0], at[1]);
            // Its steps were batches of 8: another batch size would skip other images.
            let mut other: Vec<String> = args(&b)
                .into_iter()
                .map(|a| if a == "8" { "16".into() } else { a })
                .collect();
            other.push("--resume".into());
            let out = Command::new(env!("CARGO_BIN_EXE_netc"))
                .args(&other)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("--batch 16 (the run has 8)"),
                "{}",
                text(&out.stderr)
            );
        }
        let mut resume = args(&b);
        resume.push("--resume".into());
        // Not quiet: the line that says where the run resumes is the point.
        resume.retain(|a| a != "--quiet");
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(&resume)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        if mid_epoch {
            let both = text(&out.stderr) + &text(&out.stdout);
            assert!(both.contains(&said), "{said}: {both}");
        }
    } else {
        // The run ended before the signal came: nothing to resume, the results still agree.
        assert!(out.status.success(), "{log}");
    }
    let name = "lenet-epoch0004.safetensors";
    assert_eq!(checkpoint(&a.join(name)), checkpoint(&b.join(name)));
    // The metrics agree too, the interrupted epoch's training loss and accuracy included
    // (its sums before the interruption are in the checkpoint); only speeds differ.
    assert_eq!(metrics_rows(&a), metrics_rows(&b));
}

/// A change to a checkpoint's metadata and tensors (name, shape, bytes).
type Edit = dyn FnOnce(
    &mut std::collections::HashMap<String, String>,
    &mut Vec<(String, Vec<usize>, Vec<u8>)>,
);

/// A checkpoint rewritten with `edit` applied to its metadata and tensors.
fn tampered(
    from: &std::path::Path,
    to: &std::path::Path,
    edit: impl FnOnce(
        &mut std::collections::HashMap<String, String>,
        &mut Vec<(String, Vec<usize>, Vec<u8>)>,
    ),
) {
    let bytes = std::fs::read(from).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut meta, &mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, s.clone(), b);
            (n.clone(), v.unwrap())
        })
        .collect();
    std::fs::write(to, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

/// Issue 12's runs, checkpoints and resume: a run folder is locked while in use and not
/// overwritten by a fresh run; training survives a closed pipe and a chart that cannot be
/// written; `--resume` picks the newest valid checkpoint of the network, keeps the run's
/// settings, refuses tampered checkpoints, and says when there is nothing to train.
#[test]
fn hostile_checkpoints_and_run_folders() {
    use std::process::Stdio;
    let dir = tmp("hostile");
    let out_arg = dir.to_str().unwrap().to_string();
    let lenet = |extra: &[&str]| {
        let mut args = vec!["train", "examples/lenet.net", "--data", "synthetic:4000"];
        args.extend_from_slice(extra);
        netc(&args)
    };
    // A chart in the way (a folder where loss.svg goes) is a warning; the checkpoint is kept.
    std::fs::create_dir_all(dir.join("plots/loss.svg")).unwrap();
    // A folder another trainer holds (here this test, which locks the checkpoints' lock
    // file as a trainer does) is refused.
    let ck_dir = dir.join("checkpoints");
    std::fs::create_dir_all(&ck_dir).unwrap();
    let held = std::fs::File::create(ck_dir.join(".netc-train.lock")).unwrap();
    held.try_lock().unwrap();
    let second = lenet(&["--epochs", "1", "--out", &out_arg]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("is in use by another trainer"),
        "{}",
        text(&second.stderr)
    );
    drop(held);
    // Both pipes closed at once: the run must not die of it (it did, with status 101).
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "train",
            "examples/lenet.net",
            "--data",
            "synthetic:4000",
            "--epochs",
            "3",
            "--batch",
            "8",
            "--seed",
            "7",
            "--lr",
            "0.02",
            "--out",
            &out_arg,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "a closed pipe ended the run: {status:?}");
    let ck = dir.join("checkpoints");
    for e in 1..=3 {
        assert!(ck.join(format!("lenet-epoch000{e}.safetensors")).exists());
    }
    assert!(dir.join("plots/accuracy.svg").exists());
    assert!(std::fs::read_dir(dir.join("plots")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));

    // A fresh run into the folder would overwrite the old run's checkpoints: refused.
    let fresh = lenet(&["--epochs", "1", "--out", &out_arg]);
    assert_eq!(fresh.status.code(), Some(2));
    assert!(
        text(&fresh.stderr).contains("holds the checkpoints of an earlier run"),
        "{}",
        text(&fresh.stderr)
    );
    // A folder for charts under a file: refused before the first step.
    let blocked = dir.join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let plot = blocked.join("plots");
    let out = lenet(&[
        "--epochs",
        "1",
        "--out",
        tmp("blocked").to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("file/plots: cannot create: "),
        "{}",
        text(&out.stderr)
    );

    // Nothing left to train is said.
    let done = lenet(&["--out", &out_arg, "--resume"]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stderr).contains("nothing to train"),
        "{}",
        text(&done.stderr)
    );

    // The newest checkpoint is corrupt, another network's sits beside it, and an unrelated
    // file has a checkpoint's name: --resume takes epoch 3 and says what it skipped.
    let newest = ck.join("lenet-epoch0004.safetensors");
    std::fs::write(&newest, b"truncated").unwrap();
    tampered(
        &ck.join("lenet-epoch0001.safetensors"),
        &ck.join("other-epoch0009.safetensors"),
        |m, _| {
            m.insert("hash".into(), "0123456789abcdef".into());
        },
    );
    std::fs::write(ck.join("notes-epoch0010.safetensors"), b"{}").unwrap();
    // Resumed bare, the run keeps its seed and rate; a flag that would change them is refused.
    let out = lenet(&[
        "--out", &out_arg, "--resume", "--epochs", "4", "--batch", "8",
    ]);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("resuming from") && log.contains("lenet-epoch0003"),
        "{log}"
    );
    for skipped in ["notes-epoch0010", "other-epoch0009", "lenet-epoch0004"] {
        assert!(
            log.contains(&format!("skipped {}", ck.join(skipped).display())),
            "{skipped}: {log}"
        );
    }
    assert!(log.contains("sgd(lr=0.02"), "{log}");
    let (_, meta) = checkpoint(&ck.join("lenet-epoch0004.safetensors"));
    assert!(
        meta.contains(&("settings.seed".into(), "7".into())),
        "{meta:?}"
    );
    let out = lenet(&[
        "--out", &out_arg, "--resume", "--epochs", "5", "--lr", "0.05",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("(the run has sgd(lr=0.02"),
        "{}",
        text(&out.stderr)
    );

    // Tampered metadata and tensors are refused with what is wrong.
    let good = ck.join("lenet-epoch0004.safetensors");
    let bad = dir.join("bad.safetensors");
    let cases: Vec<(&str, Box<Edit>)> = vec![
        (
            "`epoch` is 18446744073709551615, past any run",
            Box::new(|m, _| {
                m.insert("epoch".into(), u64::MAX.to_string());
            }),
        ),
        (
            "`epoch_step` 9999 is past the end of an epoch",
            Box::new(|m, _| {
                m.insert("epoch_step".into(), "9999".into());
                m.insert("epoch_batch".into(), "8".into());
                m.insert("epoch_images".into(), "3600".into());
            }),
        ),
        (
            "no tensor `optimizer.m.c1.0.weight`",
            Box::new(|_, t| {
                t.retain(|(n, _, _)| n != "optimizer.m.c1.0.weight");
            }),
        ),
        (
            "`c3.0.bias` holds NaN at index 0",
            Box::new(|_, t| {
                let b = &mut t.iter_mut().find(|(n, _, _)| n == "c3.0.bias").unwrap().2;
                b[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
        ),
    ];
    for (want, edit) in cases {
        tampered(&good, &bad, edit);
        let out = lenet(&[
            "--out",
            &out_arg,
            "--resume",
            bad.to_str().unwrap(),
            "--epochs",
            "6",
        ]);
        assert_eq!(out.status.code(), Some(2), "{want}");
        assert!(
            text(&out.stderr).contains(want),
            "{want}: {}",
            text(&out.stderr)
        );
    }
    // --overwrite starts afresh, deleting the old checkpoints only.
    let out = lenet(&["--out", &out_arg, "--epochs", "1", "--overwrite"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!ck.join("lenet-epoch0004.safetensors").exists());
    assert!(ck.join("lenet-epoch0001.safetensors").exists());
}
