//! Room for a data set, asked of the allocator before it is filled: the bytes are counted in
//! checked arithmetic and reserved with `try_reserve`, so a set too large for memory is a
//! [`DataError`] that says how much it needed, not an abort ("memory allocation failed").

use super::{DataError, Dataset};
use crate::memory::{human, machine_total};

/// Reserves room for exactly `more` more images (and labels) in `set`; `what` names all of
/// them for the error, e.g. "60000 images of 1×28×28".
pub(super) fn reserve_exact(
    set: &mut Dataset,
    more: usize,
    what: impl FnOnce() -> String,
) -> Result<(), DataError> {
    reserve_in(set, more, true, what)
}

/// Reserves room for `more` more images in `set`, growing it geometrically: for sets read
/// one image at a time, whose size is not known ahead.
pub(super) fn reserve(
    set: &mut Dataset,
    more: usize,
    what: impl FnOnce() -> String,
) -> Result<(), DataError> {
    reserve_in(set, more, false, what)
}

fn reserve_in(
    set: &mut Dataset,
    more: usize,
    exact: bool,
    what: impl FnOnce() -> String,
) -> Result<(), DataError> {
    let len = set.image_len();
    let values = more.checked_mul(len);
    if let Some(values) = values {
        if set.images.capacity() - set.images.len() >= values
            && set.labels.capacity() - set.labels.len() >= more
        {
            return Ok(());
        }
    }
    // An image is `len` f32 values and an i64 label.
    let bytes = set.len().checked_add(more).and_then(|n| {
        let floats = n.checked_mul(len)?.checked_mul(4)?;
        floats.checked_add(n.checked_mul(8)?)
    });
    let (Some(bytes), Some(values)) = (bytes, values) else {
        return Err(too_big(format!(
            "{} need more memory than a {}-bit address space holds",
            what(),
            usize::BITS
        )));
    };
    if let Some(machine) = machine_total().filter(|&m| bytes as u64 > m) {
        return Err(too_big(format!(
            "{} need {} of memory, more than this machine's {}",
            what(),
            human(bytes as u64),
            human(machine)
        )));
    }
    let reserved = if exact {
        set.images
            .try_reserve_exact(values)
            .and_then(|_| set.labels.try_reserve_exact(more))
    } else {
        set.images
            .try_reserve(values)
            .and_then(|_| set.labels.try_reserve(more))
    };
    reserved.map_err(|_| {
        too_big(format!(
            "{} need {} of memory, which the system would not allocate",
            what(),
            human(bytes as u64)
        ))
    })
}

fn too_big(message: String) -> DataError {
    DataError::new(message).hint("use fewer or smaller images, or a machine with more memory")
}
