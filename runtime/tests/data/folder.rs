//! `folder:` sets: one subfolder of PNG or JPEG images per class.

use netc_runtime::data::{load, Source};

use crate::err;
#[cfg(feature = "images")]
use crate::folder;

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

/// A 2×2 gray PNG of one value at `dir/name`.
#[cfg(feature = "images")]
fn png(dir: &std::path::Path, name: &str, value: u8) {
    std::fs::create_dir_all(dir).unwrap();
    image::GrayImage::from_pixel(2, 2, image::Luma([value]))
        .save(dir.join(name))
        .unwrap();
}

/// Issue 12 item 13: classes are named by their folders and numbered by the training set's:
/// a test set without class `b` still labels `c` as 2, and a test class the training set
/// lacks is an error that names it.
#[cfg(feature = "images")]
#[test]
fn test_classes_take_the_training_sets_numbers() {
    let dir = folder("images-classes");
    for (set, class, value) in [
        ("train", "a", 0),
        ("train", "b", 100),
        ("train", "c", 200),
        ("test", "a", 0),
        ("test", "c", 200),
    ] {
        png(&dir.join(set).join(class), "1.png", value);
    }
    let got = load(&Source::Folder(dir.clone()), [1, 2, 2], 3, 0).unwrap();
    assert_eq!(got.train.labels, [0, 1, 2]);
    let test = got.test.unwrap();
    assert_eq!(test.labels, [0, 2]);
    assert_eq!(test.image(1)[0], 200.0 / 255.0);
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    assert_eq!(
        got.notes,
        [
            format!(
                "{}: 3 classes, numbered by folder name: a = 0, b = 1, c = 2",
                train_dir.display()
            ),
            format!("{}: has no images of b", test_dir.display()),
        ]
    );
    png(&dir.join("test/d"), "1.png", 50);
    png(&dir.join("test/e"), "1.png", 50);
    let e = err(load(&Source::Folder(dir.clone()), [1, 2, 2], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: the classes `d`, `e` are not classes of the training set (a, b, c)\n  \
             help: the training set's folders name and number the classes: name the test \
             set's folders like them",
            dir.join("test").display()
        )
    );
}

/// Issue 12 item 17: a class folder of the training set without images is an error (the
/// class would take a number but never be seen).
#[cfg(feature = "images")]
#[test]
fn an_empty_training_class_folder_is_an_error() {
    let dir = folder("images-empty-class");
    png(&dir.join("train/a"), "1.png", 0);
    std::fs::create_dir_all(dir.join("train/b")).unwrap();
    std::fs::write(dir.join("train/b/notes.txt"), "not an image").unwrap();
    png(&dir.join("train/c"), "1.png", 0);
    let e = err(load(&Source::Folder(dir.clone()), [1, 2, 2], 3, 0));
    assert_eq!(
        e,
        format!(
            "{}: the class folder `b` holds no PNG or JPEG images\n  \
             help: add images of `b`, or remove the folder (the training set's folders \
             number the classes)",
            dir.join("train/b").display()
        )
    );
}

/// Issue 12 item 17: entries that are not images (other files, folders inside a class folder,
/// hidden entries, folders beside train/ and test/) are skipped, counted and named in notes.
#[cfg(feature = "images")]
#[test]
fn entries_that_are_not_images_are_counted_in_notes() {
    let dir = folder("images-skipped");
    png(&dir.join("train/a"), "1.png", 0);
    png(&dir.join("train/b"), "1.png", 0);
    png(&dir.join("test/a"), "1.png", 0);
    png(&dir.join("val/a"), "1.png", 0);
    for d in ["train/.ipynb_checkpoints", "train/a/sub", "test/b"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in [
        "train/README.md",
        "train/a/.DS_Store",
        "train/a/notes.txt",
        "train/b/x.gif",
    ] {
        std::fs::write(dir.join(f), "not an image").unwrap();
    }
    let got = load(&Source::Folder(dir.clone()), [1, 2, 2], 2, 0).unwrap();
    assert_eq!(
        (got.train.labels, got.test.unwrap().labels),
        (vec![0, 1], vec![0])
    );
    let (d, train, test) = (
        dir.display(),
        dir.join("train").display().to_string(),
        dir.join("test").display().to_string(),
    );
    assert_eq!(
        got.notes,
        [
            format!("{d}: only train/ and test/ are read: skipped val"),
            format!("{train}: 2 classes, numbered by folder name: a = 0, b = 1"),
            format!(
                "{train}: skipped 6 entries that are not PNG or JPEG images in class folders: \
                 .ipynb_checkpoints, README.md, a/.DS_Store, a/notes.txt, a/sub and 1 more"
            ),
            format!("{test}: has no images of b"),
        ]
    );
}
