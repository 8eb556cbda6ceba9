//! `folder:` sets: one subfolder of PNG or JPEG images per class, converted to the input's
//! channels (gray or RGB) and resized to its size; with `train/` and `test/` subfolders,
//! those are the two sets.
//!
//! Classes are named by their folders, and the training set's folder names, sorted, number
//! them: a test set labels its folders by those numbers, whichever of them it has, and a test
//! class the training set lacks is an error that names it. A class folder of the training set
//! without images is an error too (its class would take a number and never be seen); one of
//! the test set is a note. Entries that are not images (other files, folders inside a class
//! folder, hidden entries such as `.DS_Store` or `.ipynb_checkpoints`) are skipped and
//! counted in a note.

use std::path::{Path, PathBuf};

use super::{memory, DataError, Dataset, Loaded};

/// Skipped entries named in a note; more are counted.
const MAX_NAMED: usize = 5;

/// Classes named in a note or an error; more are counted.
const MAX_CLASSES_NAMED: usize = 10;

pub(super) fn load(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    if shape[0] != 1 && shape[0] != 3 {
        return Err(DataError::at(
            dir,
            format!(
                "images have 1 or 3 channels, the network's input has {}",
                shape[0]
            ),
        ));
    }
    let mut notes = Vec::new();
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    if !train_dir.is_dir() {
        let folder = SetFolder::read(dir)?;
        let train = read_train(&folder, shape, classes, &mut notes)?;
        return Ok(Loaded {
            train,
            test: None,
            notes,
        });
    }
    let others: Vec<PathBuf> = listing(dir)?
        .into_iter()
        .filter(|p| *p != train_dir && *p != test_dir)
        .collect();
    if !others.is_empty() {
        notes.push(format!(
            "{}: only train/ and test/ are read: skipped {}",
            dir.display(),
            named(dir, &others)
        ));
    }
    let train_folder = SetFolder::read(&train_dir)?;
    let train = read_train(&train_folder, shape, classes, &mut notes)?;
    let test = if test_dir.is_dir() {
        let folder = SetFolder::read(&test_dir)?;
        Some(read_test(
            &folder,
            &train_folder,
            shape,
            classes,
            &mut notes,
        )?)
    } else {
        None
    };
    Ok(Loaded { train, test, notes })
}

/// One set's folder: its class folders by name, sorted, and the entries beside them.
struct SetFolder {
    dir: PathBuf,
    classes: Vec<(String, PathBuf)>,
    skipped: Vec<PathBuf>,
}

impl SetFolder {
    fn read(dir: &Path) -> Result<SetFolder, DataError> {
        let (mut classes, mut skipped) = (Vec::new(), Vec::new());
        for path in listing(dir)? {
            if path.is_dir() && !hidden(&path) {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                classes.push((name.into_owned(), path));
            } else {
                skipped.push(path);
            }
        }
        if classes.is_empty() {
            return Err(DataError::at(dir, "has no class folders").hint(
                "folder:DIR wants one subfolder of images per class, such as DIR/cat/1.png",
            ));
        }
        Ok(SetFolder {
            dir: dir.to_path_buf(),
            classes,
            skipped,
        })
    }

    /// The class names, the first few of them, for messages.
    fn names(&self) -> String {
        let names: Vec<&str> = self.classes.iter().map(|(n, _)| n.as_str()).collect();
        shortened(&names, MAX_CLASSES_NAMED)
    }
}

/// The training set: class `i` of the sorted folders is label `i`.
fn read_train(
    folder: &SetFolder,
    shape: [usize; 3],
    classes: usize,
    notes: &mut Vec<String>,
) -> Result<Dataset, DataError> {
    let found = folder.classes.len();
    if classes > 0 && found > classes {
        return Err(DataError::at(
            &folder.dir,
            format!("has {found} class folders, but the network has {classes} classes"),
        )
        .hint("the network's label input declares its classes: `label: class(N)`"));
    }
    let numbered: Vec<String> = folder
        .classes
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = {i}"))
        .collect();
    let mut note = format!(
        "{}: {found} classes, numbered by folder name: {}",
        folder.dir.display(),
        shortened(&numbered, MAX_CLASSES_NAMED)
    );
    if classes > found {
        note += &format!(
            " (the network has {classes}: labels {found} to {} have no folder)",
            classes - 1
        );
    }
    notes.push(note);
    let mut set = Dataset::empty(shape, classes);
    let mut skipped = folder.skipped.clone();
    for (label, (name, path)) in folder.classes.iter().enumerate() {
        if read_class(path, label, &mut set, &mut skipped)? == 0 {
            return Err(DataError::at(
                path,
                format!("the class folder `{name}` holds no PNG or JPEG images"),
            )
            .hint(format!(
                "add images of `{name}`, or remove the folder (the training set's folders \
                 number the classes)"
            )));
        }
    }
    note_skipped(&folder.dir, &skipped, notes);
    Ok(set)
}

/// The test set: each class folder takes the number of the training set's folder of its name.
fn read_test(
    folder: &SetFolder,
    train: &SetFolder,
    shape: [usize; 3],
    classes: usize,
    notes: &mut Vec<String>,
) -> Result<Dataset, DataError> {
    let number = |name: &str| train.classes.iter().position(|(n, _)| n == name);
    let unknown: Vec<String> = folder
        .classes
        .iter()
        .filter(|(name, _)| number(name).is_none())
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if !unknown.is_empty() {
        let what = if unknown.len() == 1 {
            format!("the class {} is not a class", unknown[0])
        } else {
            format!("the classes {} are not classes", unknown.join(", "))
        };
        return Err(DataError::at(
            &folder.dir,
            format!("{what} of the training set ({})", train.names()),
        )
        .hint(
            "the training set's folders name and number the classes: name the test set's \
             folders like them",
        ));
    }
    let mut set = Dataset::empty(shape, classes);
    let mut skipped = folder.skipped.clone();
    let mut unseen: Vec<&str> = Vec::new();
    for (name, _) in &train.classes {
        let Some((_, path)) = folder.classes.iter().find(|(n, _)| n == name) else {
            unseen.push(name);
            continue;
        };
        let label = number(name).expect("checked above");
        if read_class(path, label, &mut set, &mut skipped)? == 0 {
            unseen.push(name);
        }
    }
    if set.is_empty() {
        return Err(DataError::at(
            &folder.dir,
            "has no PNG or JPEG files in its class folders",
        ));
    }
    if !unseen.is_empty() {
        notes.push(format!(
            "{}: has no images of {}",
            folder.dir.display(),
            shortened(&unseen, MAX_CLASSES_NAMED)
        ));
    }
    note_skipped(&folder.dir, &skipped, notes);
    Ok(set)
}

/// Appends the images of the class folder `dir` to `set` with `label`, and the entries that
/// are not images to `skipped`; returns the number of images.
fn read_class(
    dir: &Path,
    label: usize,
    set: &mut Dataset,
    skipped: &mut Vec<PathBuf>,
) -> Result<usize, DataError> {
    let mut images = 0;
    for file in listing(dir)? {
        let ext = file
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if hidden(&file) || !file.is_file() || !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
            skipped.push(file);
            continue;
        }
        let total = set.len() + 1;
        memory::reserve(set, 1, || format!("{total} images")).map_err(|e| e.in_file(&file))?;
        let pixels = read_image(&file, set.shape)?;
        set.images.extend(pixels);
        set.labels.push(label as i64);
        images += 1;
    }
    Ok(images)
}

/// A PNG or JPEG file as an image of `shape` (`[C, H, W]`, C 1 or 3): resized to H×W with
/// a triangle filter, grey for one channel, RGB planes for three, pixels in `[0, 1]`. How
/// `folder:` data and `netc predict` read images.
pub fn read_image(file: &Path, [c, h, w]: [usize; 3]) -> Result<Vec<f32>, DataError> {
    let img = image::ImageReader::open(file)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DataError::at(file, format!("cannot read: {e}")))?
        .decode()
        .map_err(|e| {
            DataError::at(file, format!("not a readable image: {e}"))
                .hint("remove or replace the file")
        })?;
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let mut out = Vec::with_capacity(c * h * w);
    if c == 1 {
        out.extend(img.to_luma8().as_raw().iter().map(|&b| b as f32 / 255.0));
    } else {
        let rgb = img.to_rgb8();
        for ch in 0..3 {
            out.extend(rgb.as_raw().chunks_exact(3).map(|p| p[ch] as f32 / 255.0));
        }
    }
    Ok(out)
}

/// The entries of `dir`, sorted.
fn listing(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::at(dir, format!("cannot read the folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Whether an entry is hidden (`.DS_Store`, `.ipynb_checkpoints`).
fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Says how many entries of a set were skipped, and names the first few.
fn note_skipped(dir: &Path, skipped: &[PathBuf], notes: &mut Vec<String>) {
    if skipped.is_empty() {
        return;
    }
    let (n, s) = (skipped.len(), if skipped.len() == 1 { "y" } else { "ies" });
    notes.push(format!(
        "{}: skipped {n} entr{s} that are not PNG or JPEG images in class folders: {}",
        dir.display(),
        named(dir, skipped)
    ));
}

/// `paths` relative to `dir`, the first few of them.
fn named(dir: &Path, paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect();
    shortened(&names, MAX_NAMED)
}

/// The first `max` of `items`, comma-separated, then how many more.
fn shortened(items: &[impl AsRef<str>], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    let mut s = shown.join(", ");
    if items.len() > max {
        s += &format!(" and {} more", items.len() - max);
    }
    s
}
