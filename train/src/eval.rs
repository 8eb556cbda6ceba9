//! Scoring a network on a data set: the mean cross-entropy and top-1 and top-5 accuracy of a
//! classifier, the mean objective of a network without labels.

use rt::data::Dataset;

use crate::{rt, Network};

/// How many rows of `logits` (`classes` wide) have their largest score at the label.
pub(crate) fn hits(logits: &[f32], labels: &[i64], classes: usize) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            best as i64 == l
        })
        .count()
}

/// A set's mean cross-entropy and top-1 and top-5 accuracy; for a network without labels,
/// its mean loss, and NaN accuracies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
}

impl Scores {
    /// "loss L, top-1 A%, top-5 B%", with top-5 only above 5 classes and accuracies only
    /// with classes.
    pub(crate) fn describe(&self, classes: usize) -> String {
        let mut s = format!("loss {:.4}", self.loss);
        if classes > 0 {
            s += &format!(", top-1 {:.2}%", 100.0 * self.top1);
        }
        if classes > 5 {
            s += &format!(", top-5 {:.2}%", 100.0 * self.top5);
        }
        s
    }
}

/// Buffers that score batches of `batch` images: inference's alone for a classifier, which
/// [`evaluate`] scores by `forward`; a training workspace for a network without labels, which
/// it scores by its loss (a training-mode pass).
pub(crate) fn scoring_workspace<N: Network>(batch: usize) -> N::Workspace {
    if N::CLASSES > 0 {
        N::inference_workspace(batch)
    } else {
        N::workspace(batch)
    }
}

/// The bytes [`scoring_workspace`] allocates.
pub(crate) fn scoring_workspace_bytes<N: Network>(batch: usize) -> Option<usize> {
    if N::CLASSES > 0 {
        N::inference_workspace_bytes(batch)
    } else {
        N::workspace_bytes(batch)
    }
}

/// The scores of `set`, in batches of `batch` on `ws` (buffers for that batch, such as the
/// training loop's), the last batch, if smaller, on buffers of its own size. Panics if
/// `batch` is 0.
pub fn evaluate<N: Network>(
    p: &N::Params,
    s: &N::State,
    set: &Dataset,
    batch: usize,
    ws: &mut N::Workspace,
) -> Scores {
    assert!(batch > 0, "evaluate needs batches of at least one image");
    if set.is_empty() {
        return Scores {
            loss: f64::NAN,
            top1: f64::NAN,
            top5: f64::NAN,
        };
    }
    let (mut loss, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    let mut tail = None;
    let len = set.image_len();
    for start in (0..set.len()).step_by(batch) {
        let n = batch.min(set.len() - start);
        let ws: &mut N::Workspace = if n == batch {
            &mut *ws
        } else {
            tail.insert(scoring_workspace::<N>(n))
        };
        let images = &set.images[start * len..(start + n) * len];
        let labels = &set.labels[start..start + n];
        if N::CLASSES == 0 {
            // The batch's mean loss, weighted by its images.
            loss += N::loss(p, s, ws, images, labels) as f64 * n as f64;
            continue;
        }
        N::forward(p, s, ws, images);
        let logits = N::logits(ws);
        top1 += hits(logits, labels, N::CLASSES);
        for (row, &l) in logits.chunks_exact(N::CLASSES).zip(labels) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            loss += sum.ln() - (row[l as usize] - max) as f64;
            // In the top five: fewer than five classes score higher.
            let target = row[l as usize];
            if row.iter().filter(|&&v| v > target).count() < 5 {
                top5 += 1;
            }
        }
    }
    let n = set.len() as f64;
    let accuracy = |hits: usize| {
        if N::CLASSES > 0 {
            hits as f64 / n
        } else {
            f64::NAN
        }
    };
    Scores {
        loss: loss / n,
        top1: accuracy(top1),
        top5: accuracy(top5),
    }
}
