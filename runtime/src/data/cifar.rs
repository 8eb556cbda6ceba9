//! CIFAR-10's binary batches: records of a label byte, then 3×32×32 pixel bytes,
//! channel-major; `data_batch_1.bin` … `data_batch_5.bin` train and `test_batch.bin` tests.
//! A batch holds at most the 10 000 records of CIFAR-10's own, so a gzipped batch cannot
//! expand without bound.

use std::path::Path;

use super::read::Input;
use super::{check_label, check_shape, memory, DataError, Dataset, Loaded};

/// Bytes of one record.
const RECORD: usize = 1 + 3 * 32 * 32;

/// Records of one of CIFAR-10's batches.
const BATCH_RECORDS: usize = 10_000;

/// The training batches, in order.
const BATCHES: usize = 5;

pub(super) fn load(dir: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    // A folder that is not there is that mistake, before any other (the shape).
    if !dir.is_dir() {
        return Err(DataError::at(dir, "no such folder")
            .hint("cifar10:DIR wants the folder holding data_batch_1.bin … data_batch_5.bin"));
    }
    check_shape(&dir.join("data_batch_1.bin"), [3, 32, 32], shape)?;
    let (present, missing): (Vec<usize>, Vec<usize>) =
        (1..=BATCHES).partition(|k| batch_path(dir, *k).exists());
    if present.is_empty() {
        return Err(DataError::at(&batch_path(dir, 1), "not found")
            .hint("cifar10:DIR wants the folder holding data_batch_1.bin … data_batch_5.bin"));
    }
    let mut notes = Vec::new();
    // A missing batch is worth saying but not fatal: a subset of the batches is a smaller
    // training set, and every batch present is read whichever are missing.
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|&k| format!("data_batch_{k}.bin"))
            .collect();
        let verb = if missing.len() == 1 { "is" } else { "are" };
        let batches = if present.len() == 1 {
            "batch"
        } else {
            "batches"
        };
        notes.push(format!(
            "{}: {} {verb} missing: training on the other {} {batches}",
            dir.display(),
            names.join(", "),
            present.len(),
        ));
    }
    let batches = present
        .iter()
        .map(|&k| Input::open(&batch_path(dir, k)))
        .collect::<Result<Vec<_>, _>>()?;
    let train = read_batches(batches, shape, classes)?;
    let test_path = dir.join("test_batch.bin");
    let test = if test_path.exists() {
        Some(read_batches(
            vec![Input::open(&test_path)?],
            shape,
            classes,
        )?)
    } else {
        notes.push(format!(
            "{}: has no test_batch.bin: no test set",
            dir.display()
        ));
        None
    };
    Ok(Loaded { train, test, notes })
}

fn batch_path(dir: &Path, k: usize) -> std::path::PathBuf {
    dir.join(format!("data_batch_{k}.bin"))
}

/// The records of `batches`, one set.
fn read_batches(
    batches: Vec<Input>,
    shape: [usize; 3],
    classes: usize,
) -> Result<Dataset, DataError> {
    let mut set = Dataset::empty(shape, classes);
    // Uncompressed batches say their size: room for all of them at once. Gzipped ones grow
    // the set as they are read.
    let known = |input: &Input| match (input.on_disk(), input.is_gzip()) {
        (Some(bytes), false) => (bytes / RECORD as u64).min(BATCH_RECORDS as u64) as usize,
        _ => 0,
    };
    let records: usize = batches.iter().map(known).sum();
    memory::reserve_exact(&mut set, records, || format!("{records} CIFAR-10 images"))
        .map_err(|e| e.in_file(&batches[0].path))?;
    for input in batches {
        read_batch(input, &mut set)?;
    }
    Ok(set)
}

/// Appends the records of one batch to `set`.
fn read_batch(mut input: Input, set: &mut Dataset) -> Result<(), DataError> {
    let path = input.path.clone();
    let path = path.as_path();
    let mut record = vec![0u8; RECORD];
    let mut records = 0;
    loop {
        let got = input.read_full(&mut record)?;
        if got == 0 {
            break;
        }
        if got < RECORD {
            return Err(DataError::at(
                path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                    records * RECORD + got
                ),
            )
            .hint("use the binary version of CIFAR-10 (cifar-10-binary.tar.gz), unpacked"));
        }
        if records == BATCH_RECORDS {
            return Err(DataError::at(
                path,
                format!("holds more than the {BATCH_RECORDS} records of a CIFAR-10 batch"),
            )
            .hint("use the binary version of CIFAR-10 (cifar-10-binary.tar.gz), unpacked"));
        }
        let total = set.len() + 1;
        memory::reserve(set, 1, || format!("{total} CIFAR-10 images"))
            .map_err(|e| e.in_file(path))?;
        set.labels
            .push(check_label(path, records, record[0], set.classes)?);
        set.images
            .extend(record[1..].iter().map(|&b| b as f32 / 255.0));
        records += 1;
    }
    if records == 0 {
        return Err(DataError::at(path, "is empty, not CIFAR-10 records")
            .hint("use the binary version of CIFAR-10 (cifar-10-binary.tar.gz), unpacked"));
    }
    Ok(())
}
