//! The memory plan: the buffers of a workspace placed in one arena by liveness over its
//! schedule (a buffer lives from the first step that touches it to the last), by first fit,
//! largest first; and the checker of a plan.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::{first_fit, schedule, Buffer, Workspace};

/// One buffer placed by `memplan`: live over the schedule steps `first..=last`, at byte
/// `offset` of a shared arena.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub name: String,
    pub bytes: u64,
    pub first: usize,
    pub last: usize,
    pub offset: u64,
}

/// Buffers sharing one arena by liveness: `peak` bytes hold them all.
#[derive(Clone, Debug, PartialEq)]
pub struct MemPlan {
    pub placed: Vec<Placed>,
    pub peak: u64,
}

/// Plans the workspace buffers of `ws` that `place` picks into one arena at `batch`, over
/// its schedule
/// (`ws.schedule`): the training step (`forward_train` then `backward`) or, for inference,
/// `forward`. A buffer lives from the first step that reads or writes it to the last; a
/// buffer no step touches takes no room. The im2col and gradient scratch are outside the
/// arena.
///
/// Buffers are placed by first fit, largest first: each at the lowest offset clear of
/// every buffer already placed whose lifetime overlaps its own (see `first_fit`, which
/// does it in O(n log n) for the usual schedules). `None` when the bytes of all buffers
/// together overflow a `u64`.
///
/// The generated code's arena is this plan at one sample over the arena buffers (see
/// [`workspace`]).
pub fn memplan(
    ws: &Workspace,
    batch: usize,
    training: bool,
    place: impl Fn(&Buffer) -> bool,
) -> Option<MemPlan> {
    let steps: Vec<&schedule::Step> = if training {
        ws.schedule.training().collect()
    } else {
        ws.schedule.forward.iter().collect()
    };
    let mut life: Vec<Option<(usize, usize)>> = vec![None; ws.buffers.len()];
    for (k, step) in steps.iter().enumerate() {
        for &b in step.reads.iter().chain(&step.writes) {
            let l = life[b].get_or_insert((k, k));
            l.0 = l.0.min(k);
            l.1 = l.1.max(k);
        }
    }
    let mut placed = Vec::new();
    let mut total = 0u64;
    for (b, life) in ws.buffers.iter().zip(life) {
        let Some((first, last)) = life else {
            continue;
        };
        if !place(b) {
            continue;
        }
        let bytes = b.len(batch)?.checked_mul(4)?;
        // Every offset is below the sum of all sizes, so none overflows once this does not.
        total = total.checked_add(bytes)?;
        placed.push(Placed {
            name: b.name.clone(),
            bytes,
            first,
            last,
            offset: 0,
        });
    }
    let live: Vec<_> = placed.iter().map(|p| (p.first, p.last, p.bytes)).collect();
    let (offsets, peak) = first_fit::place(&live);
    for (p, offset) in placed.iter_mut().zip(offsets) {
        p.offset = offset;
    }
    Some(MemPlan { placed, peak })
}

impl MemPlan {
    /// Checks the plan: no two buffers live at the same step share a byte, and every
    /// buffer lies inside `peak`. Returns the first violation found.
    pub fn check(&self) -> Result<(), String> {
        for p in &self.placed {
            if p.first > p.last {
                return Err(format!(
                    "`{}` dies (step {}) before it is made (step {})",
                    p.name, p.last, p.first
                ));
            }
            if p.offset
                .checked_add(p.bytes)
                .is_none_or(|end| end > self.peak)
            {
                return Err(format!(
                    "`{}` ends at byte {} + {}, past the peak {}",
                    p.name, p.offset, p.bytes, self.peak
                ));
            }
        }
        // A sweep over the steps, buffers in order of birth, the live ones by offset. Those
        // never overlap one another (or the sweep has stopped), so a newcomer overlaps one
        // exactly when it overlaps the last that starts below its end.
        let mut born: Vec<&Placed> = self.placed.iter().filter(|p| p.bytes > 0).collect();
        born.sort_by_key(|p| p.first);
        let mut live: BTreeMap<u64, &Placed> = BTreeMap::new();
        let mut deaths = BinaryHeap::new();
        for p in born {
            while let Some(&Reverse((last, offset))) = deaths.peek() {
                if last >= p.first {
                    break;
                }
                deaths.pop();
                live.remove(&offset);
            }
            if let Some((_, q)) = live.range(..p.offset + p.bytes).next_back() {
                if q.offset + q.bytes > p.offset {
                    return Err(format!(
                        "`{}` and `{}` are live together and overlap",
                        q.name, p.name
                    ));
                }
            }
            live.insert(p.offset, p);
            deaths.push(Reverse((p.last, p.offset)));
        }
        Ok(())
    }

    /// The most bytes live at any one step: no plan can need less.
    pub fn live_peak(&self) -> u64 {
        // Each buffer adds its bytes at its first step and takes them away after its last.
        let mut events: Vec<(usize, bool, u64)> = self
            .placed
            .iter()
            .flat_map(|p| [(p.first, true, p.bytes), (p.last + 1, false, p.bytes)])
            .collect();
        // At one step, deaths (`false`) before births.
        events.sort_unstable();
        let (mut now, mut most) = (0u64, 0u64);
        for (_, born, bytes) in events {
            if born {
                now += bytes;
                most = most.max(now);
            } else {
                now -= bytes;
            }
        }
        most
    }
}
