//! netc-train: the training loop of the binaries `netc build` writes and `netc train` runs.
//! A generated network plugs in through [`Network`] (its `main.rs` implements it over the
//! generated module); [`main`] parses the trainer's flags, with the network's `train { }`
//! section as defaults, loads and checks the data, and trains: seeded initialization,
//! shuffled minibatches, SGD with momentum, and a validation pass after every epoch, with a
//! progress line now and then and a summary per epoch.

mod checkpoint;
mod config;
mod ctrl_c;
mod metrics;
mod plot;
mod trainer;

pub use config::{Defaults, Flags, Optimizer, Schedule};
pub use trainer::Trainer;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The runtime, for the generated code and the optimizers' settings.
pub use netc_runtime as rt;
use rt::data::{Dataset, Source};

/// What the trainer needs of a generated network with one image input and either one class
/// label (a classifier) or none (a network whose loss compares images, such as an
/// autoencoder).
pub trait Network {
    /// Trainable parameters (and, in the same type, their gradients).
    type Params;
    /// Batchnorm running statistics.
    type State;
    /// The buffers of one batch size.
    type Workspace;
    /// The network's name.
    const NAME: &'static str;
    /// `[C, H, W]` of the image input.
    const INPUT: [usize; 3];
    /// Classes of the label input; 0 for a network without one, which the trainer scores by
    /// its loss alone.
    const CLASSES: usize;
    /// Every parameter, by PyTorch name, with its shape.
    const SHAPES: &'static [(&'static str, &'static [usize])];
    /// The network's `train { }` section: defaults for the flags.
    const DEFAULTS: Defaults;

    /// Parameters (or gradients) of zeros.
    fn params() -> Self::Params;
    /// Fresh batchnorm statistics.
    fn state() -> Self::State;
    /// Buffers for batches of `batch` images.
    fn workspace(batch: usize) -> Self::Workspace;
    /// The parameter `name`.
    fn param_mut<'p>(p: &'p mut Self::Params, name: &str) -> Option<&'p mut [f32]>;
    /// The parameter `name`.
    fn param<'p>(p: &'p Self::Params, name: &str) -> Option<&'p [f32]>;
    /// A training forward pass on a batch: the weighted loss.
    fn forward_train(
        p: &Self::Params,
        s: &mut Self::State,
        ws: &mut Self::Workspace,
        images: &[f32],
        labels: &[i64],
    ) -> f32;
    /// The gradients of the last `forward_train`, written into `g`.
    fn backward(p: &Self::Params, g: &mut Self::Params, ws: &mut Self::Workspace);
    /// An inference pass on a batch.
    fn forward(p: &Self::Params, s: &Self::State, ws: &mut Self::Workspace, images: &[f32]);
    /// The network's objective on a batch, leaving everything training keeps (batchnorm
    /// statistics) as it was: how the validation set is scored without labels. It is a
    /// training-mode pass: batchnorm normalizes with the batch's statistics and dropout
    /// drops.
    fn loss(
        p: &Self::Params,
        s: &Self::State,
        ws: &mut Self::Workspace,
        images: &[f32],
        labels: &[i64],
    ) -> f32;
    /// The class scores the last pass left, batch first (for a network without labels, its
    /// first output).
    fn logits(ws: &Self::Workspace) -> &[f32];
    /// Batchnorm statistics by name, with their shapes.
    const STATE_SHAPES: &'static [(&'static str, &'static [usize])];
    /// A batchnorm statistic.
    fn state_mut<'s>(s: &'s mut Self::State, name: &str) -> Option<&'s mut [f32]>;
    /// A batchnorm statistic.
    fn state_ref<'s>(s: &'s Self::State, name: &str) -> Option<&'s [f32]>;
    /// The first value, in forward order, with a non-finite element after the last forward
    /// pass: its path.
    fn first_non_finite(ws: &Self::Workspace) -> Option<&'static str>;
    /// A hash of the network's parameters (names and shapes) and layers, which checkpoints
    /// carry so that another network's are refused.
    const HASH: u64;
}

/// The bundled MNIST digits (see `data/README.md` in netc's repository).
pub const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    /// Its number, from 1.
    pub epoch: usize,
    /// The mean objective over its steps (NaN when it ran none: resumed at its last step).
    pub train_loss: f64,
    /// The fraction of its training images classified right (NaN without labels).
    pub train_accuracy: f64,
    /// The validation set's mean cross-entropy, or without labels its mean objective (NaN
    /// without a validation set).
    pub val_loss: f64,
    /// The validation set's top-1 (NaN without labels or a validation set).
    pub val_accuracy: f64,
    pub images_per_second: f64,
}

/// The trainer's entry point for a generated `main`: parses the flags and trains. Exits with
/// status 2 on bad flags, bad data or a failed run (with the reason), and 130 after Ctrl-C
/// (with the checkpoint it wrote).
pub fn main<N: Network>() -> std::process::ExitCode {
    let flags = Flags::parse_for(&format!("{}-train", N::NAME));
    match train::<N>(&flags) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        // Ctrl-C: the checkpoint is written; exit with SIGINT's status.
        Err(Error::Interrupted(e)) => {
            eprintln!("{}: {e}", N::NAME);
            std::process::ExitCode::from(130)
        }
        Err(Error::Failed(e)) => {
            eprintln!("{}: error: {e}", N::NAME);
            std::process::ExitCode::from(2)
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Ctrl-C: the run wrote a checkpoint, which the message names, and stopped.
    Interrupted(String),
    /// Bad settings, data or checkpoints, a diverged run, or a file that could not be
    /// written; the message says which and how to fix it.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Interrupted(m) | Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A run stopped inside an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MidEpoch {
    /// Steps done.
    pub steps: usize,
    /// The batch size and training-set size the steps were counted in (0 in checkpoints
    /// of earlier trainers, which did not record them).
    pub batch: usize,
    pub images: usize,
    /// The sum of those steps' losses and their images classified right, so that the
    /// epoch's figures cover all of its steps.
    pub loss_sum: f64,
    pub correct: usize,
}

/// Everything a run carries from step to step, which a checkpoint saves.
pub struct Run<N: Network> {
    pub params: N::Params,
    pub state: N::State,
    /// One optimizer state per parameter, in [`Network::SHAPES`] order.
    pub opt: Vec<rt::optim::OptState>,
    /// Epochs finished.
    pub epoch: usize,
    /// How far into the next epoch the run is (a checkpoint written on Ctrl-C); `rng` is
    /// then the generator as it was before that epoch's shuffle, so that the order comes
    /// back.
    pub mid_epoch: Option<MidEpoch>,
    /// Optimizer steps taken.
    pub step: u64,
    /// The generator of the shuffles (and, before the first epoch, of the initialization).
    pub rng: rt::rng::Rng,
}

/// What a run leaves: the trained parameters and batchnorm statistics, and every epoch's
/// figures (none for `--eval`, which returns the checkpoint's).
pub struct Trained<N: Network> {
    pub params: N::Params,
    pub state: N::State,
    pub epochs: Vec<Epoch>,
}

/// Trains `N` as `flags` say.
pub fn train<N: Network>(flags: &Flags) -> Result<Trained<N>, Error> {
    // A run stops early on Ctrl-C only by the flag the handler sets.
    run_training::<N>(flags).map_err(|e| {
        if ctrl_c::pressed() {
            Error::Interrupted(e)
        } else {
            Error::Failed(e)
        }
    })
}

fn run_training<N: Network>(flags: &Flags) -> Result<Trained<N>, String> {
    let d = N::DEFAULTS;
    let epochs = flags.epochs.unwrap_or(d.epochs);
    let batch = flags.batch.unwrap_or(d.batch);
    let seed = flags.seed.unwrap_or(d.seed);
    let optimizer = d.optimizer.with(flags)?;
    let schedule = match &flags.schedule {
        Some(s) => s.parse::<Schedule>()?,
        None => d.schedule,
    };
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if let Some(t) = flags.threads {
        if t == 0 {
            return Err("--threads must be at least 1".into());
        }
        rt::gemm::set_num_threads(t);
    }
    let source = match &flags.data {
        Some(spec) => spec.parse::<Source>().map_err(|e| e.to_string())?,
        None if N::INPUT == [1, 28, 28] => Source::Idx(PathBuf::from(BUNDLED)),
        None => {
            return Err(format!(
                "no --data given, and the bundled digits do not fit the input {:?}\n  help: pass --data idx:DIR, cifar10:DIR, csv:FILE, folder:DIR or synthetic",
                N::INPUT
            ))
        }
    };
    let loaded = rt::data::load(&source, N::INPUT, N::CLASSES, seed).map_err(|e| e.to_string())?;
    let (train_set, val_set) = loaded
        .train
        .split(flags.val_split, seed)
        .map_err(|e| e.to_string())?;
    if train_set.len() < batch {
        return Err(format!(
            "{} training images are fewer than one batch of {batch}\n  help: lower --batch or --val-split",
            train_set.len()
        ));
    }
    let say = |line: String| {
        if !flags.quiet {
            eprintln!("{line}");
        }
    };
    let report = |what: &str, set: &Dataset, sc: Scores| {
        format!("{what}: {} images, {}", set.len(), sc.describe(N::CLASSES))
    };
    // The run's files: checkpoints, metrics and charts, under --out unless given one by one.
    let out = flags
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(N::NAME));
    let checkpoint_dir = flags
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| out.join("checkpoints"));
    let metrics_path = flags
        .metrics
        .clone()
        .unwrap_or_else(|| out.join("metrics.csv"));
    let plot_dir = flags.plot.clone().unwrap_or_else(|| out.join("plots"));
    if let Some(path) = &flags.eval {
        let run = checkpoint::load::<N>(path)?;
        let mut ws = N::workspace(batch);
        let mut sets = vec![("validation", &val_set)];
        if let Some(test) = &loaded.test {
            sets.push(("test", test));
        }
        for (what, set) in sets {
            let sc = evaluate::<N>(&run.params, &run.state, set, batch, &mut ws);
            println!("{}", report(what, set, sc));
        }
        return Ok(Trained {
            params: run.params,
            state: run.state,
            epochs: Vec::new(),
        });
    }
    // The layers whose weight-gradient norms --grad-norms records: weights of two or more
    // dimensions (convolutions, linear layers), in forward order.
    let layers: Vec<&str> = if flags.grad_norms {
        N::SHAPES
            .iter()
            .filter(|(name, shape)| name.ends_with(".weight") && shape.len() > 1)
            .map(|(name, _)| *name)
            .collect()
    } else {
        Vec::new()
    };

    let mut run = match &flags.resume {
        Some(path) => {
            let path = match path {
                Some(path) => path.clone(),
                None => checkpoint::newest(&checkpoint_dir)?,
            };
            let run = checkpoint::load::<N>(&path)?;
            // A checkpoint from the middle of an epoch counts its steps in batches of one
            // size over one training set: resuming it any other way would skip other images.
            if let Some(m) = run
                .mid_epoch
                .filter(|m| m.batch > 0 && (m.batch, m.images) != (batch, train_set.len()))
            {
                return Err(format!(
                    "{} was written in the middle of epoch {}, after step {} of batches of {} over {} training images; this run has batches of {batch} over {}\n  help: resume it with --batch {} and the same --data and --val-split",
                    path.display(),
                    run.epoch + 1,
                    m.steps,
                    m.batch,
                    m.images,
                    train_set.len(),
                    m.batch
                ));
            }
            say(format!(
                "{}: resuming from {} (epoch {} done)",
                N::NAME,
                path.display(),
                run.epoch
            ));
            run
        }
        None => {
            let mut rng = rt::rng::Rng::new(seed);
            let mut params = N::params();
            init::<N>(&mut params, d.he, &mut rng);
            Run {
                params,
                state: N::state(),
                opt: N::SHAPES.iter().map(|_| Default::default()).collect(),
                epoch: 0,
                mid_epoch: None,
                step: 0,
                rng,
            }
        }
    };
    let mut history_plot = plot::History {
        layers: layers.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    };
    // On resume, the rows of the run so far, up to its checkpoint, stay.
    let resume_at = flags.resume.is_some().then_some((run.epoch, run.step));
    let (mut metrics, note) =
        metrics::Metrics::open(&metrics_path, &layers, resume_at, &mut history_plot)?;
    if let Some(note) = note {
        say(format!("{}: {note}", N::NAME));
    }
    say(format!(
        "{}: {} training and {} validation images, batch {batch}, {epochs} epochs, {optimizer}",
        N::NAME,
        train_set.len(),
        val_set.len(),
    ));

    let mut g = N::params();
    let mut ws = N::workspace(batch);
    let steps = train_set.len() / batch;
    let image_len = train_set.image_len();
    let (mut images, mut labels) = (vec![0.0f32; batch * image_len], vec![0i64; batch]);
    let mut history = Vec::new();
    // A bar on a terminal; otherwise (a log file, CI) a plain line every two seconds.
    let bars = !flags.quiet && std::io::stderr().is_terminal();
    // Ctrl-C asks for a checkpoint at the end of the current step, then an exit.
    let watch = ctrl_c::Watch::start();
    for epoch in run.epoch + 1..=epochs {
        // Ctrl-C between steps of an epoch is handled after its step; between epochs
        // (during validation, charts, a checkpoint), here.
        if ctrl_c::pressed() {
            let path = checkpoint::save::<N>(&run, &checkpoint_dir)?;
            return Err(format!(
                "interrupted after epoch {}; checkpoint {}\n  help: --resume continues from it",
                run.epoch,
                path.display()
            ));
        }
        let started = Instant::now();
        let rng_before = run.rng.clone();
        let resumed = run.mid_epoch.take().unwrap_or_default();
        let skip = resumed.steps;
        let bar = bars.then(|| {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} steps, {msg}, ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {epoch}/{epochs}"));
            bar
        });
        let lr = optimizer.lr() * schedule.factor(epoch, epochs);
        let opt_now = optimizer.at(lr);
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        run.rng.shuffle(&mut order);
        // Sums over the epoch's steps, those before a resume included.
        let (mut loss_sum, mut correct) = (resumed.loss_sum, resumed.correct);
        let mut last_report = Instant::now();
        for step in skip..steps {
            for (k, &i) in order[step * batch..(step + 1) * batch].iter().enumerate() {
                images[k * image_len..(k + 1) * image_len].copy_from_slice(train_set.image(i));
                labels[k] = train_set.labels[i];
            }
            let loss = N::forward_train(&run.params, &mut run.state, &mut ws, &images, &labels);
            if !loss.is_finite() {
                let at = N::first_non_finite(&ws)
                    .map(|p| format!(", first produced by `{p}`"))
                    .unwrap_or_default();
                return Err(non_finite(
                    epoch,
                    step,
                    &format!("the loss is {loss}{at}"),
                    &checkpoint_dir,
                ));
            }
            if N::CLASSES > 0 {
                correct += hits(N::logits(&ws), &labels, N::CLASSES);
            }
            N::backward(&run.params, &mut g, &mut ws);
            if let Some((name, _)) = N::SHAPES.iter().find(|(name, _)| {
                !N::param(&g, name)
                    .expect("listed")
                    .iter()
                    .all(|v| v.is_finite())
            }) {
                let why = format!("the gradient of `{name}` is not finite");
                return Err(non_finite(epoch, step, &why, &checkpoint_dir));
            }
            for ((name, _), st) in N::SHAPES.iter().zip(run.opt.iter_mut()) {
                let grad = N::param(&g, name).expect("every listed gradient exists");
                let param =
                    N::param_mut(&mut run.params, name).expect("every listed parameter exists");
                opt_now.step(param, grad, st);
            }
            run.step += 1;
            loss_sum += loss as f64;
            let norms: Vec<f64> = layers
                .iter()
                .map(|l| {
                    let g = N::param(&g, l).expect("listed");
                    g.iter()
                        .map(|&v| (v as f64) * (v as f64))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            metrics.step(epoch, run.step, lr, loss, &norms)?;
            history_plot.steps.push((run.step, loss as f64));
            if !norms.is_empty() {
                history_plot.norms.push((run.step, norms));
            }
            if ctrl_c::pressed() {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let now = Run::<N> {
                    params: run.params,
                    state: run.state,
                    opt: run.opt,
                    epoch: epoch - 1,
                    mid_epoch: Some(MidEpoch {
                        steps: step + 1,
                        batch,
                        images: train_set.len(),
                        loss_sum,
                        correct,
                    }),
                    step: run.step,
                    rng: rng_before,
                };
                let path = checkpoint::save::<N>(&now, &checkpoint_dir)?;
                return Err(format!(
                    "interrupted in epoch {epoch} after step {}; checkpoint {}\n  help: --resume continues from it",
                    step + 1,
                    path.display()
                ));
            }
            let done = (step + 1) * batch;
            let status = || {
                let accuracy = if N::CLASSES > 0 {
                    let a = correct as f64 / ((step + 1) * batch) as f64;
                    format!(", accuracy {:.1}%", 100.0 * a)
                } else {
                    String::new()
                };
                format!(
                    "loss {:.4}{accuracy}, {:.0} img/s",
                    loss_sum / (step + 1) as f64,
                    ((step + 1 - skip) * batch) as f64 / started.elapsed().as_secs_f64()
                )
            };
            if let Some(bar) = &bar {
                if step % 8 == 7 || step + 1 == steps {
                    bar.set_message(status());
                }
                bar.set_position(step as u64 + 1);
            } else if last_report.elapsed().as_secs_f64() > 2.0 {
                last_report = Instant::now();
                say(format!(
                    "epoch {epoch}/{epochs}: {done}/{} images, {}",
                    steps * batch,
                    status()
                ));
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        // Steps run now (none when the epoch was resumed from a checkpoint of its last step),
        // and steps the sums cover (all of the epoch's).
        let ran = steps.saturating_sub(skip);
        let counted = skip.min(steps) + ran;
        let per_step = |total: f64| {
            if counted > 0 {
                total / counted as f64
            } else {
                f64::NAN
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let val = evaluate::<N>(&run.params, &run.state, &val_set, batch, &mut ws);
        let e = Epoch {
            epoch,
            train_loss: per_step(loss_sum),
            train_accuracy: if N::CLASSES > 0 {
                per_step(correct as f64 / batch as f64)
            } else {
                f64::NAN
            },
            val_loss: val.loss,
            val_accuracy: val.top1,
            images_per_second: if ran > 0 {
                (ran * batch) as f64 / seconds
            } else {
                f64::NAN
            },
        };
        let accuracy = if N::CLASSES > 0 {
            format!(", accuracy {:.2}%", 100.0 * e.train_accuracy)
        } else {
            String::new()
        };
        say(format!(
            "epoch {epoch}/{epochs}: train loss {:.4}{accuracy}; validation {}; {:.0} img/s",
            e.train_loss,
            val.describe(N::CLASSES),
            e.images_per_second
        ));
        metrics.epoch(run.step, lr, &e)?;
        {
            let dir = &plot_dir;
            history_plot.steps_per_epoch = steps as u64;
            history_plot.epochs.push((
                epoch,
                e.train_loss,
                e.train_accuracy,
                e.val_loss,
                e.val_accuracy,
            ));
            plot::write(dir, N::NAME, &history_plot)?;
        }
        run.epoch = epoch;
        let every = flags.checkpoint_every;
        if (every > 0 && epoch % every == 0) || epoch == epochs {
            let path = checkpoint::save::<N>(&run, &checkpoint_dir)?;
            say(format!("checkpoint {}", path.display()));
        }
        history.push(e);
    }
    // Training is over: Ctrl-C stops the process again.
    drop(watch);
    if let Some(test) = &loaded.test {
        let sc = evaluate::<N>(&run.params, &run.state, test, batch, &mut ws);
        say(report("test", test, sc));
    }
    let _ = std::io::stderr().flush();
    Ok(Trained {
        params: run.params,
        state: run.state,
        epochs: history,
    })
}

/// The message for a non-finite loss or gradient, pointing at the last good checkpoint.
fn non_finite(epoch: usize, step: usize, what: &str, checkpoints: &Path) -> String {
    let kept = match checkpoint::newest(checkpoints) {
        Ok(p) => format!("; the last good checkpoint is {}", p.display()),
        Err(_) => String::new(),
    };
    format!(
        "epoch {epoch}, step {}: {what}{kept}\n  help: lower --lr (training diverged)",
        step + 1
    )
}

/// Seeded initialization: He or Xavier for weights of two or more dimensions, 1 for
/// batchnorm's γ, 0 for biases and β.
fn init<N: Network>(p: &mut N::Params, he: bool, rng: &mut rt::rng::Rng) {
    let kind = if he {
        rt::init::Init::He
    } else {
        rt::init::Init::Xavier
    };
    for (name, shape) in N::SHAPES {
        let t = N::param_mut(p, name).expect("every listed parameter exists");
        if name.ends_with(".weight") && shape.len() > 1 {
            rt::init::init_weight(kind, shape, rng, t);
        } else if name.ends_with(".weight") {
            t.fill(1.0);
        }
    }
}

/// How many rows of `logits` (`classes` wide) have their largest score at the label.
fn hits(logits: &[f32], labels: &[i64], classes: usize) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            best as i64 == l
        })
        .count()
}

/// A set's mean cross-entropy and top-1 and top-5 accuracy; for a network without labels,
/// its mean loss, and NaN accuracies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
}

impl Scores {
    /// "loss L, top-1 A%, top-5 B%", with top-5 only above 5 classes and accuracies only
    /// with classes.
    fn describe(&self, classes: usize) -> String {
        let mut s = format!("loss {:.4}", self.loss);
        if classes > 0 {
            s += &format!(", top-1 {:.2}%", 100.0 * self.top1);
        }
        if classes > 5 {
            s += &format!(", top-5 {:.2}%", 100.0 * self.top5);
        }
        s
    }
}

/// The scores of `set`, in batches of `batch` on `ws` (buffers for that batch, such as the
/// training loop's), the last batch, if smaller, on buffers of its own size. Panics if
/// `batch` is 0.
pub fn evaluate<N: Network>(
    p: &N::Params,
    s: &N::State,
    set: &Dataset,
    batch: usize,
    ws: &mut N::Workspace,
) -> Scores {
    assert!(batch > 0, "evaluate needs batches of at least one image");
    if set.is_empty() {
        return Scores {
            loss: f64::NAN,
            top1: f64::NAN,
            top5: f64::NAN,
        };
    }
    let (mut loss, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    let mut tail = None;
    let len = set.image_len();
    for start in (0..set.len()).step_by(batch) {
        let n = batch.min(set.len() - start);
        let ws: &mut N::Workspace = if n == batch {
            &mut *ws
        } else {
            tail.insert(N::workspace(n))
        };
        let images = &set.images[start * len..(start + n) * len];
        let labels = &set.labels[start..start + n];
        if N::CLASSES == 0 {
            // The batch's mean loss, weighted by its images.
            loss += N::loss(p, s, ws, images, labels) as f64 * n as f64;
            continue;
        }
        N::forward(p, s, ws, images);
        let logits = N::logits(ws);
        top1 += hits(logits, labels, N::CLASSES);
        for (row, &l) in logits.chunks_exact(N::CLASSES).zip(labels) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            loss += sum.ln() - (row[l as usize] - max) as f64;
            // In the top five: fewer than five classes score higher.
            let target = row[l as usize];
            if row.iter().filter(|&&v| v > target).count() < 5 {
                top5 += 1;
            }
        }
    }
    let n = set.len() as f64;
    let accuracy = |hits: usize| {
        if N::CLASSES > 0 {
            hits as f64 / n
        } else {
            f64::NAN
        }
    };
    Scores {
        loss: loss / n,
        top1: accuracy(top1),
        top5: accuracy(top5),
    }
}
