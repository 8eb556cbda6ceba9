//! The ranks of an `mpirun` job, through the `mpi` crate: sums over the world communicator
//! from the training thread, gradient buckets summed on a communicator of their own by a
//! thread of their own (so that they overlap with backward), and a watchdog that ends a rank
//! which has waited on the others for longer than the timeout (a rank that died or hangs
//! would otherwise leave the others waiting in a collective forever). Only waiting counts:
//! a long validation or checkpoint between collectives is not silence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// One bucket to sum: its number, the values, and a buffer for the sum.
pub struct Job {
    pub bucket: usize,
    pub send: Vec<f32>,
    pub recv: Vec<f32>,
}

pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Milliseconds since `start` when the training thread began waiting on the other
    /// ranks; 0 while it is not waiting.
    waiting: Arc<AtomicU64>,
    start: Instant,
    stop: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
    /// Dropped last: finalizes MPI.
    _universe: Universe,
}

impl Mpi {
    pub fn init(timeout: Duration) -> Result<Mpi, String> {
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or("MPI was initialized already")?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let waiting = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let watchdog = {
            let (waiting, stop) = (waiting.clone(), stop.clone());
            std::thread::spawn(move || watch(rank, timeout, start, &waiting, &stop))
        };
        Ok(Mpi {
            world,
            rank,
            size,
            waiting,
            start,
            stop,
            watchdog: Some(watchdog),
            _universe: universe,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn sum(&self, v: &mut [f64]) {
        let send = v.to_vec();
        self.waiting(|| {
            self.world
                .all_reduce_into(&send[..], v, SystemOperation::sum())
        });
    }

    /// Runs `f`, which waits on the other ranks, under the watchdog's eye.
    pub fn waiting<T>(&self, f: impl FnOnce() -> T) -> T {
        let ms = self.start.elapsed().as_millis() as u64;
        self.waiting.store(ms.max(1), Ordering::Relaxed);
        let t = f();
        self.waiting.store(0, Ordering::Relaxed);
        t
    }

    /// A thread that sums the buckets it is sent, in the order sent, on a communicator of
    /// its own (the training thread's sums on the world's never interleave with them).
    pub fn bucket_thread(&self) -> (Sender<Job>, Receiver<Job>, JoinHandle<()>) {
        let (to_thread, jobs) = channel::<Job>();
        let (done, from_thread) = channel::<Job>();
        let (ready, started) = channel::<()>();
        // Communicators stay on the thread that made them: the thread duplicates the
        // world's (a collective of every rank) while this one waits, so the two never call
        // a collective on the world's at once.
        let handle = std::thread::spawn(move || {
            let comm = SimpleCommunicator::world().duplicate();
            let _ = ready.send(());
            for mut job in jobs {
                comm.all_reduce_into(&job.send[..], &mut job.recv[..], SystemOperation::sum());
                if done.send(job).is_err() {
                    break;
                }
            }
        });
        let _ = started.recv();
        (to_thread, from_thread, handle)
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

/// Ends the process when the training thread has waited on the others for longer than
/// `timeout`: mpirun then ends the job.
fn watch(rank: usize, timeout: Duration, start: Instant, waiting: &AtomicU64, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let last = waiting.load(Ordering::Relaxed);
        if last == 0 {
            continue;
        }
        let now = start.elapsed().as_millis() as u64;
        if now.saturating_sub(last) > timeout.as_millis() as u64 {
            crate::files::say(&format!(
                "rank {rank}: no word from the other ranks for {} s: one has died or hangs; ending the job\n  help: `--resume` continues from the last checkpoint; --timeout SECONDS allows longer waits",
                timeout.as_secs()
            ));
            std::process::exit(3);
        }
    }
}
