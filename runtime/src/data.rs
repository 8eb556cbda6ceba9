//! Datasets for the trainers: MNIST-style IDX files (gzipped or not), CIFAR-10 binary
//! batches, CSV files (a label, then the pixels) and seeded synthetic data. Every source gives
//! images as `f32` in `[0, 1]`, sample-major, each `C×H×W`, with integer labels, and is checked
//! against the network's input shape and class count: a mismatch or a corrupt file is a
//! [`DataError`] that names the file and says what to do, never a panic.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::rng::Rng;

/// Labelled images: `images` holds `len() · C·H·W` values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
    /// Labels are below this.
    pub classes: usize,
    /// Every image, one after another.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<i64>,
}

impl Dataset {
    /// Images in the set.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            shape: self.shape,
            classes: self.classes,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// A training and a validation set: the images shuffled by `seed`, then the first
    /// `⌊len · fraction⌋` of them held out for validation. The same seed always gives the same
    /// split.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DataError::new(format!(
                "a validation split of {fraction} is not in [0, 1)"
            ))
            .hint("--val-split takes a fraction such as 0.1"));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let held = (self.len() as f64 * fraction) as usize;
        Ok((self.subset(&order[held..]), self.subset(&order[..held])))
    }

    /// How many images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// Where data comes from: the `--data` flag of a trainer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `idx:DIR`: MNIST/Fashion-MNIST files, gzipped or not. `train-*` (or any other prefix)
    /// is the training set, `t10k-*` or `test-*` the test set.
    Idx(PathBuf),
    /// `cifar10:DIR`: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`.
    Cifar10(PathBuf),
    /// `csv:FILE` or `csv:FILE.gz`: one image a line, the label then the pixels, an optional
    /// header line.
    Csv(PathBuf),
    /// `synthetic` or `synthetic:N`: N seeded random images with random labels (1024 by
    /// default), for benchmarks.
    Synthetic(usize),
    /// `folder:DIR`: one subfolder per class (classes in name order), PNG or JPEG files,
    /// converted to the input's channels (gray or RGB) and resized to its size. With `train/`
    /// and `test/` subfolders, those are the two sets. Needs the `images` feature.
    Folder(PathBuf),
}

impl FromStr for Source {
    type Err = DataError;

    fn from_str(spec: &str) -> Result<Source, DataError> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let path = || {
            if rest.is_empty() {
                Err(DataError::new(format!("`{spec}` names no path"))
                    .hint(format!("write `{kind}:PATH`")))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        match kind {
            "idx" => Ok(Source::Idx(path()?)),
            "cifar10" => Ok(Source::Cifar10(path()?)),
            "csv" => Ok(Source::Csv(path()?)),
            "folder" => Ok(Source::Folder(path()?)),
            "synthetic" if rest.is_empty() => Ok(Source::Synthetic(1024)),
            "synthetic" => match rest.parse() {
                Ok(n) if n > 0 => Ok(Source::Synthetic(n)),
                _ => Err(
                    DataError::new(format!("`{rest}` is not a number of images"))
                        .hint("write `synthetic` or `synthetic:N` with N > 0"),
                ),
            },
            _ => Err(DataError::new(format!("unknown data source `{spec}`"))
                .hint("use idx:DIR, cifar10:DIR, csv:FILE[.gz], folder:DIR or synthetic[:N]")),
        }
    }
}

/// A loaded source: its training images and, when the source has them, its test images.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The training images (a trainer holds out its validation set from these).
    pub train: Dataset,
    /// The source's own test images, if it has them.
    pub test: Option<Dataset>,
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
        Source::Idx(dir) => load_idx(dir, shape, classes),
        Source::Cifar10(dir) => load_cifar10(dir, shape, classes),
        Source::Csv(file) => Ok(Loaded {
            train: load_csv(file, shape, classes)?,
            test: None,
        }),
        Source::Synthetic(n) => Ok(Loaded {
            train: synthetic(*n, shape, classes, seed),
            test: None,
        }),
        Source::Folder(dir) => load_folder(dir, shape, classes),
    }
}

#[cfg(feature = "images")]
fn load_folder(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    let (train, test) = (dir.join("train"), dir.join("test"));
    if train.is_dir() {
        return Ok(Loaded {
            train: folder_set(&train, shape, classes)?,
            test: test
                .is_dir()
                .then(|| folder_set(&test, shape, classes))
                .transpose()?,
        });
    }
    Ok(Loaded {
        train: folder_set(dir, shape, classes)?,
        test: None,
    })
}

#[cfg(not(feature = "images"))]
fn load_folder(dir: &Path, _: [usize; 3], _: usize) -> Result<Loaded, DataError> {
    Err(DataError::at(dir, "this binary reads no image files")
        .hint("netc-runtime's `images` feature decodes PNG and JPEG; the trainers have it"))
}

/// One set of class folders: every PNG or JPEG in `dir/CLASS/`, labelled by the class's
/// place among the folders' names, sorted.
#[cfg(feature = "images")]
fn folder_set(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Dataset, DataError> {
    let listing = |d: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| DataError::at(d, format!("cannot read the folder: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let folders: Vec<PathBuf> = listing(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if folders.is_empty() {
        return Err(DataError::at(dir, "has no class folders")
            .hint("folder:DIR wants one subfolder of images per class, such as DIR/cat/1.png"));
    }
    if classes > 0 && folders.len() > classes {
        return Err(DataError::at(
            dir,
            format!(
                "has {} class folders, but the network has {classes} classes",
                folders.len()
            ),
        )
        .hint("the network's label input declares its classes: `label: class(N)`"));
    }
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(DataError::at(
            dir,
            format!("images have 1 or 3 channels, the network's input has {c}"),
        ));
    }
    let mut set = Dataset {
        shape,
        classes,
        images: Vec::new(),
        labels: Vec::new(),
    };
    for (label, folder) in folders.iter().enumerate() {
        for file in listing(folder)? {
            let ext = file
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
                continue;
            }
            let img = image::ImageReader::open(&file)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| DataError::at(&file, format!("cannot read: {e}")))?
                .decode()
                .map_err(|e| {
                    DataError::at(&file, format!("not a readable image: {e}"))
                        .hint("remove or replace the file")
                })?;
            let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
            if c == 1 {
                let g = img.to_luma8();
                set.images
                    .extend(g.as_raw().iter().map(|&b| b as f32 / 255.0));
            } else {
                let rgb = img.to_rgb8();
                for ch in 0..3 {
                    set.images
                        .extend(rgb.as_raw().chunks_exact(3).map(|p| p[ch] as f32 / 255.0));
                }
            }
            set.labels.push(label as i64);
        }
    }
    if set.is_empty() {
        return Err(DataError::at(
            dir,
            "has no PNG or JPEG files in its class folders",
        ));
    }
    Ok(set)
}

/// `n` images of uniform noise with uniform labels, from `seed`.
pub fn synthetic(n: usize, shape: [usize; 3], classes: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let len: usize = shape.iter().product();
    let images = (0..n * len).map(|_| rng.next_f32()).collect();
    let labels = (0..n)
        .map(|_| rng.below(classes.max(1) as u64) as i64)
        .collect();
    Dataset {
        shape,
        classes,
        images,
        labels,
    }
}

/// What went wrong reading data: the file, what is wrong, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    /// The file or folder at fault, if one is.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl DataError {
    fn new(message: impl Into<String>) -> DataError {
        DataError {
            path: None,
            message: message.into(),
            help: None,
        }
    }

    fn at(path: &Path, message: impl Into<String>) -> DataError {
        DataError {
            path: Some(path.to_path_buf()),
            ..DataError::new(message)
        }
    }

    fn hint(mut self, help: impl Into<String>) -> DataError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// The bytes of `path`, gunzipped when they start with gzip's magic.
fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::at(path, format!("cannot read: {e}")))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::at(path, format!("corrupt gzip data: {e}"))
                    .hint("download the file again; `gzip -t FILE` checks it")
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Checks that images of `got` fit a network whose input is `want`.
fn check_shape(path: &Path, got: [usize; 3], want: [usize; 3]) -> Result<(), DataError> {
    if got == want {
        return Ok(());
    }
    Err(DataError::at(
        path,
        format!(
            "images are {}×{}×{}, but the network's input is [{}, {}, {}]",
            got[0], got[1], got[2], want[0], want[1], want[2]
        ),
    )
    .hint("pick data of the network's input shape, or change the network's input"))
}

/// Checks every label against `classes` and makes them `i64`.
fn check_labels(path: &Path, labels: &[u8], classes: usize) -> Result<Vec<i64>, DataError> {
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| classes > 0 && l as usize >= classes)
    {
        return Err(DataError::at(
            path,
            format!("label {l} of image {i} is not below the network's {classes} classes"),
        )
        .hint("the network's label input declares its classes: `label: class(N)`"));
    }
    Ok(labels.iter().map(|&l| l as i64).collect())
}

/// An IDX file of unsigned bytes: its dimensions and data.
fn parse_idx(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let not_idx = || {
        DataError::at(
            path,
            "not an IDX file of unsigned bytes (its magic number is wrong)",
        )
        .hint("IDX files start with 0x00 0x00 0x08 and the number of dimensions")
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(not_idx());
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || bytes.len() < 4 + 4 * ndim {
        return Err(not_idx());
    }
    let dims: Vec<usize> = bytes[4..4 + 4 * ndim]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let data = &bytes[4 + 4 * ndim..];
    if want != Some(data.len()) {
        return Err(DataError::at(
            path,
            format!(
                "the header says {} = {} bytes of data, the file has {}",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("×"),
                want.map_or("too many".into(), |w| w.to_string()),
                data.len()
            ),
        )
        .hint("the file is truncated or corrupt: download it again"));
    }
    Ok((dims, data.to_vec()))
}

/// The image and label files of an IDX folder, as (images, labels) pairs of the training and
/// the test set.
type IdxPair = (PathBuf, PathBuf);

fn idx_files(dir: &Path) -> Result<(Option<IdxPair>, Option<IdxPair>), DataError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::at(dir, format!("cannot read the folder: {e}")))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut train, mut test) = (None, None);
    for name in &names {
        let Some(at) = name.find("images-idx3-ubyte") else {
            continue;
        };
        let prefix = &name[..at];
        let labels = names
            .iter()
            .find(|n| n.starts_with(prefix) && n[prefix.len()..].starts_with("labels-idx1-ubyte"));
        let Some(labels) = labels else {
            return Err(
                DataError::at(&dir.join(name), "has no labels file beside it").hint(format!(
                    "expected `{prefix}labels-idx1-ubyte` (or .gz) in the folder"
                )),
            );
        };
        let pair = (dir.join(name), dir.join(labels));
        let slot = if prefix.starts_with("t10k") || prefix.starts_with("test") {
            &mut test
        } else {
            &mut train
        };
        if slot.replace(pair).is_some() {
            return Err(
                DataError::at(dir, format!("holds two sets of images like `{name}`"))
                    .hint("keep one training set (and one `t10k-` or `test-` set) per folder"),
            );
        }
    }
    if train.is_none() && test.is_none() {
        return Err(DataError::at(dir, "has no `*images-idx3-ubyte[.gz]` file")
            .hint("idx:DIR wants MNIST-style files such as train-images-idx3-ubyte.gz"));
    }
    Ok((train, test))
}

/// One IDX set: its images (`N×H×W` or `N×C×H×W`) and labels (`N`).
fn idx_set(
    (images, labels): &IdxPair,
    shape: [usize; 3],
    classes: usize,
) -> Result<Dataset, DataError> {
    let (dims, pixels) = parse_idx(images, &read_bytes(images)?)?;
    let got = match dims[..] {
        [_, h, w] => [1, h, w],
        [_, c, h, w] => [c, h, w],
        _ => {
            return Err(DataError::at(
                images,
                format!("holds {} dimensions, not N×H×W images", dims.len()),
            ))
        }
    };
    check_shape(images, got, shape)?;
    let (ldims, ls) = parse_idx(labels, &read_bytes(labels)?)?;
    if ldims.len() != 1 || ldims[0] != dims[0] {
        return Err(DataError::at(
            labels,
            format!(
                "holds {} labels for the {} images of {}",
                ldims.iter().product::<usize>(),
                dims[0],
                images.display()
            ),
        )
        .hint("images and labels must come from the same set"));
    }
    Ok(Dataset {
        shape,
        classes,
        images: pixels.iter().map(|&b| b as f32 / 255.0).collect(),
        labels: check_labels(labels, &ls, classes)?,
    })
}

fn load_idx(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    let (train, test) = idx_files(dir)?;
    let test = test.map(|p| idx_set(&p, shape, classes)).transpose()?;
    match train {
        Some(p) => Ok(Loaded {
            train: idx_set(&p, shape, classes)?,
            test,
        }),
        // A folder of one `t10k` set still trains.
        None => Ok(Loaded {
            train: test.expect("a folder with no set was refused"),
            test: None,
        }),
    }
}

/// CIFAR-10's binary records: a label byte, then 3×32×32 bytes, channel-major.
fn cifar_batch(path: &Path, classes: usize) -> Result<(Vec<f32>, Vec<i64>), DataError> {
    const RECORD: usize = 1 + 3 * 32 * 32;
    let bytes = read_bytes(path)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DataError::at(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            ),
        )
        .hint("use the binary version of CIFAR-10 (cifar-10-binary.tar.gz), unpacked"));
    }
    let labels: Vec<u8> = bytes.chunks_exact(RECORD).map(|r| r[0]).collect();
    let images = bytes
        .chunks_exact(RECORD)
        .flat_map(|r| r[1..].iter().map(|&b| b as f32 / 255.0))
        .collect();
    Ok((images, check_labels(path, &labels, classes)?))
}

fn load_cifar10(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    check_shape(&dir.join("data_batch_1.bin"), [3, 32, 32], shape)?;
    let mut train = Dataset {
        shape,
        classes,
        images: Vec::new(),
        labels: Vec::new(),
    };
    for k in 1..=5 {
        let path = dir.join(format!("data_batch_{k}.bin"));
        if !path.exists() {
            if k == 1 {
                return Err(DataError::at(&path, "not found").hint(
                    "cifar10:DIR wants the folder holding data_batch_1.bin … data_batch_5.bin",
                ));
            }
            break;
        }
        let (images, labels) = cifar_batch(&path, classes)?;
        train.images.extend(images);
        train.labels.extend(labels);
    }
    let test_path = dir.join("test_batch.bin");
    let test = if test_path.exists() {
        let (images, labels) = cifar_batch(&test_path, classes)?;
        Some(Dataset {
            shape,
            classes,
            images,
            labels,
        })
    } else {
        None
    };
    Ok(Loaded { train, test })
}

/// A CSV file: per line a label then `C·H·W` pixels, comma-separated; a first line that is
/// not numbers is a header. Pixels are divided by 255 when any is above 1 (0–255 bytes),
/// and taken as they are otherwise (already in [0, 1]).
fn load_csv(path: &Path, shape: [usize; 3], classes: usize) -> Result<Dataset, DataError> {
    let bytes = read_bytes(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| DataError::at(path, "is not text (UTF-8)"))?;
    let len: usize = shape.iter().product();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let numbers: Result<Vec<f32>, _> = fields.iter().map(|f| f.parse::<f32>()).collect();
        let Ok(numbers) = numbers else {
            if i == 0 {
                continue;
            }
            return Err(
                DataError::at(path, format!("line {}: not all numbers", i + 1))
                    .hint("each line is a label then the pixels, separated by commas"),
            );
        };
        if numbers.len() != 1 + len {
            return Err(DataError::at(
                path,
                format!(
                    "line {}: {} pixels, but the network's input [{}, {}, {}] takes {len}",
                    i + 1,
                    numbers.len().saturating_sub(1),
                    shape[0],
                    shape[1],
                    shape[2]
                ),
            )
            .hint("each line is a label then C·H·W pixels"));
        }
        let label = numbers[0];
        if label < 0.0 || label.fract() != 0.0 || (classes > 0 && label as usize >= classes) {
            return Err(DataError::at(
                path,
                if classes > 0 {
                    format!(
                        "line {}: label {label} is not a class below the network's {classes}",
                        i + 1
                    )
                } else {
                    format!("line {}: label {label} is not a whole number from 0", i + 1)
                },
            ));
        }
        labels.push(label as i64);
        images.extend_from_slice(&numbers[1..]);
    }
    if labels.is_empty() {
        return Err(DataError::at(path, "holds no images"));
    }
    if images.iter().any(|&v| !v.is_finite() || v < 0.0) {
        return Err(DataError::at(path, "holds a negative or non-finite pixel"));
    }
    if images.iter().any(|&v| v > 1.0) {
        images.iter_mut().for_each(|v| *v /= 255.0);
    }
    Ok(Dataset {
        shape,
        classes,
        images,
        labels,
    })
}
