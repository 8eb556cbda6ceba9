//! Every data format read from small files made here, the bundled MNIST digits, and corrupt
//! or mismatched files refused with a message that names the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use netc_runtime::data::{load, synthetic, DataError, Source};

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
fn cifar10_batches_read_and_corrupt_ones_are_refused() {
    let dir = folder("cifar");
    let record = |label: u8, v: u8| -> Vec<u8> {
        let mut r = vec![label];
        r.extend(vec![v; 3072]);
        r
    };
    let batch = |n: u8| -> Vec<u8> { (0..n).flat_map(|k| record(k % 10, k)).collect() };
    std::fs::write(dir.join("data_batch_1.bin"), batch(3)).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), batch(2)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), batch(4)).unwrap();
    let src = Source::Cifar10(dir.clone());
    let got = load(&src, [3, 32, 32], 10, 0).unwrap();
    assert_eq!(got.train.labels, [0, 1, 2, 0, 1]);
    assert_eq!(got.train.image(2)[3071], 2.0 / 255.0);
    assert_eq!(got.test.unwrap().len(), 4);
    let e = err(load(&src, [1, 28, 28], 10, 0));
    assert!(e.contains("images are 3×32×32"), "{e}");
    std::fs::write(dir.join("data_batch_2.bin"), &batch(2)[..5000]).unwrap();
    let e = err(load(&src, [3, 32, 32], 10, 0));
    assert!(
        e.contains("5000 bytes is not a whole number of 3073-byte CIFAR-10 records"),
        "{e}"
    );
    let e = err(load(
        &Source::Cifar10(folder("cifar-empty")),
        [3, 32, 32],
        10,
        0,
    ));
    assert!(e.contains("data_batch_1.bin: not found"), "{e}");
}

#[test]
fn csv_files_read_with_or_without_header_and_gzip() {
    let dir = folder("csv");
    let text = "label,p0,p1,p2,p3\n1, 0, 255, 51, 102\n0,255,255,0,0\n";
    std::fs::write(dir.join("a.csv"), text).unwrap();
    std::fs::write(dir.join("a.csv.gz"), gzip(text.as_bytes())).unwrap();
    for file in ["a.csv", "a.csv.gz"] {
        let got = load(&Source::Csv(dir.join(file)), [1, 2, 2], 2, 0).unwrap();
        assert_eq!(got.train.labels, [1, 0]);
        assert_eq!(got.train.image(0), &[0.0, 1.0, 0.2, 0.4]);
    }
    // Values already in [0, 1] stay as they are.
    std::fs::write(dir.join("b.csv"), "1,0.5,0.25,0,1\n").unwrap();
    let got = load(&Source::Csv(dir.join("b.csv")), [1, 2, 2], 2, 0).unwrap();
    assert_eq!(got.train.image(0), &[0.5, 0.25, 0.0, 1.0]);
    for (bad, want) in [
        (
            "1,0,0,0\n",
            "line 1: 3 pixels, but the network's input [1, 2, 2] takes 4",
        ),
        (
            "2,0,0,0,0\n",
            "line 1: label 2 is not a class below the network's 2",
        ),
        ("1,0,0,0,0\n0,0,x,0,0\n", "line 2: not all numbers"),
        ("label,a,b,c,d\n", "holds no images"),
        ("1,0,-3,0,0\n", "negative or non-finite pixel"),
    ] {
        std::fs::write(dir.join("bad.csv"), bad).unwrap();
        let e = err(load(&Source::Csv(dir.join("bad.csv")), [1, 2, 2], 2, 0));
        assert!(e.contains(want), "{bad:?}: {e}");
    }
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
    let a = synthetic(5, [1, 4, 4], 3, 9);
    assert_eq!(a, synthetic(5, [1, 4, 4], 3, 9));
    assert_ne!(a, synthetic(5, [1, 4, 4], 3, 10));
    assert!(a.labels.iter().all(|&l| (0..3).contains(&l)));
    assert!(a.split(1.0, 0).is_err());
}

/// Class folders of PNG and JPEG files: labels by folder name order, gray or RGB, resized to
/// the input; `train/` and `test/` subfolders are the two sets; a broken image is named.
#[cfg(feature = "images")]
#[test]
fn image_folders_read_and_resize() {
    let dir = folder("images");
    for (class, value) in [("a_cat", 40u8), ("b_dog", 200u8)] {
        let d = dir.join("train").join(class);
        std::fs::create_dir_all(&d).unwrap();
        let img = image::RgbImage::from_fn(6, 4, |x, _| image::Rgb([value, value / 2, x as u8]));
        img.save(d.join("1.png")).unwrap();
        image::DynamicImage::ImageRgb8(img)
            .to_luma8()
            .save(d.join("2.jpg"))
            .unwrap();
        std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    }
    std::fs::create_dir_all(dir.join("test/a_cat")).unwrap();
    image::GrayImage::from_pixel(3, 3, image::Luma([255]))
        .save(dir.join("test/a_cat/x.png"))
        .unwrap();
    let got = load(&Source::Folder(dir.clone()), [3, 2, 3], 2, 0).unwrap();
    assert_eq!(got.train.labels, [0, 0, 1, 1]);
    assert_eq!(got.train.image_len(), 18);
    // The PNG of class b: red channel 200 everywhere, green 100.
    let b = got.train.image(2);
    assert!(
        b[..6].iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6),
        "{b:?}"
    );
    assert!(
        b[6..12].iter().all(|&v| (v - 100.0 / 255.0).abs() < 1e-6),
        "{b:?}"
    );
    let test = got.test.unwrap();
    assert_eq!((test.len(), test.image(0)[0]), (1, 1.0));
    let gray = load(&Source::Folder(dir.clone()), [1, 4, 6], 2, 0).unwrap();
    assert_eq!(gray.train.image_len(), 24);

    let e = err(load(&Source::Folder(dir.clone()), [3, 2, 3], 1, 0));
    assert!(
        e.contains("has 2 class folders, but the network has 1 classes"),
        "{e}"
    );
    std::fs::write(dir.join("train/b_dog/3.png"), b"\x89PNG broken").unwrap();
    let e = err(load(&Source::Folder(dir.clone()), [3, 2, 3], 2, 0));
    assert!(e.contains("3.png: not a readable image"), "{e}");
    let e = err(load(
        &Source::Folder(folder("images-empty")),
        [3, 2, 3],
        2,
        0,
    ));
    assert!(e.contains("has no class folders"), "{e}");
    assert_eq!(
        "folder:x".parse::<Source>().unwrap(),
        Source::Folder("x".into())
    );
}

/// Without the `images` feature, `folder:` says what is missing instead of failing oddly.
#[cfg(not(feature = "images"))]
#[test]
fn image_folders_need_the_images_feature() {
    let e = err(load(&Source::Folder("x".into()), [3, 2, 3], 2, 0));
    assert!(
        e.contains("reads no image files") && e.contains("`images` feature"),
        "{e}"
    );
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
    assert_eq!(synthetic(4, [1, 2, 2], 0, 1).labels, [0, 0, 0, 0]);
}
