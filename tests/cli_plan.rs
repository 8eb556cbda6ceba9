//! The `netc` command line on what it plans and generates: `check --plan` (fusion, memory,
//! the schedules, the conv algorithms, the layers on one thread), `--skip-pass` and
//! `--conv-algo`, `graph --after`, and
//! `bench` of the runtime's kernels and of a network. The rest of the command line is
//! `tests/cli.rs`.

mod common;

use common::*;

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

    // A depthwise conv: its MACs are a sixteenth of the dense conv's.
    let args = ["bench", "conv", "2", "16", "7", "7", "16", "3", "1", "1"];
    let depthwise = netc(&[&args[..], &["--groups", "16", "--threads", "1"]].concat());
    assert!(depthwise.status.success(), "{}", text(&depthwise.stderr));
    let table = text(&depthwise.stdout);
    assert!(
        table.contains("3×3/1 pad 1, 16 groups, on 2×16×7×7: 0.00 GMAC"),
        "{table}"
    );
    let json = netc(
        &[
            &args[..],
            &["--groups", "16", "--threads", "1", "--format", "json"],
        ]
        .concat(),
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["macs"].as_u64(), Some(2 * 16 * 49 * 9));
    let out = netc(&[&args[..], &["--groups", "3"]].concat());
    assert_eq!(out.status.code(), Some(2), "groups that divide no channels");
    assert!(text(&out.stderr).contains("--groups 3 does not divide 16"));
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
        "check",
        "examples/googlenet.net",
        "--skip-pass",
        "epilogue",
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
    assert!(
        table.contains("in place           no activation overwrites its input"),
        "{table}"
    );
    assert!(table.contains("concats            0\n"), "{table}");
    assert!(
        table.contains(" MiB if no two buffers shared memory)"),
        "{table}"
    );

    let out = netc(&["check", "examples/lenet.net", "--plan", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(2));
    // Without --plan the JSON has no plan.
    let out = netc(&["check", "examples/lenet.net", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("plan").is_none());
}

/// Issue 13 item 8: `--skip-pass` only on the commands that generate code (or plan its
/// memory: `check --plan`), with the passes listed in their help.
#[test]
fn skip_pass_is_only_where_code_is_generated() {
    for cmd in [
        &["check", "--help"][..],
        &["emit", "--help"],
        &["build", "--help"],
        &["run", "--help"],
        &["bench", "--help"],
    ] {
        let out = netc(cmd);
        let help = text(&out.stdout);
        assert!(
            help.contains("--skip-pass <NAME>") && help.contains("merge_1x1"),
            "{cmd:?}: {help}"
        );
    }
    for cmd in [
        &["graph", "examples/lenet.net", "--skip-pass", "epilogue"][..],
        &["check", "examples/lenet.net", "--skip-pass", "epilogue"],
        &["bench", "gemm", "4", "4", "4", "--skip-pass", "epilogue"],
        &["emit", "examples/lenet.net", "--skip-pass", "nope"],
    ] {
        let out = netc(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", text(&out.stderr));
    }
    let out = netc(&["graph", "--help"]);
    assert!(!text(&out.stdout).contains("--skip-pass"));
    let out = netc(&["emit", "examples/lenet.net", "--skip-pass", "epilogue"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `netc check --plan --steps` prints the schedules; `netc graph --after PASS --format text`
/// the graph after a pass.
#[test]
fn steps_and_the_graph_after_a_pass() {
    let out = netc(&["check", "examples/lenet.net", "--plan", "--steps"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for want in [
        "steps:\nforward:\n",
        "forward_train:\n",
        "backward:\n",
        "input image  writes t_image",
        "zero d_logits  writes d_logits",
        "loss ce  reads t_logits, d_logits  writes d_logits",
        "conv' c1.0  reads d_c1_0, t_c1_0, t_image",
    ] {
        assert!(table.contains(want), "`{want}` in:\n{table}");
    }
    // --steps belongs to --plan.
    let out = netc(&["check", "examples/lenet.net", "--steps"]);
    assert_eq!(out.status.code(), Some(2));

    let out = netc(&[
        "graph",
        "examples/lenet.net",
        "--after",
        "epilogue",
        "--format",
        "text",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let graph = text(&out.stdout);
    assert!(graph.contains("c1.0 conv+relu [6, 28, 28]"), "{graph}");
    assert!(!graph.contains(" relu ["), "the ReLUs are folded:\n{graph}");
    let out = netc(&["graph", "examples/lenet.net", "--after", "fold_everything"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `--conv-algo`: the cost model's choice per 3×3 stride-1 conv in `check --plan`, a pin
/// of im2col or Winograd in the plan and the generated code, and a clear error for a bad
/// value.
#[test]
fn conv_algo_chooses_or_pins_the_algorithm_of_3x3_convs() {
    let line = |out: &str, path: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(path))
            .unwrap_or_else(|| panic!("no line for {path} in:\n{out}"))
            .to_string()
    };
    let auto = netc(&["check", "examples/googlenet.net", "--plan", "--batch", "8"]);
    assert!(auto.status.success(), "{}", text(&auto.stderr));
    let auto = text(&auto.stdout);
    assert!(auto.contains("conv algorithms    10 Winograd, 49 im2col (by the cost model at batch 32; 10 of the 59 convs are 3×3 stride 1)"), "{auto}");
    assert!(line(&auto, "i3a.b2.2").ends_with("3×3/1 96→128 @28×28   winograd F4"));
    let pinned = netc(&[
        "check",
        "examples/googlenet.net",
        "--plan",
        "--conv-algo",
        "im2col",
    ]);
    let pinned = text(&pinned.stdout);
    assert!(
        pinned.contains("0 Winograd, 59 im2col (by --conv-algo im2col;"),
        "{pinned}"
    );
    assert!(line(&pinned, "i3a.b2.2").ends_with("im2col"));

    let emit = |algo: &str| {
        let out = netc(&[
            "emit",
            "examples/lecture.net",
            "--network",
            "naive",
            "--conv-algo",
            algo,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(emit("winograd").contains("rt::conv::winograd::conv2d_forward_act"));
    assert!(!emit("im2col").contains("winograd"));

    let out = netc(&["emit", "examples/lenet.net", "--conv-algo", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid value 'fast' for '--conv-algo <CONV_ALGO>'")
            && err.contains("[possible values: auto, im2col, winograd]"),
        "{err}"
    );
    let out = netc(&["graph", "examples/lenet.net", "--conv-algo", "im2col"]);
    assert_eq!(out.status.code(), Some(2), "graph generates no code");
}

/// `check --plan` counts the layer steps that run on the calling thread alone at the batch
/// (below their crossover, `plan::threads`): LeNet's small layers at its batch, every layer
/// at batch 1, only the one that never splits (c1) at a batch large enough; GoogLeNet's few
/// small layers at batch 8.
#[test]
fn check_plan_counts_the_layers_on_one_thread() {
    let threads = |file: &str, batch: &str| -> String {
        let out = netc(&["check", file, "--plan", "--batch", batch]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let table = text(&out.stdout);
        table
            .lines()
            .find(|l| l.trim_start().starts_with("threads "))
            .unwrap_or_else(|| panic!("no threads line in:\n{table}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        threads("examples/lenet.net", "64"),
        "threads            14 of 24 layer steps on one thread at batch 64 (below their \
         crossover; forward 5 of 8, backward 4 of 8, inference 5 of 8)"
    );
    assert!(threads("examples/lenet.net", "1").starts_with("threads            24 of 24 "));
    // c1 (1→6) on the direct kernels, which split over groups, is alone at any batch.
    assert!(threads("examples/lenet.net", "5000").starts_with("threads            3 of 24 "));

    let out = netc(&[
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
    let t = &v["plan"]["one_thread"];
    let count = |key: &str| t[key].as_u64().unwrap();
    // The flattens, dropouts and the like of the heads: a few of ~70 layers each way.
    for dir in ["forward", "backward", "inference"] {
        let (alone, all) = (count(dir), count(&format!("{dir}_layers")));
        assert!(alone > 0 && alone * 10 < all, "{dir}: {t}");
    }
}

/// `check --plan` says how training cuts a batch into shards: LeNet by its batch alone;
/// a network with batchnorm into a shard per thread that run together.
#[test]
fn check_plan_says_how_training_is_sharded() {
    let training = |file: &str, batch: &str| -> String {
        let out = netc(&["check", file, "--plan", "--batch", batch]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let table = text(&out.stdout);
        let at = table
            .find("  shards ")
            .unwrap_or_else(|| panic!("no shards line in:\n{table}"));
        table[at..]
            .lines()
            .nth(1)
            .expect("the training line follows")
            .trim()
            .to_string()
    };
    assert_eq!(
        training("examples/lenet.net", "64"),
        "training         4 shards at batch 64 (of 16 images or more; the same bits on any \
         thread count)"
    );
    // A shard per thread of this machine (netc's default), of 4 images or more.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = match threads.min(2) {
        1 => "training         one shard at batch 8 (the whole batch; with more threads, one \
              per thread of 4 images or more, run together: `stem.1` mixes the images)"
            .to_string(),
        n => format!(
            "training         {n} shards at batch 8, one per thread (of 4 images or more), run \
             together: `stem.1` and the others that mix the images exchange their sums"
        ),
    };
    assert_eq!(
        training("compiler/tests/fixtures/torch_shapes/resnet_mini.net", "8"),
        want
    );
}
