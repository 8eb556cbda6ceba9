//! Shards that run together: a layer that mixes the images of a batch (batchnorm in
//! training) needs statistics over the whole batch, not each shard's. The shards of such a
//! network run at once, one per thread ([`Group::run`]), and meet at that layer
//! ([`Peers::all_gather`]): each deposits its partial sums, waits for the others, and reads
//! every shard's in shard order, so every shard combines the same numbers in the same order
//! and computes the same bits.
//!
//! A shard that panics poisons the group: the others, waiting for it, panic too instead of
//! waiting forever, and the first panic reaches the caller of [`Group::run`].

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::gemm::{one_thread, Context};

/// What the shards of a group share.
#[derive(Debug)]
struct Exchange {
    /// Each shard's share of the batch.
    weights: Vec<f64>,
    /// Each shard's last deposit.
    slots: Vec<Mutex<Vec<f64>>>,
    /// The barrier's state.
    meet: Mutex<Meet>,
    wake: Condvar,
}

/// A barrier that a panicking shard can break.
#[derive(Debug, Default)]
struct Meet {
    /// Shards arrived in this generation.
    arrived: usize,
    /// Generations completed (so that a waiter knows its own has passed).
    generation: u64,
    /// A shard panicked: nobody waits any longer.
    poisoned: bool,
    /// The first shard that panicked (or whose thread would not start).
    first: Option<usize>,
}

impl Exchange {
    /// Waits until every shard has arrived.
    fn wait(&self) {
        let n = self.slots.len();
        let mut m = self.meet.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!m.poisoned, "another shard of this batch panicked");
        m.arrived += 1;
        if m.arrived == n {
            m.arrived = 0;
            m.generation += 1;
            self.wake.notify_all();
            return;
        }
        let mine = m.generation;
        while m.generation == mine && !m.poisoned {
            m = self.wake.wait(m).unwrap_or_else(PoisonError::into_inner);
        }
        assert!(!m.poisoned, "another shard of this batch panicked");
    }

    /// Shard `k` panicked: every waiter, now and later, panics too.
    fn poison(&self, k: usize) {
        let mut m = self.meet.lock().unwrap_or_else(PoisonError::into_inner);
        m.poisoned = true;
        m.first.get_or_insert(k);
        self.wake.notify_all();
    }
}

/// The shards of one batch, which run together.
#[derive(Clone, Debug)]
pub struct Group {
    exchange: Arc<Exchange>,
}

/// One shard's handle on its group: what a layer that mixes the images calls.
#[derive(Clone, Debug)]
pub struct Peers {
    index: usize,
    exchange: Arc<Exchange>,
}

impl Group {
    /// A group of shards with these shares of the batch (`shard::weights`).
    pub fn new(weights: &[f32]) -> Group {
        Group {
            exchange: Arc::new(Exchange {
                weights: weights.iter().map(|&w| w as f64).collect(),
                slots: weights.iter().map(|_| Mutex::new(Vec::new())).collect(),
                meet: Mutex::new(Meet::default()),
                wake: Condvar::new(),
            }),
        }
    }

    /// How many shards the group has.
    fn len(&self) -> usize {
        self.exchange.slots.len()
    }

    /// Shard `k`'s handle.
    pub fn peer(&self, k: usize) -> Peers {
        assert!(k < self.len(), "shard {k} of {}", self.len());
        Peers {
            index: k,
            exchange: self.exchange.clone(),
        }
    }

    /// Runs `f(k, parts[k])` for every shard at once, each on a thread of the runtime's
    /// context alone (its kernels do not wake the pool). The shards wait for one another,
    /// so each needs a thread: where the context has fewer than the shards (the runtime's
    /// threads were set lower after the shards were cut), each runs on a thread started
    /// for it instead. A shard that panics stops the others at their next exchange, and its
    /// panic, the first, is the one that reaches the caller; the group is ready for another
    /// run afterwards.
    pub fn run<T: Send, R: Send>(
        &self,
        parts: &mut [T],
        f: impl Fn(usize, &mut T) -> R + Sync,
    ) -> Vec<R> {
        assert_eq!(parts.len(), self.len(), "a part per shard");
        if let [part] = parts {
            return vec![f(0, part)];
        }
        *self
            .exchange
            .meet
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Meet::default();
        let outcomes: Vec<Mutex<Option<Outcome<R>>>> =
            parts.iter().map(|_| Mutex::new(None)).collect();
        // Shard k on the calling thread alone, its panic caught and the group poisoned.
        let shard = |k: usize, part: &mut T| {
            let _alone = one_thread();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(k, part)));
            if outcome.is_err() {
                self.exchange.poison(k);
            }
            *outcomes[k].lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        };
        let ctx = Context::global();
        if ctx.threads() < parts.len() {
            let started = std::thread::scope(|scope| {
                let mut running = Vec::with_capacity(parts.len());
                for (k, part) in parts.iter_mut().enumerate() {
                    let shard = &shard;
                    match std::thread::Builder::new().spawn_scoped(scope, move || shard(k, part)) {
                        Ok(h) => running.push(h),
                        // The shards started would wait for this one forever.
                        Err(e) => {
                            self.exchange.poison(k);
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = started {
                panic!("a thread for a shard of the batch: {e}");
            }
        } else {
            let slots: Vec<Mutex<Option<&mut T>>> =
                parts.iter_mut().map(|p| Mutex::new(Some(p))).collect();
            ctx.install(|| {
                // One call per thread of the pool: shard k runs on the thread of index k.
                rayon::broadcast(|b| {
                    let k = b.index();
                    let Some(slot) = slots.get(k) else {
                        return;
                    };
                    let part = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                    shard(k, part.expect("each shard runs once"));
                })
            });
        }
        let first = self
            .exchange
            .meet
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first;
        let mut outcomes: Vec<Outcome<R>> = outcomes
            .into_iter()
            .map(|o| {
                o.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expect("every shard ran")
            })
            .collect();
        if let Some(k) = first {
            if let Err(panic) = outcomes.swap_remove(k) {
                std::panic::resume_unwind(panic);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    }
}

/// What a shard returned, or its panic.
type Outcome<R> = std::thread::Result<R>;

impl Peers {
    /// This shard's place in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Shard `k`'s share of the batch.
    pub fn weight(&self, k: usize) -> f64 {
        self.exchange.weights[k]
    }

    /// Deposits `mine`, waits for every shard, and returns every shard's deposit in shard
    /// order (the same in every shard). Every shard must call it the same number of times.
    pub fn all_gather(&self, mine: &[f64]) -> Vec<Vec<f64>> {
        let x = &*self.exchange;
        {
            let mut slot = x.slots[self.index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.clear();
            slot.extend_from_slice(mine);
        }
        x.wait();
        let all = x
            .slots
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect();
        // Nobody deposits again until everybody has read.
        x.wait();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the pool (two threads or more) or on threads of their own (one).
    #[test]
    fn every_shard_reads_every_deposit_in_order() {
        let group = Group::new(&[0.5, 0.5]);
        let mut parts = vec![group.peer(0), group.peer(1)];
        let sums = group.run(&mut parts, |k, p| {
            let mut seen = Vec::new();
            for round in 0..50 {
                let all = p.all_gather(&[(10 * k + round) as f64]);
                seen.push(all.iter().map(|v| v[0]).collect::<Vec<_>>());
            }
            seen
        });
        assert_eq!(sums[0], sums[1]);
        assert_eq!(sums[0][7], vec![7.0, 17.0]);
    }

    /// With fewer threads than shards (here, one), each shard gets a thread of its own.
    #[test]
    fn shards_run_together_on_fewer_threads_too() {
        let group = Group::new(&[0.25; 4]);
        let mut parts: Vec<_> = (0..4).map(|k| group.peer(k)).collect();
        let sums = crate::gemm::serial(|| {
            group.run(&mut parts, |k, p| {
                p.all_gather(&[k as f64]).iter().map(|v| v[0]).sum::<f64>()
            })
        });
        assert_eq!(sums, vec![6.0; 4]);
    }

    /// The panic that reaches the caller is the failing shard's, not the one of a shard
    /// stopped while it waited; and the group runs again afterwards.
    #[test]
    fn a_panicking_shard_fails_the_run_with_its_own_panic() {
        let group = Group::new(&[0.5, 0.5]);
        let mut parts = vec![group.peer(0), group.peer(1)];
        for alone in [false, true] {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let _one = crate::gemm::one_thread_if(alone);
                group.run(&mut parts, |k, p| {
                    assert!(k == 0, "shard 1 fails before the exchange");
                    p.all_gather(&[1.0]);
                })
            }));
            let panic = r.expect_err("the run fails");
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("");
            assert_eq!(message, "shard 1 fails before the exchange");
            let sums = group.run(&mut parts, |k, p| p.all_gather(&[k as f64])[1][0]);
            assert_eq!(sums, vec![1.0, 1.0], "the group after a failed run");
        }
    }
}
