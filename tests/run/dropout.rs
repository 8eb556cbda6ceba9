//! `netc run --grads` and dropout: without `--dropout`, dropout and stochastic depth keep
//! every value (the gradients of the network without them); with `--dropout SEED` they drop,
//! the same masks for the same seed, in the generated code and the interpreter.

use super::*;
use std::collections::BTreeMap;

/// A network with both kinds of dropping, and the same network without them (the same
/// parameters, by the same names).
const DROPS: &str = "network drops(image: [2, 6, 6], label: class(3)) {
    a = image -> conv(4, k=3, p=1) as c1 -> relu;
    r = add(a, a -> conv(4, k=3, p=1) as branch -> stochastic_depth(0.5));
    logits = r -> flatten -> linear(16) as fc -> dropout(0.5) -> linear(3) as out;
    loss ce(logits, label);
    output logits;
}
";

fn without_dropping() -> String {
    DROPS
        .replace(" -> stochastic_depth(0.5)", "")
        .replace(" -> dropout(0.5)", "")
}

/// Every tensor of a safetensors file of f32s, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, t)| {
            let data = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, data)
        })
        .collect()
}

/// Whether every tensor of `a` is within `1e-4·max|b|` of `b`'s (the tolerance of the
/// other generated-against-interpreter runs).
fn agree(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(name, x)| {
            let y = &b[name];
            let scale = y.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-4 * scale)
        })
}

#[test]
fn grads_keep_every_value_unless_dropout_gives_a_seed() {
    let d = dir("dropout");
    let (drops, plain) = (d.join("drops.net"), d.join("plain.net"));
    std::fs::write(&drops, DROPS).unwrap();
    std::fs::write(&plain, without_dropping()).unwrap();
    let param = |n: usize, k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7 + k) % 13) as f32 - 6.0) / 20.0)
            .collect()
    };
    let w = d.join("w.safetensors");
    write(
        &w,
        &[
            ("c1.weight".into(), f32s(vec![4, 2, 3, 3], &param(72, 1))),
            ("c1.bias".into(), f32s(vec![4], &param(4, 2))),
            (
                "branch.weight".into(),
                f32s(vec![4, 4, 3, 3], &param(144, 3)),
            ),
            ("branch.bias".into(), f32s(vec![4], &param(4, 4))),
            ("fc.weight".into(), f32s(vec![16, 144], &param(2304, 5))),
            ("fc.bias".into(), f32s(vec![16], &param(16, 6))),
            ("out.weight".into(), f32s(vec![3, 16], &param(48, 7))),
            ("out.bias".into(), f32s(vec![3], &param(3, 8))),
        ],
    );
    let batch = 6;
    let x: Vec<f32> = (0..batch * 72).map(|i| (i % 11) as f32 / 11.0).collect();
    let labels: Vec<u8> = (0..batch as i64)
        .flat_map(|l| (l % 3).to_le_bytes())
        .collect();
    let i = d.join("x.safetensors");
    write(
        &i,
        &[
            ("image".into(), f32s(vec![batch, 2, 6, 6], &x)),
            ("label".into(), Raw(Dtype::I64, vec![batch], labels)),
        ],
    );
    let run = |net: &Path, name: &str, extra: &[&str]| {
        let out = d.join(format!("{name}.safetensors"));
        let res = netc_run(net.to_str().unwrap(), &w, &i, &out, extra);
        assert!(res.status.success(), "{name}: {}", text(&res.stderr));
        tensors(&out)
    };

    // Without --dropout: the gradients of the network without dropping, in the generated
    // code and the interpreter.
    let want = run(&plain, "plain", &["--grads", "--interp"]);
    let kept = run(&drops, "kept", &["--grads"]);
    assert!(agree(&kept, &want), "generated, without --dropout");
    let kept_interp = run(&drops, "kept_interp", &["--grads", "--interp"]);
    assert!(agree(&kept_interp, &want), "interpreter, without --dropout");

    // With --dropout 7: other values, the same on every run, and the same masks in the
    // generated code and the interpreter.
    let seven = run(&drops, "seven", &["--grads", "--dropout", "7"]);
    assert_ne!(seven["loss"], kept["loss"]);
    assert!(!agree(&seven, &kept), "--dropout 7 drops");
    assert_eq!(run(&drops, "again", &["--grads", "--dropout", "7"]), seven);
    let seven_interp = run(
        &drops,
        "seven_interp",
        &["--grads", "--dropout", "7", "--interp"],
    );
    assert!(
        agree(&seven, &seven_interp),
        "generated and interpreter, --dropout 7"
    );
    assert_eq!(
        run(
            &drops,
            "again_interp",
            &["--grads", "--dropout", "7", "--interp"]
        ),
        seven_interp
    );
    let eight = run(&drops, "eight", &["--grads", "--dropout", "8"]);
    assert_ne!(eight["grad.fc.weight"], seven["grad.fc.weight"]);

    // Inference never drops: --dropout without --grads is a mistake.
    let out = d.join("y.safetensors");
    let res = netc_run(drops.to_str().unwrap(), &w, &i, &out, &["--dropout", "7"]);
    assert_eq!(res.status.code(), Some(2), "{}", text(&res.stderr));
    assert!(
        text(&res.stderr).contains("--grads"),
        "{}",
        text(&res.stderr)
    );
}
