//! Before a run trains: where its files go, its data, its threads, and whether its
//! buffers fit in memory; and `--eval`, which scores a checkpoint instead.

use std::path::{Path, PathBuf};

use crate::eval::{evaluate, scoring_workspace, scoring_workspace_bytes, Scores};
use crate::files::say as print_line;
use crate::settings::Settings;
use crate::{checkpoint, files, rt, Flags, Network, Trained};
use rt::data::{Dataset, Source};
use rt::memory;

/// Where a run's files go.
pub(crate) struct Paths {
    pub(crate) checkpoints: PathBuf,
    pub(crate) metrics: PathBuf,
    pub(crate) plots: PathBuf,
}

impl Paths {
    /// Under `--out` (`runs/NAME`) unless given one by one.
    pub(crate) fn of<N: Network>(flags: &Flags) -> Paths {
        let out = flags
            .out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(N::NAME));
        Paths {
            checkpoints: flags
                .checkpoint_dir
                .clone()
                .unwrap_or_else(|| out.join("checkpoints")),
            metrics: flags
                .metrics
                .clone()
                .unwrap_or_else(|| out.join("metrics.csv")),
            plots: flags.plot.clone().unwrap_or_else(|| out.join("plots")),
        }
    }
}

/// The data of a run's settings: the training set, split into training and validation,
/// and the source's test set; the notes the readers made are printed by `say`.
pub(crate) fn data<N: Network>(
    settings: &Settings,
    say: &dyn Fn(String),
) -> Result<(Dataset, Dataset, Option<Dataset>), String> {
    let source = source::<N>(settings)?;
    let loaded =
        rt::data::load(&source, N::INPUT, N::CLASSES, settings.seed).map_err(|e| e.to_string())?;
    for note in &loaded.notes {
        say(format!("{}: {note}", N::NAME));
    }
    let (train, val) = loaded
        .train
        .split(settings.val_split, settings.seed)
        .map_err(|e| e.to_string())?;
    Ok((train, val, loaded.test))
}

/// Where a run's images come from: its `--data`, or the bundled digits for a `[1, 28, 28]`
/// input. A spec that names no source is refused here, before anything else is touched.
pub(crate) fn source<N: Network>(settings: &Settings) -> Result<Source, String> {
    Ok(match &settings.data {
        Some(spec) => spec.parse::<Source>().map_err(|e| e.to_string())?,
        None if N::INPUT == [1, 28, 28] => Source::Idx(PathBuf::from(crate::BUNDLED)),
        None => {
            return Err(format!(
                "no --data given, and the bundled digits do not fit the input {:?}\n  help: pass --data idx:DIR, cifar10:DIR, csv:FILE, folder:DIR or synthetic",
                N::INPUT
            ))
        }
    })
}

/// Threads for the kernels, as `--threads` asks.
pub(crate) fn threads(flags: &Flags) -> Result<(), String> {
    if let Some(t) = flags.threads {
        if t == 0 {
            return Err("--threads must be at least 1".into());
        }
        rt::gemm::try_set_num_threads(t).map_err(|e| format!("--threads {t}: {e}"))?;
    }
    Ok(())
}

/// The bytes a run at `batch` allocates beside its data: the workspace; the parameters,
/// their gradients and the optimizer's state (`moments` copies); a checkpoint being written
/// (its tensors copied, then encoded); and the buffers of a last, smaller batch of each set
/// scored (`sets`: their sizes). `None` past what can be counted.
pub(crate) fn run_bytes<N: Network>(batch: usize, moments: usize, sets: &[usize]) -> Option<u64> {
    let moments = moments as u64;
    let params: u64 = N::SHAPES
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    let state: u64 = N::STATE_SHAPES
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    let step = params.checked_mul(4 * (2 + moments))?;
    let saved = params
        .checked_mul(1 + moments)?
        .checked_add(state)?
        .checked_mul(4 * 2)?;
    // Sets are scored one after the other: the largest last batch counts.
    let tail = sets.iter().map(|&n| n % batch).max().unwrap_or(0);
    let tail = if tail > 0 {
        scoring_workspace_bytes::<N>(tail)?
    } else {
        0
    };
    (N::workspace_bytes(batch)? as u64)
        .checked_add(step)?
        .checked_add(saved)?
        .checked_add(tail as u64)
}

/// Refuses a batch whose run does not fit in the memory this process may still use (see
/// [`run_bytes`]).
pub(crate) fn check_memory<N: Network>(
    batch: usize,
    moments: usize,
    sets: &[usize],
) -> Result<(), String> {
    if let Some(budget) = memory::available() {
        memory::check_fits(batch, budget, |b| run_bytes::<N>(b, moments, sets))?;
    }
    // What the limits allow, the allocator must give too.
    match run_bytes::<N>(batch, moments, sets) {
        Some(n) if memory::can_allocate(n) => Ok(()),
        need => Err(format!(
            "a training step at batch {batch} needs {}, which the system would not allocate\n  help: lower --batch",
            need.map_or("more bytes than can be counted".into(), memory::human)
        )),
    }
}

/// `--eval PATH`: scores a checkpoint on the validation set of its run (the run's data,
/// seed and split, unless the flags name others) and the source's test set.
pub(crate) fn eval_only<N: Network>(flags: &Flags, path: &Path) -> Result<Trained<N>, String> {
    let loaded = checkpoint::load::<N>(path)?;
    let mut settings = Settings::new(flags, &N::DEFAULTS)?;
    if let Some(s) = loaded.settings {
        settings = Settings {
            data: flags.data.clone().or(s.data),
            batch: flags.batch.unwrap_or(s.batch),
            seed: flags.seed.unwrap_or(s.seed),
            val_split: flags.val_split.unwrap_or(s.val_split),
            ..settings
        };
    }
    let say = |line: String| {
        if !flags.quiet {
            print_line(&line)
        }
    };
    check_memory::<N>(settings.batch, 0, &[])?;
    let (_, val_set, test) = data::<N>(&settings, &say)?;
    let sizes = [val_set.len(), test.as_ref().map_or(0, Dataset::len)];
    check_memory::<N>(settings.batch, 0, &sizes)?;
    let mut ws = scoring_workspace::<N>(settings.batch);
    let mut sets = vec![("validation", &val_set)];
    if let Some(test) = &test {
        sets.push(("test", test));
    }
    let run = loaded.run;
    for (what, set) in sets {
        let sc = evaluate::<N>(&run.params, &run.state, set, settings.batch, &mut ws);
        files::say_out(&report::<N>(what, set, sc));
    }
    Ok(Trained {
        params: run.params,
        state: run.state,
        epochs: Vec::new(),
    })
}

pub(crate) fn report<N: Network>(what: &str, set: &Dataset, sc: Scores) -> String {
    format!("{what}: {} images, {}", set.len(), sc.describe(N::CLASSES))
}
