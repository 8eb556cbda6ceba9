//! [`Dataset`]: labelled images in one flat buffer, and the seeded split of a training set
//! into training and validation images.

use super::{memory, DataError};
use crate::rng::Rng;

/// Labelled images: `images` holds `len() · C·H·W` values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
    /// Labels are below this.
    pub classes: usize,
    /// Every image, one after another.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<i64>,
}

impl Dataset {
    /// A set of no images yet.
    pub fn empty(shape: [usize; 3], classes: usize) -> Dataset {
        Dataset {
            shape,
            classes,
            images: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Images in the set.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`. Panics unless `i < len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// The images at `indices`, in that order; an error if they do not fit in memory. Panics
    /// if an index is not below `len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let mut set = Dataset::empty(self.shape, self.classes);
        memory::reserve_exact(&mut set, indices.len(), || {
            format!("{} copied images", indices.len())
        })?;
        for &i in indices {
            set.images.extend_from_slice(self.image(i));
            set.labels.push(self.labels[i]);
        }
        Ok(set)
    }

    /// A training and a validation set: the images shuffled by `seed`, then the first
    /// `⌊len · fraction⌋` of them held out for validation. The same seed always gives the same
    /// split. The two sets are copies: an error if they do not fit in memory beside this one.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DataError::new(format!(
                "a validation split of {fraction} is not in [0, 1)"
            ))
            .hint("--val-split takes a fraction such as 0.1"));
        }
        let mut order: Vec<usize> = Vec::new();
        order
            .try_reserve_exact(self.len())
            .map_err(|_| DataError::new(format!("no memory to shuffle {} images", self.len())))?;
        order.extend(0..self.len());
        Rng::new(seed).shuffle(&mut order);
        // fraction < 1, so held ≤ len.
        let held = ((self.len() as f64 * fraction) as usize).min(self.len());
        Ok((self.subset(&order[held..])?, self.subset(&order[..held])?))
    }

    /// How many images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = usize::try_from(l).ok().and_then(|l| counts.get_mut(l)) {
                *c += 1;
            }
        }
        counts
    }
}
