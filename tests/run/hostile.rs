//! `netc run` against issue 12's hostile files and paths, and issue 13's cache: weights
//! PyTorch and the trainer write, inputs without labels, an `--out` that cannot be written,
//! and generated crates kept out of the user's folder.

use super::*;

/// Issue 12's `netc run` cases: an `--out` that cannot be written (or is an input) is refused
/// before anything runs; a PyTorch `state_dict` with batchnorm (`num_batches_tracked`) and a
/// trainer checkpoint (optimizer state) load as weights; inference needs no label; a scalar
/// input is blamed on itself.
#[test]
fn hostile_paths_and_real_world_weight_files() {
    let d = dir("hostile");
    let (w, i, _) = lenet_files(&d);
    let run = |w: &Path, i: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "examples/lenet.net",
            "--weights",
            w.to_str().unwrap(),
            "--inputs",
            i.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let r = netc(&args);
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    };
    // A missing folder: refused up front, for the generated code too (which panicked).
    let missing = d.join("missing/y.safetensors");
    for extra in [&[][..], &["--interp"]] {
        let (code, err) = run(&w, &i, &missing, extra);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, err) = run(&w, &i, &w, &["--interp"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is the file the run reads"), "{err}");
    assert!(std::fs::read(&w).is_ok_and(|b| SafeTensors::deserialize(&b).is_ok()));

    // Inference without the label, by the interpreter and by the generated code.
    let bytes = std::fs::read(&i).unwrap();
    let image = SafeTensors::deserialize(&bytes).unwrap();
    let image = image.tensor("image").unwrap();
    let no_label = d.join("no_label.safetensors");
    write(
        &no_label,
        &[(
            "image".into(),
            Raw(Dtype::F32, image.shape().to_vec(), image.data().to_vec()),
        )],
    );
    let out = d.join("y.safetensors");
    for extra in [&[][..], &["--interp"]] {
        let (code, err) = run(&w, &no_label, &out, extra);
        assert_eq!(code, Some(0), "{extra:?}: {err}");
    }
    // With --grads the label is needed, and said so.
    let (code, err) = run(&w, &no_label, &out, &["--grads", "--interp"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("input `label` is missing"), "{err}");

    // A scalar image is the image's mistake, not the label's.
    let scalar = d.join("scalar.safetensors");
    write(
        &scalar,
        &[
            ("image".into(), f32s(vec![], &[1.0])),
            (
                "label".into(),
                Raw(Dtype::I64, vec![1], 3i64.to_le_bytes().to_vec()),
            ),
        ],
    );
    let (code, err) = run(&w, &scalar, &out, &["--interp"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("input `image` is a scalar"), "{err}");
    assert!(!err.contains("`label` has a batch"), "{err}");

    // A trainer checkpoint: parameters with optimizer state beside them.
    let wb = std::fs::read(&w).unwrap();
    let wf = SafeTensors::deserialize(&wb).unwrap();
    let mut tensors: Vec<(String, Raw)> = wf
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, Raw(v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    let momentum: Vec<(String, Raw)> = tensors
        .iter()
        .map(|(k, Raw(t, s, b))| (format!("optimizer.m.{k}"), Raw(*t, s.clone(), b.clone())))
        .collect();
    tensors.extend(momentum);
    let ckpt = d.join("lenet-epoch0001.safetensors");
    write(&ckpt, &tensors);
    let (code, err) = run(&ckpt, &i, &out, &["--interp"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("its optimizer state (10 tensors) is ignored"),
        "{err}"
    );

    // A PyTorch state_dict of a network with batchnorm carries `num_batches_tracked`.
    let net = d.join("bn.net");
    std::fs::write(
        &net,
        "network bn(x: [2, 4, 4]) {\n    y = x -> conv(3, k=3) as c -> batchnorm as b -> relu -> flatten;\n    output y;\n}\n",
    )
    .unwrap();
    let mut weights = vec![
        ("c.weight".to_string(), f32s(vec![3, 2, 3, 3], &[0.1; 54])),
        ("c.bias".into(), f32s(vec![3], &[0.0; 3])),
        ("b.weight".into(), f32s(vec![3], &[1.0; 3])),
        ("b.bias".into(), f32s(vec![3], &[0.0; 3])),
        ("b.running_mean".into(), f32s(vec![3], &[0.0; 3])),
        ("b.running_var".into(), f32s(vec![3], &[1.0; 3])),
        (
            "b.num_batches_tracked".into(),
            Raw(Dtype::I64, vec![], 7i64.to_le_bytes().to_vec()),
        ),
    ];
    let bw = d.join("bn_w.safetensors");
    write(&bw, &weights);
    let bx = d.join("bn_x.safetensors");
    write(&bx, &[("x".into(), f32s(vec![1, 2, 4, 4], &[0.5; 32]))]);
    let run_bn = |w: &Path| {
        let r = netc_run(net.to_str().unwrap(), w, &bx, &out, &["--interp"]);
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    };
    let (code, err) = run_bn(&bw);
    assert_eq!(code, Some(0), "{err}");
    // Not an integer scalar: an error that says what it should be.
    weights[6].1 = f32s(vec![2], &[1.0, 2.0]);
    write(&bw, &weights);
    let (code, err) = run_bn(&bw);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("expected an integer scalar"), "{err}");
}

/// Issue 13: from another folder, `netc run` built into `./target/netc-run` of the user's
/// folder. Generated crates go to the cache (`$NETC_CACHE` here), which `netc cache` names.
#[test]
fn generated_crates_go_to_the_cache_not_the_users_folder() {
    let d = dir("elsewhere");
    let (w, i, _) = lenet_files(&d);
    let cache = d.join("cache");
    let user = d.join("user");
    std::fs::create_dir_all(&user).unwrap();
    let lenet = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lenet.net");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "run",
            lenet.to_str().unwrap(),
            "--weights",
            w.to_str().unwrap(),
            "--inputs",
            i.to_str().unwrap(),
            "--out",
            "y.safetensors",
        ])
        .current_dir(&user)
        .env("NETC_CACHE", &cache)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut entries: Vec<String> = std::fs::read_dir(&user)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["y.safetensors"],
        "only the output in the user's folder"
    );
    assert_eq!(std::fs::read_dir(cache.join("run")).unwrap().count(), 1);
    let said = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("cache")
        .env("NETC_CACHE", &cache)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    assert!(
        said.starts_with(&format!("netc cache: {} (", cache.display()))
            && said.contains("1 generated crates"),
        "{said}"
    );
}
