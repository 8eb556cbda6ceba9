//! Ctrl-C while training. A process has one SIGINT handler, so there is one process-wide
//! flag. The first training run installs the handler, unless the program already has one of
//! its own (then Ctrl-C is left to it). While a run is going, a first Ctrl-C sets the flag:
//! the run writes a checkpoint at the end of its step, or of its epoch, and stops. A second
//! Ctrl-C, or one while no run is going, exits the process with status 130. Checkpoints are
//! written to a temporary file and renamed, so an exit never leaves half of one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Runs in progress (more than one when a program trains on several threads).
static RUNS: AtomicUsize = AtomicUsize::new(0);
static PRESSED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// A training run in progress: Ctrl-C is its to handle until this is dropped.
pub struct Watch;

impl Watch {
    pub fn start() -> Watch {
        INSTALL.call_once(|| {
            // `try_`: a handler the program installed first (or SIGINT ignored) is kept.
            let _ = ctrlc::try_set_handler(|| {
                if RUNS.load(Ordering::SeqCst) == 0 || PRESSED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
            });
        });
        if RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
            PRESSED.store(false, Ordering::SeqCst);
        }
        Watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        RUNS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether Ctrl-C was pressed during the runs in progress (or the last one).
pub fn pressed() -> bool {
    PRESSED.load(Ordering::SeqCst)
}
