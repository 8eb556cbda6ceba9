//! A run's settings: what the flags and the network's `train { }` section decide, written
//! into every checkpoint so that `--resume` continues the run as it was started. A resumed
//! run takes them from its checkpoint; a flag that would change one of them is refused,
//! except those that may change between sessions of one run (`--epochs`, `--threads`, where
//! files go, how much is printed), because another seed, split or data set would mix
//! validation images into training, and another rate or batch would make a different run.

use std::collections::HashMap;

use crate::{rt, Defaults, Flags, Optimizer, Rename, Schedule};

/// The settings that make a run what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The `--data` spec, `None` for the default (the bundled digits).
    pub data: Option<String>,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub val_split: f64,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// The layer paths `--freeze` keeps fixed, sorted, each once: a resumed run keeps the
    /// frozen set it started with.
    pub freeze: Vec<String>,
    /// Where a fine-tuned run's first weights came from (`--init-from`) and the `--rename`
    /// rules they were matched by: a record, which a resumed run keeps (its checkpoint has
    /// the weights).
    pub init_from: Option<String>,
    pub rename: Vec<Rename>,
}

/// The metadata key of a setting in a checkpoint.
const PREFIX: &str = "settings.";

impl Settings {
    /// The settings of a new run: the flags over the network's defaults.
    pub fn new(flags: &Flags, d: &Defaults) -> Result<Settings, String> {
        let schedule = match &flags.schedule {
            Some(s) => s.parse::<Schedule>()?,
            None => d.schedule,
        };
        let s = Settings {
            data: flags.data.clone(),
            epochs: flags.epochs.unwrap_or(d.epochs),
            batch: flags.batch.unwrap_or(d.batch),
            seed: flags.seed.unwrap_or(d.seed),
            val_split: flags.val_split.unwrap_or(0.1),
            optimizer: d.optimizer.with(flags)?,
            schedule,
            freeze: {
                let mut f = flags.freeze.clone();
                f.sort();
                f.dedup();
                f
            },
            init_from: flags.init_from.as_ref().map(|p| p.display().to_string()),
            rename: flags.rename.clone(),
        };
        if !s.rename.is_empty() && s.init_from.is_none() {
            return Err("--rename rewrites the names of --init-from's file, and no --init-from is given\n  help: add --init-from W.safetensors, or drop --rename".into());
        }
        if s.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if s.epochs == 0 {
            return Err("--epochs must be at least 1\n  help: --eval PATH scores a checkpoint without training".into());
        }
        Ok(s)
    }

    /// Refuses the fine-tuning flags where they cannot apply: `--init-from` with `--resume`
    /// (the checkpoint has the run's weights) and with `--eval` (which trains nothing), and
    /// `--freeze` with `--eval`.
    pub fn check_fine_tuning(flags: &Flags) -> Result<(), String> {
        if flags.init_from.is_some() && flags.resume.is_some() {
            return Err("--init-from starts a new run from a file's weights, and --resume continues a run whose checkpoint has its own\n  help: drop --init-from to resume (the run keeps its --freeze), or drop --resume to start fine-tuning afresh".into());
        }
        if flags.eval.is_some() && (flags.init_from.is_some() || !flags.freeze.is_empty()) {
            return Err("--eval scores a checkpoint and trains nothing, so --init-from and --freeze do not apply\n  help: drop them, or drop --eval to fine-tune".into());
        }
        Ok(())
    }

    /// The settings of a resumed run: `stored` (its checkpoint's), with `--epochs` from the
    /// flags; any other flag that disagrees with them is an error that lists every one.
    pub fn resumed(stored: Settings, flags: &Flags, d: &Defaults) -> Result<Settings, String> {
        // What the flags alone would give, over the stored settings as defaults: a flag
        // that changes nothing is no conflict.
        let mut ours = *d;
        ours.batch = stored.batch;
        ours.seed = stored.seed;
        ours.optimizer = stored.optimizer;
        ours.schedule = stored.schedule;
        let wanted = Settings::new(flags, &ours)?;
        let mut conflicts = Vec::new();
        let mut differs = |flag: &str, given: bool, was: String, now: String| {
            if given && was != now {
                conflicts.push(format!("{flag} {now} (the run has {was})"));
            }
        };
        differs(
            "--data",
            flags.data.is_some(),
            stored.data.clone().unwrap_or_else(|| "the default".into()),
            wanted.data.clone().unwrap_or_default(),
        );
        differs(
            "--batch",
            flags.batch.is_some(),
            stored.batch.to_string(),
            wanted.batch.to_string(),
        );
        differs(
            "--seed",
            flags.seed.is_some(),
            stored.seed.to_string(),
            wanted.seed.to_string(),
        );
        differs(
            "--val-split",
            flags.val_split.is_some(),
            stored.val_split.to_string(),
            wanted.val_split.to_string(),
        );
        differs(
            "--schedule",
            flags.schedule.is_some(),
            stored.schedule.to_string(),
            wanted.schedule.to_string(),
        );
        let paths = |f: &[String]| match f {
            [] => "none frozen".to_string(),
            f => f.join(","),
        };
        differs(
            "--freeze",
            !flags.freeze.is_empty(),
            paths(&stored.freeze),
            paths(&wanted.freeze),
        );
        let optimizer_flags = flags.optimizer.is_some()
            || flags.lr.is_some()
            || flags.momentum.is_some()
            || flags.weight_decay.is_some();
        differs(
            "the optimizer flags give",
            optimizer_flags,
            stored.optimizer.to_string(),
            wanted.optimizer.to_string(),
        );
        if !conflicts.is_empty() {
            return Err(format!(
                "--resume continues a run with its own settings, and these flags would change them: {}\n  help: drop them (only --epochs, --threads, --checkpoint-every, the output paths, --grad-norms and --quiet may change), or start a new run with another --out",
                conflicts.join(", ")
            ));
        }
        Ok(Settings {
            epochs: flags.epochs.unwrap_or(stored.epochs),
            ..stored
        })
    }

    /// The settings as checkpoint metadata.
    pub fn to_meta(&self, meta: &mut HashMap<String, String>) {
        let mut put = |k: &str, v: String| {
            meta.insert(format!("{PREFIX}{k}"), v);
        };
        if let Some(data) = &self.data {
            put("data", data.clone());
        }
        put("epochs", self.epochs.to_string());
        put("batch", self.batch.to_string());
        put("seed", self.seed.to_string());
        put("val_split", self.val_split.to_string());
        put("schedule", self.schedule.to_string());
        // Lists as JSON arrays of strings: a path or a rule may hold any character.
        let list = |v: Vec<String>| serde_json::Value::from(v).to_string();
        if !self.freeze.is_empty() {
            put("freeze", list(self.freeze.clone()));
        }
        if let Some(from) = &self.init_from {
            put("init_from", from.clone());
        }
        if !self.rename.is_empty() {
            put(
                "rename",
                list(self.rename.iter().map(|r| r.to_string()).collect()),
            );
        }
        match self.optimizer {
            Optimizer::Sgd(o) => {
                put("optimizer", "sgd".into());
                put("lr", o.lr.to_string());
                put("momentum", o.momentum.to_string());
                put("weight_decay", o.weight_decay.to_string());
                put("nesterov", o.nesterov.to_string());
            }
            Optimizer::Adam(o) => {
                put(
                    "optimizer",
                    if o.decoupled { "adamw" } else { "adam" }.into(),
                );
                put("lr", o.lr.to_string());
                put("beta1", o.beta1.to_string());
                put("beta2", o.beta2.to_string());
                put("eps", o.eps.to_string());
                put("weight_decay", o.weight_decay.to_string());
            }
        }
    }

    /// The settings of checkpoint metadata; `Ok(None)` for a checkpoint of a trainer that
    /// did not record them, and an error naming the key for a malformed one.
    pub fn from_meta(meta: &HashMap<String, String>) -> Result<Option<Settings>, String> {
        if !meta.contains_key(&format!("{PREFIX}batch")) {
            return Ok(None);
        }
        let get = |k: &str| -> Result<&str, String> {
            meta.get(&format!("{PREFIX}{k}"))
                .map(String::as_str)
                .ok_or_else(|| format!("no `{PREFIX}{k}` in its metadata"))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("`{PREFIX}{k}` is malformed ({v:?})"))
        }
        let f = |k: &str| -> Result<f32, String> {
            let v: f32 = num(k, get(k)?)?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("`{PREFIX}{k}` is not finite"))
            }
        };
        let optimizer = match get("optimizer")? {
            "sgd" => Optimizer::Sgd(rt::optim::Sgd {
                lr: f("lr")?,
                momentum: f("momentum")?,
                weight_decay: f("weight_decay")?,
                nesterov: num("nesterov", get("nesterov")?)?,
            }),
            kind @ ("adam" | "adamw") => Optimizer::Adam(rt::optim::Adam {
                lr: f("lr")?,
                beta1: f("beta1")?,
                beta2: f("beta2")?,
                eps: f("eps")?,
                weight_decay: f("weight_decay")?,
                decoupled: kind == "adamw",
            }),
            other => return Err(format!("`{PREFIX}optimizer` is unknown ({other:?})")),
        };
        // A list absent is empty (a checkpoint of a run without one, or of an earlier
        // trainer).
        let list = |k: &str| -> Result<Vec<String>, String> {
            meta.get(&format!("{PREFIX}{k}"))
                .map_or(Ok(Vec::new()), |v| {
                    serde_json::from_str(v)
                        .map_err(|_| format!("`{PREFIX}{k}` is malformed ({v:?})"))
                })
        };
        let rename = list("rename")?
            .iter()
            .map(|r| r.parse::<Rename>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("`{PREFIX}rename` is malformed"))?;
        let s = Settings {
            data: meta.get(&format!("{PREFIX}data")).cloned(),
            epochs: num("epochs", get("epochs")?)?,
            batch: num("batch", get("batch")?)?,
            seed: num("seed", get("seed")?)?,
            val_split: num("val_split", get("val_split")?)?,
            optimizer,
            schedule: get("schedule")?.parse()?,
            freeze: list("freeze")?,
            init_from: meta.get(&format!("{PREFIX}init_from")).cloned(),
            rename,
        };
        if s.batch == 0 || !(0.0..1.0).contains(&s.val_split) {
            return Err(format!(
                "`{PREFIX}batch` or `{PREFIX}val_split` is out of range"
            ));
        }
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::flags;

    fn defaults() -> Defaults {
        Defaults {
            epochs: 5,
            batch: 64,
            optimizer: Optimizer::Sgd(rt::optim::Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            }),
            seed: 1,
            he: true,
            schedule: Schedule::Constant,
        }
    }

    #[test]
    fn settings_round_trip_through_checkpoint_metadata() {
        for args in [
            &["--seed", "7", "--lr", "0.02", "--data", "synthetic:64"][..],
            &[
                "--optimizer",
                "adamw",
                "--schedule",
                "step:2:0.5",
                "--val-split",
                "0.25",
            ],
            &["--schedule", "cosine", "--batch", "3"],
            &[
                "--init-from",
                "w.safetensors",
                "--rename",
                "model.=",
                "--rename",
                "a,\"b=c",
                "--freeze",
                "f5",
                "--freeze",
                "c1",
            ],
        ] {
            let s = Settings::new(&flags(args), &defaults()).unwrap();
            let mut meta = HashMap::new();
            s.to_meta(&mut meta);
            assert_eq!(Settings::from_meta(&meta).unwrap(), Some(s), "{args:?}");
        }
        assert_eq!(Settings::from_meta(&HashMap::new()).unwrap(), None);
    }

    /// The case: a run started with `--seed 7 --lr 0.02` and resumed with a bare
    /// `--resume` continued with lr 0.05 and seed 1.
    #[test]
    fn a_resumed_run_keeps_its_settings_and_refuses_flags_that_change_them() {
        let d = defaults();
        let started = Settings::new(&flags(&["--seed", "7", "--lr", "0.02"]), &d).unwrap();
        let bare = Settings::resumed(started.clone(), &flags(&[]), &d).unwrap();
        assert_eq!(bare, started);
        // More epochs and other threads are fine; the same value again is no conflict.
        let more = flags(&["--epochs", "9", "--threads", "1", "--seed", "7"]);
        let s = Settings::resumed(started.clone(), &more, &d).unwrap();
        assert_eq!((s.epochs, s.seed), (9, 7));
        let e = Settings::resumed(
            started.clone(),
            &flags(&["--seed", "1", "--lr", "0.1", "--batch", "32"]),
            &d,
        )
        .unwrap_err();
        assert!(e.contains("--batch 32 (the run has 64)"), "{e}");
        assert!(e.contains("--seed 1 (the run has 7)"), "{e}");
        assert!(e.contains("sgd(lr=0.1"), "{e}");
        let e = Settings::resumed(started, &flags(&["--val-split", "0.2"]), &d).unwrap_err();
        assert!(e.contains("--val-split 0.2 (the run has 0.1)"), "{e}");
    }

    /// A resumed run keeps the frozen set it started with, refuses another, and refuses
    /// --init-from; --rename needs --init-from.
    #[test]
    fn a_resumed_run_keeps_its_frozen_set() {
        let d = defaults();
        let started = Settings::new(
            &flags(&[
                "--init-from",
                "w.safetensors",
                "--freeze",
                "c3",
                "--freeze",
                "c1",
                "--freeze",
                "c1",
            ]),
            &d,
        )
        .unwrap();
        assert_eq!(started.freeze, ["c1", "c3"]);
        let bare = Settings::resumed(started.clone(), &flags(&[]), &d).unwrap();
        assert_eq!(bare, started);
        let same = flags(&["--freeze", "c1", "--freeze", "c3"]);
        assert_eq!(
            Settings::resumed(started.clone(), &same, &d).unwrap(),
            started
        );
        let e = Settings::resumed(started.clone(), &flags(&["--freeze", "c1"]), &d).unwrap_err();
        assert!(e.contains("--freeze c1 (the run has c1,c3)"), "{e}");
        let plain = Settings::new(&flags(&[]), &d).unwrap();
        let e = Settings::resumed(plain, &flags(&["--freeze", "c1"]), &d).unwrap_err();
        assert!(e.contains("--freeze c1 (the run has none frozen)"), "{e}");

        let e = Settings::check_fine_tuning(&flags(&["--init-from", "w.safetensors", "--resume"]))
            .unwrap_err();
        assert!(e.starts_with("--init-from starts a new run"), "{e}");
        let e = Settings::check_fine_tuning(&flags(&["--eval", "c.safetensors", "--freeze", "c1"]))
            .unwrap_err();
        assert!(e.starts_with("--eval scores a checkpoint"), "{e}");
        assert!(Settings::check_fine_tuning(&flags(&["--resume", "--freeze", "c1"])).is_ok());
        let e = Settings::new(&flags(&["--rename", "a=b"]), &d).unwrap_err();
        assert!(
            e.starts_with("--rename rewrites the names of --init-from's file"),
            "{e}"
        );
    }
}
