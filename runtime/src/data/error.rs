//! [`DataError`]: what went wrong reading data, the file at fault and what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

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
    pub(super) fn new(message: impl Into<String>) -> DataError {
        DataError {
            path: None,
            message: message.into(),
            help: None,
        }
    }

    pub(super) fn at(path: &Path, message: impl Into<String>) -> DataError {
        DataError {
            path: Some(path.to_path_buf()),
            ..DataError::new(message)
        }
    }

    /// The same error, blamed on `path` (the file whose data would not fit in memory).
    pub(super) fn in_file(mut self, path: &Path) -> DataError {
        self.path = Some(path.to_path_buf());
        self
    }

    pub(super) fn hint(mut self, help: impl Into<String>) -> DataError {
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
