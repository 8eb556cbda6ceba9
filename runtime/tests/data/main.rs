//! Every data format read from small files made here, the bundled MNIST digits, and corrupt
//! or mismatched files refused with a message that names the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use netc_runtime::data::{load, synthetic, DataError, Source};

mod cifar;
mod csv;
mod folder;

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Three 2×3 images with pixel `i` of image `k` = 10k + i, labels 2, 0, 1.
fn small_idx(dir: &Path, prefix: &str, gz: bool) {
    let pixels: Vec<u8> = (0..3)
        .flat_map(|k| (0..6).map(move |i| 10 * k + i))
        .collect();
    let (images, labels) = (idx(&[3, 2, 3], &pixels), idx(&[3], &[2, 0, 1]));
    let ext = if gz { ".gz" } else { "" };
    let (images, labels) = if gz {
        (gzip(&images), gzip(&labels))
    } else {
        (images, labels)
    };
    std::fs::write(dir.join(format!("{prefix}images-idx3-ubyte{ext}")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}labels-idx1-ubyte{ext}")), labels).unwrap();
}

fn err(r: Result<impl std::fmt::Debug, DataError>) -> String {
    r.expect_err("the data is refused").to_string()
}

#[test]
fn idx_sets_read_gzipped_or_not() {
    let dir = folder("idx");
    small_idx(&dir, "train-", true);
    small_idx(&dir, "t10k-", false);
    let got = load(&Source::Idx(dir.clone()), [1, 2, 3], 3, 0).unwrap();
    assert_eq!(got.train.len(), 3);
    assert_eq!(got.train.labels, [2, 0, 1]);
    assert_eq!(
        got.train.image(1),
        &[
            10.0 / 255.0,
            11.0 / 255.0,
            12.0 / 255.0,
            13.0 / 255.0,
            14.0 / 255.0,
            15.0 / 255.0
        ]
    );
    assert_eq!(got.test.as_ref().unwrap(), &got.train);
    // A folder of one set trains on it.
    std::fs::remove_file(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    let got = load(&Source::Idx(dir), [1, 2, 3], 3, 0).unwrap();
    assert_eq!((got.train.len(), got.test), (3, None));
}

#[test]
fn the_bundled_digits_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let got = load(&Source::Idx(dir), [1, 28, 28], 10, 0).unwrap();
    assert_eq!(got.train.len(), 10_000);
    assert_eq!(
        got.train.class_counts(),
        [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    assert!(got.train.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Digits have ink: about a fifth of MNIST's pixels are nonzero.
    let ink = got.train.images.iter().filter(|&&v| v > 0.0).count() as f64;
    assert!((0.1..0.3).contains(&(ink / got.train.images.len() as f64)));
    let (train, val) = got.train.split(0.1, 7).unwrap();
    assert_eq!((train.len(), val.len()), (9000, 1000));
    assert_eq!(
        got.train.split(0.1, 7).unwrap().1,
        val,
        "the same seed, the same split"
    );
    assert_ne!(got.train.split(0.1, 8).unwrap().1, val);
}

#[test]
fn idx_files_that_do_not_fit_are_refused() {
    let dir = folder("idx-bad");
    small_idx(&dir, "train-", true);
    let src = Source::Idx(dir.clone());
    let e = err(load(&src, [1, 28, 28], 3, 0));
    assert!(
        e.contains("images are 1×2×3, but the network's input is [1, 28, 28]"),
        "{e}"
    );
    let e = err(load(&src, [1, 2, 3], 2, 0));
    assert!(
        e.contains("label 2 of image 0 is not below the network's 2 classes"),
        "{e}"
    );
    // Truncated data, a wrong magic number, corrupt gzip, labels for another set.
    let images = dir.join("train-images-idx3-ubyte.gz");
    std::fs::write(&images, gzip(&idx(&[3, 2, 3], &[0; 17]))).unwrap();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert!(
        e.contains("the header says 3×2×3 = 18 bytes of data, the file has 17"),
        "{e}"
    );
    assert!(
        e.contains("train-images-idx3-ubyte.gz"),
        "names the file: {e}"
    );
    std::fs::write(&images, b"PK\x03\x04 not an idx file").unwrap();
    assert!(err(load(&src, [1, 2, 3], 3, 0)).contains("magic number"));
    let mut bad = gzip(&idx(&[3, 2, 3], &[0; 18]));
    let n = bad.len();
    bad.truncate(n - 12);
    std::fs::write(&images, bad).unwrap();
    assert!(err(load(&src, [1, 2, 3], 3, 0)).contains("corrupt gzip data"));
    std::fs::write(&images, idx(&[4, 2, 3], &[0; 24])).unwrap();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert!(e.contains("holds 3 labels for the 4 images"), "{e}");
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert!(err(load(&src, [1, 2, 3], 3, 0)).contains("has no labels file"));
    let empty = folder("idx-empty");
    assert!(err(load(&Source::Idx(empty), [1, 2, 3], 3, 0)).contains("has no `*images-idx3-ubyte"));
    let missing = Source::Idx(dir.join("nowhere"));
    assert!(err(load(&missing, [1, 2, 3], 3, 0)).contains("cannot read the folder"));
}

#[test]
fn sources_parse_and_synthetic_data_is_seeded() {
    assert_eq!(
        "idx:data".parse::<Source>().unwrap(),
        Source::Idx("data".into())
    );
    assert_eq!(
        "csv:a.csv.gz".parse::<Source>().unwrap(),
        Source::Csv("a.csv.gz".into())
    );
    assert_eq!(
        "synthetic".parse::<Source>().unwrap(),
        Source::Synthetic(1024)
    );
    assert_eq!(
        "synthetic:64".parse::<Source>().unwrap(),
        Source::Synthetic(64)
    );
    for (bad, want) in [
        ("mnist:data", "unknown data source `mnist:data`"),
        ("idx:", "names no path"),
        ("synthetic:0", "is not a number of images"),
    ] {
        let e = bad.parse::<Source>().unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("help:"), "{bad}: {e}");
    }
    let a = synthetic(5, [1, 4, 4], 3, 9).unwrap();
    assert_eq!(a, synthetic(5, [1, 4, 4], 3, 9).unwrap());
    assert_ne!(a, synthetic(5, [1, 4, 4], 3, 10).unwrap());
    assert!(a.labels.iter().all(|&l| (0..3).contains(&l)));
    assert!(a.split(1.0, 0).is_err());
}

/// A network without a label input (classes 0) reads any labels, unchecked: an autoencoder
/// trains on MNIST files as they are.
#[test]
fn a_network_without_labels_takes_any_labels() {
    let dir = folder("unlabeled");
    std::fs::write(dir.join("a.csv"), "7,0,0,0,1\n12,1,1,1,1\n").unwrap();
    let got = load(&Source::Csv(dir.join("a.csv")), [1, 2, 2], 0, 0).unwrap();
    assert_eq!(got.train.labels, [7, 12]);
    assert_eq!(got.train.class_counts(), Vec::<usize>::new());
    // With classes, label 12 is out of range; without, a label must still be a whole number.
    let e = err(load(&Source::Csv(dir.join("a.csv")), [1, 2, 2], 10, 0));
    assert!(
        e.contains("label 12 is not a class below the network's 10"),
        "{e}"
    );
    std::fs::write(dir.join("b.csv"), "-1,0,0,0,1\n").unwrap();
    let e = err(load(&Source::Csv(dir.join("b.csv")), [1, 2, 2], 0, 0));
    assert!(e.contains("label -1 is not a whole number from 0"), "{e}");
    let idx_dir = folder("unlabeled-idx");
    small_idx(&idx_dir, "train-", false);
    let got = load(&Source::Idx(idx_dir), [1, 2, 3], 0, 0).unwrap();
    assert_eq!(got.train.labels, [2, 0, 1]);
    assert_eq!(synthetic(4, [1, 2, 2], 0, 1).unwrap().labels, [0, 0, 0, 0]);
}

/// Issue 12 item 16: an IDX file is read as far as its header declares and no further. A gzip
/// stream that goes on past the declared data is refused without being expanded to its end,
/// and a header that declares more than the file can hold is refused before any allocation.
#[test]
fn idx_data_is_read_to_the_size_its_header_declares() {
    let dir = folder("idx-declared");
    small_idx(&dir, "train-", true);
    let src = Source::Idx(dir.clone());
    let images = dir.join("train-images-idx3-ubyte.gz");
    // 18 bytes declared, then 16 MiB of zeros: a gzip file of about 16 KiB.
    let mut long = idx(&[3, 2, 3], &[0; 18]);
    long.resize(long.len() + (16 << 20), 0);
    std::fs::write(&images, gzip(&long)).unwrap();
    let start = std::time::Instant::now();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: holds more than the 3×2×3 = 18 bytes of data its header declares\n  \
             help: an IDX file is its header and exactly that much data: this one is corrupt, \
             or not the file it is named for",
            images.display()
        )
    );
    assert!(
        start.elapsed() < std::time::Duration::from_millis(500),
        "stops reading after the declared data: {:?}",
        start.elapsed()
    );
    // A billion images declared in a gzip file of a few dozen bytes.
    let bomb = gzip(&idx(&[1_000_000_000, 2, 3], &[0; 18]));
    std::fs::write(&images, &bomb).unwrap();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: the header says 1000000000×2×3 = 6000000000 bytes of data, more than the {} \
             bytes of this gzip file can expand to (at most {})\n  \
             help: the file is truncated or corrupt: download it again",
            images.display(),
            bomb.len(),
            bomb.len() * 1032
        )
    );
    // The same header, not gzipped: checked against the file's size.
    std::fs::remove_file(&images).unwrap();
    let raw = dir.join("train-images-idx3-ubyte");
    std::fs::write(&raw, idx(&[1_000_000_000, 2, 3], &[0; 18])).unwrap();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: the header says 1000000000×2×3 = 6000000000 bytes of data, the file has 18\n  \
             help: the file is truncated or corrupt: download it again",
            raw.display()
        )
    );
    // A labels file must hold one dimension.
    std::fs::write(&raw, idx(&[3, 2, 3], &[0; 18])).unwrap();
    let labels = dir.join("train-labels-idx1-ubyte.gz");
    std::fs::write(&labels, gzip(&idx(&[3, 1], &[0; 3]))).unwrap();
    let e = err(load(&src, [1, 2, 3], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: holds 3×1 values, not one label per image\n  \
             help: a labels file is an IDX file of one dimension",
            labels.display()
        )
    );
}

/// Issue 12 item 3: a data set too large for memory is an error that says how much memory it
/// needs, not an abort ("memory allocation failed").
#[test]
fn a_data_set_too_large_for_memory_is_an_error() {
    let e = err(load(&Source::Synthetic(1_000_000_000), [1, 28, 28], 10, 0));
    assert!(
        e.starts_with("1000000000 synthetic images of 1×28×28 need 2.86 TiB of memory, "),
        "{e}"
    );
    assert!(
        e.ends_with("\n  help: ask for fewer images: synthetic:N"),
        "{e}"
    );
    let e = err(load(&Source::Synthetic(usize::MAX), [3, 224, 224], 10, 0));
    assert_eq!(
        e,
        "18446744073709551615 synthetic images of 3×224×224 need more memory than a 64-bit \
         address space holds\n  help: ask for fewer images: synthetic:N"
    );
}
