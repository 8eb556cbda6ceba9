//! `netc predict`: a trained classifier on images. The weights are a checkpoint of
//! `netc train` (or a PyTorch `state_dict`), the images PNG or JPEG files (resized as
//! `folder:` data is) or IDX files of images (MNIST's, gzipped or not); it prints each
//! image's most likely classes with their probabilities, as text or JSON. It runs the
//! reference interpreter, so nothing is built.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use netc_compiler::interp::{self, Feed, Mode, Tensor};
use netc_compiler::Graph;
use netc_runtime::data;

use crate::BenchFormat;

/// Classes, most likely first, with their probabilities.
type Ranked = Vec<(usize, f64)>;

/// Images by name (`FILE`, or `FILE[i]` for the i-th of an IDX file) and their pixels.
type Images = Vec<(String, Vec<f32>)>;

/// The images of `paths`, each `shape`.
fn read_images(paths: &[PathBuf], shape: [usize; 3]) -> Result<Images, String> {
    let mut images = Vec::new();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let idx = name.contains("idx") || name.contains("ubyte") || name.ends_with(".gz");
        if idx {
            let set = data::read_idx_images(path, shape).map_err(|e| e.to_string())?;
            for i in 0..set.len() {
                images.push((format!("{}[{i}]", path.display()), set.image(i).to_vec()));
            }
        } else {
            let pixels = data::read_image(path, shape).map_err(|e| e.to_string())?;
            images.push((path.display().to_string(), pixels));
        }
    }
    Ok(images)
}

/// Whether `path` names images rather than a safetensors file: PNG, JPEG or IDX.
fn is_images(path: &Path) -> bool {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_lowercase();
    [".png", ".jpg", ".jpeg", "ubyte", "ubyte.gz"]
        .iter()
        .any(|e| name.ends_with(e))
        || name.contains("-idx")
}

/// For `netc run --inputs IMAGES`: the images of `path`, as a safetensors file of the
/// network's one image input (in the cache's `inputs/` folder), or `None` when `path` is not
/// images. The network must have exactly one `[C, H, W]` tensor input.
pub fn images_as_inputs(g: &Graph, path: &Path) -> Result<Option<PathBuf>, String> {
    if !is_images(path) {
        return Ok(None);
    }
    let tensors: Vec<&(String, _)> = g
        .inputs
        .iter()
        .filter(|(_, n)| {
            !matches!(
                g.node(*n).op,
                netc_compiler::ops::Op::Input(netc_compiler::ops::InputKind::Class(_))
            )
        })
        .collect();
    let shape: [usize; 3] = match &tensors[..] {
        [(_, n)] => g.node(*n).shape[..].try_into().map_err(|_| {
            format!(
                "--inputs {}: images need an input of [C, H, W]",
                path.display()
            )
        })?,
        _ => {
            return Err(format!(
                "--inputs {}: images need a network of one image input, and `{}` has {}",
                path.display(),
                g.name,
                tensors.len()
            ))
        }
    };
    let images = read_images(&[path.to_path_buf()], shape)?;
    let data: Vec<u8> = images
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let [c, h, w] = shape;
    let view = safetensors::tensor::TensorView::new(
        safetensors::tensor::Dtype::F32,
        vec![images.len(), c, h, w],
        &data,
    )
    .map_err(|e| format!("cannot encode the images: {e}"))?;
    let bytes = safetensors::serialize([(tensors[0].0.clone(), view)], None)
        .map_err(|e| format!("cannot encode the images: {e}"))?;
    let dir = crate::cache::cache_dir().join("inputs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(format!("{}-{}.safetensors", g.name, std::process::id()));
    netc_train::files::write_atomic(&file, &bytes)?;
    Ok(Some(file))
}

/// The `top` classes of one row of scores, most likely first, with their softmax
/// probabilities.
fn top_classes(scores: &[f32], top: usize) -> Ranked {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exp: Vec<f64> = scores.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut ranked: Vec<(usize, f64)> = exp.iter().map(|e| e / sum).enumerate().collect();
    // Ties keep the lower class first, so the output is deterministic.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}

/// What `netc predict` prints for `g`: per image, its top classes.
fn predict_lines(
    g: &Graph,
    weights: &Path,
    paths: &[PathBuf],
    top: usize,
) -> Result<Vec<(String, Ranked)>, String> {
    let fit = netc_compiler::codegen::trainer_fit(g).map_err(|why| {
        format!("`netc predict` classifies with networks the trainer takes: {why}")
    })?;
    let Some((_, classes)) = fit.label else {
        return Err(format!(
            "network `{}` has no `class(N)` label: it is not a classifier\n  help: `netc run` gives the outputs of any network",
            g.name
        ));
    };
    let mut params = crate::run::load_weights(g, weights)?;
    let images = read_images(paths, fit.input)?;
    let [c, h, w] = fit.input;
    let mut out = Vec::new();
    // In batches, so that an IDX file of thousands of images needs bounded memory.
    for chunk in images.chunks(64) {
        let mut feed = Feed::default();
        let data: Vec<f32> = chunk.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        feed.tensors.insert(
            fit.image.clone(),
            Tensor {
                shape: vec![chunk.len(), c, h, w],
                data,
            },
        );
        let f = interp::forward(g, &mut params, &feed, Mode::Infer);
        let scores = &f.outputs(g)[&fit.output];
        for ((name, _), row) in chunk.iter().zip(scores.data.chunks_exact(classes)) {
            out.push((name.clone(), top_classes(row, top)));
        }
    }
    Ok(out)
}

/// `netc predict FILE --weights W IMAGE... [--top K] [--format table|json]`.
pub fn predict(
    g: &Graph,
    weights: &Path,
    images: &[PathBuf],
    top: usize,
    format: BenchFormat,
) -> ExitCode {
    let lines = match predict_lines(g, weights, images, top.max(1)) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("netc: {e}");
            return ExitCode::from(1);
        }
    };
    match format {
        BenchFormat::Json => {
            let rows: Vec<serde_json::Value> = lines
                .iter()
                .map(|(image, top)| {
                    let top: Vec<serde_json::Value> = top
                        .iter()
                        .map(|&(class, p)| serde_json::json!({"class": class, "probability": p}))
                        .collect();
                    serde_json::json!({"image": image, "top": top})
                })
                .collect();
            let text = serde_json::to_string_pretty(&rows).expect("JSON of numbers and strings");
            println!("{text}");
        }
        BenchFormat::Table => {
            for (image, top) in lines {
                let classes: Vec<String> = top
                    .iter()
                    .map(|(class, p)| format!("{class} ({:.1}%)", 100.0 * p))
                    .collect();
                println!("{image}: {}", classes.join(", "));
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_classes_are_ranked_by_probability() {
        let top = top_classes(&[0.0, 2.0, 1.0, 2.0], 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3, 2]);
        let sum: f64 = top_classes(&[0.5, -1.0, 3.0], 3).iter().map(|t| t.1).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }
}
