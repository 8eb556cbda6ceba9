//! Issue 12, hostile input: sizes and files that must give an answer or an error in
//! bounded time and memory, never a hang, a panic or a wrapped number.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use netc_compiler::{check_source, plan};

/// Runs `f` on a thread of its own and fails if it takes longer than `limit` (the thread is
/// left behind): a step that is quadratic, or that blocks, fails instead of stalling the
/// tests.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        // The sender is gone without a value: `f` panicked; show its message.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("a finished worker has sent its value"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} took longer than {limit:?}"),
    }
}

/// `x -> relu -> relu -> ...` with `n` ReLUs.
fn relu_chain(n: usize) -> String {
    let chain = vec!["relu"; n].join(" -> ");
    format!("network chain(x: [4]) {{\n    y = x -> {chain};\n    output y;\n}}\n")
}

/// Item 8: the memory plan asked every placed buffer whether it overlapped the next one,
/// which is quadratic: 20,000 chained ReLUs took 17.5 s in a release build (and minutes in a
/// debug one). A segment tree over the schedule makes it O(n log n): about a second here.
#[test]
fn the_plan_of_20000_chained_relus_takes_seconds() {
    let n = 20_000;
    let s = within(
        Duration::from_secs(60),
        "planning 20,000 ReLUs",
        move || {
            let checked = check_source("chain.net", &relu_chain(n), Path::new("chain.net"), None);
            assert!(!checked.has_errors(), "{}", checked.render());
            plan::summary(&checked.graphs[0], &[], 8).unwrap()
        },
    );
    // Every activation lives across the turn from forward to backward: they stack.
    assert_eq!(s.workspace.arena.len(), 2 * n + 1);
    assert_eq!(s.train_plan.live_peak(), s.train_plan.peak);
    s.train_plan.check().unwrap();
    s.infer_plan.check().unwrap();
}

/// Item 9: bytes at a batch wrapped around a u64, so `check --plan --batch 100000000`
/// printed a workspace smaller than its own arena. Now the plan refuses the batch.
#[test]
fn a_batch_whose_bytes_overflow_is_an_error() {
    let src =
        "network big(x: [1000, 10000, 10000]) {\n    y = x -> relu -> relu;\n    output y;\n}\n";
    let checked = check_source("big.net", src, Path::new("big.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let g = &checked.graphs[0];
    let s = plan::summary(g, &[], 10).unwrap();
    assert_eq!(s.bytes.arena, 4 * 10 * s.workspace.arena_elems as u64);
    assert!(s.bytes.workspace > s.bytes.arena);
    let d = plan::summary(g, &[], 100_000_000).unwrap_err();
    assert_eq!(
        d.to_string(),
        "error: at a batch of 100000000, the memory of network `big` does not fit in 2^64 bytes"
    );
    assert_eq!(d.help.as_deref(), Some("use a smaller batch"));
    assert_eq!(s.workspace.bytes(100_000_000), None);
    assert_eq!(s.workspace.unshared_bytes(usize::MAX), None);
    assert_eq!(plan::memplan(g, &s.workspace, 100_000_000, true), None);
}
