//! The `netc` command line, run as a user runs it: exit codes, where output goes, and the
//! JSON shape that other tools read.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file in a fresh temporary directory.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn check_googlenet_json_has_the_documented_shape() {
    let out = netc(&["check", "examples/googlenet.net", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["network"], "googlenet");
    assert_eq!(v["inputs"]["image"], serde_json::json!([3, 224, 224]));
    assert_eq!(v["inputs"]["label"], serde_json::json!({"classes": 1000}));
    assert_eq!(v["outputs"]["logits"], serde_json::json!([1000]));
    assert_eq!(v["total"]["params"], 13_378_280);
    assert_eq!(v["total"]["macs"], 1_591_044_096u64);
    assert_eq!(v["inference"]["params"], 6_998_552);
    assert_eq!(v["inference"]["macs"], 1_582_671_872u64);
    let layer = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == "i3a.b2.0")
        .unwrap();
    assert_eq!(layer["op"], "conv");
    assert_eq!(layer["output"], serde_json::json!([96, 28, 28]));
    assert_eq!(layer["params"], 18528);
    assert_eq!(layer["macs"], 14_450_688);
    assert_eq!(layer["inputs"], serde_json::json!(["stem.9"]));
    assert_eq!(layer["attrs"]["k"], serde_json::json!([1, 1]));
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "i3a")
        .unwrap();
    assert_eq!(row["output"], serde_json::json!([256, 28, 28]));
    assert_eq!(row["params"], 163_696);
    assert_eq!(row["macs"], 128_049_152);
    // GoogLeNet's windows lose only padding: nothing to warn about.
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn check_table_lists_every_network_of_a_file() {
    let out = netc(&["check", "examples/lecture.net"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("network naive(x: [192, 28, 28])"),
        "{stdout}"
    );
    assert!(stdout.contains("221,312"), "{stdout}");
    assert!(stdout.contains("network reduced"), "{stdout}");
    assert!(stdout.contains("129,248"), "{stdout}");
    let only = netc(&[
        "check",
        "examples/lecture.net",
        "--network",
        "reduced",
        "--expand",
    ]);
    assert!(only.status.success());
    let stdout = text(&only.stdout);
    assert!(
        !stdout.contains("naive") && stdout.contains("y.2"),
        "{stdout}"
    );
}

#[test]
fn invalid_file_exits_1_with_the_diagnostic_on_stderr() {
    let path = temp_file(
        "bad.net",
        "network n(x: [3, 8, 8]) {\n    y = x -> conv(8, k=3) -> linear(10);\n    output y;\n}\n",
    );
    let out = netc(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.net:2:30"), "{stderr}");
    assert!(
        stderr.contains("`linear` expects a feature vector [F], found [8, 6, 6]"),
        "{stderr}"
    );
    assert!(stderr.contains("-> flatten"), "{stderr}");
    assert!(stderr.contains("netc: 1 error"), "{stderr}");
}

#[test]
fn missing_file_and_unknown_network_are_errors() {
    let out = netc(&["check", "examples/nope.net"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read `examples/nope.net`"));
    let out = netc(&["check", "examples/lecture.net", "--network", "reduce"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did you mean `reduced`?"));
}

#[test]
fn bad_flags_exit_2() {
    let out = netc(&["check", "examples/lenet.net", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("possible values"));
    let out = netc(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn graph_dot_is_deterministic_with_clusters_and_shapes() {
    let a = netc(&["graph", "examples/googlenet.net"]);
    let b = netc(&["graph", "examples/googlenet.net"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let dot = text(&a.stdout);
    assert!(dot.starts_with("digraph \"googlenet\" {"));
    assert!(
        dot.contains("label=\"i3a: inception\""),
        "block instances are clusters"
    );
    assert!(
        dot.contains("[label=\"64×28×28 (0)\"]"),
        "edges carry shapes and ports"
    );
    assert!(dot.contains("shape=diamond"), "losses are drawn");
    assert!(
        dot.contains("style=\"rounded,dashed\""),
        "auxiliary heads are dashed"
    );
    let path = std::env::temp_dir().join(format!("netc-cli-{}-g.dot", std::process::id()));
    let out = netc(&["graph", "examples/lenet.net", "-o", path.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("digraph \"lenet\""));
}

#[test]
fn graph_of_a_file_with_two_networks_needs_a_choice() {
    let out = netc(&["graph", "examples/lecture.net"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--network"));
}

#[test]
fn graph_svg_needs_graphviz_and_says_how_to_get_it() {
    let has_dot = Command::new("dot").arg("-V").output().is_ok();
    let out = netc(&["graph", "examples/lenet.net", "--format", "svg"]);
    if has_dot {
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("<svg"));
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("apt-get install graphviz"));
    }
}

#[test]
fn every_example_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "net") {
            let out = netc(&["check", path.to_str().unwrap()]);
            // Without a warning: a warning on a correct, standard network is noise.
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn emit_and_build_a_standalone_crate() {
    let out = netc(&["emit", "examples/lenet.net"]);
    assert!(out.status.success());
    let src = text(&out.stdout);
    assert!(src.starts_with("// Network `lenet` from `examples/lenet.net`, generated by netc."));
    assert!(
        src.contains("pub fn forward_train(")
            && src.contains("/// Layer `c1.0`: conv 5×5/1 → [6, 28, 28].")
    );

    // The crate builds in release mode, in the target folder every generated crate shares
    // (so in seconds), and its binary is copied beside it: LeNet's is its trainer,
    // `lenet-train`.
    let dir = std::env::temp_dir().join(format!("netc-cli-{}-crate", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["build", "examples/lenet.net", "-o", dir.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Generated code compiles without a warning (LeNet's trainer had 5).
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    for f in ["Cargo.toml", "src/main.rs", "src/net.rs", "lenet-train"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(!dir.join("target").exists(), "no target folder of its own");
    let checkpoints = dir.join("checkpoints");
    let run = Command::new(dir.join("lenet-train"))
        .args(["--data", "synthetic:96", "--batch", "16", "--epochs", "1"])
        .arg("--checkpoint-dir")
        .arg(&checkpoints)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let log = text(&run.stderr) + &text(&run.stdout);
    assert!(
        run.status.success()
            && log.contains("lenet: 87 training and 9 validation images, batch 16, 1 epoch,"),
        "{log}"
    );
    assert!(
        checkpoints.join("lenet-epoch0001.safetensors").exists(),
        "{log}"
    );
    let help = Command::new(dir.join("lenet-train"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(text(&help.stdout).contains("--checkpoint-dir <DIR>"));
}

/// The lecture's experiment checks: three networks, the same layers, the auxiliary head and
/// the batchnorm statistics counted where they belong.
#[test]
fn the_vanishing_gradient_example_checks() {
    let out = netc(&["check", "examples/vanishing.net", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nets = v.as_array().expect("one report per network");
    let names: Vec<&str> = nets
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plain", "aux", "bn"]);
    // Convolutions 1→16, 16→16, 16→32, then five 32→32, all 3×3 with biases, and the
    // classifier on 32·7·7 features.
    let convs = [
        (1, 16),
        (16, 16),
        (16, 32),
        (32, 32),
        (32, 32),
        (32, 32),
        (32, 32),
        (32, 32),
    ];
    let plain: usize = convs.iter().map(|(i, o)| i * o * 9 + o).sum::<usize>() + 32 * 49 * 10 + 10;
    assert_eq!(nets[0]["total"]["params"], plain);
    // The auxiliary classifier (16·7·7·10 + 10) is training-only.
    assert_eq!(nets[1]["total"]["params"], plain + 7850);
    assert_eq!(nets[1]["inference"]["params"], plain);
    // Batchnorm replaces each conv's bias (o) by γ and β (2o).
    let bn = plain + convs.iter().map(|(_, o)| o).sum::<usize>();
    assert_eq!(nets[2]["total"]["params"], bn);
}

/// Issue 12 item 9: at a batch whose bytes overflow a u64, `check --plan` printed wrapped
/// numbers (a workspace smaller than its own arena) and exited 0. It is an error now.
#[test]
fn check_plan_refuses_a_batch_whose_bytes_overflow() {
    let path = temp_file(
        "big.net",
        "network big(x: [1000, 10000, 10000]) {\n    y = x -> relu -> relu;\n    output y;\n}\n",
    );
    let path = path.to_str().unwrap();
    let out = netc(&["check", path, "--plan", "--batch", "100000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "netc: big: at a batch of 100000000, the memory of network `big` does not fit in 2^64 bytes\n  help: use a smaller batch\n"
    );
    let out = netc(&["check", path, "--plan", "--batch", "10", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = |k: &str| v["plan"][k].as_u64().unwrap();
    assert!(bytes("workspace_bytes") > bytes("arena_bytes"));
}

/// Issue 12 item 25: the file named on the command line goes through the same reader as a
/// `use`: a device is refused, and a FIFO is refused without waiting for a writer.
#[cfg(unix)]
#[test]
fn check_refuses_a_device_or_a_fifo_without_waiting() {
    let out = netc(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "cannot read `/dev/zero`: not a regular file (netc reads sources from regular files only)"
        ),
        "{stderr}"
    );

    let fifo = temp_file("fifo-dir.net", "").with_file_name("pipe.net");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["check", fifo.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("`netc check FIFO` waits for a writer");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
}

/// A network that warns twice: a window that loses the last row and column of its input,
/// and a binding nothing uses.
const TWO_WARNINGS: &str = "network n(x: [3, 32, 32]) {\n    y = x -> conv(8, k=3, s=2);\n    z = x -> relu;\n    output y;\n}\n";

/// Issue 13 item 6: `--allow KIND` silences a kind of warning on every command that checks a
/// network, and an unknown kind is bad usage that lists the kinds.
#[test]
fn allow_silences_a_kind_of_warning() {
    let file = temp_file("warns.net", TWO_WARNINGS);
    let file = file.to_str().unwrap();
    let out = netc(&["check", file]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("netc::window-drops") && stderr.contains("netc::unused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("never reads the last row and column of its 32×32 input"),
        "{stderr}"
    );
    let out = netc(&["check", file, "--allow", "window-drops"]);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("window-drops") && stderr.contains("netc::unused"),
        "{stderr}"
    );
    for cmd in [
        &["check", file][..],
        &["graph", file],
        &["emit", file],
        &["build", file, "--no-build", "-o"],
    ] {
        let mut args = cmd.to_vec();
        let dir = std::env::temp_dir().join(format!("netc-cli-{}-allow", std::process::id()));
        let dir = dir.to_str().unwrap().to_string();
        if cmd[0] == "build" {
            args.push(&dir);
        }
        args.extend(["--allow", "window-drops", "--allow", "unused"]);
        let out = netc(&args);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("⚠") && !stderr.contains("netc::"),
            "{cmd:?}: {stderr}"
        );
    }
    // Errors stay.
    let bad = temp_file(
        "bad-allow.net",
        "network n(x: [3]) { y = x -> nope; output y; }\n",
    );
    let out = netc(&["check", bad.to_str().unwrap(), "--allow", "unused"]);
    assert_eq!(out.status.code(), Some(1));
    let out = netc(&["check", file, "--allow", "windows"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("duplicate, no-output, unused, window-drops"),
        "{stderr}"
    );
    // `bench gemm` checks no network: no --allow.
    let out = netc(&["bench", "gemm", "4", "4", "4", "--allow", "unused"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Issue 13 item 8: help texts say what the commands do.
#[test]
fn help_texts_match_behaviour() {
    let help = text(&netc(&["build", "--help"]).stdout);
    assert!(help.contains("NAME-train"), "{help}");
    assert!(!help.contains("runs one training step"), "{help}");
    // Every argument of `bench conv` and `bench gemm` has a text.
    for kernel in ["conv", "gemm"] {
        let help = text(&netc(&["bench", kernel, "--help"]).stdout);
        let args: Vec<&str> = help
            .split("Arguments:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(args.len() >= 3, "{help}");
        for line in args {
            let words = line.split_whitespace().count();
            assert!(words >= 2, "`{line}` has no text: {help}");
        }
    }
    let help = text(&netc(&["check", "--help"]).stdout);
    assert!(help.contains("A binding's depth"), "{help}");
}

/// Issue 13 items 8 and 11: the depth line says what it counts, in the singular for one
/// layer, and how a row's or a layer's depth differs from it.
#[test]
fn the_depth_line_says_what_it_counts() {
    let one = temp_file(
        "one.net",
        "network n(x: [3, 8, 8]) {\n    y = x -> conv(4, k=3) -> relu;\n    output y;\n}\n",
    );
    let out = netc(&["check", one.to_str().unwrap()]);
    let table = text(&out.stdout);
    assert!(
        table.contains("depth: 1 conv or linear layer on the longest path from input to output; per row, those within the row\n"),
        "{table}"
    );
    let out = netc(&["check", "examples/lenet.net", "--expand"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("depth: 5 conv and linear layers on the longest path from input to output; per layer, those from the input to it\n"),
        "{table}"
    );
}

#[test]
fn check_expand_lists_a_repeat_by_its_paths() {
    let file = temp_file(
        "repeat.net",
        "block unit(x, c, k=3) {\n    return x -> conv(c, k=k, p=k / 2) as conv -> relu;\n}\n\
         network n(x: [3, 8, 8]) {\n    y = x -> unit(4, k=1) -> repeat(2, unit, 4);\n    output y;\n}\n",
    );
    let out = netc(&["check", file.to_str().unwrap(), "--expand"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let paths: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| p.starts_with("y."))
        .collect();
    assert_eq!(
        paths,
        ["y.0.conv", "y.0.1", "y.1.conv", "y.1.1", "y.2.conv", "y.2.1"],
        "{table}"
    );
    // Without --expand, the binding's row names its stages, the repeat written out.
    let out = netc(&["check", file.to_str().unwrap()]);
    let table = text(&out.stdout);
    assert!(table.contains("unit → unit → unit"), "{table}");
}
