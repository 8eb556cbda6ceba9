//! MNIST-style IDX files of unsigned bytes, gzipped or not. The header is read first from the
//! stream and checked (the images against the network's input, the labels against the
//! images, the declared size against what the file can hold) before anything is allocated;
//! then exactly the declared data is read, and a stream that ends early or goes on is
//! refused.

use std::path::{Path, PathBuf};

use super::read::Input;
use super::{check_label, check_shape, memory, shape_text, DataError, Dataset, Loaded};

/// Bytes read and converted at a time.
const CHUNK: usize = 1 << 16;

/// The image and label files of one set.
type IdxPair = (PathBuf, PathBuf);

pub(super) fn load(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    let (train, test) = files(dir)?;
    let test = test.map(|p| set(&p, shape, classes)).transpose()?;
    match train {
        Some(p) => Ok(Loaded {
            train: set(&p, shape, classes)?,
            test,
            notes: Vec::new(),
        }),
        // A folder of one `t10k` set still trains.
        None => Ok(Loaded {
            train: test.expect("a folder with no set was refused"),
            test: None,
            notes: vec![format!(
                "{}: holds only a `t10k-` or `test-` set: training on it, with no test set",
                dir.display()
            )],
        }),
    }
}

/// The (images, labels) pairs of the training and the test set in `dir`.
fn files(dir: &Path) -> Result<(Option<IdxPair>, Option<IdxPair>), DataError> {
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

/// An IDX header read from the stream: the dimensions and the bytes of data they declare.
struct Header {
    dims: Vec<usize>,
    /// The bytes of the header itself.
    len: usize,
}

impl Header {
    fn read(input: &mut Input) -> Result<Header, DataError> {
        let path = input.path.clone();
        let not_idx = || {
            DataError::at(
                &path,
                "not an IDX file of unsigned bytes (its magic number is wrong)",
            )
            .hint("IDX files start with 0x00 0x00 0x08 and the number of dimensions")
        };
        let mut magic = [0u8; 4];
        if input.read_full(&mut magic)? < 4 || magic[..3] != [0, 0, 0x08] || magic[3] == 0 {
            return Err(not_idx());
        }
        let ndim = magic[3] as usize;
        let mut dims = vec![0u8; 4 * ndim];
        if input.read_full(&mut dims)? < dims.len() {
            return Err(not_idx());
        }
        Ok(Header {
            dims: dims
                .chunks_exact(4)
                .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
                .collect(),
            len: 4 + 4 * ndim,
        })
    }

    /// "3×2×3 = 18": the dimensions and their product, or "too many" past `usize`.
    fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        let bytes = self.data_len().map_or("too many".into(), |n| n.to_string());
        format!("{} = {bytes}", dims.join("×"))
    }

    /// The bytes of data the dimensions declare (one per value).
    fn data_len(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Checks the declared data against what `input` can hold, before reading any.
    fn check_fits(&self, input: &Input) -> Result<usize, DataError> {
        let room = input.max_len().saturating_sub(self.len as u64);
        if let Some(n) = self.data_len().filter(|&n| n as u64 <= room) {
            return Ok(n);
        }
        let message = match input.on_disk() {
            Some(on_disk) if input.is_gzip() => format!(
                "the header says {} bytes of data, more than the {on_disk} bytes of this gzip \
                 file can expand to (at most {})",
                self.describe(),
                input.max_len()
            ),
            _ => format!(
                "the header says {} bytes of data, the file has {room}",
                self.describe()
            ),
        };
        Err(DataError::at(&input.path, message)
            .hint("the file is truncated or corrupt: download it again"))
    }
}

/// Reads the `n` data bytes a checked header declared, in chunks handed to `each`, then
/// checks that the stream ends there.
fn read_data(
    input: &mut Input,
    header: &Header,
    n: usize,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut chunk = vec![0u8; CHUNK.min(n)];
    let mut done = 0;
    while done < n {
        let want = (n - done).min(CHUNK);
        let got = input.read_full(&mut chunk[..want])?;
        each(done, &chunk[..got])?;
        done += got;
        if got < want {
            return Err(DataError::at(
                &input.path,
                format!(
                    "the header says {} bytes of data, the file has {done}",
                    header.describe()
                ),
            )
            .hint("the file is truncated or corrupt: download it again"));
        }
    }
    if !input.at_end()? {
        return Err(DataError::at(
            &input.path,
            format!(
                "holds more than the {} bytes of data its header declares",
                header.describe()
            ),
        )
        .hint(
            "an IDX file is its header and exactly that much data: this one is corrupt, or not \
             the file it is named for",
        ));
    }
    Ok(())
}

/// An IDX file of images checked against `shape`: the open file, its header, its image count
/// and its pixel count.
fn open_images(
    images: &Path,
    shape: [usize; 3],
) -> Result<(Input, Header, usize, usize), DataError> {
    let mut image_file = Input::open(images)?;
    let header = Header::read(&mut image_file)?;
    let (n, got) = match header.dims[..] {
        [n, h, w] => (n, [1, h, w]),
        [n, c, h, w] => (n, [c, h, w]),
        _ => {
            return Err(DataError::at(
                images,
                format!("holds {} dimensions, not N×H×W images", header.dims.len()),
            ))
        }
    };
    check_shape(images, got, shape)?;
    if n == 0 {
        return Err(DataError::at(images, "holds no images (its header says 0)"));
    }
    let pixels = header.check_fits(&image_file)?;
    Ok((image_file, header, n, pixels))
}

/// The images of one IDX file (gzipped or not) without labels, checked against `shape`, as
/// `f32` in `[0, 1]`: what `netc predict` classifies.
pub fn read_idx_images(path: &Path, shape: [usize; 3]) -> Result<Dataset, DataError> {
    let (mut file, header, n, pixels) = open_images(path, shape)?;
    let mut set = Dataset::empty(shape, 0);
    memory::reserve_exact(&mut set, n, || {
        format!("{n} images of {}", shape_text(shape))
    })
    .map_err(|e| e.in_file(path))?;
    read_data(&mut file, &header, pixels, |_, bytes| {
        set.images.extend(bytes.iter().map(|&b| b as f32 / 255.0));
        Ok(())
    })?;
    set.labels.resize(n, 0);
    Ok(set)
}

/// One IDX set: its images (`N×H×W` or `N×C×H×W`) and labels (`N`).
fn set(
    (images, labels): &IdxPair,
    shape: [usize; 3],
    classes: usize,
) -> Result<Dataset, DataError> {
    let (mut image_file, header, n, pixels) = open_images(images, shape)?;
    let mut label_file = Input::open(labels)?;
    let label_header = Header::read(&mut label_file)?;
    if label_header.dims.len() != 1 {
        let dims: Vec<String> = label_header.dims.iter().map(|d| d.to_string()).collect();
        return Err(DataError::at(
            labels,
            format!("holds {} values, not one label per image", dims.join("×")),
        )
        .hint("a labels file is an IDX file of one dimension"));
    }
    if label_header.dims[0] != n {
        return Err(DataError::at(
            labels,
            format!(
                "holds {} labels for the {n} images of {}",
                label_header.dims[0],
                images.display()
            ),
        )
        .hint("images and labels must come from the same set"));
    }
    label_header.check_fits(&label_file)?;

    let mut set = Dataset::empty(shape, classes);
    memory::reserve_exact(&mut set, n, || {
        format!("{n} images of {}", shape_text(shape))
    })
    .map_err(|e| e.in_file(images))?;
    read_data(&mut image_file, &header, pixels, |_, bytes| {
        set.images.extend(bytes.iter().map(|&b| b as f32 / 255.0));
        Ok(())
    })?;
    read_data(&mut label_file, &label_header, n, |at, bytes| {
        for (i, &l) in bytes.iter().enumerate() {
            set.labels.push(check_label(labels, at + i, l, classes)?);
        }
        Ok(())
    })?;
    Ok(set)
}
