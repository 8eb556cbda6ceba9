//! The trainer against issue 12's faults: locked run folders, closed pipes, charts that
//! cannot be written, the choice of checkpoint on `--resume`, a run's settings kept, and
//! tampered checkpoints refused.

use super::*;

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
