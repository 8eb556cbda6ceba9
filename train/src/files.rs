//! Writing files so that a crash, a full disk or a closed pipe loses nothing: every file a
//! run keeps (checkpoints, `metrics.csv`, charts, `netc run`'s outputs) is written to a
//! temporary file beside it, flushed to the disk, and renamed over the old one, so a reader
//! sees the old file or the new one, never half of one; and the trainer's messages go to a
//! stderr that may have gone away without taking the run with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes `bytes` to `path` atomically: a temporary `PATH.tmp`, fsync'd, renamed over
/// `path`, then the folder fsync'd so that the rename itself survives a power cut. A failed
/// write removes its temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: cannot write: {e}", tmp.display()));
    }
    commit(&tmp, path)
}

/// The folder holding `path` (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `PATH.tmp`: where [`write_atomic`] writes before the rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Renames the complete, fsync'd file `tmp` over `path` and fsyncs the folder; on failure
/// removes `tmp`.
pub fn commit(tmp: &Path, path: &Path) -> Result<(), String> {
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(format!("{}: cannot write: {e}", path.display()));
    }
    sync_dir(path);
    Ok(())
}

/// Flushes the folder holding `path` (its entries: a rename), where the platform allows it.
fn sync_dir(path: &Path) {
    let dir = folder_of(path);
    // Opening a folder for reading and fsyncing it is how POSIX flushes a rename; elsewhere
    // (Windows) it is refused, and the rename is as durable as the platform makes it.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates `dir` (and its parents) and checks that a file can be written in it, so that a
/// run learns before its first step, not after an epoch, that its files have nowhere to go.
pub fn ensure_writable(dir: &Path, what: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "{}: cannot create the folder for {what}: {e}\n  help: pass another folder, or fix its permissions",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".netc-probe-{}", std::process::id()));
    let ok = std::fs::File::create(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = std::fs::remove_file(&probe);
    ok.map_err(|e| {
        format!(
            "{}: cannot write {what} there: {e}\n  help: pass another folder, or fix its permissions",
            dir.display()
        )
    })
}

/// Whether writing to stderr has failed: a closed pipe (`trainer 2>&1 | head -1`) or a
/// full log disk. After that the run stays silent and goes on training and checkpointing.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Prints a line to stderr; a failed write silences stderr for the rest of the process
/// instead of panicking as `eprintln!` does.
pub fn say(line: &str) {
    emit(&STDERR_GONE, &mut std::io::stderr().lock(), line)
}

/// Prints a line to stdout, as [`say`] does to stderr.
pub fn say_out(line: &str) {
    emit(&STDOUT_GONE, &mut std::io::stdout().lock(), line)
}

fn emit(gone: &AtomicBool, out: &mut dyn Write, line: &str) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// Whether stderr still takes output (progress bars are drawn only while it does).
pub fn stderr_open() -> bool {
    !STDERR_GONE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netc-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let d = dir("atomic");
        let path = d.join("a.csv");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let d = dir("failed");
        // A folder where the file should go: the rename over it fails.
        let path = d.join("loss.svg");
        std::fs::create_dir(&path).unwrap();
        let e = write_atomic(&path, b"<svg/>").unwrap_err();
        assert!(e.contains("loss.svg: cannot write"), "{e}");
        assert!(path.is_dir());
        assert!(!tmp_path(&path).exists(), "the partial file is removed");
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_refused_up_front() {
        let d = dir("unwritable");
        std::fs::write(d.join("file"), b"x").unwrap();
        let e = ensure_writable(&d.join("file").join("plots"), "charts").unwrap_err();
        assert!(e.contains("cannot create the folder for charts"), "{e}");
        ensure_writable(&d.join("fine"), "charts").unwrap();
        assert_eq!(std::fs::read_dir(d.join("fine")).unwrap().count(), 0);
    }
}
