//! A data file as a stream of bytes, gunzipped on the way when it starts with gzip's magic,
//! so a reader takes only what it needs (an IDX header, then the data it declares), and with
//! a bound on how many bytes the stream can hold, known before any is read: a lying header is
//! refused before it costs memory or time.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::DataError;

/// The most bytes one compressed byte of a deflate stream can expand to: a match copies at
/// most 258 bytes and costs at least 2 bits, so 4 · 258 per byte (zlib's own figure, 1032:1).
pub(super) const DEFLATE_MAX_RATIO: u64 = 1032;

/// An open data file.
pub(super) struct Input {
    /// The file, for errors.
    pub path: PathBuf,
    reader: Box<dyn BufRead>,
    gzip: bool,
    /// Its size on disk, when it is a regular file.
    on_disk: Option<u64>,
}

impl Input {
    /// Opens `path`, looking at its first two bytes for gzip's magic.
    pub fn open(path: &Path) -> Result<Input, DataError> {
        let cannot = |e: std::io::Error| DataError::at(path, format!("cannot read: {e}"));
        let file = File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        let mut raw = BufReader::new(file);
        let gzip = raw.fill_buf().map_err(cannot)?.starts_with(&[0x1f, 0x8b]);
        // Concatenated gzip members are one stream, as `gzip -d` reads them.
        let reader: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(raw)))
        } else {
            Box::new(raw)
        };
        Ok(Input {
            path: path.to_path_buf(),
            reader,
            gzip,
            on_disk: meta.is_file().then_some(meta.len()),
        })
    }

    /// Whether the file is gzipped.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The file's size on disk (unknown for a pipe or a device).
    pub fn on_disk(&self) -> Option<u64> {
        self.on_disk
    }

    /// The most bytes the stream can hold: the file's size, or for gzip that times
    /// [`DEFLATE_MAX_RATIO`]; unbounded when the size is unknown.
    pub fn max_len(&self) -> u64 {
        match (self.on_disk, self.gzip) {
            (Some(n), false) => n,
            (Some(n), true) => n.saturating_mul(DEFLATE_MAX_RATIO),
            (None, _) => u64::MAX,
        }
    }

    /// Fills `buf` from the stream; fewer bytes (the count returned) only at its end.
    pub fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(got)
    }

    /// Whether the stream is at its end (for gzip, after checking its trailer).
    pub fn at_end(&mut self) -> Result<bool, DataError> {
        match self.reader.fill_buf() {
            Ok(rest) => Ok(rest.is_empty()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The next line into `line` (cleared first, without its `\n`), reading at most `cap`
    /// bytes of it: a longer line is [`Line::TooLong`], and the stream is left inside it.
    pub fn read_line(&mut self, line: &mut Vec<u8>, cap: usize) -> Result<Line, DataError> {
        line.clear();
        let got = (&mut self.reader)
            .take(cap as u64 + 1)
            .read_until(b'\n', line)
            .map_err(|e| self.error(e))?;
        if got == 0 {
            Ok(Line::End)
        } else if line.last() == Some(&b'\n') {
            line.pop();
            Ok(Line::Read)
        } else if line.len() > cap {
            Ok(Line::TooLong)
        } else {
            Ok(Line::Read)
        }
    }

    /// A read error: a corrupt gzip stream, or the file itself.
    fn error(&self, e: std::io::Error) -> DataError {
        if self.gzip && e.kind() != ErrorKind::PermissionDenied {
            DataError::at(&self.path, format!("corrupt gzip data: {e}"))
                .hint("download the file again; `gzip -t FILE` checks it")
        } else {
            DataError::at(&self.path, format!("cannot read: {e}"))
        }
    }
}

/// What [`Input::read_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A line, now in the buffer.
    Read,
    /// A line longer than the cap.
    TooLong,
    /// The end of the stream.
    End,
}
