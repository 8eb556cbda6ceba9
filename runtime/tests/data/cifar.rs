//! CIFAR-10 binary batches.

use netc_runtime::data::{load, Source};

use crate::{err, folder};

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
    assert_eq!(
        got.notes,
        [format!(
            "{}: data_batch_3.bin, data_batch_4.bin, data_batch_5.bin are missing: training on \
             the other 2 batches",
            dir.display()
        )]
    );
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

/// Issue 12 item 15: a missing batch does not silently drop the batches after it: the ones
/// present are read, and the missing ones are named.
#[test]
fn a_missing_cifar10_batch_does_not_drop_the_later_ones() {
    let dir = folder("cifar-gap");
    for k in [1u8, 2, 4, 5] {
        let record: Vec<u8> = std::iter::once(k).chain(vec![k; 3072]).collect();
        std::fs::write(
            dir.join(format!("data_batch_{k}.bin")),
            record.repeat(k as usize),
        )
        .unwrap();
    }
    let got = load(&Source::Cifar10(dir.clone()), [3, 32, 32], 10, 0).unwrap();
    assert_eq!(got.train.labels, [1, 2, 2, 4, 4, 4, 4, 5, 5, 5, 5, 5]);
    let d = dir.display();
    assert_eq!(
        got.notes,
        [
            format!("{d}: data_batch_3.bin is missing: training on the other 4 batches"),
            format!("{d}: has no test_batch.bin: no test set"),
        ]
    );
}
