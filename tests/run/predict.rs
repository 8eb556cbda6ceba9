//! `netc predict` (issue 13): a trained network on PNG and IDX images, agreeing with
//! `netc run` on the same pixels.

use super::*;

/// Issue 13: `netc predict` classifies PNG and IDX images with trained weights, as `netc run`
/// scores the same pixels.
#[test]
fn predict_classifies_png_and_idx_images() {
    let d = dir("predict");
    let (w, i, _) = lenet_files(&d);
    let bytes = std::fs::read(&i).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let x: Vec<u8> = file
        .tensor("image")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| (f32::from_le_bytes(b.try_into().unwrap()).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let n = x.len() / 784;
    // The same pixels three ways: an IDX file, a PNG of the first, and `netc run`'s input.
    let idx = d.join("digits-idx3-ubyte");
    let mut header = vec![0u8, 0, 8, 3];
    for dim in [n as u32, 28, 28] {
        header.extend(dim.to_be_bytes());
    }
    std::fs::write(&idx, [header, x.clone()].concat()).unwrap();
    let png = d.join("first.png");
    image::GrayImage::from_raw(28, 28, x[..784].to_vec())
        .unwrap()
        .save(&png)
        .unwrap();
    let floats: Vec<f32> = x.iter().map(|&b| b as f32 / 255.0).collect();
    let inputs = d.join("quantized.safetensors");
    write(
        &inputs,
        &[("image".into(), f32s(vec![n, 1, 28, 28], &floats))],
    );
    let out = d.join("logits.safetensors");
    let r = netc_run("examples/lenet.net", &w, &inputs, &out, &["--interp"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let logits: Vec<f32> = SafeTensors::deserialize(&bytes)
        .unwrap()
        .tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let best: Vec<u64> = logits
        .chunks_exact(10)
        .map(|row| (0..10).fold(0, |b, k| if row[k] > row[b] { k } else { b }) as u64)
        .collect();
    let r = netc(&[
        "predict",
        "examples/lenet.net",
        "--weights",
        w.to_str().unwrap(),
        "--format",
        "json",
        idx.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rows: Value = serde_json::from_slice(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), n + 1);
    for (k, row) in rows.iter().enumerate() {
        let want = if k < n { best[k] } else { best[0] };
        let top = row["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["class"].as_u64(), Some(want), "{row}");
        let p = top[0]["probability"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0 && p >= top[1]["probability"].as_f64().unwrap());
    }
    assert_eq!(rows[0]["image"], format!("{}[0]", idx.display()));
    // `netc run` takes the images as its inputs too (no tool needed to make a safetensors
    // file), and gives the same scores.
    let from_images = d.join("from_images.safetensors");
    let r = netc_run("examples/lenet.net", &w, &idx, &from_images, &["--interp"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let again = std::fs::read(&from_images).unwrap();
    assert_eq!(
        SafeTensors::deserialize(&again)
            .unwrap()
            .tensor("logits")
            .unwrap()
            .data(),
        SafeTensors::deserialize(&bytes)
            .unwrap()
            .tensor("logits")
            .unwrap()
            .data()
    );
    // The text form: a line per image, classes with percentages.
    let r = netc(&[
        "predict",
        "examples/lenet.net",
        "--weights",
        w.to_str().unwrap(),
        "--top",
        "2",
        png.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(
        text.starts_with(&format!("{}: {} (", png.display(), best[0]))
            && text.matches('%').count() == 2,
        "{text}"
    );
}
