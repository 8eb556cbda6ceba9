//! The gradient allreduce of data-parallel training, overlapped with backward. The
//! parameters are packed, last layers first, into buckets of about [`BUCKET_FLOATS`]; as
//! backward finishes a layer (`Network::backward_observed`), its gradients (scaled by the
//! rank's share of the global batch) are copied into their bucket, and a bucket whose every
//! gradient is in goes to the summing thread while backward goes on with earlier layers.
//! Buckets are sent in one fixed order, so every rank issues the same collectives in the same
//! order and a fixed number of ranks sums the same way on every run.

use crate::Network;

use super::Comm;

/// About 4 MiB of gradients per bucket (PyTorch's DDP starts with 1 MiB and then 25): small
/// enough that the first bucket leaves while most of backward is still to run.
#[cfg(feature = "distributed")]
pub const BUCKET_FLOATS: usize = 1 << 20;

#[cfg(feature = "distributed")]
/// Where one parameter's gradient goes: its index in `SHAPES`, its bucket, its offset there.
#[derive(Clone, Copy, Debug)]
struct Slot {
    param: usize,
    bucket: usize,
    offset: usize,
    /// Its place among its bucket's parameters.
    index: usize,
}

#[cfg(feature = "distributed")]
#[derive(Default)]
struct Bucket {
    len: usize,
    pending: usize,
    /// Which of its parameters this step has copied in.
    taken: Vec<bool>,
    /// The values sent and the buffer for their sum, when this rank holds them.
    buffers: Option<(Vec<f32>, Vec<f32>)>,
}

pub struct Reducer {
    /// Over several ranks: the buckets and the thread that sums them.
    #[cfg(feature = "distributed")]
    plan: Option<Plan>,
    /// Seconds backward's caller waited for the sums after backward, and the steps, since
    /// [`Reducer::waited`] last said.
    waited: f64,
    steps: usize,
}

#[cfg(feature = "distributed")]
struct Plan {
    /// Per layer (as `Network::LAYERS`), its parameters' slots.
    layers: Vec<Vec<Slot>>,
    /// Every slot, in bucket order.
    slots: Vec<Slot>,
    buckets: Vec<Bucket>,
    thread: Thread,
}

#[cfg(feature = "distributed")]
struct Thread {
    jobs: std::sync::mpsc::Sender<super::mpi::Job>,
    done: std::sync::mpsc::Receiver<super::mpi::Job>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Reducer {
    /// Over several ranks, the buckets of network `N`'s parameters and the summing thread;
    /// for one process, nothing.
    #[cfg_attr(
        not(feature = "distributed"),
        allow(clippy::extra_unused_type_parameters)
    )]
    pub fn new<N: Network>(comm: &Comm) -> Reducer {
        #[cfg(feature = "distributed")]
        {
            Reducer {
                plan: comm.mpi.as_ref().map(|m| Plan::new::<N>(m, BUCKET_FLOATS)),
                waited: 0.0,
                steps: 0,
            }
        }
        #[cfg(not(feature = "distributed"))]
        {
            let _ = comm;
            Reducer {
                waited: 0.0,
                steps: 0,
            }
        }
    }

    /// Over several ranks, the milliseconds per step the sums were waited for after backward
    /// (what the overlap did not hide) since the last call; `None` for one process.
    pub fn waited(&mut self) -> Option<f64> {
        if self.steps == 0 {
            return None;
        }
        let ms = 1e3 * self.waited / self.steps as f64;
        (self.waited, self.steps) = (0.0, 0);
        Some(ms)
    }

    /// Backward of the last `forward_train` into `g`, and over several ranks the sum of every
    /// rank's gradient times `scale` (its share of the global batch): the global batch's
    /// gradient, the same on every rank. One process runs plain `backward`.
    pub fn backward<N: Network>(
        &mut self,
        comm: &Comm,
        p: &N::Params,
        g: &mut N::Params,
        ws: &mut N::Workspace,
        scale: f32,
    ) {
        #[cfg(feature = "distributed")]
        if let (Some(plan), Some(mpi)) = (&mut self.plan, &comm.mpi) {
            self.waited += plan.backward::<N>(mpi, p, g, ws, scale);
            self.steps += 1;
            return;
        }
        let _ = (scale, comm);
        N::backward(p, g, ws);
    }
}

#[cfg(feature = "distributed")]
impl Plan {
    fn new<N: Network>(mpi: &super::mpi::Mpi, bucket_floats: usize) -> Plan {
        let (layers, slots, buckets) = buckets::<N>(bucket_floats);
        let (jobs, done, handle) = mpi.bucket_thread();
        Plan {
            layers,
            slots,
            buckets,
            thread: Thread {
                jobs,
                done,
                handle: Some(handle),
            },
        }
    }

    fn backward<N: Network>(
        &mut self,
        mpi: &super::mpi::Mpi,
        p: &N::Params,
        g: &mut N::Params,
        ws: &mut N::Workspace,
        scale: f32,
    ) -> f64 {
        for b in &mut self.buckets {
            b.pending = b.taken.len();
            b.taken.fill(false);
        }
        let mut next = 0;
        let (layers, buckets) = (&self.layers, &mut self.buckets);
        let thread = &self.thread;
        N::backward_observed(p, g, ws, &mut |k, g| {
            for s in &layers[k] {
                take::<N>(buckets, s, g, scale);
            }
            send_ready(buckets, &mut next, thread);
        });
        // Gradients no layer reported (a layer that reaches no loss, or no layer at all):
        // sent as backward left them, so that every bucket goes.
        for s in &self.slots {
            let b = &self.buckets[s.bucket];
            if b.buffers.is_some() && !b.taken[s.index] {
                take::<N>(&mut self.buckets, s, g, scale);
            }
        }
        send_ready(&mut self.buckets, &mut next, thread);
        let start = std::time::Instant::now();
        for _ in 0..self.buckets.len() {
            let job = mpi
                .waiting(|| thread.done.recv())
                .expect("the summing thread lives as long as the reducer");
            for s in self.slots.iter().filter(|s| s.bucket == job.bucket) {
                let name = N::SHAPES[s.param].0;
                let dst = N::param_mut(g, name).expect("listed");
                dst.copy_from_slice(&job.recv[s.offset..s.offset + dst.len()]);
            }
            self.buckets[job.bucket].buffers = Some((job.send, job.recv));
        }
        start.elapsed().as_secs_f64()
    }
}

/// Copies one parameter's gradient, scaled, into its bucket.
#[cfg(feature = "distributed")]
fn take<N: Network>(buckets: &mut [Bucket], s: &Slot, g: &N::Params, scale: f32) {
    let src = N::param(g, N::SHAPES[s.param].0).expect("listed");
    let b = &mut buckets[s.bucket];
    // A gradient reported twice is taken once; one reported after its bucket left was final.
    let Some((send, _)) = b.buffers.as_mut() else {
        return;
    };
    for (d, &v) in send[s.offset..s.offset + src.len()].iter_mut().zip(src) {
        *d = v * scale;
    }
    if !b.taken[s.index] {
        b.taken[s.index] = true;
        b.pending -= 1;
    }
}

/// Sends the complete buckets from `next` on, in order.
#[cfg(feature = "distributed")]
fn send_ready(buckets: &mut [Bucket], next: &mut usize, thread: &Thread) {
    while *next < buckets.len() && buckets[*next].pending == 0 {
        let (send, recv) = buckets[*next].buffers.take().expect("not sent yet");
        thread
            .jobs
            .send(super::mpi::Job {
                bucket: *next,
                send,
                recv,
            })
            .expect("the summing thread lives as long as the reducer");
        *next += 1;
    }
}

#[cfg(feature = "distributed")]
impl Drop for Plan {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        let (jobs, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.thread.jobs, jobs));
        if let Some(h) = self.thread.handle.take() {
            let _ = h.join();
        }
    }
}

/// The buckets of `N`'s parameters: last layers first (backward's order), about
/// `bucket_floats` each, parameters no layer claims last; and each layer's slots.
#[cfg(feature = "distributed")]
fn buckets<N: Network>(bucket_floats: usize) -> (Vec<Vec<Slot>>, Vec<Slot>, Vec<Bucket>) {
    // A parameter belongs to the layer whose path is its name less the last part.
    let layer_of = |name: &str| -> Option<usize> {
        let (path, _) = name.rsplit_once('.')?;
        N::LAYERS.iter().position(|l| *l == path)
    };
    let mut order: Vec<(usize, usize)> = N::SHAPES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let rank = layer_of(name).map_or(usize::MAX, |l| N::LAYERS.len() - 1 - l);
            (rank, i)
        })
        .collect();
    order.sort();
    let mut buckets = vec![Bucket::default()];
    let mut slots = Vec::new();
    let mut layers = vec![Vec::new(); N::LAYERS.len()];
    for (_, i) in order {
        let len: usize = N::SHAPES[i].1.iter().product();
        let last = buckets.last().expect("one at least");
        if last.len > 0 && last.len + len > bucket_floats {
            buckets.push(Bucket::default());
        }
        let b = buckets.len() - 1;
        let slot = Slot {
            param: i,
            bucket: b,
            offset: buckets[b].len,
            index: buckets[b].taken.len(),
        };
        buckets[b].len += len;
        buckets[b].taken.push(false);
        slots.push(slot);
        if let Some(l) = layer_of(N::SHAPES[i].0) {
            layers[l].push(slot);
        }
    }
    for b in &mut buckets {
        b.buffers = Some((vec![0.0; b.len], vec![0.0; b.len]));
    }
    (layers, slots, buckets)
}
