//! Data-parallel training on MPI (issue 17), on this machine with `mpirun -np 2`: LeNet on two
//! ranks gives one process's losses step by step (to rounding), the same run twice gives the
//! same bytes, checkpoints move between 2 ranks and 1 process, a rank that dies or hangs
//! ends the job with a message within the timeout and the run resumes, and ranks started with
//! other flags are refused. Needs OpenMPI (`.ci/run` installs it; see the README's set-up).

use super::*;

/// `netc ARGS` with `envs` set.
fn netc_env(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs")
}

/// The loss of every step of a run's metrics.
fn step_losses(dir: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("step,"))
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect()
}

fn lenet(out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "train",
        "examples/lenet.net",
        "--threads",
        "1",
        "--lr",
        "0.01",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

fn run(args: &[String], envs: &[(&str, &str)]) -> (bool, String, std::time::Duration) {
    let start = std::time::Instant::now();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netc_env(&refs, envs);
    let log = text(&out.stdout) + &text(&out.stderr);
    (out.status.success(), log, start.elapsed())
}

#[test]
fn two_ranks_train_as_one_process_and_survive_faults() {
    let has_mpirun = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_mpirun,
        "mpirun is missing: install OpenMPI (Debian: apt install openmpi-bin libopenmpi-dev libclang-dev), as .ci/run does"
    );
    let (one, two, again) = (tmp("dist-one"), tmp("dist-two"), tmp("dist-again"));

    // One process, then two ranks, at a rate where rounding does not soon grow into another
    // trajectory (at lr 0.05, LeNet's runs part after about 75 steps).
    let (ok, log, _) = run(&lenet(&one, &["--epochs", "2"]), &[]);
    assert!(ok, "{log}");
    let (ok, log, _) = run(&lenet(&two, &["--epochs", "1", "--ranks", "2"]), &[]);
    assert!(ok, "{log}");
    assert!(log.contains("batch 64 over 2 ranks"), "{log}");
    // Rank 0 speaks for both.
    assert_eq!(log.matches("epoch 1/1: train loss").count(), 1, "{log}");
    let (a, b) = (step_losses(&one), step_losses(&two));
    assert_eq!((a.len(), b.len()), (280, 140));
    let worst = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| ((p - q) / p).abs())
            .fold(0.0, f64::max)
    };
    let epoch1 = worst(&a[..140], &b);
    assert!(
        epoch1 <= 1e-4,
        "per-step losses differ by {epoch1:e} relative"
    );
    eprintln!("2 ranks against 1 process, one epoch of LeNet: per-step loss within {epoch1:.1e}");

    // 2 ranks resume their own checkpoint, and the run is the one they make without a stop,
    // byte for byte (a fixed number of ranks sums the same way every time).
    let (ok, log, _) = run(
        &lenet(&two, &["--epochs", "2", "--ranks", "2", "--resume"]),
        &[],
    );
    assert!(ok && log.contains("epoch 2/2: train loss"), "{log}");
    let (ok, log, _) = run(&lenet(&again, &["--epochs", "2", "--ranks", "2"]), &[]);
    assert!(ok, "{log}");
    assert_eq!(metrics_rows(&two), metrics_rows(&again));
    let ck = "checkpoints/lenet-epoch0002.safetensors";
    assert_eq!(checkpoint(&two.join(ck)).0, checkpoint(&again.join(ck)).0);

    // 2 ranks' checkpoint resumed by one process, and one process's by 2 ranks: the second
    // epoch follows one process's (its first 60 steps; further on, a near tie in a max pool
    // can flip and the runs part, as any change of rounding can make them).
    let first = "checkpoints/lenet-epoch0001.safetensors";
    for (from, ranks, name) in [(&two, "1", "dist-2to1"), (&one, "2", "dist-1to2")] {
        let dir = tmp(name);
        let resume = from.join(first);
        let extra = [
            "--epochs",
            "2",
            "--ranks",
            ranks,
            "--resume",
            resume.to_str().unwrap(),
        ];
        let (ok, log, _) = run(&lenet(&dir, &extra), &[]);
        assert!(ok && log.contains("epoch 2/2: train loss"), "{log}");
        let c = step_losses(&dir);
        let w = worst(&a[140..200], &c[..60]);
        assert!(w <= 1e-4, "{name}: the resumed epoch differs by {w:e}");
    }

    // Rank 1 dies in epoch 2 (step 150 of 280): the job ends with a message, then resumes
    // from epoch 1's checkpoint.
    let died = tmp("dist-died");
    let (ok, log, took) = run(
        &lenet(&died, &["--epochs", "2", "--ranks", "2"]),
        &[("NETC_FAULT", "1:150:die")],
    );
    assert!(!ok, "{log}");
    assert!(log.contains("process rank 1"), "no word of rank 1: {log}");
    assert!(
        log.contains("`--resume` continues from the run's last checkpoint"),
        "{log}"
    );
    assert!(took.as_secs() < 120, "took {took:?}");
    assert!(died.join(first).exists(), "{log}");
    let (ok, log, _) = run(
        &lenet(&died, &["--epochs", "2", "--ranks", "2", "--resume"]),
        &[],
    );
    assert!(ok && log.contains("epoch 2/2: train loss"), "{log}");

    // Rank 1 hangs: rank 0 gives up after --timeout and says why.
    let hung = tmp("dist-hung");
    let (ok, log, took) = run(
        &lenet(&hung, &["--epochs", "1", "--ranks", "2", "--timeout", "3"]),
        &[("NETC_FAULT", "1:5:hang")],
    );
    assert!(!ok, "{log}");
    assert!(
        log.contains("no word from the other ranks for 3 s"),
        "{log}"
    );
    assert!(took.as_secs() < 60, "took {took:?}");

    // Ranks started with other flags are refused before training.
    let krate = tmp("dist-crate");
    let out = netc(&[
        "build",
        "examples/lenet.net",
        "--distributed",
        "-o",
        krate.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exe = krate.join("lenet-train");
    let exe = exe.to_str().unwrap();
    let odd = tmp("dist-odd");
    let o = odd.to_str().unwrap();
    let out = Command::new("mpirun")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--oversubscribe",
            "-np",
            "1",
            exe,
            "--distributed",
            "--out",
            o,
        ])
        .args([
            "--lr",
            "0.01",
            ":",
            "-np",
            "1",
            exe,
            "--distributed",
            "--out",
            o,
        ])
        .args(["--lr", "0.02"])
        .output()
        .unwrap();
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("the ranks do not agree on the settings"),
        "{log}"
    );
    assert!(!odd.join(first).exists());
}
