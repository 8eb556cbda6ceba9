//! [`Source`]: where data comes from, parsed from a trainer's `--data` flag.

use std::path::PathBuf;
use std::str::FromStr;

use super::DataError;

/// Where data comes from: the `--data` flag of a trainer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `idx:DIR`: MNIST/Fashion-MNIST files, gzipped or not. `train-*` (or any other prefix)
    /// is the training set, `t10k-*` or `test-*` the test set.
    Idx(PathBuf),
    /// `cifar10:DIR`: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`. Missing
    /// training batches are named in a note; the ones present are all read.
    Cifar10(PathBuf),
    /// `csv:FILE` or `csv:FILE.gz`: one image a line, the label then the pixels, an optional
    /// header line.
    Csv(PathBuf),
    /// `synthetic` or `synthetic:N`: N seeded random images with random labels (1024 by
    /// default), for benchmarks.
    Synthetic(usize),
    /// `folder:DIR`: one subfolder per class, PNG or JPEG files, converted to the input's
    /// channels (gray or RGB) and resized to its size. With `train/` and `test/` subfolders,
    /// those are the two sets, and the training set's folder names number the classes (in
    /// name order). Needs the `images` feature.
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
