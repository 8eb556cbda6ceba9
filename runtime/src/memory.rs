//! How much memory there is, asked before a large allocation: Rust aborts the process when an
//! allocation fails, so a batch or a data set too large for the machine must be refused up
//! front, with the figure and what would fit. What the process may still use is the least
//! of its cgroup's limit (containers, CI), its address-space limit (`ulimit -v`) and the
//! memory the kernel reports available, each less what is in use already; what the machine
//! could ever hold is its RAM and swap.

/// Memory this process may still allocate, and what limits it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Bytes that may still be allocated.
    pub bytes: u64,
    /// What sets the figure, in words ("the memory limit of this process's cgroup").
    pub limit: &'static str,
}

/// The least of the limits that can be read here; `None` where none can (not Linux).
pub fn available() -> Option<Budget> {
    let mut best: Option<Budget> = None;
    let mut consider = |bytes: Option<u64>, limit: &'static str| {
        if let Some(bytes) = bytes {
            if best.is_none_or(|b| b.bytes > bytes) {
                best = Some(Budget { bytes, limit });
            }
        }
    };
    consider(mem_available(), "the memory available on this machine");
    consider(cgroup_v2(), "the memory limit of this process's cgroup");
    consider(cgroup_v1(), "the memory limit of this process's cgroup");
    consider(address_space(), "the address-space limit, ulimit -v");
    best
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let info = read("/proc/meminfo")?;
    kib_field(&info, "MemAvailable:")
}

/// RAM and swap, where the system says (Linux's `/proc/meminfo`): more than both cannot be
/// held, whatever the allocator promises under overcommit.
pub fn machine_total() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = read("/proc/meminfo")?;
        kib_field(&info, "MemTotal:")?.checked_add(kib_field(&info, "SwapTotal:").unwrap_or(0))
    })
}

/// A `NAME:   N kB` line of a `/proc` file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// cgroup v2: the tightest `memory.max` less what is in use, from this process's cgroup up
/// to the root. In use is `memory.current` less the file cache the kernel would drop
/// (`inactive_file` of `memory.stat`), which a fresh build or a data set read leaves behind.
fn cgroup_v2() -> Option<u64> {
    let own = read("/proc/self/cgroup")?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut least: Option<u64> = None;
    loop {
        let at = |f: &str| read(&format!("{}/{f}", dir.display()));
        let max = at("memory.max").and_then(|v| v.trim().parse::<u64>().ok());
        let current = at("memory.current").and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(max), Some(current)) = (max, current) {
            let cache = at("memory.stat")
                .and_then(|s| stat(&s, "inactive_file"))
                .unwrap_or(0);
            let free = max.saturating_sub(current.saturating_sub(cache));
            least = Some(least.map_or(free, |l| l.min(free)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            break;
        }
    }
    least
}

/// A `NAME VALUE` line of a cgroup's `memory.stat`.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// cgroup v1: `memory.limit_in_bytes` less what is in use (`memory.usage_in_bytes` less the
/// droppable file cache, `total_inactive_file`); no limit reads as a number near 2^63.
fn cgroup_v1() -> Option<u64> {
    let v1 = "/sys/fs/cgroup/memory";
    let limit: u64 = read(&format!("{v1}/memory.limit_in_bytes"))?
        .trim()
        .parse()
        .ok()?;
    if limit >= 1 << 60 {
        return None;
    }
    let used: u64 = read(&format!("{v1}/memory.usage_in_bytes"))?
        .trim()
        .parse()
        .ok()?;
    let cache = read(&format!("{v1}/memory.stat"))
        .and_then(|s| stat(&s, "total_inactive_file"))
        .unwrap_or(0);
    Some(limit.saturating_sub(used.saturating_sub(cache)))
}

/// `ulimit -v`: the soft address-space limit less the address space in use (`VmSize`).
fn address_space() -> Option<u64> {
    let limits = read("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    let limit: u64 = soft.parse().ok()?;
    let used = kib_field(&read("/proc/self/status")?, "VmSize:").unwrap_or(0);
    Some(limit.saturating_sub(used))
}

/// Whether the allocator would give `bytes` now: a block reserved and freed at once (its
/// pages never touched). Where the limits above cannot be read, or the system refuses less
/// than they promise (no overcommit), this turns the abort an allocation would cause into
/// an answer.
pub fn can_allocate(bytes: u64) -> bool {
    let Ok(bytes) = usize::try_from(bytes) else {
        return false;
    };
    Vec::<u8>::new().try_reserve_exact(bytes).is_ok()
}

/// Bytes in binary units, as a person reads them: `512 B`, `3.2 MiB`, `6.10 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// Checks that a step at `batch` fits in `budget` with a twentieth to spare, given the bytes
/// a step needs at any batch (`None`: more than can be counted). The error gives the figure
/// and the largest batch that fits.
pub fn check_fits(
    batch: usize,
    budget: Budget,
    needs: impl Fn(usize) -> Option<u64>,
) -> Result<(), String> {
    // A twentieth is kept back for what a run allocates beside its step (threads' stacks,
    // the allocator's own books, a last batch's smaller buffers).
    let usable = budget.bytes - budget.bytes / 20;
    let fits = |b: usize| needs(b).is_some_and(|n| n <= usable);
    if fits(batch) {
        return Ok(());
    }
    let need = needs(batch).map_or("more bytes than can be counted".into(), human);
    let have = human(budget.bytes);
    // A step's memory grows with the batch: the largest batch that fits, by bisection.
    let hint = if fits(1) {
        let (mut lo, mut hi) = (1, batch);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let at = needs(lo).map_or(String::new(), |n| format!(", which needs {}", human(n)));
        format!("--batch {lo} fits{at}")
    } else {
        "the network does not fit even at --batch 1: make it smaller (fewer channels, a smaller input)".into()
    };
    Err(format!(
        "a training step at batch {batch} needs {need}, but only {have} is available ({})\n  help: {hint}",
        budget.limit
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_a_budget() {
        let b = available().expect("Linux reports available memory");
        assert!(b.bytes > 0, "{b:?}");
        assert!(machine_total().unwrap() > 1 << 20);
        assert_eq!(stat("anon 5\ninactive_file 7\n", "inactive_file"), Some(7));
        assert_eq!(stat("inactive_files 7\n", "inactive_file"), None);
    }

    #[test]
    fn a_batch_that_does_not_fit_is_refused_with_the_batch_that_does() {
        let budget = Budget {
            bytes: 4 << 30,
            limit: "the memory limit of this process's cgroup",
        };
        // 100 MiB of parameters and 10 MiB per image.
        let needs = |b: usize| (b as u64).checked_mul(10 << 20)?.checked_add(100 << 20);
        check_fits(64, budget, needs).unwrap();
        let e = check_fits(512, budget, needs).unwrap_err();
        assert_eq!(
            e,
            "a training step at batch 512 needs 5.10 GiB, but only 4.00 GiB is available (the memory limit of this process's cgroup)\n  help: --batch 379 fits, which needs 3.80 GiB"
        );
        let e = check_fits(usize::MAX, budget, needs).unwrap_err();
        assert!(e.contains("needs more bytes than can be counted"), "{e}");
        let huge = |b: usize| (b as u64).checked_mul(8 << 30);
        let e = check_fits(2, budget, huge).unwrap_err();
        assert!(e.contains("does not fit even at --batch 1"), "{e}");
        assert_eq!(human(512), "512 B");
        assert!(can_allocate(1 << 20));
        assert!(!can_allocate(u64::MAX));
        assert_eq!(human(3_136_000_000_000), "2.85 TiB");
    }
}
