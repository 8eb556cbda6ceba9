//! `netc check`: the Table-1-style report of a network (or JSON), and with `--plan` what the
//! code-generation passes make of it and the memory its generated code allocates.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use netc_compiler::Report;

use crate::cli::CheckFormat;
use crate::{check_file, report_diagnostics, skipped_passes};

/// `plan`: the batch size to size the memory plan for, when one was asked for; `steps`:
/// print the schedules too.
pub(crate) fn check(
    file: &Path,
    network: Option<&str>,
    expand: bool,
    format: CheckFormat,
    plan: Option<usize>,
    steps: bool,
) -> ExitCode {
    let checked = check_file(file, network);
    if report_diagnostics(&checked) {
        return ExitCode::from(1);
    }
    let mut summaries = Vec::new();
    if let Some(batch) = plan {
        for g in &checked.graphs {
            match netc_compiler::plan::summary(g, skipped_passes(), batch) {
                Ok(s) => summaries.push(s),
                Err(d) => {
                    eprintln!("netc: {}: {}", g.name, d.message);
                    if let Some(help) = &d.help {
                        eprintln!("  help: {help}");
                    }
                    return ExitCode::from(1);
                }
            }
        }
    }
    if checked.graphs.is_empty() {
        eprintln!(
            "netc: {} defines no network ({} block{} checked)",
            file.display(),
            checked.blocks,
            if checked.blocks == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    match format {
        CheckFormat::Table => {
            for (i, g) in checked.graphs.iter().enumerate() {
                if i > 0 {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "{}", Report::new(g).table(expand));
                if let Some(s) = summaries.get(i) {
                    let _ = write!(out, "{}", plan_table(s));
                    if steps {
                        let _ = write!(out, "\nsteps:\n{}", s.steps);
                    }
                }
            }
        }
        CheckFormat::Json => {
            let docs: Vec<serde_json::Value> = checked
                .graphs
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let mut doc = Report::new(g).to_json(g);
                    if let (Some(s), Some(obj)) = (summaries.get(i), doc.as_object_mut()) {
                        obj.insert("plan".into(), plan_json(s));
                        if steps {
                            obj.insert("steps".into(), s.steps.clone().into());
                        }
                    }
                    doc
                })
                .collect();
            // One network: one object. Several: an array of them.
            let doc = if docs.len() == 1 {
                docs.into_iter().next().unwrap()
            } else {
                serde_json::Value::Array(docs)
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
    }
    ExitCode::SUCCESS
}

/// MiB with one decimal, for memory figures.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The `--plan` section of the table report.
fn plan_table(s: &netc_compiler::plan::Summary) -> String {
    use netc_compiler::report::{count, thousands};
    let batch = s.batch;
    let (ws, bytes) = (&s.workspace, &s.bytes);
    let in_place = match s.in_place {
        0 => "no activation overwrites its input".to_string(),
        1 => "1 activation overwrites its input".to_string(),
        n => format!("{n} activations overwrite their input"),
    };
    let concats = match s.concats {
        0 => "0".to_string(),
        n => format!(
            "{n} (copying {} of their {} values per sample)",
            thousands(s.concat_copied as u64),
            thousands(s.concat_elems as u64)
        ),
    };
    let folded = format!("{} of {}", s.batchnorms_folded, s.batchnorms);
    let adds = format!("{} of {}", s.adds_fused, s.adds);
    format!(
        "\nplan (codegen passes, batch {batch}):\n\
         \x20 GEMM layers        {} (checked graph: {})\n\
         \x20 ReLUs fused        {} of {} (into a GEMM epilogue or a batchnorm)\n\
         \x20 in place           {in_place}\n\
         \x20 concats            {concats}\n\
         \x20 workspace          {} ({} if no two buffers shared memory)\n\
         \x20   arena            {}: {} placed by liveness\n\
         \x20   own buffers      {}: max-pool argmaxes, batchnorm statistics\n\
         \x20   scratch          {}: im2col, gradients on their way to being summed\n\
         \x20 parameters         {} (and as much again for gradients)\n\
         \x20 training step      {} (optimizer state not included)\n\
         \x20 inference          {}: `Workspace::for_inference`, planned on its own\n\
         \x20   arena            {}: {} placed by liveness\n\
         \x20   scratch          {}: im2col and folded conv weights\n\
         \x20   batchnorms       {} folded into the conv before them\n\
         \x20   adds             {} in the epilogue of the conv before them\n\
         {}{}{}",
        s.gemm_layers,
        s.gemm_layers_before,
        s.relus_fused,
        s.relus,
        mib(bytes.workspace),
        mib(bytes.unshared),
        mib(bytes.arena),
        count(
            ws.arena.len(),
            "activation or gradient",
            "activations and gradients"
        ),
        mib(bytes.own),
        mib(bytes.scratch),
        mib(bytes.params),
        mib(bytes.training),
        mib(bytes.inference),
        mib(bytes.inference_arena),
        count(s.inference.arena.len(), "activation", "activations"),
        mib(bytes.inference_scratch),
        folded,
        adds,
        threads(s),
        shards(s),
        conv_algos(s),
    )
}

/// How the trainer and `netc bench` cut a batch into shards, each run on a thread of its
/// own (`plan::shards`).
fn shards(s: &netc_compiler::plan::Summary) -> String {
    let sh = &s.shards;
    let training = match (&sh.mixing, s.train_shards) {
        (Some(path), 1) => format!(
            "one shard at batch {} (the whole batch; with more threads, one per thread of {} \
             images or more, run together: `{path}` mixes the images)",
            s.batch, sh.train_images
        ),
        (Some(path), n) => format!(
            "{n} shards at batch {}, one per thread (of {} images or more), run together: \
             `{path}` and the others that mix the images exchange their sums",
            s.batch, sh.train_images
        ),
        (None, 1) => format!(
            "one shard at batch {} (shards of {} images or more)",
            s.batch, sh.train_images
        ),
        (None, n) => format!(
            "{n} shards at batch {} (of {} images or more; the same bits on any thread count)",
            s.batch, sh.train_images
        ),
    };
    format!(
        "  shards             inference: one per thread, the same bits as the whole batch\n\
         \x20   training         {training}\n"
    )
}

/// The layer steps on the calling thread alone at the batch, below their crossover
/// (`plan::threads`).
fn threads(s: &netc_compiler::plan::Summary) -> String {
    let t = &s.threads;
    let (alone, all) = t.total();
    let of = |(a, b): (usize, usize)| format!("{a} of {b}");
    format!(
        "  threads            {alone} of {all} layer steps on one thread at batch {} (below their \
         crossover; forward {}, backward {}, inference {})\n",
        s.batch,
        of(t.forward),
        of(t.backward),
        of(t.inference)
    )
}

/// The convs' algorithms: a count, then a line per 3×3 stride-1 conv (those Winograd can
/// compute, which the choice is about).
fn conv_algos(s: &netc_compiler::plan::Summary) -> String {
    use netc_compiler::passes::conv_algo::Pin;
    if s.convs.is_empty() {
        return String::new();
    }
    let winograd = s.convs.iter().filter(|c| c.algo.name() != "im2col").count();
    let candidates: Vec<_> = s.convs.iter().filter(|c| c.candidate).collect();
    let how = match s.pin {
        Pin::Auto => format!("the cost model at batch {}", s.model_batch),
        Pin::Im2col => "--conv-algo im2col".to_string(),
        Pin::Winograd => "--conv-algo winograd".to_string(),
    };
    let mut out = format!(
        "  conv algorithms    {} Winograd, {} im2col (by {how}; {} of the {} convs are 3×3 stride 1)\n",
        winograd,
        s.convs.len() - winograd,
        candidates.len(),
        s.convs.len()
    );
    let width = candidates.iter().map(|c| c.path.len()).max().unwrap_or(0);
    let gwidth = candidates
        .iter()
        .map(|c| c.geometry.chars().count())
        .max()
        .unwrap_or(0);
    for c in candidates {
        let pad = gwidth - c.geometry.chars().count();
        out += &format!(
            "    {:width$}  {}{}  {}\n",
            c.path,
            c.geometry,
            " ".repeat(pad),
            c.algo.name()
        );
    }
    out
}

/// The `--plan` object of the JSON report (bytes, not MiB).
fn plan_json(s: &netc_compiler::plan::Summary) -> serde_json::Value {
    serde_json::json!({
        "batch": s.batch,
        "gemm_layers": s.gemm_layers,
        "gemm_layers_before": s.gemm_layers_before,
        "relus": s.relus,
        "relus_fused": s.relus_fused,
        "activations_in_place": s.in_place,
        "concats": s.concats,
        "concat_elems_per_sample": s.concat_elems,
        "concat_copied_per_sample": s.concat_copied,
        "workspace_bytes": s.bytes.workspace,
        "arena_bytes": s.bytes.arena,
        "unshared_bytes": s.bytes.unshared,
        "workspace_buffers": s.workspace.buffers.len() + 2,
        "param_bytes": s.bytes.params,
        "training_bytes": s.bytes.training,
        "planned_training_bytes": s.train_plan.peak,
        "planned_inference_bytes": s.infer_plan.peak,
        "inference_workspace_bytes": s.bytes.inference,
        "inference_arena_bytes": s.bytes.inference_arena,
        "inference_scratch_bytes": s.bytes.inference_scratch,
        "batchnorms": s.batchnorms,
        "batchnorms_folded": s.batchnorms_folded,
        "adds": s.adds,
        "adds_fused": s.adds_fused,
        "scratch_bytes": s.bytes.scratch,
        "one_thread": {
            "forward": s.threads.forward.0,
            "forward_layers": s.threads.forward.1,
            "backward": s.threads.backward.0,
            "backward_layers": s.threads.backward.1,
            "inference": s.threads.inference.0,
            "inference_layers": s.threads.inference.1,
        },
        "conv_algo_batch": s.model_batch,
        "conv_algos": s.convs.iter().map(|c| serde_json::json!({
            "path": c.path, "geometry": c.geometry, "algo": c.algo.name(),
        })).collect::<Vec<_>>(),
    })
}
