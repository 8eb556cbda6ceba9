//! Ctrl-C in the middle of a run: a checkpoint, exit 130, and a resume that ends where an
//! uninterrupted run does.

use super::*;

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
