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
    // The warnings about windows go to stderr, not into the JSON.
    assert!(text(&out.stderr).contains("window-drops"));
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
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn bench_commands_report_gflops_and_peak() {
    let out = netc(&[
        "bench",
        "gemm",
        "16",
        "24",
        "8",
        "--threads",
        "1",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v[0];
    assert_eq!(
        (r["m"].as_u64(), r["n"].as_u64(), r["k"].as_u64()),
        (Some(16), Some(24), Some(8))
    );
    assert_eq!(r["threads"], 1);
    assert!(r["gflops"].as_f64().unwrap() > 0.0 && r["peak_fraction"].as_f64().unwrap() > 0.0);

    let out = netc(&[
        "bench",
        "conv",
        "2",
        "3",
        "8",
        "8",
        "4",
        "3",
        "1",
        "1",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("conv 3→4, 3×3/1 pad 1, on 2×3×8×8") && table.contains("% peak"),
        "{table}"
    );

    let out = netc(&["bench", "conv", "2", "3", "2", "2", "4", "5", "1", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a window larger than its input is bad usage"
    );
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
    let log = text(&run.stderr);
    assert!(
        run.status.success() && log.contains("lenet: 87 training and 9 validation images"),
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

#[test]
fn bench_a_network_reports_layers_images_and_memory() {
    let out = netc(&[
        "bench",
        "examples/lenet.net",
        "--batch",
        "16",
        "--threads",
        "1",
        "--steps",
        "2",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "batch",
        "threads",
        "infer_img_s",
        "train_img_s",
        "train_gflops",
        "peak_bytes",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(
        (v["batch"].as_u64(), v["threads"].as_u64()),
        (Some(16), Some(1))
    );
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(
        layers[0]["path"], "c1.0",
        "the fused conv (its ReLU is in the epilogue)"
    );
    assert!(layers
        .iter()
        .all(|l| l["forward_ms"].as_f64().unwrap() >= 0.0));
    assert!(v["peak_bytes"].as_u64().unwrap() > 4 * 3 * 61_706);
}

#[test]
fn check_plan_reports_fusion_and_memory() {
    let out = netc(&[
        "check",
        "examples/googlenet.net",
        "--plan",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &v["plan"];
    assert_eq!(plan["batch"], 8);
    assert_eq!(plan["relus_fused"], 61);
    assert_eq!(plan["gemm_layers_before"], 64);
    // merge_1x1: each Inception block's three sibling 1×1 convs are one GEMM.
    assert_eq!(plan["gemm_layers"], 64 - 9 * 2);
    // concat_in_place: every branch writes its slice, no concat copies.
    assert_eq!(plan["concat_copied_per_sample"], 0);
    assert_eq!(plan["concat_elems_per_sample"], 1_235_584);
    assert_eq!(plan["param_bytes"], 4 * 13_378_280u64);
    let fused = plan["workspace_bytes"].as_u64().unwrap();
    let planned = plan["planned_training_bytes"].as_u64().unwrap();
    let infer = plan["planned_inference_bytes"].as_u64().unwrap();
    assert!(infer < planned && planned < fused, "{plan}");

    let out = netc(&[
        "--skip-pass",
        "epilogue",
        "check",
        "examples/googlenet.net",
        "--plan",
        "--batch",
        "8",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["relus_fused"], 0);
    assert!(v["plan"]["workspace_bytes"].as_u64().unwrap() > fused);

    let out = netc(&["check", "examples/lenet.net", "--plan", "--batch", "64"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("plan (codegen passes, batch 64)"), "{table}");
    assert!(table.contains("ReLUs fused        4 of 4"), "{table}");

    let out = netc(&["check", "examples/lenet.net", "--plan", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(2));
    // Without --plan the JSON has no plan.
    let out = netc(&["check", "examples/lenet.net", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("plan").is_none());
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
