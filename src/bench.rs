//! `netc bench`: a network's generated code (built once, cached), or the runtime's GEMM and
//! conv kernels, timed and reported as a table or JSON.

use std::path::Path;
use std::process::ExitCode;

use netc_compiler::Report;

use crate::{one_network, Bench, BenchFormat, RUNTIME_DIR};

pub(crate) fn bench_network(
    file: &Path,
    network: Option<&str>,
    batch: Option<usize>,
    threads: usize,
    steps: usize,
    format: BenchFormat,
) -> ExitCode {
    let g = &match one_network(file, network) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let batch = batch.or(g.train.batch.map(|b| b as usize)).unwrap_or(8);
    // `conv_algo`'s cost model chooses for the batch measured.
    let mut tuned = g.clone();
    tuned.train.batch = Some(batch as u64);
    let g = &tuned;
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    if let Err(code) = check_threads(&[threads]) {
        return code;
    }
    let macs = Report::new(g).total.macs;
    let result = netc_compiler::codegen::emit_bench(g, macs).and_then(|main| {
        crate::cache::cached_crate(
            g,
            &file.display().to_string(),
            RUNTIME_DIR,
            "bench",
            &main,
            "",
        )
    });
    let exe = match result {
        Ok(exe) => exe,
        Err(msg) => {
            eprintln!("netc: {msg}");
            return ExitCode::from(1);
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args([
        batch.to_string(),
        threads.to_string(),
        steps.max(1).to_string(),
    ]);
    if format == BenchFormat::Json {
        cmd.arg("--json");
    }
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("netc: cannot run {}: {e}", exe.display());
            ExitCode::from(1)
        }
    }
}

/// The thread counts to measure: as given, or 1 and then every CPU.
fn thread_counts(given: Vec<usize>) -> Vec<usize> {
    if !given.is_empty() {
        return given;
    }
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

/// Refuses a thread count the runtime would refuse (0, or past its cap per CPU), with the
/// runtime's reason, before anything is built or timed.
fn check_threads(counts: &[usize]) -> Result<(), ExitCode> {
    for &t in counts {
        if let Err(e) = netc_runtime::gemm::try_set_num_threads(t) {
            eprintln!("netc: --threads {t}: {e}");
            return Err(ExitCode::from(2));
        }
    }
    Ok(())
}

pub(crate) fn bench(b: Bench) -> ExitCode {
    use netc_runtime::bench as rb;
    use netc_runtime::gemm;
    use serde_json::json;
    let kernel = gemm::KernelKind::detect().name();
    match b {
        Bench::Gemm {
            m,
            n,
            k,
            threads,
            format,
        } => {
            if m == 0 || n == 0 || k == 0 {
                eprintln!("netc: M, N and K must be positive");
                return ExitCode::from(2);
            }
            let counts = thread_counts(threads);
            if let Err(code) = check_threads(&counts) {
                return code;
            }
            let results: Vec<_> = counts
                .into_iter()
                .map(|t| gemm::bench(m, n, k, t))
                .collect();
            if format == BenchFormat::Json {
                let rows: Vec<_> = results
                    .iter()
                    .map(|r| {
                        json!({"m": r.m, "n": r.n, "k": r.k, "threads": r.threads,
                               "kernel": r.kernel.name(), "runs": r.runs, "seconds": r.seconds,
                               "gflops": r.gflops, "peak_fraction": r.peak_fraction})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                println!(
                    "sgemm {m}×{k} · {k}×{n}, kernel {kernel}, peak {} GFLOP/s per core",
                    gemm::PEAK_GFLOPS_PER_CORE
                );
                println!(
                    "{:>7}  {:>10}  {:>8}  {:>6}",
                    "threads", "ms", "GFLOP/s", "% peak"
                );
                for r in &results {
                    println!(
                        "{:>7}  {:>10.3}  {:>8.1}  {:>5.1}%",
                        r.threads,
                        r.seconds * 1e3,
                        r.gflops,
                        100.0 * r.peak_fraction
                    );
                }
            }
        }
        Bench::Conv {
            batch,
            c,
            h,
            w,
            out,
            k,
            s,
            p,
            groups,
            threads,
            format,
        } => {
            let g = netc_runtime::conv::Conv2d {
                groups,
                ..netc_runtime::conv::Conv2d::square(c, h, w, out, k, s, p)
            };
            if groups == 0 || c % groups != 0 || out % groups != 0 {
                eprintln!(
                    "netc: --groups {groups} does not divide {c} input and {out} output channels"
                );
                return ExitCode::from(2);
            }
            if batch == 0
                || c == 0
                || out == 0
                || k == 0
                || s == 0
                || h + 2 * p < k
                || w + 2 * p < k
            {
                eprintln!(
                    "netc: a conv needs positive sizes and a window that fits its padded input"
                );
                return ExitCode::from(2);
            }
            let counts = thread_counts(threads);
            if let Err(code) = check_threads(&counts) {
                return code;
            }
            let results: Vec<_> = counts.into_iter().map(|t| rb::conv(g, batch, t)).collect();
            if format == BenchFormat::Json {
                let rows: Vec<_> = results
                    .iter()
                    .map(|r| {
                        json!({"batch": batch, "c": c, "h": h, "w": w, "out": out, "k": k, "s": s, "p": p, "groups": groups,
                               "threads": r.threads, "kernel": kernel, "macs": r.macs,
                               "forward_seconds": r.forward, "forward_gflops": r.forward_gflops(),
                               "forward_peak_fraction": r.peak_fraction(r.forward_gflops()),
                               "forward_backward_seconds": r.forward_backward,
                               "forward_backward_gflops": r.forward_backward_gflops(),
                               "forward_backward_peak_fraction": r.peak_fraction(r.forward_backward_gflops())})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                println!(
                    "conv {c}→{out}, {k}×{k}/{s} pad {p}{}, on {batch}×{c}×{h}×{w}: {:.2} GMAC forward; kernel {kernel}",
                    if groups > 1 { format!(", {groups} groups") } else { String::new() },
                    results.first().map_or(0.0, |r| r.macs as f64 / 1e9)
                );
                println!(
                    "{:>7}  {:>10}  {:>8}  {:>6}  {:>12}  {:>8}  {:>6}",
                    "threads", "fwd ms", "GFLOP/s", "% peak", "fwd+bwd ms", "GFLOP/s", "% peak"
                );
                for r in &results {
                    let (f, fb) = (r.forward_gflops(), r.forward_backward_gflops());
                    println!(
                        "{:>7}  {:>10.2}  {:>8.1}  {:>5.1}%  {:>12.2}  {:>8.1}  {:>5.1}%",
                        r.threads,
                        r.forward * 1e3,
                        f,
                        100.0 * r.peak_fraction(f),
                        r.forward_backward * 1e3,
                        fb,
                        100.0 * r.peak_fraction(fb)
                    );
                }
            }
        }
    }
    ExitCode::SUCCESS
}
