//! Ctrl-C while training. A process has one signal handler, so there is one process-wide flag.
//! The handler is installed by the first training run. While a run is going, Ctrl-C sets the
//! flag and the run writes a checkpoint and stops at the end of its step; otherwise it exits
//! the process with status 130, as it would without a handler. If the program installed a
//! handler of its own first, Ctrl-C is left to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static TRAINING: AtomicBool = AtomicBool::new(false);
static PRESSED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// A training run in progress: Ctrl-C is its to handle until this is dropped.
pub struct Watch;

impl Watch {
    pub fn start() -> Watch {
        INSTALL.call_once(|| {
            let _ = ctrlc::set_handler(|| {
                if TRAINING.load(Ordering::SeqCst) {
                    PRESSED.store(true, Ordering::SeqCst);
                } else {
                    std::process::exit(130);
                }
            });
        });
        PRESSED.store(false, Ordering::SeqCst);
        TRAINING.store(true, Ordering::SeqCst);
        Watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}

/// Whether Ctrl-C was pressed since the run started.
pub fn pressed() -> bool {
    PRESSED.load(Ordering::SeqCst)
}
