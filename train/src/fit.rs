//! The training run: settings from the flags (or from the checkpoint a run resumes), the
//! data, the run's folders locked and checked before the first step, the memory a step
//! needs checked before it is allocated, then epochs of shuffled minibatches (each step's
//! dropout masks drawn from a generator of the seed and the step), each ending with
//! validation, a metrics row, a checkpoint and charts, in that order, so that a chart that
//! cannot be written costs a warning and never the epoch's checkpoint. Over several ranks
//! (`--distributed`, see `dist`) each step takes this rank's share of the global batch and
//! the gradients are summed; one process runs the same code with a `Comm` of one rank.

use std::path::PathBuf;
use std::time::Instant;

use crate::dist::run::{
    data_fingerprint, mean_state, params_fingerprint, save, score, settings_fingerprint, shard,
    stop_all, Fault,
};
use crate::dist::{self, Comm, Reducer};
use crate::eval::hits;
use crate::files::say as print_line;
use crate::prepare::{check_memory, data, eval_only, report, source, threads, Paths};
use crate::settings::Settings;
use crate::step::{
    bar_style, count_epochs, dropout_rng, init, non_finite, non_finite_param, progress_bar,
};
use crate::{checkpoint, ctrl_c, files, freeze, init_from, metrics, plot, rt, rundir};
use crate::{Epoch, Flags, MidEpoch, Network, Run, Trained};
use rt::data::Dataset;

/// Trains `N` as `flags` say; the error is the message for the user.
pub(crate) fn run_training<N: Network>(flags: &Flags) -> Result<Trained<N>, String> {
    let d = N::DEFAULTS;
    Settings::check_fine_tuning(flags)?;
    threads(flags)?;
    let paths = Paths::of::<N>(flags);
    if let Some(path) = &flags.eval {
        if flags.distributed {
            return Err("--eval scores a checkpoint in one process: drop --distributed".into());
        }
        return eval_only::<N>(flags, path);
    }
    let comm = Comm::init(
        flags.distributed,
        std::time::Duration::from_secs(flags.timeout.unwrap_or(300)),
    )?;
    // Progress, notes and warnings go to stderr; results (epoch summaries, the test set's
    // scores, where the run's files are) to stdout, so that `> log` keeps them. Over several
    // ranks, rank 0 speaks for all.
    let quiet = flags.quiet || !comm.is_root();
    let say = |line: String| {
        if !quiet {
            print_line(&line)
        }
    };
    let tell = |line: String| {
        if !quiet {
            files::say_out(&line)
        }
    };
    // A resumed run's checkpoint comes first: its settings decide the data.
    let (mut run, settings, resumed_from) = match &flags.resume {
        Some(path) => {
            let (loaded, path) = match path {
                Some(path) => (checkpoint::load::<N>(path)?, path.clone()),
                None => {
                    let (loaded, path, skipped) = checkpoint::newest::<N>(&paths.checkpoints)?;
                    for s in skipped {
                        say(format!("{}: {s}", N::NAME));
                    }
                    (loaded, path)
                }
            };
            let settings = match loaded.settings {
                Some(stored) => Settings::resumed(stored, flags, &d)?,
                None => {
                    say(format!(
                        "{}: {} does not record its run's settings (an earlier trainer's): the flags decide them",
                        N::NAME,
                        path.display()
                    ));
                    Settings::new(flags, &d)?
                }
            };
            say(format!(
                "{}: resuming from {} ({})",
                N::NAME,
                path.display(),
                checkpoint::describe(
                    loaded.run.epoch,
                    loaded.run.mid_epoch.map_or(0, |m| m.steps)
                )
            ));
            (loaded.run, settings, Some(path))
        }
        None => {
            let settings = Settings::new(flags, &d)?;
            // The parameters themselves may not fit: asked before they are allocated.
            check_memory::<N>(settings.batch, settings.optimizer.moments(), &[])?;
            let mut rng = rt::rng::Rng::new(settings.seed);
            let mut params = N::params();
            init::<N>(&mut params, d.he, &mut rng);
            let run = Run {
                params,
                state: N::state(),
                opt: N::SHAPES.iter().map(|_| Default::default()).collect(),
                epoch: 0,
                mid_epoch: None,
                step: 0,
                rng,
            };
            (run, settings, None)
        }
    };
    // Fine-tuning: the frozen set (a resumed run's own), checked before a file is read.
    let frozen = freeze::frozen::<N>(&settings.freeze)?;
    // A frozen parameter has no optimizer state, even resumed from an earlier trainer's
    // checkpoint that did not record a frozen set (`--freeze` then decides it).
    for (st, _) in run.opt.iter_mut().zip(&frozen).filter(|(_, &f)| f) {
        *st = Default::default();
    }
    if let Some(from) = &flags.init_from {
        let lines = init_from::load::<N>(from, &settings.rename, &mut run.params, &mut run.state)?;
        for line in lines {
            say(format!("{}: {line}", N::NAME));
        }
    }
    if let Some(line) = freeze::describe::<N>(&frozen) {
        say(format!("{}: {line}", N::NAME));
    }
    let (epochs, batch) = (settings.epochs, settings.batch);
    if run.epoch >= epochs {
        say(format!(
            "{}: nothing to train: the checkpoint has {} done and the run has {}\n  help: --epochs N with N above {} trains more",
            N::NAME,
            count_epochs(run.epoch),
            count_epochs(epochs),
            run.epoch
        ));
        return Ok(Trained {
            params: run.params,
            state: run.state,
            epochs: Vec::new(),
        });
    }
    // A mistake in the flags is said before the run's folders are looked at.
    source::<N>(&settings)?;
    if !(0.0..1.0).contains(&settings.val_split) {
        return Err(format!(
            "a validation split of {} is not in [0, 1)\n  help: --val-split takes a fraction such as 0.1",
            settings.val_split
        ));
    }
    // The run's files: locked, free of another run's checkpoints, and writable, before
    // anything is loaded or computed.
    // (Rank 0's alone: the others write nothing.)
    let root = comm.is_root();
    let _locks = if root {
        let locks = rundir::lock(&rundir::lock_files(
            &paths.checkpoints,
            &paths.metrics,
            &paths.plots,
        ))?;
        if flags.resume.is_none() {
            if let Some(note) = rundir::fresh(&paths.checkpoints, N::NAME, flags.overwrite)? {
                say(format!("{}: {note}", N::NAME));
            }
        }
        files::ensure_writable(&paths.checkpoints, "checkpoints")?;
        files::ensure_writable(files::folder_of(&paths.metrics), "the metrics file")?;
        files::ensure_writable(&paths.plots, "charts")?;
        Some(locks)
    } else {
        None
    };

    // Before anything large is allocated: the data, then the step's buffers.
    let moments = settings.optimizer.moments();
    check_memory::<N>(batch, moments, &[])?;
    let (train_set, val_set, test_set) = data::<N>(&settings, &say)?;
    // Again with the data in memory: what is left must still hold the run, the last
    // batches of the sets it scores included.
    let sizes = [val_set.len(), test_set.as_ref().map_or(0, Dataset::len)];
    check_memory::<N>(batch, moments, &sizes)?;
    if train_set.len() < batch {
        return Err(format!(
            "{} training images are fewer than one batch of {batch}\n  help: lower --batch or --val-split",
            train_set.len()
        ));
    }
    let steps = train_set.len() / batch;
    // This rank's share of every global batch, and of the sets it scores.
    let mine = comm.share(batch);
    if mine.is_empty() {
        return Err(format!(
            "a batch of {batch} images cannot be shared by {} ranks\n  help: --batch is the global batch: make it at least the number of ranks",
            comm.size()
        ));
    }
    let local = mine.len();
    let val_share = shard(&val_set, &comm);
    // Every rank must be training the same network on the same data from the same
    // parameters with the same settings.
    if comm.size() > 1 {
        let at = [(run.epoch as u64).to_le_bytes(), run.step.to_le_bytes()].concat();
        comm.agree(&[
            ("the network", N::HASH),
            ("the settings", settings_fingerprint(&settings, flags)),
            ("the data", data_fingerprint(&train_set, &val_set)),
            (
                "the parameters",
                params_fingerprint::<N>(&run.params, &run.state),
            ),
            ("the step", dist::fingerprint(&[&at])),
        ])?;
    }
    // A checkpoint from the middle of an epoch counts its steps in batches of one size over
    // one training set: resuming it any other way would skip other images. (One written at
    // an epoch's last step resumes into that epoch's end: validation and its checkpoint.)
    if let Some(m) = run.mid_epoch {
        if (m.batch > 0 && (m.batch, m.images) != (batch, train_set.len())) || m.steps > steps {
            return Err(format!(
                "the checkpoint was written in epoch {} after step {}, of batches of {} over {} training images; this run has {steps} steps of {batch} over {}\n  help: resume it with the same --data and --val-split",
                run.epoch + 1,
                m.steps,
                m.batch,
                m.images,
                train_set.len(),
            ));
        }
    }

    // The layers whose weight-gradient norms --grad-norms records: the drawn weights
    // (convolutions, linear layers), in forward order.
    let layers: Vec<&str> = if flags.grad_norms {
        N::SHAPES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| N::drawn(name))
            .collect()
    } else {
        Vec::new()
    };
    let mut history_plot = plot::History {
        layers: layers.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    };
    // On resume, the rows of the run so far, up to its checkpoint, stay.
    let resume_at = flags.resume.is_some().then_some((run.epoch, run.step));
    let mut metrics = if root {
        let (metrics, note) =
            metrics::Metrics::open(&paths.metrics, &layers, resume_at, &mut history_plot)?;
        if let Some(note) = note {
            say(format!("{}: {note}", N::NAME));
        }
        Some(metrics)
    } else {
        None
    };
    let optimizer = settings.optimizer;
    let ranks = match comm.size() {
        1 => String::new(),
        n => format!(" over {n} ranks"),
    };
    say(format!(
        "{}: {} training and {} validation images, batch {batch}{ranks}, {}, {optimizer}",
        N::NAME,
        train_set.len(),
        val_set.len(),
        count_epochs(epochs),
    ));
    let warn = |e: String| say(format!("{}: warning: {e}", N::NAME));

    let mut g = N::params();
    let mut ws = N::workspace(local);
    let mut reducer = Reducer::new::<N>(&comm);
    let fault = Fault::from_env(&comm)?;
    let image_len = train_set.image_len();
    let (mut images, mut labels) = (vec![0.0f32; local * image_len], vec![0i64; local]);
    let mut history = Vec::new();
    // The newest checkpoint this run can go back to.
    let mut last_good: Option<PathBuf> = resumed_from;
    // A bar on a terminal; otherwise (a log file, CI) a plain line every two seconds.
    let bars = !flags.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Ctrl-C asks for a checkpoint at the end of the current step, then an exit.
    let watch = ctrl_c::Watch::start();
    for epoch in run.epoch + 1..=epochs {
        // Ctrl-C between steps of an epoch is handled after its step; between epochs
        // (during validation, charts, a checkpoint), here.
        if stop_all(&comm, ctrl_c::pressed()) {
            let path = save::<N>(&comm, &run, &settings, &paths.checkpoints)?;
            let when = match run.epoch {
                0 => "before epoch 1".to_string(),
                e => format!("after epoch {e}"),
            };
            return Err(format!(
                "interrupted {when}; checkpoint {}\n  help: --resume continues from it",
                path.display()
            ));
        }
        let started = Instant::now();
        let rng_before = run.rng.clone();
        let resumed = run.mid_epoch.take().unwrap_or_default();
        let skip = resumed.steps;
        let bar = (bars && files::stderr_open()).then(|| progress_bar(steps, epoch, epochs));
        let lr = optimizer.lr() * settings.schedule.factor(epoch, epochs);
        let opt_now = optimizer.at(lr);
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        run.rng.shuffle(&mut order);
        // Sums over the epoch's steps, those before a resume included.
        let (mut loss_sum, mut correct) = (resumed.loss_sum, resumed.correct);
        let mut last_report = Instant::now();
        for step in skip..steps {
            if let Some(f) = &fault {
                f.at(run.step);
            }
            let at = step * batch;
            let part = &order[at + mine.start..at + mine.end];
            for (k, &i) in part.iter().enumerate() {
                images[k * image_len..(k + 1) * image_len].copy_from_slice(train_set.image(i));
                labels[k] = train_set.labels[i];
            }
            N::set_dropout(&mut ws, Some(dropout_rng(settings.seed, run.step, &comm)));
            let mut loss = N::forward_train(&run.params, &mut run.state, &mut ws, &images, &labels);
            // One process stops at once, with the layer that went wrong; several ranks first
            // agree on the loss, so that all of them stop.
            if !loss.is_finite() && comm.size() == 1 {
                let at = N::first_non_finite(&run.params, &ws)
                    .map(|p| format!(", first produced by {p}"))
                    .unwrap_or_default();
                let why = format!("the loss is {loss}{at}");
                return Err(non_finite(epoch, step, &why, last_good.as_deref()));
            }
            let mut hit = if N::CLASSES > 0 {
                hits(N::logits(&ws), &labels, N::CLASSES)
            } else {
                0
            };
            reducer.backward::<N>(
                &comm,
                &run.params,
                &mut g,
                &mut ws,
                local as f32 / batch as f32,
            );
            let stop = ctrl_c::pressed();
            let stop = if comm.size() > 1 {
                let mut sums = [loss as f64 * local as f64, hit as f64, stop as u8 as f64];
                comm.sum(&mut sums);
                loss = (sums[0] / batch as f64) as f32;
                hit = sums[1] as usize;
                if !loss.is_finite() {
                    let why = format!("the loss is {loss} (summed over the ranks)");
                    return Err(non_finite(epoch, step, &why, last_good.as_deref()));
                }
                sums[2] > 0.0
            } else {
                stop
            };
            correct += hit;
            if let Some(name) = non_finite_param::<N>(&g) {
                let why = format!("the gradient of `{name}` is not finite");
                return Err(non_finite(epoch, step, &why, last_good.as_deref()));
            }
            freeze::step::<N>(&opt_now, &mut run.params, &g, &mut run.opt, &frozen);
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
            if let Some(Err(e)) = metrics
                .as_mut()
                .map(|m| m.step(epoch, run.step, lr, loss, &norms))
            {
                warn(e);
            }
            history_plot.steps.push((run.step, loss as f64));
            if !norms.is_empty() {
                history_plot.norms.push((run.step, norms));
            }
            if stop {
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
                let path = save::<N>(&comm, &now, &settings, &paths.checkpoints)?;
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
                bar.set_position(step as u64 + 1);
                // The first step run brings the figures and an ETA into the bar.
                if step == skip {
                    bar.set_style(bar_style(true));
                }
                if step == skip || step % 8 == 7 || step + 1 == steps {
                    bar.set_message(status());
                }
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
        // Validation never drops.
        N::set_dropout(&mut ws, None);
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
        // Every rank's batchnorm statistics came from its own share of each batch: all take
        // their mean before scoring and saving.
        mean_state::<N>(&comm, &mut run.state);
        let val = score::<N>(&comm, &run.params, &run.state, &val_share, local, &mut ws);
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
        // Over several ranks: what the gradients' sums cost past backward.
        let waited = reducer
            .waited()
            .map(|ms| format!(" ({ms:.1} ms/step waiting for the gradients' sums)"))
            .unwrap_or_default();
        tell(format!(
            "epoch {epoch}/{epochs}: train loss {:.4}{accuracy}; validation {}; {:.0} img/s{waited}",
            e.train_loss,
            val.describe(N::CLASSES),
            e.images_per_second
        ));
        if let Some(Err(e)) = metrics.as_mut().map(|m| m.epoch(run.step, lr, &e)) {
            warn(e);
        }
        run.epoch = epoch;
        // The checkpoint before the charts: a chart that cannot be written (a full disk, a
        // folder in the way) is a warning, the checkpoint is the run.
        let every = flags.checkpoint_every.unwrap_or(1);
        if (every > 0 && epoch % every == 0) || epoch == epochs {
            // An update can overflow a parameter with a finite gradient (an infinite bias
            // before a ReLU leaves the loss finite): such a run is not saved as good.
            if let Some(name) = non_finite_param::<N>(&run.params) {
                let why = format!("the parameter `{name}` is not finite");
                return Err(non_finite(epoch, steps - 1, &why, last_good.as_deref()));
            }
            let path = save::<N>(&comm, &run, &settings, &paths.checkpoints)?;
            tell(format!("checkpoint {}", path.display()));
            last_good = Some(path);
        }
        history_plot.steps_per_epoch = steps as u64;
        history_plot.epochs.push((
            epoch,
            e.train_loss,
            e.train_accuracy,
            e.val_loss,
            e.val_accuracy,
        ));
        if root {
            if let Err(e) = plot::write(&paths.plots, N::NAME, &history_plot) {
                warn(format!("{e}; training goes on"));
            }
        }
        history.push(e);
    }
    // Training is over: Ctrl-C stops the process again.
    drop(watch);
    if let Some(test) = &test_set {
        let sc = score::<N>(
            &comm,
            &run.params,
            &run.state,
            &shard(test, &comm),
            local,
            &mut ws,
        );
        tell(report::<N>("test", test, sc));
    }
    tell(format!(
        "{}: checkpoints in {}, metrics in {}, charts in {}",
        N::NAME,
        paths.checkpoints.display(),
        paths.metrics.display(),
        paths.plots.display()
    ));
    Ok(Trained {
        params: run.params,
        state: run.state,
        epochs: history,
    })
}
