//! `netc train` and `netc build`: the network's trainer as a cargo crate (cached for
//! `train`), built against netc-train — with its `distributed` feature (MPI) for
//! `train --ranks N`, which runs it under `mpirun`, and for `build --distributed`.

use std::path::Path;
use std::process::ExitCode;

use crate::{cache, one_network, skipped_passes, RUNTIME_DIR, TRAIN_DIR};

/// netc-train's features for a trainer with MPI, or none.
fn features(distributed: bool) -> &'static str {
    if distributed {
        ", features = [\"distributed\"]"
    } else {
        ""
    }
}

/// `mpirun -np N EXE --distributed`, for one machine: more ranks than cores allowed, no
/// binding of a rank to one core (its `--threads` would share it), and as root where CI
/// runs (OpenMPI refuses root unless told).
fn mpirun(n: u32, exe: &Path) -> Result<std::process::Command, String> {
    let found = std::process::Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err("--ranks runs the trainer under `mpirun`, which is not installed\n  help: install OpenMPI (Debian: apt install openmpi-bin libopenmpi-dev libclang-dev)".into());
    }
    let mut c = std::process::Command::new("mpirun");
    c.args([
        "-np",
        &n.to_string(),
        "--oversubscribe",
        "--bind-to",
        "none",
    ]);
    if is_root() {
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    c.arg(exe).arg("--distributed");
    Ok(c)
}

/// `--ranks N` (or `--ranks=N`) taken out of the trainer's flags, where clap leaves it when
/// it follows one of them; the trainer has no such flag.
fn take_ranks(ranks: Option<u32>, args: &[String]) -> Result<(Option<u32>, Vec<String>), String> {
    let (mut ranks, mut rest) = (ranks, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.strip_prefix("--ranks") {
            Some("") => it.next().map(String::as_str),
            Some(v) if v.starts_with('=') => Some(&v[1..]),
            _ => {
                rest.push(a.clone());
                continue;
            }
        };
        let n = value
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&n| n >= 1)
            .ok_or("--ranks takes a number of ranks, 1 or more (`--ranks 2`)")?;
        ranks = Some(n);
    }
    Ok((ranks, rest))
}

/// Whether this process runs as root (Linux: the real user id in /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

/// The trainer's flags as `netc train FILE --help` prints them.
pub(crate) fn trainer_help() -> String {
    use clap::CommandFactory;
    netc_train::Flags::command()
        .name("netc train")
        .bin_name("netc train")
        .override_usage("netc train FILE [--network NAME] [--ranks N] [--allow W] [--skip-pass P] [FLAGS]")
        .about("Builds the network's trainer (cached) and trains it; every flag defaults to the network's `train { }` section.")
        .render_help()
        .to_string()
}

/// `netc train`: builds the network's trainer (cached) and runs it with `args`, passing on
/// its exit status; with `ranks`, a trainer with MPI, run by `mpirun` as that many ranks.
pub(crate) fn train(
    file: &Path,
    network: Option<&str>,
    ranks: Option<u32>,
    args: &[String],
) -> ExitCode {
    // `--ranks` is netc's wherever it stands: among the trainer's flags too.
    let (ranks, args) = match take_ranks(ranks, args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let args = &args[..];
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let main = match netc_compiler::codegen::emit_trainer(g) {
        Ok(main) => main,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let deps = format!(
        "netc-train = {{ path = {TRAIN_DIR:?}{} }}\n",
        features(ranks.is_some())
    );
    let exe = match cache::cached_crate(
        g,
        &file.display().to_string(),
        RUNTIME_DIR,
        "train",
        &main,
        &deps,
    ) {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C reaches the trainer too (the terminal signals the whole process group): it
    // writes a checkpoint and exits, and netc waits for that rather than dying first.
    let _ = ctrlc::set_handler(|| {});
    let mut command = match ranks {
        Some(n) => match mpirun(n, &exe) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => std::process::Command::new(&exe),
    };
    match command.args(args).status() {
        Ok(status) => {
            let code = status.code().unwrap_or(1).clamp(0, 255) as u8;
            // mpirun's own message says which rank failed; a rank's error (bad flags, ranks
            // that disagree) is said by the trainer. What is left to say is what to do.
            if let (Some(n), 1 | 3..=129 | 131..) = (ranks, code) {
                eprintln!(
                    "netc: the job of {n} ranks ended early (exit status {code}: a rank died, hung or was stopped; see above)\n  help: `--resume` continues from the run's last checkpoint, on any number of ranks"
                );
            }
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", exe.display());
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn build(
    file: &Path,
    network: Option<&str>,
    output: Option<&Path>,
    no_build: bool,
    distributed: bool,
) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let dir = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cache::cache_dir().join("build").join(&g.name));
    let written = (|| -> Result<(), String> {
        if !Path::new(RUNTIME_DIR).join("Cargo.toml").exists() {
            return Err(format!(
                "netc-runtime's sources are not at {RUNTIME_DIR}, where this netc was built; the generated crate depends on them"
            ));
        }
        let net =
            netc_compiler::codegen::emit_with(g, &file.display().to_string(), skipped_passes())?;
        // The trainer (binary NAME-train) when the network fits it, else a main that times it.
        let (main, extra) = match netc_compiler::codegen::emit_trainer(g) {
            Ok(main) => (
                main,
                format!(
                    "netc-train = {{ path = {TRAIN_DIR:?}{} }}\n\n[[bin]]\nname = \"{}-train\"\npath = \"src/main.rs\"\n",
                    features(distributed),
                    g.name.replace('_', "-")
                ),
            ),
            Err(why) => {
                eprintln!("netc: {why}; writing a main that times the network on a random batch instead");
                (netc_compiler::codegen::emit_main(g)?, String::new())
            }
        };
        let manifest = format!(
            "# Generated by netc from {}.\n[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nnetc-runtime = {{ path = {:?} }}\n{extra}\n\
             # Not part of any enclosing workspace.\n[workspace]\n",
            file.display(),
            g.name.replace('_', "-"),
            RUNTIME_DIR
        );
        let src = dir.join("src");
        std::fs::create_dir_all(&src)
            .map_err(|e| format!("cannot create {}: {e}", src.display()))?;
        for (path, text) in [
            (dir.join("Cargo.toml"), manifest),
            (src.join("net.rs"), net),
            (src.join("main.rs"), main),
        ] {
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    })();
    if let Err(msg) = written {
        eprintln!("netc: {msg}");
        return ExitCode::from(1);
    }
    eprintln!(
        "netc: wrote the crate for `{}` to {}",
        g.name,
        dir.display()
    );
    if no_build {
        return ExitCode::SUCCESS;
    }
    let start = std::time::Instant::now();
    // In the cache's target folder, whose dependencies every generated crate shares (a
    // target folder of its own took 99 s against seconds); the binary is copied beside the
    // crate.
    if let Err(e) = cache::cargo_build(&dir, true) {
        eprintln!("netc: {e}");
        return ExitCode::from(1);
    }
    let bin = match netc_compiler::codegen::trainer_fit(g) {
        Ok(_) => format!("{}-train", g.name.replace('_', "-")),
        Err(_) => g.name.replace('_', "-"),
    };
    let bin = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
    let built = cache::target_dir().join("release").join(&bin);
    let copy = dir.join(&bin);
    if let Err(e) = std::fs::copy(&built, &copy) {
        eprintln!(
            "netc: cannot copy {} to {}: {e}",
            built.display(),
            copy.display()
        );
        return ExitCode::from(1);
    }
    eprintln!(
        "netc: built {} in {:.1} s",
        copy.display(),
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
