//! Data-parallel training. Every rank holds the whole network and the same parameters; each
//! step, rank `r` computes the gradient of its share of the global batch (the same shuffled
//! order one process would use, cut into `size` contiguous parts), the shares' gradients are
//! summed by MPI's allreduce in buckets while backward still runs ([`Reducer`]), and every
//! rank takes the same optimizer step. Rank 0 alone writes files and prints.
//!
//! The trainer talks to the other ranks only through [`Comm`]. A run of one process has a
//! `Comm` of one rank whose operations do nothing, so without `--distributed` (and without
//! the `distributed` feature, which brings MPI in) the trainer is what it always was.

#[cfg(feature = "distributed")]
mod mpi;
mod reducer;
pub(crate) mod run;

use std::ops::Range;
use std::time::Duration;

pub use reducer::Reducer;

/// This process's place among the ranks of a run.
pub struct Comm {
    rank: usize,
    size: usize,
    #[cfg(feature = "distributed")]
    mpi: Option<mpi::Mpi>,
}

impl Comm {
    /// A run of one process.
    pub fn single() -> Comm {
        Comm {
            rank: 0,
            size: 1,
            #[cfg(feature = "distributed")]
            mpi: None,
        }
    }

    /// The ranks of `mpirun` when `distributed`, else one process. A rank that waits on the
    /// others for longer than `timeout` ends the job.
    pub fn init(distributed: bool, timeout: Duration) -> Result<Comm, String> {
        if !distributed {
            return Ok(Comm::single());
        }
        #[cfg(feature = "distributed")]
        {
            let m = mpi::Mpi::init(timeout)?;
            Ok(Comm {
                rank: m.rank(),
                size: m.size(),
                mpi: Some(m),
            })
        }
        #[cfg(not(feature = "distributed"))]
        {
            let _ = timeout;
            Err("--distributed needs a trainer built with MPI\n  help: `netc train FILE --ranks N` builds one and runs it under mpirun; `netc build FILE --distributed` builds one for your own `mpirun -np N NAME-train --distributed`".into())
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this rank writes the run's files and prints.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This rank's contiguous share of `n` items: `n·r/size .. n·(r+1)/size`.
    pub fn share(&self, n: usize) -> Range<usize> {
        share(n, self.rank, self.size)
    }

    /// Sums `v` element by element over the ranks, in place (the same result on every rank,
    /// and the same from run to run for a fixed number of ranks).
    pub fn sum(&self, v: &mut [f64]) {
        #[cfg(feature = "distributed")]
        if let Some(m) = &self.mpi {
            m.sum(v);
        }
        let _ = v;
    }

    /// The mean over the ranks of `v`, in place.
    pub fn mean_f32(&self, v: &mut [f32]) {
        if self.size == 1 {
            return;
        }
        let mut wide: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        self.sum(&mut wide);
        for (x, w) in v.iter_mut().zip(wide) {
            *x = (w / self.size as f64) as f32;
        }
    }

    /// Refuses to go on unless every rank has the same value of every part (the network,
    /// the settings, the data, the parameters): a rank started with other flags or another
    /// build would otherwise train something else in lockstep.
    pub fn agree(&self, parts: &[(&str, u64)]) -> Result<(), String> {
        if self.size == 1 {
            return Ok(());
        }
        // Each hash as four 16-bit pieces (exact in f64): equal on every rank exactly when
        // their sum is `size` times this rank's.
        let mut v: Vec<f64> = parts
            .iter()
            .flat_map(|(_, h)| (0..4).map(move |i| ((h >> (16 * i)) & 0xffff) as f64))
            .collect();
        let mine = v.clone();
        let squares: Vec<f64> = mine.iter().map(|x| x * x).collect();
        v.extend(squares);
        self.sum(&mut v);
        let n = mine.len();
        let differ: Vec<&str> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                (0..4).any(|j| {
                    let k = 4 * i + j;
                    // Sum and sum of squares both `size` times this rank's: all equal.
                    let s = self.size as f64;
                    v[k] != s * mine[k] || v[n + k] != s * mine[k] * mine[k]
                })
            })
            .map(|(_, (name, _))| *name)
            .collect();
        if differ.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the ranks do not agree on {}: every rank must run the same trainer with the same flags and data\n  help: start them with one `mpirun` command line",
                differ.join(", ")
            ))
        }
    }
}

fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    n * rank / size..n * (rank + 1) / size
}

/// FNV-1a over bytes: the fingerprints [`Comm::agree`] compares.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, p| {
        p.iter().chain(&[0xff]).fold(h, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_in_order() {
        for n in [1, 7, 64, 65] {
            for size in 1..=4.min(n) {
                let parts: Vec<_> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                assert!(parts
                    .iter()
                    .all(|p| p.len() >= n / size && p.len() <= n.div_ceil(size)));
            }
        }
    }

    #[test]
    fn one_process_agrees_and_sums_to_itself() {
        let c = Comm::single();
        assert!(c.agree(&[("network", 1), ("settings", 2)]).is_ok());
        let mut v = [1.5, -2.0];
        c.sum(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(c.share(10), 0..10);
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
