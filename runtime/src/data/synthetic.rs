//! Seeded synthetic data for benchmarks: uniform noise with uniform labels.

use super::{memory, shape_text, DataError, Dataset};
use crate::rng::Rng;

/// `n` images of uniform noise in `[0, 1)` with uniform labels below `classes` (all 0 when
/// `classes` is 0), from `seed`; an error if they do not fit in memory.
pub fn synthetic(
    n: usize,
    shape: [usize; 3],
    classes: usize,
    seed: u64,
) -> Result<Dataset, DataError> {
    let mut set = Dataset::empty(shape, classes);
    memory::reserve_exact(&mut set, n, || {
        format!("{n} synthetic images of {}", shape_text(shape))
    })
    .map_err(|e| e.hint("ask for fewer images: synthetic:N"))?;
    let mut rng = Rng::new(seed);
    set.images
        .extend((0..n * set.image_len()).map(|_| rng.next_f32()));
    set.labels
        .extend((0..n).map(|_| rng.below(classes.max(1) as u64) as i64));
    Ok(set)
}
