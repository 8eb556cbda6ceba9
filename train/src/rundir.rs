//! Who owns a run's files. A training run holds an exclusive lock (`flock`, which the kernel
//! releases when the process ends, however it ends) on a lock file beside each thing it
//! writes: `.netc-train.lock` in its checkpoint folder and its chart folder, and
//! `.NAME.lock` beside its metrics file `NAME`. A second trainer writing any of them is
//! refused instead of interleaving checkpoints and metrics, whatever its `--out`. A fresh run
//! into a folder that holds an earlier run's checkpoints of the network is refused unless it
//! is resumed or `--overwrite` is given, so that an old run is never half overwritten and
//! later resumed by mistake.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked folder.
pub const LOCK: &str = ".netc-train.lock";

/// Locks held by this run: open lock files, unlocked when they close (at the end of the
/// run, or by the kernel when the process dies). The files stay: removing one while
/// another trainer has it open would let two trainers lock two different files.
#[derive(Debug)]
pub struct Locks {
    _files: Vec<std::fs::File>,
}

/// The lock files of a run writing checkpoints into `checkpoints`, metrics into the file
/// `metrics` and charts into `plots`.
pub fn lock_files(checkpoints: &Path, metrics: &Path, plots: &Path) -> Vec<PathBuf> {
    let name = metrics.file_name().unwrap_or_default().to_string_lossy();
    let mut files = vec![
        checkpoints.join(LOCK),
        crate::files::folder_of(metrics).join(format!(".{name}.lock")),
        plots.join(LOCK),
    ];
    // One lock per file, however it is spelled (a metrics file in the checkpoint folder...).
    let mut seen = Vec::new();
    files.retain(|f| {
        let key = absolute(f);
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    files
}

fn absolute(p: &Path) -> PathBuf {
    let dir = crate::files::folder_of(p);
    std::fs::canonicalize(dir)
        .map(|d| d.join(p.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Locks every file of `files` (creating their folders), or says which is in use and by
/// which process.
pub fn lock(files: &[PathBuf]) -> Result<Locks, String> {
    let mut held = Vec::new();
    for path in files {
        let dir = crate::files::folder_of(path);
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "{}: cannot create: {e}\n  help: pass another folder (--out, --checkpoint-dir, --metrics, --plot), or fix its permissions",
                dir.display()
            )
        })?;
        let cannot = |e: std::io::Error| {
            format!(
                "{}: cannot lock the run's files: {e}\n  help: pass another --out, or fix its permissions",
                path.display()
            )
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(cannot)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(path).unwrap_or_default();
                let by = match pid.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                return Err(format!(
                    "{} is in use by another trainer{by}\n  help: wait for it to finish, or give this run another --out",
                    dir.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
        }
        // The pid, for the message another trainer gets; the lock is the flock.
        let _ = f
            .set_len(0)
            .and_then(|_| writeln!(f, "{}", std::process::id()));
        held.push(f);
    }
    Ok(Locks { _files: held })
}

/// The checkpoints of network `name` in `dir`: files named `NAME-epochNNNN[-stepMMMMMM]
/// .safetensors`.
pub fn checkpoints_in(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("{name}-epoch")) && crate::checkpoint::position(n).is_some()
            })
        })
        .collect();
    found.sort();
    found
}

/// For a fresh run of network `name`: refuses a checkpoint folder that holds an earlier
/// run's checkpoints of it, or with `overwrite` deletes them (saying how many); other
/// networks' checkpoints are left alone.
pub fn fresh(dir: &Path, name: &str, overwrite: bool) -> Result<Option<String>, String> {
    let old = checkpoints_in(dir, name);
    if old.is_empty() {
        return Ok(None);
    }
    if !overwrite {
        let names: Vec<String> = old
            .iter()
            .take(3)
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let more = if old.len() > 3 {
            format!(" and {} more", old.len() - 3)
        } else {
            String::new()
        };
        return Err(format!(
            "{} holds the checkpoints of an earlier run ({}{more})\n  help: --resume continues it, --overwrite starts afresh and deletes them, --out DIR starts elsewhere",
            dir.display(),
            names.join(", ")
        ));
    }
    for p in &old {
        std::fs::remove_file(p).map_err(|e| format!("{}: cannot delete: {e}", p.display()))?;
    }
    Ok(Some(format!(
        "--overwrite: deleted {} of an earlier run in {}",
        match old.len() {
            1 => "1 checkpoint".to_string(),
            n => format!("{n} checkpoints"),
        },
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netc-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn files_in_use_are_refused_and_freed_when_the_run_ends() {
        let d = dir("lock");
        let files = lock_files(&d.join("ck"), &d.join("metrics.csv"), &d.join("plots"));
        let held = lock(&files).unwrap();
        // Another run, in this process or another, on any of the files: refused.
        let e = lock(&files[1..2]).unwrap_err();
        assert!(
            e.contains("is in use by another trainer (pid ")
                && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(held);
        lock(&files).unwrap();
    }

    #[test]
    fn a_fresh_run_does_not_overwrite_an_earlier_runs_checkpoints() {
        let d = dir("fresh");
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(fresh(&d, "lenet", false).unwrap(), None);
        std::fs::write(d.join("lenet-epoch0002.safetensors"), b"x").unwrap();
        std::fs::write(d.join("resnet-epoch0010.safetensors"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        let e = fresh(&d, "lenet", false).unwrap_err();
        assert!(e.contains("lenet-epoch0002.safetensors"), "{e}");
        assert!(e.contains("--overwrite"), "{e}");
        assert!(fresh(&d, "lenet", true)
            .unwrap()
            .unwrap()
            .contains("deleted 1"));
        assert!(d.join("notes.txt").exists(), "only checkpoints are deleted");
        assert!(
            d.join("resnet-epoch0010.safetensors").exists(),
            "only this network's"
        );
        assert_eq!(fresh(&d, "lenet", false).unwrap(), None);
    }

    #[test]
    fn each_written_thing_has_its_own_lock() {
        let out = Path::new("runs/x");
        let files = lock_files(
            &out.join("checkpoints"),
            &out.join("metrics.csv"),
            &out.join("plots"),
        );
        assert_eq!(
            files,
            [
                out.join("checkpoints").join(LOCK),
                out.join(".metrics.csv.lock"),
                out.join("plots").join(LOCK)
            ]
        );
        let same = lock_files(out, &out.join("m.csv"), out);
        assert_eq!(same, [out.join(LOCK), out.join(".m.csv.lock")]);
    }
}
