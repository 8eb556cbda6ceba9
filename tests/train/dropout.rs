//! A network that drops (`tests/codegen/nets/dropout.net`: dropout and stochastic depth)
//! resumes bit for bit: each step's masks come from the run's seed and the step, so a run
//! resumed after an epoch, or after Ctrl-C in the middle of one, draws what an uninterrupted
//! run draws.

use super::*;

const NET: &str = "tests/codegen/nets/dropout.net";

/// `netc train NET --epochs EPOCHS --batch 8 --quiet --out DIR EXTRA...`.
fn args(dir: &std::path::Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    [
        "train", NET, "--epochs", epochs, "--batch", "8", "--quiet", "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .chain(extra.iter().map(|s| s.to_string()))
    .collect()
}

fn train(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netc(&args);
    let log = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "{args:?}: {log}");
    log
}

#[test]
fn a_run_that_drops_resumes_bit_for_bit() {
    use std::os::unix::process::CommandExt;
    let (a, b, c) = (
        tmp("drop-straight"),
        tmp("drop-resumed"),
        tmp("drop-interrupted"),
    );
    let last = "checkpoints/drop-epoch0003.safetensors";
    train(&args(&a, "3", &[]));

    // Resumed after an epoch.
    train(&args(&b, "1", &[]));
    train(&args(&b, "3", &["--resume"]));
    assert_eq!(checkpoint(&a.join(last)), checkpoint(&b.join(last)));
    assert_eq!(metrics_rows(&a), metrics_rows(&b));

    // Interrupted by Ctrl-C and resumed.
    let child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args(&c, "3", &[]))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Once the metrics have a row of epoch 2, the run is inside it.
    let in_epoch_2 = || {
        std::fs::read_to_string(c.join("metrics.csv"))
            .is_ok_and(|m| m.lines().any(|l| l.starts_with("step,2,")))
    };
    let t = std::time::Instant::now();
    while !in_epoch_2() && t.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = text(&out.stderr);
    if out.status.code() == Some(130) {
        // Almost always inside a step of epoch 2; rarely at its end.
        assert!(log.contains("drop: interrupted "), "{log}");
        train(&args(&c, "3", &["--resume"]));
    } else {
        // The run ended before the signal came.
        assert!(out.status.success(), "{log}");
    }
    assert_eq!(checkpoint(&a.join(last)), checkpoint(&c.join(last)));
    assert_eq!(metrics_rows(&a), metrics_rows(&c));
}
