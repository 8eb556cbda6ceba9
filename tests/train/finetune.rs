//! Fine-tuning (issue 16): LeNet trained on the digits, then a LeNet of another number of
//! classes started from its checkpoint with the trunk frozen. Its head, of another shape, is
//! initialized afresh; the frozen layers come through bitwise, a resumed run keeps them
//! frozen, and the flags' mistakes are refused with the reason.

use super::*;

/// The frozen layers of LeNet: everything but its head, `logits`.
const TRUNK: [&str; 4] = ["c1", "c3", "f5", "f6"];

/// The tensors of a checkpoint under the frozen layers, by name.
fn trunk(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let (tensors, _) = checkpoint(path);
    let trunk: Vec<_> = tensors
        .into_iter()
        .filter(|(n, _)| TRUNK.iter().any(|l| n.starts_with(&format!("{l}."))))
        .collect();
    assert_eq!(trunk.len(), 8, "weight and bias of 4 layers");
    trunk
}

#[test]
fn a_new_head_trains_on_a_frozen_trunk() {
    let (base, tuned) = (tmp("ft-base"), tmp("ft-tuned"));
    let out = netc(&[
        "train",
        "examples/lenet.net",
        "--epochs",
        "1",
        "--out",
        base.to_str().unwrap(),
    ]);
    let log = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "{log}");
    let before = top1(&log)[0];
    let from = base.join("checkpoints/lenet-epoch0001.safetensors");

    // The same network for 12 classes: the head `logits` is [12, 84], the file's [10, 84].
    std::fs::create_dir_all(&tuned).unwrap();
    let net = tuned.join("lenet12.net");
    let source = std::fs::read_to_string("examples/lenet.net").unwrap();
    let source = source
        .replace("network lenet(", "network lenet12(")
        .replace("const classes = 10;", "const classes = 12;");
    std::fs::write(&net, source).unwrap();
    let train_in = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            net.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = netc(&args);
        (out.status.code(), text(&out.stderr) + &text(&out.stdout))
    };
    let train = |extra: &[&str]| train_in(&tuned, extra);
    let mut args = vec!["--epochs", "1", "--init-from", from.to_str().unwrap()];
    for layer in TRUNK {
        args.extend(["--freeze", layer]);
    }
    let (code, log) = train(&args);
    assert_eq!(code, Some(0), "{log}");
    for said in [
        &format!(
            "lenet12: loaded 8 tensors from {}: 8 of 10 parameters\n",
            from.display()
        ),
        "lenet12: `logits` scores 10 classes in the file and 12 in the network: initialized afresh, as a new classifier head\n",
        "lenet12: ignored: the checkpoint's optimizer state (10 tensors); this run starts its own\n",
        "lenet12: 8 of 10 parameters frozen (60856 values): no optimizer steps or state for them\n",
    ] {
        assert!(log.contains(said), "{said}: {log}");
    }
    // One epoch of the head alone reaches the original's top-1.
    let after = top1(&log)[0];
    assert!(after >= before - 2.0, "{before}% then {after}%: {log}");
    let ck = tuned.join("checkpoints");
    let tuned_ck = ck.join("lenet12-epoch0001.safetensors");
    assert_eq!(trunk(&tuned_ck), trunk(&from));
    let (tensors, meta) = checkpoint(&tuned_ck);
    let has = |n: &str| tensors.iter().any(|(t, _)| t == n);
    assert!(has("optimizer.m.logits.weight") && !has("optimizer.m.c1.0.weight"));
    assert!(
        meta.contains(&("settings.freeze".into(), r#"["c1","c3","f5","f6"]"#.into())),
        "{meta:?}"
    );

    // Resumed bare, the run keeps its frozen set; another is refused, and so is a file.
    let (code, log) = train(&["--epochs", "2", "--resume"]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        trunk(&ck.join("lenet12-epoch0002.safetensors")),
        trunk(&from)
    );
    let (code, log) = train(&["--epochs", "3", "--resume", "--freeze", "c1"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--freeze c1 (the run has c1,c3,f5,f6)"),
        "{log}"
    );
    let (code, log) = train(&["--resume", "--init-from", from.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--init-from starts a new run"), "{log}");

    // Mistakes in the flags, each refused before anything is written.
    let other = tmp("ft-bad");
    let bad = |args: &[&str]| {
        let mut all = vec!["--init-from", from.to_str().unwrap()];
        all.extend_from_slice(args);
        train_in(&other, &all)
    };
    for (args, want) in [
        (
            &["--freeze", "c"][..],
            "--freeze c: no parameter of `lenet12` lies under `c`\n  help: its layers with parameters are c1, c3, f5, f6, logits",
        ),
        (
            &["--rename", "model."][..],
            "`model.` has no `=`\n  help: --rename takes FROM=TO",
        ),
        (
            &["--rename", "=model."][..],
            "no tensor of the file is a parameter of `lenet12`",
        ),
    ] {
        let (code, log) = bad(args);
        assert_eq!(code, Some(2), "{args:?}: {log}");
        assert!(log.contains(want), "{args:?}: {log}");
    }
    assert!(!other.join("checkpoints").exists());
}
