//! `metrics.csv`: a row per optimizer step (`kind` = `step`: its loss and, with
//! `--grad-norms`, each layer's weight-gradient norm) and per epoch (`epoch`: training and
//! validation figures). A resumed run keeps the rows of the run so far, up to its
//! checkpoint, and appends to them, so that the file and the charts cover the whole run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::plot::History;

/// The open metrics file.
pub struct Metrics {
    file: File,
    path: PathBuf,
    layers: usize,
    /// A write failed (a full disk): later rows are not written, and training goes on.
    broken: bool,
}

impl Metrics {
    /// Creates the file at `path` with its header; for a run resumed from a checkpoint after
    /// `epoch` epochs and `step` steps (`resume`), keeps the file's rows up to there and puts
    /// them into `history`. A file that does not lead up to the checkpoint (other columns,
    /// another run's rows) is kept beside it as `NAME.old.csv`, and the note returned says
    /// so. The file is replaced atomically (a temporary file, then a rename).
    pub fn open(
        path: &Path,
        layers: &[&str],
        resume: Option<(usize, u64)>,
        history: &mut History,
    ) -> Result<(Metrics, Option<String>), String> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
        }
        let norms: String = layers.iter().map(|l| format!(",grad_norm:{l}")).collect();
        let header = format!(
            "kind,epoch,step,lr,loss,accuracy,val_loss,val_accuracy,images_per_second{norms}"
        );
        let mut kept = vec![header.clone()];
        let mut note = None;
        if let (Some((epoch, at)), Ok(old)) = (resume, std::fs::read(path)) {
            let old = String::from_utf8_lossy(&old);
            let mut lines = old.lines();
            let mut rows = Vec::new();
            if lines.next() == Some(header.as_str()) {
                for line in lines {
                    if let Some(row) = parse(line, layers.len()) {
                        let before = row.step <= at && (!row.epoch_row || row.epoch <= epoch);
                        if before {
                            rows.push((row, line));
                        }
                    }
                }
            }
            // The rows lead up to the checkpoint: its step is there.
            let ours = at == 0 || rows.iter().any(|(r, _)| !r.epoch_row && r.step == at);
            if ours {
                for (row, line) in rows {
                    row.add_to(history);
                    kept.push(line.to_string());
                }
            } else {
                // A name not taken: an earlier one is not overwritten.
                let old_path = (1..)
                    .map(|k| match k {
                        1 => path.with_extension("old.csv"),
                        k => path.with_extension(format!("old-{k}.csv")),
                    })
                    .find(|p| !p.exists())
                    .expect("a free name");
                std::fs::rename(path, &old_path)
                    .map_err(|e| format!("{}: cannot move aside: {e}", path.display()))?;
                note = Some(format!(
                    "{} does not lead up to the checkpoint (other columns or another run's rows): kept as {}, and a new one begun",
                    path.display(),
                    old_path.display()
                ));
            }
        }
        let mut text = kept.join("\n");
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
        Ok((
            Metrics {
                file,
                path: path.to_path_buf(),
                layers: layers.len(),
                broken: false,
            },
            note,
        ))
    }

    /// One optimizer step.
    pub fn step(
        &mut self,
        epoch: usize,
        step: u64,
        lr: f32,
        loss: f32,
        norms: &[f64],
    ) -> Result<(), String> {
        let cols: String = norms.iter().map(|n| format!(",{n}")).collect();
        let row = format!("step,{epoch},{step},{lr},{loss},,,,{cols}");
        self.write(&row)
    }

    /// Appends a row; the first failure is returned (for a warning) and ends the file's
    /// rows, so that a full disk costs the metrics and not the run.
    fn write(&mut self, row: &str) -> Result<(), String> {
        if self.broken {
            return Ok(());
        }
        writeln!(self.file, "{row}").map_err(|e| {
            self.broken = true;
            format!(
                "{}: cannot write ({e}); no more metrics are written, training goes on",
                self.path.display()
            )
        })
    }

    /// One epoch's figures (NaN ones, such as the accuracy of a network without labels,
    /// are left empty).
    pub fn epoch(&mut self, step: u64, lr: f32, e: &crate::Epoch) -> Result<(), String> {
        let row = format!(
            "epoch,{},{step},{lr},{},{},{},{},{}{}",
            e.epoch,
            cell(e.train_loss),
            cell(e.train_accuracy),
            cell(e.val_loss),
            cell(e.val_accuracy),
            cell(e.images_per_second),
            ",".repeat(self.layers)
        );
        self.write(&row)
    }
}

/// A figure for the file: empty when there is none (NaN).
fn cell(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        v.to_string()
    }
}

/// A row read back.
struct Row {
    epoch_row: bool,
    epoch: usize,
    step: u64,
    figures: [f64; 4],
    norms: Vec<f64>,
}

impl Row {
    fn add_to(self, h: &mut History) {
        if self.epoch_row {
            let [loss, accuracy, val_loss, val_accuracy] = self.figures;
            h.epochs
                .push((self.epoch, loss, accuracy, val_loss, val_accuracy));
        } else {
            h.steps.push((self.step, self.figures[0]));
            if !self.norms.is_empty() {
                h.norms.push((self.step, self.norms));
            }
        }
    }
}

/// A line of the file, or `None` for one that is not a row of this file's shape.
fn parse(line: &str, layers: usize) -> Option<Row> {
    let cols: Vec<&str> = line.split(',').collect();
    if cols.len() != 9 + layers {
        return None;
    }
    let number = |s: &str| -> Option<f64> {
        if s.is_empty() {
            Some(f64::NAN)
        } else {
            s.parse().ok()
        }
    };
    let epoch_row = match cols[0] {
        "epoch" => true,
        "step" => false,
        _ => return None,
    };
    let figures = [
        number(cols[4])?,
        number(cols[5])?,
        number(cols[6])?,
        number(cols[7])?,
    ];
    let norms = if epoch_row {
        Vec::new()
    } else {
        cols[9..].iter().map(|c| number(c)).collect::<Option<_>>()?
    };
    Some(Row {
        epoch_row,
        epoch: cols[1].parse().ok()?,
        step: cols[2].parse().ok()?,
        figures,
        norms,
    })
}
