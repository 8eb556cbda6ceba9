//! The trainer's settings: the defaults a network's `train { }` section gives, the
//! optimizers and learning-rate schedules, and the flags that override them.

use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

use crate::rt;

/// The defaults a network's `train { }` section gives the flags.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: Optimizer,
    pub seed: u64,
    /// He (Kaiming) initialization when true, Xavier (Glorot) otherwise.
    pub he: bool,
    pub schedule: Schedule,
}

/// How the learning rate changes over the epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiplied by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f32,
    },
    /// Half a cosine from the initial rate down to 0 over the run, per epoch.
    Cosine,
}

impl Schedule {
    /// The factor on the initial rate in epoch `epoch` (from 1) of `epochs`.
    pub fn factor(self, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi(((epoch - 1) / every.max(1)) as i32),
            Schedule::Cosine => {
                let t = (epoch - 1) as f32 / epochs.max(1) as f32;
                0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}

/// The form `--schedule` takes, which parses back to the same schedule.
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Cosine => f.write_str("cosine"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Schedule, String> {
        let bad = || {
            format!("unknown schedule `{s}`\n  help: --schedule takes constant, cosine or step:EVERY:GAMMA (step:10:0.1)")
        };
        match s.split(':').collect::<Vec<_>>()[..] {
            ["constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine),
            ["step", every, gamma] => {
                let every: usize = every.parse().map_err(|_| bad())?;
                let gamma: f32 = gamma.parse().map_err(|_| bad())?;
                if every == 0 || gamma.is_nan() || gamma <= 0.0 {
                    return Err(bad());
                }
                Ok(Schedule::Step { every, gamma })
            }
            _ => Err(bad()),
        }
    }
}

/// An optimizer and its settings: the runtime's (PyTorch's update rules).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(rt::optim::Sgd),
    /// Adam, or AdamW when `decoupled`.
    Adam(rt::optim::Adam),
}

impl Optimizer {
    /// How many buffers of a parameter's size the optimizer keeps: SGD's momentum (none
    /// without momentum), Adam's two moments.
    pub(crate) fn moments(&self) -> usize {
        match self {
            Optimizer::Sgd(o) if o.momentum == 0.0 => 0,
            Optimizer::Sgd(_) => 1,
            Optimizer::Adam(_) => 2,
        }
    }

    /// The learning rate.
    pub(crate) fn lr(&self) -> f32 {
        match self {
            Optimizer::Sgd(o) => o.lr,
            Optimizer::Adam(o) => o.lr,
        }
    }

    /// This optimizer at learning rate `lr`.
    pub(crate) fn at(mut self, rate: f32) -> Optimizer {
        match &mut self {
            Optimizer::Sgd(o) => o.lr = rate,
            Optimizer::Adam(o) => o.lr = rate,
        }
        self
    }

    /// This optimizer with the flags' overrides: `--optimizer` switches kind (keeping the
    /// learning rate and weight decay), `--lr`, `--momentum` and `--weight-decay` replace.
    pub(crate) fn with(self, flags: &Flags) -> Result<Optimizer, String> {
        let (lr, weight_decay) = match self {
            Optimizer::Sgd(o) => (o.lr, o.weight_decay),
            Optimizer::Adam(o) => (o.lr, o.weight_decay),
        };
        let mut o = match (flags.optimizer.as_deref(), self) {
            (None, o) | (Some("sgd"), o @ Optimizer::Sgd(_)) => o,
            (Some("sgd"), Optimizer::Adam(_)) => Optimizer::Sgd(rt::optim::Sgd {
                lr,
                momentum: 0.9,
                weight_decay,
                nesterov: false,
            }),
            (Some(kind @ ("adam" | "adamw")), o) => {
                let decoupled = kind == "adamw";
                Optimizer::Adam(match o {
                    Optimizer::Adam(a) => rt::optim::Adam { decoupled, ..a },
                    Optimizer::Sgd(_) => rt::optim::Adam {
                        lr,
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                        weight_decay,
                        decoupled,
                    },
                })
            }
            (Some(other), _) => {
                return Err(format!(
                    "unknown optimizer `{other}`\n  help: --optimizer takes sgd, adam or adamw"
                ))
            }
        };
        match &mut o {
            Optimizer::Sgd(o) => {
                o.lr = flags.lr.unwrap_or(o.lr);
                o.momentum = flags.momentum.unwrap_or(o.momentum);
                o.weight_decay = flags.weight_decay.unwrap_or(o.weight_decay);
            }
            Optimizer::Adam(o) => {
                if flags.momentum.is_some() {
                    return Err("--momentum is SGD's; Adam has beta1 and beta2".into());
                }
                o.lr = flags.lr.unwrap_or(o.lr);
                o.weight_decay = flags.weight_decay.unwrap_or(o.weight_decay);
            }
        }
        Ok(o)
    }

    /// One update of parameter `p` with gradient `g`.
    pub(crate) fn step(&self, p: &mut [f32], g: &[f32], st: &mut rt::optim::OptState) {
        match self {
            Optimizer::Sgd(o) => o.step(p, g, st),
            Optimizer::Adam(o) => o.step(p, g, st),
        }
    }
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Optimizer::Sgd(o) => write!(
                f,
                "sgd(lr={}, momentum={}, weight_decay={}{})",
                o.lr,
                o.momentum,
                o.weight_decay,
                if o.nesterov { ", nesterov" } else { "" }
            ),
            Optimizer::Adam(o) => write!(
                f,
                "{}(lr={}, weight_decay={})",
                if o.decoupled { "adamw" } else { "adam" },
                o.lr,
                o.weight_decay
            ),
        }
    }
}

/// The trainer's flags; every one defaults to the network's `train { }` section.
#[derive(Parser, Debug, Clone)]
#[command(about = "Trains the network this binary was generated for.", long_about = None)]
pub struct Flags {
    /// Where the images come from: idx:DIR, cifar10:DIR, csv:FILE[.gz], folder:DIR,
    /// synthetic or synthetic:N
    /// [default: the bundled MNIST digits, for a [1, 28, 28] input]
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Passes over the training set [default: the network's `epochs`, else 5]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: the network's `batch`, else 64]
    #[arg(long)]
    pub batch: Option<usize>,
    /// sgd, adam or adamw [default: the network's optimizer, else sgd]
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
    /// Learning rate [default: the network's optimizer, else 0.01]
    #[arg(long)]
    pub lr: Option<f32>,
    /// SGD momentum [default: the network's optimizer, else 0.9]
    #[arg(long)]
    pub momentum: Option<f32>,
    /// L2 weight decay [default: the network's optimizer, else 0]
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Seed of initialization, shuffling and the validation split [default: the network's
    /// `seed`, else 1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads for the kernels [default: every core]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Fraction of the training images held out for validation [default: 0.1]
    #[arg(long, value_name = "F")]
    pub val_split: Option<f64>,
    /// Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA [default: the network's
    /// `schedule`, else constant]
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// Where the run's files go: checkpoints/, metrics.csv and plots/ [default: runs/NAME]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where checkpoints go (written atomically: a temporary file, then a rename) [default:
    /// OUT/checkpoints]
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Write a checkpoint every N epochs (0: only at the end) [default: 1]
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue from a checkpoint: PATH, or the newest valid one of this network in
    /// --checkpoint-dir; the run keeps the settings it was started with
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with = "overwrite")]
    pub resume: Option<Option<PathBuf>>,
    /// Start afresh in a folder that holds an earlier run's checkpoints, deleting them
    #[arg(long)]
    pub overwrite: bool,
    /// Write per-step and per-epoch metrics to this CSV file [default: OUT/metrics.csv]
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Record the L2 norm of every layer's weight gradient at every step (into --metrics and
    /// --plot)
    #[arg(long)]
    pub grad_norms: bool,
    /// Write SVG charts of the loss, the accuracy and (with --grad-norms) the gradient norms
    /// into DIR after every epoch [default: OUT/plots]
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Evaluate a checkpoint on the validation set (and the source's test set) instead of
    /// training
    #[arg(long, value_name = "PATH")]
    pub eval: Option<PathBuf>,
    /// Print nothing but errors
    #[arg(long)]
    pub quiet: bool,
    /// Fine-tuning: start from the parameters and batchnorm statistics of this safetensors
    /// file (a PyTorch state_dict, a netc checkpoint, or plain weights), matched by name
    /// after --rename; the network's parameters it lacks keep their fresh initialization. A
    /// shape that differs is an error, except in a classifier head for another number of
    /// classes (a layer whose weight is [CLASSES, ...] here and [K, ...] in the file, the
    /// rest alike), which is then initialized afresh with a note
    #[arg(long, value_name = "W.safetensors")]
    pub init_from: Option<PathBuf>,
    /// Rewrite the names of --init-from's file before matching: a name starting with FROM
    /// starts with TO instead ('model.=' strips `model.`, 'fc.=logits.' renames a layer).
    /// Repeatable; the first rule whose FROM begins a name applies, in the order given
    #[arg(long, value_name = "FROM=TO")]
    pub rename: Vec<Rename>,
    /// Keep the parameters of the layers under this path fixed (`c1` is `c1.0.weight`,
    /// `c1.0.bias`, ..., not `c10`): no optimizer step, no optimizer state, no weight decay.
    /// Batchnorm running statistics still update in training, as in PyTorch with
    /// requires_grad=False. Repeatable; a path matching no parameter is an error
    #[arg(long, value_name = "PATH")]
    pub freeze: Vec<String>,
    /// Data-parallel training: run as one rank of `mpirun -np N NAME-train --distributed ...`
    /// (or `netc train FILE --ranks N`). Each rank computes the gradient of its share of
    /// every --batch (the global batch) and the gradients are summed; rank 0 writes the
    /// checkpoints, metrics and charts. --threads is per rank
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: a rank that hears nothing from the others for this long ends the
    /// job (a rank died or hangs) [default: 300]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

/// One `--rename FROM=TO` rule: a name that starts with `from` starts with `to` instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

impl Rename {
    /// `name` rewritten by the first of `rules` whose `from` begins it (unchanged if none
    /// does).
    pub fn apply(rules: &[Rename], name: &str) -> String {
        rules
            .iter()
            .find_map(|r| {
                name.strip_prefix(r.from.as_str())
                    .map(|rest| format!("{}{rest}", r.to))
            })
            .unwrap_or_else(|| name.to_string())
    }
}

impl FromStr for Rename {
    type Err = String;

    fn from_str(s: &str) -> Result<Rename, String> {
        match s.split_once('=') {
            Some((from, to)) => Ok(Rename {
                from: from.into(),
                to: to.into(),
            }),
            None => Err(format!(
                "`{s}` has no `=`\n  help: --rename takes FROM=TO, a prefix and its replacement: 'model.=' strips `model.`, 'fc.=logits.' renames `fc.weight` to `logits.weight`"
            )),
        }
    }
}

/// The form `--rename` takes, which parses back to the same rule.
impl std::fmt::Display for Rename {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.from, self.to)
    }
}

impl Flags {
    /// These flags over `defaults`: every setting given here wins, the others come from
    /// `defaults` (how a program's command line overrides what its code chose).
    pub fn over(self, defaults: &Flags) -> Flags {
        let d = defaults.clone();
        Flags {
            data: self.data.or(d.data),
            epochs: self.epochs.or(d.epochs),
            batch: self.batch.or(d.batch),
            optimizer: self.optimizer.or(d.optimizer),
            lr: self.lr.or(d.lr),
            momentum: self.momentum.or(d.momentum),
            weight_decay: self.weight_decay.or(d.weight_decay),
            seed: self.seed.or(d.seed),
            threads: self.threads.or(d.threads),
            val_split: self.val_split.or(d.val_split),
            schedule: self.schedule.or(d.schedule),
            out: self.out.or(d.out),
            checkpoint_dir: self.checkpoint_dir.or(d.checkpoint_dir),
            checkpoint_every: self.checkpoint_every.or(d.checkpoint_every),
            resume: self.resume.or(d.resume),
            overwrite: self.overwrite || d.overwrite,
            metrics: self.metrics.or(d.metrics),
            grad_norms: self.grad_norms || d.grad_norms,
            plot: self.plot.or(d.plot),
            eval: self.eval.or(d.eval),
            quiet: self.quiet || d.quiet,
            init_from: self.init_from.or(d.init_from),
            rename: if self.rename.is_empty() {
                d.rename
            } else {
                self.rename
            },
            freeze: if self.freeze.is_empty() {
                d.freeze
            } else {
                self.freeze
            },
            distributed: self.distributed || d.distributed,
            timeout: self.timeout.or(d.timeout),
        }
    }

    /// The flags of the process's command line, with usage and errors shown for the binary
    /// `bin` (`NAME-train`, whatever the file is called); exits on `--help` or a bad flag.
    pub fn parse_for(bin: &str) -> Flags {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Flags::command().bin_name(bin).get_matches();
        Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The flags of a command line `trainer ARGS`.
    pub(crate) fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["trainer"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).unwrap()
    }

    #[test]
    fn schedules_parse_and_scale_the_rate() {
        assert_eq!("constant".parse::<Schedule>().unwrap(), Schedule::Constant);
        let step = "step:2:0.5".parse::<Schedule>().unwrap();
        let f: Vec<f32> = (1..=5).map(|e| step.factor(e, 5)).collect();
        assert_eq!(f, [1.0, 1.0, 0.5, 0.5, 0.25]);
        let cos = "cosine".parse::<Schedule>().unwrap();
        assert_eq!(cos.factor(1, 4), 1.0);
        assert!((cos.factor(3, 4) - 0.5).abs() < 1e-6);
        for bad in ["step:0:0.5", "step:2:-1", "step:2", "linear"] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.contains("step:EVERY:GAMMA"), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_override_the_networks_optimizer() {
        let sgd = Optimizer::Sgd(rt::optim::Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        });
        assert_eq!(sgd.with(&flags(&[])).unwrap(), sgd);
        let o = sgd
            .with(&flags(&["--lr", "0.1", "--momentum", "0.5"]))
            .unwrap();
        assert_eq!(
            o,
            Optimizer::Sgd(rt::optim::Sgd {
                lr: 0.1,
                momentum: 0.5,
                weight_decay: 0.0,
                nesterov: false
            })
        );
        // Switching kind keeps the rate and the decay.
        let o = sgd
            .with(&flags(&["--optimizer", "adamw", "--weight-decay", "0.01"]))
            .unwrap();
        assert_eq!(
            o,
            Optimizer::Adam(rt::optim::Adam {
                lr: 0.05,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled: true
            })
        );
        assert!(o.with(&flags(&["--momentum", "0.9"])).is_err());
        assert!(sgd.with(&flags(&["--optimizer", "rmsprop"])).is_err());
        assert_eq!(sgd.at(0.5).lr(), 0.5);
    }
}
