//! Datasets for the trainers: MNIST-style IDX files (gzipped or not), CIFAR-10 binary
//! batches, CSV files (a label, then the pixels), folders of PNG/JPEG images per class and
//! seeded synthetic data. Every source gives images as `f32` in `[0, 1]`, sample-major, each
//! `C×H×W`, with integer labels, and is checked against the network's input shape and class
//! count: a mismatch, a corrupt or hostile file, or a set too large for memory is a
//! [`DataError`] that names the file and says what to do, never a panic or an abort. What a
//! loader decided on its own (a CSV file's scale, a skipped file) is a note in [`Loaded`].
//!
//! One file per format; `read` streams a file (gunzipping on the way) and `memory`
//! reserves room before a set is filled.

mod cifar;
mod csv;
mod dataset;
mod error;
#[cfg(feature = "images")]
mod folder;
mod idx;
mod memory;
mod read;
mod source;
mod synthetic;

use std::path::Path;

pub use dataset::Dataset;
pub use error::DataError;
#[cfg(feature = "images")]
pub use folder::read_image;
pub use idx::read_idx_images;
pub use source::Source;
pub use synthetic::synthetic;

/// A loaded source: its training images and, when the source has them, its test images.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The training images (a trainer holds out its validation set from these).
    pub train: Dataset,
    /// The source's own test images, if it has them.
    pub test: Option<Dataset>,
    /// What the loader decided or passed over, one sentence each, for the trainer to print:
    /// the scale a CSV file's pixels were read in, its header line, missing CIFAR-10 batches,
    /// files of a `folder:` set that are not images.
    pub notes: Vec<String>,
}

/// Reads `source`, checking every image against `shape` (the network's input) and every label
/// against `classes`. `seed` makes synthetic data. `classes` 0 is a network without a label
/// input (an autoencoder): the labels are read but not checked.
pub fn load(
    source: &Source,
    shape: [usize; 3],
    classes: usize,
    seed: u64,
) -> Result<Loaded, DataError> {
    match source {
        Source::Idx(dir) => idx::load(dir, shape, classes),
        Source::Cifar10(dir) => cifar::load(dir, shape, classes),
        Source::Csv(file) => csv::load(file, shape, classes),
        Source::Synthetic(n) => Ok(Loaded {
            train: synthetic(*n, shape, classes, seed)?,
            test: None,
            notes: vec![format!(
                "synthetic: {n} images of random noise with random labels, for timing and testing: nothing can be learned from them (accuracy stays at chance)"
            )],
        }),
        Source::Folder(dir) => load_folder(dir, shape, classes),
    }
}

#[cfg(feature = "images")]
fn load_folder(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    folder::load(dir, shape, classes)
}

#[cfg(not(feature = "images"))]
fn load_folder(dir: &Path, _: [usize; 3], _: usize) -> Result<Loaded, DataError> {
    Err(DataError::at(dir, "this binary reads no image files")
        .hint("netc-runtime's `images` feature decodes PNG and JPEG; the trainers have it"))
}

/// `[c, h, w]` as "c×h×w".
fn shape_text([c, h, w]: [usize; 3]) -> String {
    format!("{c}×{h}×{w}")
}

/// Checks that images of `got` fit a network whose input is `want`.
fn check_shape(path: &Path, got: [usize; 3], want: [usize; 3]) -> Result<(), DataError> {
    if got == want {
        return Ok(());
    }
    Err(DataError::at(
        path,
        format!(
            "images are {}, but the network's input is [{}, {}, {}]",
            shape_text(got),
            want[0],
            want[1],
            want[2]
        ),
    )
    .hint("pick data of the network's input shape, or change the network's input"))
}

/// Checks label `l` of image `i` against `classes` (0: any label).
fn check_label(path: &Path, i: usize, l: u8, classes: usize) -> Result<i64, DataError> {
    if classes > 0 && l as usize >= classes {
        return Err(DataError::at(
            path,
            format!("label {l} of image {i} is not below the network's {classes} classes"),
        )
        .hint("the network's label input declares its classes: `label: class(N)`"));
    }
    Ok(l as i64)
}
