//! CSV files, gzipped or not: per line a label, then `C·H·W` pixels, comma-separated.
//!
//! What the loader decides, it decides from the whole file and says so in a note:
//! - The first line is a header only if its label column is a name (`label`, `"y"`): a first
//!   data row with a bad field is a bad row like any other, not a header to skip.
//! - The pixels' scale: all in [0, 1] are used as they are; all whole numbers in 0..=255 are
//!   divided by 255; anything else (1.5 among fractions, 300) is an error that names a line of
//!   each kind, since no one scale fits.
//!
//! Every bad line is reported with its number (the first [`MAX_REPORTED`], then a count).

use std::path::Path;

use super::read::{Input, Line};
use super::{memory, DataError, Dataset, Loaded};

/// Bad lines listed in an error; more are counted.
const MAX_REPORTED: usize = 20;

/// Bytes a line may take per field: more than any number written out needs, so a longer
/// line cannot be an image of the network's input (and is not read into memory whole).
const MAX_FIELD_BYTES: usize = 64;

/// Said after every error about a line.
const ROW_HELP: &str = "each line is a label then C·H·W pixels, separated by commas; a header \
                        line names the label column first";

pub(super) fn load(path: &Path, shape: [usize; 3], classes: usize) -> Result<Loaded, DataError> {
    let mut input = Input::open(path)?;
    let len: usize = shape.iter().product();
    let cap = (len + 1).saturating_mul(MAX_FIELD_BYTES);
    let mut set = Dataset::empty(shape, classes);
    let mut notes = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0;
    let mut scale = Scale::default();
    let mut bytes = Vec::new();
    let mut first = true;
    for number in 1.. {
        match input.read_line(&mut bytes, cap)? {
            Line::End => break,
            Line::TooLong => {
                return Err(DataError::at(
                    path,
                    format!(
                        "line {number} is longer than {cap} bytes, too long for a label and \
                         {len} pixels"
                    ),
                )
                .hint(ROW_HELP))
            }
            Line::Read => {}
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            bad_count += 1;
            if bad.len() < MAX_REPORTED {
                bad.push(format!("line {number}: not text (UTF-8)"));
            }
            continue;
        };
        let line = text.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        if std::mem::take(&mut first) && is_header(line) {
            let columns = line.split(',').count();
            if columns != 1 + len {
                return Err(DataError::at(
                    path,
                    format!(
                        "line {number} is a header of {columns} columns, but the network's \
                         input [{}, {}, {}] takes a label and {len} pixels",
                        shape[0], shape[1], shape[2]
                    ),
                )
                .hint(ROW_HELP));
            }
            let name = line.split(',').next().unwrap_or_default().trim();
            notes.push(format!(
                "{}: line {number} is a header (its label column is {name}): skipped",
                path.display()
            ));
            continue;
        }
        memory::reserve(&mut set, 1, || format!("the images up to line {number}"))
            .map_err(|e| e.in_file(path))?;
        let at = set.images.len();
        if let Err(problem) = row(line, number, shape, classes, &mut set, &mut scale) {
            set.images.truncate(at);
            bad_count += 1;
            if bad.len() < MAX_REPORTED {
                bad.push(problem);
            }
        }
    }
    match bad.len() {
        0 => {}
        1 => return Err(DataError::at(path, bad.remove(0)).hint(ROW_HELP)),
        _ => {
            let mut message = format!("{bad_count} bad lines:");
            for problem in &bad {
                message += &format!("\n  {problem}");
            }
            if bad_count > bad.len() {
                message += &format!("\n  … and {} more", bad_count - bad.len());
            }
            return Err(DataError::at(path, message).hint(ROW_HELP));
        }
    }
    if set.is_empty() {
        return Err(DataError::at(path, "holds no images").hint(ROW_HELP));
    }
    notes.push(scale.apply(path, &mut set.images)?);
    Ok(Loaded {
        train: set,
        test: None,
        notes,
    })
}

/// Whether a first line is a header: its label column is a name (a letter, `_` or a quote
/// first), not a number. Other columns may be anything (`label,1x1,1x2,…`).
fn is_header(line: &str) -> bool {
    let label = line.split(',').next().unwrap_or_default().trim();
    label.parse::<f64>().is_err()
        && label
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"' || c == '\'')
}

/// Reads one data line into `set` (the label, then the pixels), noting its pixels' scale, or
/// says what is wrong with it ("line 3, column 4: …"). On an error, pixels of the line may
/// have been pushed: the caller truncates them.
fn row(
    line: &str,
    number: usize,
    shape: [usize; 3],
    classes: usize,
    set: &mut Dataset,
    scale: &mut Scale,
) -> Result<(), String> {
    let len = set.image_len();
    let fields = line.split(',').count();
    if fields != 1 + len {
        return Err(format!(
            "line {number}: {} pixels, but the network's input [{}, {}, {}] takes {len}",
            fields - 1,
            shape[0],
            shape[1],
            shape[2]
        ));
    }
    let mut fields = line.split(',').map(str::trim);
    let label = label(fields.next().unwrap_or_default(), number, classes)?;
    // Checked until the line is known good: its pixels only count towards the scale then.
    let mut seen = Scale::default();
    for (i, text) in fields.enumerate() {
        let column = i + 2;
        let at = || format!("line {number}, column {column}");
        // Parsed as f64 so that the scale is judged on what is written: 254.9999999 is not
        // a byte, though as an f32 it would be 255.
        let v: f64 = text
            .parse()
            .map_err(|_| format!("{}: `{text}` is not a number", at()))?;
        if !v.is_finite() {
            return Err(format!("{}: pixel {text} is not a finite number", at()));
        }
        if v < 0.0 {
            return Err(format!("{}: pixel {text} is negative", at()));
        }
        seen.see(v, || (number, column, text.to_string()));
        set.images.push(v as f32);
    }
    scale.merge(seen);
    set.labels.push(label);
    Ok(())
}

/// The label of line `number`: a whole number from 0, below `classes` unless that is 0.
fn label(text: &str, number: usize, classes: usize) -> Result<i64, String> {
    let Ok(v) = text.parse::<f64>() else {
        return Err(format!("line {number}, column 1: `{text}` is not a number"));
    };
    // NaN and infinities have no whole part: `fract` is NaN.
    let whole = v.fract() == 0.0 && (0.0..=i64::MAX as f64).contains(&v);
    if classes > 0 && !(whole && v < classes as f64) {
        Err(format!(
            "line {number}: label {text} is not a class below the network's {classes}"
        ))
    } else if !whole {
        Err(format!(
            "line {number}: label {text} is not a whole number from 0"
        ))
    } else {
        Ok(v as i64)
    }
}

/// Where a pixel of each kind that rules out a scale was first seen: (line, column, text).
type Seen = Option<(usize, usize, String)>;

/// The evidence for a file's scale.
#[derive(Default)]
struct Scale {
    /// A pixel above 1: the file is not in [0, 1].
    above_one: Seen,
    /// A pixel that is not a whole number in 0..=255: the file is not bytes.
    not_byte: Seen,
}

impl Scale {
    fn see(&mut self, v: f64, at: impl Fn() -> (usize, usize, String)) {
        if v > 1.0 && self.above_one.is_none() {
            self.above_one = Some(at());
        }
        if (v.fract() != 0.0 || v > 255.0) && self.not_byte.is_none() {
            self.not_byte = Some(at());
        }
    }

    /// Keeps the first sighting of each kind.
    fn merge(&mut self, other: Scale) {
        self.above_one = self.above_one.take().or(other.above_one);
        self.not_byte = self.not_byte.take().or(other.not_byte);
    }

    /// Scales `pixels` as the evidence decides and says what was decided, or says why no
    /// scale fits.
    fn apply(self, path: &Path, pixels: &mut [f32]) -> Result<String, DataError> {
        let file = path.display();
        match (self.above_one, self.not_byte) {
            (None, _) => Ok(format!(
                "{file}: the pixels are all in [0, 1]: used as they are"
            )),
            (Some(_), None) => {
                pixels.iter_mut().for_each(|v| *v /= 255.0);
                Ok(format!(
                    "{file}: the pixels are whole numbers from 0 to 255: divided by 255"
                ))
            }
            (Some((l1, c1, t1)), Some((l2, c2, t2))) => Err(DataError::at(
                path,
                format!(
                    "the pixels are neither all in [0, 1] (line {l1}, column {c1} holds {t1}) \
                     nor all whole numbers from 0 to 255 (line {l2}, column {c2} holds {t2})"
                ),
            )
            .hint("write every pixel in [0, 1], or every pixel as a whole number from 0 to 255")),
        }
    }
}
