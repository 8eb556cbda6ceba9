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

/// `x -> relu -> relu -> ...` with `n` ReLUs, trained to give back `x`.
fn relu_chain(n: usize) -> String {
    let chain = vec!["relu"; n].join(" -> ");
    format!(
        "network chain(x: [4]) {{\n    y = x -> {chain};\n    loss mse(y, x);\n    output y;\n}}\n"
    )
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
    // Every activation lives across the turn from forward to backward (each ReLU's backward
    // reads it): they stack.
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
    assert_eq!(
        plan::memplan(&s.workspace, 100_000_000, true, |_| true),
        None
    );
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The diagnostics of `net.net` in `dir`, which uses `used`.
fn check_use(dir: &Path, used: &str) -> netc_compiler::Checked {
    let src = format!("use \"{used}\";\nnetwork n(x: [4]) {{ output x; }}\n");
    let path = dir.join("net.net");
    within(Duration::from_secs(30), "a `use`", move || {
        check_source("net.net", &src, &path, None)
    })
}

/// The one diagnostic of `checked`: an `io` error with `message`, at the string of the
/// `use` of `used`.
fn assert_refused(checked: &netc_compiler::Checked, used: &str, message: &str) {
    let [d] = &checked.diagnostics[..] else {
        panic!("one diagnostic: {}", checked.render())
    };
    assert_eq!((d.code, d.message.as_str()), ("io", message));
    let [label] = &d.labels[..] else {
        panic!("one label: {d:?}")
    };
    let text = &checked.sources.get(label.span.file).text;
    let (start, end) = (label.span.start as usize, label.span.end as usize);
    assert_eq!(text[start..end], format!("\"{used}\""));
    assert_eq!(label.message, "used here");
    assert_eq!(d.help, None);
}

/// Item 25: `use "/dev/zero"` read without end until memory ran out. A `use` reads regular
/// files only.
#[test]
fn a_use_of_a_device_is_refused() {
    assert_eq!(
        check_use(&temp_dir("device"), "/dev/zero").render(),
        "netc::io

  × cannot read `/dev/zero`: not a regular file (netc reads sources from regular files only)
   ╭─[net.net:1:5]
 1 │ use \"/dev/zero\";
   ·     ─────┬─────
   ·          ╰── used here
 2 │ network n(x: [4]) { output x; }
   ╰────
"
    );
}

/// Item 25: a `use` of a FIFO blocked forever in `open`, waiting for a writer.
#[cfg(unix)]
#[test]
fn a_use_of_a_fifo_is_refused_without_waiting() {
    let dir = temp_dir("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe.net"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let pipe = dir.join("pipe.net").display().to_string();
    assert_refused(
        &check_use(&dir, "pipe.net"),
        "pipe.net",
        &format!(
            "cannot read `{pipe}`: not a regular file (netc reads sources from regular files only)"
        ),
    );
}

/// Item 25: a `use` reads at most 16 MiB.
#[test]
fn a_use_of_a_file_over_16_mib_is_refused() {
    let dir = temp_dir("large");
    let file = std::fs::File::create(dir.join("large.net")).unwrap();
    file.set_len(netc_compiler::load::MAX_SOURCE_BYTES + 1)
        .unwrap();
    let large = dir.join("large.net").display().to_string();
    assert_refused(
        &check_use(&dir, "large.net"),
        "large.net",
        &format!(
            "cannot read `{large}`: larger than 16 MiB, the most netc reads from one source file"
        ),
    );
}

/// Found by the fuzzer: `adaptive_avgpool` to a huge size made a shape past the element
/// limit, and the `flatten` after it overflowed counting its elements.
#[test]
fn a_huge_adaptive_pool_is_an_error_not_an_overflow() {
    let src = "network n(x: [3, 8, 8]) {\n    y = x -> adaptive_avgpool(2147483647) -> flatten;\n    output y;\n}\n";
    let checked = netc_compiler::check_source("n.net", src, std::path::Path::new("n.net"), None);
    assert!(checked.has_errors());
    assert!(
        checked.render().contains("elements per sample"),
        "{}",
        checked.render()
    );
}
