//! Splitting a batch by images into shards, each run start to finish on one thread.
//!
//! A layer too small to split over threads (LeNet's, or the 7×7 maps of a ResNet at batch
//! 8) pays the pool's wake-ups in each of its kernels, and a second thread can make it
//! slower than one (`plan::threads` keeps such layers on one thread, which then leaves the
//! other idle). Two halves of the batch, each run through the whole network on a thread of
//! its own, share only the parameters (and, where a layer mixes the images, that layer's
//! sums: [`Group`]): on this 2-core machine two one-thread LeNet
//! steps at batch 32 ran 27.3k img/s together against 13.6k for one at batch 64, and
//! ResNet-50's inference at batch 4 twice over 25.5 img/s against 23.6 for batch 8 split
//! layer by layer.
//!
//! The generated code keeps a workspace per shard (`Sharded`); this module holds what does
//! not depend on the network: where each shard's images are, running the shards on the
//! runtime's threads ([`run`]; [`Group::run`] for shards that run together and exchange a
//! batchnorm's sums), and summing their gradients in a fixed order, so that a given number
//! of shards computes the same bits on any number of threads.

mod peers;

pub use peers::{Group, Peers};

use std::ops::Range;

use rayon::prelude::*;

use crate::gemm::{one_thread, Context};

/// The most shards a batch is split into.
pub const MAX_SHARDS: usize = 8;

/// The images of each of `shards` shards of a batch of `batch`: contiguous, in order, their
/// sizes differing by at most one (`batch·k/shards .. batch·(k+1)/shards`).
pub fn ranges(batch: usize, shards: usize) -> Vec<Range<usize>> {
    let shards = shards.clamp(1, batch.max(1));
    (0..shards)
        .map(|k| batch * k / shards..batch * (k + 1) / shards)
        .collect()
}

/// How many shards a training batch of `batch` is cut into, each of at least `min_images`.
/// Shards that run `together` ([`Group`]: a layer mixes the images, and its sums are
/// exchanged) are one per thread of the runtime's context, so one thread is the whole
/// batch's step to the bit. Otherwise the count depends on the batch alone, never on the
/// threads, so that training computes the same bits on any number of threads.
pub fn train_shards(batch: usize, min_images: usize, together: bool) -> usize {
    if together {
        return per_thread(batch, min_images);
    }
    (batch / min_images.max(1)).clamp(1, MAX_SHARDS)
}

/// How many shards an inference batch of `batch` is cut into: one per thread of the
/// runtime's context, when every shard gets at least `min_images`. Inference computes each
/// image on its own (batchnorm on its running statistics), and every kernel sums an output
/// in an order that does not depend on the other images, so the shards change no bits.
pub fn infer_shards(batch: usize, min_images: usize) -> usize {
    per_thread(batch, min_images)
}

/// A shard per thread of the runtime's context, each of at least `min_images`.
fn per_thread(batch: usize, min_images: usize) -> usize {
    let threads = Context::global().threads();
    threads.min(batch / min_images.max(1)).clamp(1, MAX_SHARDS)
}

/// `&v[r.start·per .. r.end·per]`: shard `r`'s part of a batch-first buffer of `per`
/// values a sample; an empty buffer (an input a pass does not read) stays empty.
pub fn part<'a, T>(v: &'a [T], per: usize, r: &Range<usize>) -> &'a [T] {
    if v.is_empty() {
        return v;
    }
    &v[r.start * per..r.end * per]
}

/// Runs `f(k, parts[k])` for every part: on the runtime's threads when there are several
/// parts and threads, each part on one thread alone (its kernels do not wake the pool);
/// else in order on this thread. Returns what each call returned, in order.
pub fn run<T: Send, R: Send>(parts: &mut [T], f: impl Fn(usize, &mut T) -> R + Sync) -> Vec<R> {
    let ctx = Context::global();
    if parts.len() < 2 || ctx.threads() < 2 {
        return parts.iter_mut().enumerate().map(|(k, t)| f(k, t)).collect();
    }
    ctx.install(|| {
        parts
            .par_iter_mut()
            .enumerate()
            .map(|(k, t)| {
                let _alone = one_thread();
                f(k, t)
            })
            .collect()
    })
}

/// `dst = w[0]·dst + Σ_k w[k+1]·rest[k]`: the mean of the shards' gradients, each weighted
/// by its share of the batch, summed element by element as a balanced tree in shard order
/// (`((t0 + t1) + (t2 + t3))`). The tree is the sum data-parallel ranks make: two ranks of
/// two shards each sum their pairs (each scaled by a power of two, which is exact), then
/// the allreduce sums the ranks, so one process of four shards and two ranks of two compute
/// the same bits (`tests/train/distributed.rs`); a sum in a row would round otherwise.
pub fn combine(dst: &mut [f32], w: &[f32], rest: &[&[f32]]) {
    assert_eq!(w.len(), rest.len() + 1, "combine: a weight per part");
    assert!(w.len() <= MAX_SHARDS, "combine: at most {MAX_SHARDS} parts");
    for r in rest {
        assert_eq!(r.len(), dst.len(), "combine: part lengths");
    }
    let mut t = [0.0f32; MAX_SHARDS];
    for (i, d) in dst.iter_mut().enumerate() {
        t[0] = w[0] * *d;
        for (k, (r, &wk)) in rest.iter().zip(&w[1..]).enumerate() {
            t[k + 1] = wk * r[i];
        }
        let mut n = w.len();
        while n > 1 {
            for j in 0..n / 2 {
                t[j] = t[2 * j] + t[2 * j + 1];
            }
            if n % 2 == 1 {
                t[n / 2] = t[n - 1];
            }
            n = n.div_ceil(2);
        }
        *d = t[0];
    }
}

/// Each shard's weight in a batch of `batch`: its share of the images.
pub fn weights(ranges: &[Range<usize>], batch: usize) -> Vec<f32> {
    ranges
        .iter()
        .map(|r| r.len() as f32 / batch as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_batch_in_order() {
        assert_eq!(ranges(64, 2), vec![0..32, 32..64]);
        assert_eq!(ranges(10, 3), vec![0..3, 3..6, 6..10]);
        // Never an empty shard.
        assert_eq!(ranges(2, 4), vec![0..1, 1..2]);
        assert_eq!(ranges(0, 2), vec![0..0]);
    }

    #[test]
    fn training_shards_depend_on_the_batch_alone() {
        assert_eq!(train_shards(64, 16, false), 4);
        assert_eq!(train_shards(31, 16, false), 1);
        assert_eq!(train_shards(32, 16, false), 2);
        assert_eq!(train_shards(100_000, 16, false), MAX_SHARDS);
        // Together, a shard per thread: one on one thread, whatever the batch.
        assert_eq!(crate::gemm::serial(|| train_shards(64, 4, true)), 1);
    }

    #[test]
    fn parts_of_empty_buffers_stay_empty() {
        let v: Vec<i64> = (0..12).collect();
        assert_eq!(part(&v, 3, &(1..3)), &[3, 4, 5, 6, 7, 8]);
        assert!(part::<i64>(&[], 3, &(1..3)).is_empty());
    }

    #[test]
    fn shards_compute_the_same_on_any_number_of_threads() {
        let mut parts: Vec<Vec<f32>> = (0..5).map(|k| vec![k as f32; 1000]).collect();
        let sums = |parts: &mut [Vec<f32>]| {
            run(parts, |k, v| {
                v.iter_mut().for_each(|x| *x = (*x + 0.1).sqrt());
                v.iter().sum::<f32>() + k as f32
            })
        };
        let one = crate::gemm::serial(|| sums(&mut parts.clone()));
        let all = sums(&mut parts);
        assert_eq!(one, all);
    }

    #[test]
    fn combine_weights_each_part() {
        let mut d = vec![2.0f32, 4.0];
        combine(&mut d, &[0.5, 0.25, 0.25], &[&[4.0, 8.0], &[0.0, 4.0]]);
        assert_eq!(d, vec![2.0, 5.0]);
    }

    /// Four quarters summed as a tree are two halves of two, each halved again, summed:
    /// the bits of two data-parallel ranks of two shards each.
    #[test]
    fn four_shards_sum_as_two_ranks_of_two() {
        let mut r = crate::rng::Rng::new(3);
        let g: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..1000).map(|_| r.uniform(-1.0, 1.0)).collect())
            .collect();
        let mut one = g[0].clone();
        combine(&mut one, &[0.25; 4], &[&g[1], &g[2], &g[3]]);
        let rank = |a: &[f32], b: &[f32]| {
            let mut h = a.to_vec();
            combine(&mut h, &[0.5, 0.5], &[b]);
            h.iter().map(|v| v * 0.5).collect::<Vec<f32>>()
        };
        let (r0, r1) = (rank(&g[0], &g[1]), rank(&g[2], &g[3]));
        let two: Vec<f32> = r0.iter().zip(&r1).map(|(a, b)| a + b).collect();
        assert!(one
            .iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // In a row, the sum rounds otherwise somewhere.
        let row: Vec<f32> = (0..1000)
            .map(|i| ((0.25 * g[0][i] + 0.25 * g[1][i]) + 0.25 * g[2][i]) + 0.25 * g[3][i])
            .collect();
        assert!(row
            .iter()
            .zip(&two)
            .any(|(a, b)| a.to_bits() != b.to_bits()));
    }
}
