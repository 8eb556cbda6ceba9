//! Who owns a run's folders. A training run holds an advisory lock file with its pid in each
//! folder it writes (one, `--out`, unless its files are sent elsewhere), so that a second
//! trainer with the same `--out` is refused instead of interleaving checkpoints and metrics;
//! a lock whose process has died is taken over. A fresh run into a folder that holds an
//! earlier run's checkpoints is refused unless it is resumed or `--overwrite` is given, so
//! that an old run is never half overwritten and later resumed by mistake.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked folder.
pub const LOCK: &str = ".netc-train.lock";

/// Locks held by this run; dropping them removes the lock files.
#[derive(Debug)]
pub struct Locks {
    files: Vec<PathBuf>,
}

impl Drop for Locks {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The folders to lock for a run writing checkpoints into `checkpoints`, metrics into the
/// file `metrics` and charts into `plots`: `out` for those inside it, each other folder for
/// itself.
pub fn folders(out: &Path, checkpoints: &Path, metrics: &Path, plots: &Path) -> Vec<PathBuf> {
    let metrics_dir = metrics
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in [checkpoints, metrics_dir, plots] {
        let d = if d.starts_with(out) { out } else { d };
        let key = absolute(d);
        if !dirs.iter().any(|have| absolute(have) == key) {
            dirs.push(d.to_path_buf());
        }
    }
    dirs
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Locks every folder of `dirs` (creating them), or says which is in use and by whom. The
/// returned notes say which stale locks were taken over.
pub fn lock(dirs: &[PathBuf]) -> Result<(Locks, Vec<String>), String> {
    let mut locks = Locks { files: Vec::new() };
    let mut notes = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "{}: cannot create: {e}\n  help: pass another folder (--out, --checkpoint-dir, --metrics, --plot), or fix its permissions",
                dir.display()
            )
        })?;
        let file = dir.join(LOCK);
        // Two tries: the second after removing a lock whose process is gone.
        for attempt in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    locks.files.push(file.clone());
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 => {
                    let text = std::fs::read_to_string(&file).unwrap_or_default();
                    let pid: Option<u32> = text.trim().parse().ok();
                    match pid {
                        Some(pid) if alive(pid) => {
                            return Err(format!(
                                "{} is in use by another trainer (pid {pid}; its lock is {})\n  help: wait for it to finish, or give this run another --out",
                                dir.display(),
                                file.display()
                            ))
                        }
                        _ => {
                            let _ = std::fs::remove_file(&file);
                            notes.push(format!(
                                "took over the lock of a trainer that is no longer running ({})",
                                match pid {
                                    Some(pid) => format!("pid {pid}"),
                                    None => "no pid".into(),
                                }
                            ));
                        }
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "{}: cannot lock the run's folder: {e}\n  help: pass another --out, or fix its permissions",
                        file.display()
                    ))
                }
            }
        }
    }
    Ok((locks, notes))
}

/// Whether process `pid` runs. Where that cannot be told (no `/proc`), it is assumed to,
/// and the error names the lock file to remove.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own pid in a lock we do not hold: an earlier run in this process that was
        // not cleaned up (it cannot still be running, runs in one process take turns).
        return false;
    }
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The checkpoints of an earlier run in `dir`: files named `NAME-epochNNNN[-stepMMMMMM]
/// .safetensors` of any network.
pub fn checkpoints_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| crate::checkpoint::position(n).is_some())
        })
        .collect();
    found.sort();
    found
}

/// For a fresh run: refuses a checkpoint folder that holds an earlier run's checkpoints, or
/// with `overwrite` deletes them (saying how many).
pub fn fresh(dir: &Path, overwrite: bool) -> Result<Option<String>, String> {
    let old = checkpoints_in(dir);
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
    fn a_folder_in_use_is_refused_and_freed_when_the_run_ends() {
        let d = dir("lock");
        let (held, notes) = lock(std::slice::from_ref(&d)).unwrap();
        assert!(notes.is_empty());
        // Another live process's lock: pid 1 runs everywhere /proc exists.
        std::fs::write(d.join(LOCK), "1\n").unwrap();
        let e = lock(std::slice::from_ref(&d)).unwrap_err();
        assert!(e.contains("is in use by another trainer (pid 1"), "{e}");
        drop(held);
        assert!(!d.join(LOCK).exists(), "dropping the lock removes its file");
    }

    #[test]
    fn a_dead_trainers_lock_is_taken_over() {
        let d = dir("stale");
        std::fs::create_dir_all(&d).unwrap();
        // A pid above any kernel's pid_max.
        std::fs::write(d.join(LOCK), "4294967295\n").unwrap();
        let (_held, notes) = lock(std::slice::from_ref(&d)).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let pid = std::fs::read_to_string(d.join(LOCK)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }

    #[test]
    fn a_fresh_run_does_not_overwrite_an_earlier_runs_checkpoints() {
        let d = dir("fresh");
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(fresh(&d, false).unwrap(), None);
        std::fs::write(d.join("lenet-epoch0002.safetensors"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        let e = fresh(&d, false).unwrap_err();
        assert!(e.contains("lenet-epoch0002.safetensors"), "{e}");
        assert!(e.contains("--overwrite"), "{e}");
        assert!(fresh(&d, true).unwrap().unwrap().contains("deleted 1"));
        assert!(d.join("notes.txt").exists(), "only checkpoints are deleted");
        assert_eq!(fresh(&d, false).unwrap(), None);
    }

    #[test]
    fn files_inside_out_lock_out_and_others_lock_their_own_folder() {
        let out = Path::new("runs/x");
        let dirs = folders(
            out,
            &out.join("checkpoints"),
            &out.join("metrics.csv"),
            Path::new("elsewhere/plots"),
        );
        assert_eq!(dirs, [out.to_path_buf(), PathBuf::from("elsewhere/plots")]);
    }
}
