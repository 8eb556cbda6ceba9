//! Where a second thread starts to pay, per layer kernel: each layer's calls (as generated
//! code makes them) timed on the calling thread alone (`gemm::serial`) and on the pool of
//! `THREADS` threads, at growing sizes (mostly batches), runs of the two interleaved. The
//! work is counted in the compiler's units (`plan::threads`): multiply-adds for layers that
//! have them (conv, linear), elements read and written (inputs plus output, per sample) for
//! the rest. For each family it prints the least work from which all threads were never
//! slower (beyond 3% of noise) at any larger size measured: the crossover the compiler's cost
//! model uses.
//!
//! `cargo run --release -p netc-runtime --example thread_crossover [-- THREADS [ROUNDS
//! [FAMILY]]]` (2 threads, 3 rounds, every family: about half an hour on 2 cores).

use std::time::{Duration, Instant};

use netc_runtime::act::{backward_inplace, forward_inplace, Relu};
use netc_runtime::conv::*;
use netc_runtime::gemm::{serial, set_num_threads, Act};
use netc_runtime::linear::{linear_backward_data_acc, linear_backward_weight, linear_forward_act};
use netc_runtime::norm::{batchnorm_train_backward_act, batchnorm_train_forward_act};
use netc_runtime::pool::{maxpool2d_backward, maxpool2d_forward, Pool2d};
use netc_runtime::rng::Rng;

/// One size of one layer: its work and a run of its kernels.
struct Case {
    label: String,
    work: u64,
    run: Box<dyn FnMut()>,
}

/// A family of layers: its name, the unit of its work, and its cases.
type Family = (&'static str, &'static str, fn() -> Vec<Case>);

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// CPU time (clock ticks) of the whole machine and of this process so far, from Linux's
/// `/proc`; `None` elsewhere.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user, nice, system, idle, iowait, irq, softirq, steal: busy is all but idle and iowait.
    let busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest: Vec<u64> = me
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((busy, rest.iter().sum()))
}

/// [`time`], repeated until other processes took under 5% of a CPU while it ran (this
/// machine is shared; a competitor on one core makes two threads look slow).
fn time_quiet(run: &mut dyn FnMut()) -> (f64, f64) {
    for _ in 0..100 {
        let t = Instant::now();
        let before = cpu_ticks();
        let result = time(run);
        let (Some((busy0, me0)), Some((busy1, me1))) = (before, cpu_ticks()) else {
            return result;
        };
        let others = (busy1 - busy0).saturating_sub(me1 - me0) as f64 / 100.0;
        if others < 0.05 * t.elapsed().as_secs_f64() {
            return result;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("the machine never went quiet");
}

/// Seconds of one run on one thread and on the pool: the fastest of interleaved runs, at
/// least `MIN_RUNS` of each, for about `BUDGET` after a warm-up.
fn time(run: &mut dyn FnMut()) -> (f64, f64) {
    const MIN_RUNS: usize = 5;
    const BUDGET: Duration = Duration::from_millis(400);
    let once = |run: &mut dyn FnMut(), alone: bool| {
        let t = Instant::now();
        if alone {
            serial(&mut *run);
        } else {
            run();
        }
        t.elapsed().as_secs_f64()
    };
    for _ in 0..3 {
        once(run, true);
        once(run, false);
    }
    let (mut one, mut all) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while one.len() < MIN_RUNS || start.elapsed() < BUDGET {
        one.push(once(run, true));
        all.push(once(run, false));
    }
    // The fastest run: what the kernels do when nothing else (on this machine or, for a
    // virtual one, on its host) gets in the way.
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    (min(&one), min(&all))
}

const BATCHES: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Convolutions through im2col + GEMM (batched on small maps), forward with bias and ReLU
/// in the epilogue, or backward (weight and bias gradient, then the data gradient added
/// into `dx`); depthwise ones through the direct kernels. Work: the forward's MACs.
fn convs(backward: bool, depthwise: bool) -> Vec<Case> {
    let shapes = if depthwise {
        vec![
            Conv2d {
                groups: 32,
                ..Conv2d::square(32, 28, 28, 32, 3, 1, 1)
            },
            Conv2d {
                groups: 144,
                ..Conv2d::square(144, 14, 14, 144, 3, 1, 1)
            },
            Conv2d {
                groups: 96,
                ..Conv2d::square(96, 56, 56, 96, 3, 2, 1)
            },
            // MobileNetV2's last blocks: many channels of small maps.
            Conv2d {
                groups: 384,
                ..Conv2d::square(384, 14, 14, 384, 3, 1, 1)
            },
            Conv2d {
                groups: 960,
                ..Conv2d::square(960, 7, 7, 960, 3, 1, 1)
            },
        ]
    } else {
        vec![
            // LeNet's second conv.
            Conv2d::square(6, 14, 14, 16, 5, 1, 0),
            // A small 3×3 (batched).
            Conv2d::square(32, 8, 8, 32, 3, 1, 1),
            // A 1×1 on 14×14 (batched) and a 3×3 on 28×28 (one GEMM per image).
            Conv2d::square(128, 14, 14, 64, 1, 1, 0),
            Conv2d::square(64, 28, 28, 64, 3, 1, 1),
        ]
    };
    let mut rng = Rng::new(1);
    let mut cases = Vec::new();
    for g in shapes {
        let macs = (g.weight_len() * g.ho() * g.wo()) as u64;
        for n in BATCHES.into_iter().filter(|&n| n as u64 * macs <= 1 << 29) {
            let x = random(&mut rng, n * g.c * g.h * g.w);
            let w = random(&mut rng, g.weight_len());
            let b = random(&mut rng, g.out);
            let ylen = n * g.out * g.ho() * g.wo();
            let dy = random(&mut rng, ylen);
            let (mut y, mut dx, mut dw, mut db) = (
                vec![0.0; ylen],
                vec![0.0; x.len()],
                vec![0.0; w.len()],
                vec![0.0; g.out],
            );
            let mut col = vec![0.0; g.col_len()];
            let run: Box<dyn FnMut()> = if backward {
                Box::new(move || {
                    conv2d_backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut col);
                    conv2d_backward_data_acc(&g, n, &w, &dy, &mut dx, &mut col);
                })
            } else {
                Box::new(move || {
                    conv2d_forward_act(&g, n, &x, &w, Some(&b), Act::Relu, &mut y, &mut col)
                })
            };
            cases.push(Case {
                label: format!(
                    "{}→{} {}×{}/{} @{}×{} n={n}",
                    g.c,
                    g.out,
                    g.kh,
                    g.kw,
                    g.sh,
                    g.ho(),
                    g.wo()
                ),
                work: n as u64 * macs,
                run,
            });
        }
    }
    cases
}

/// Linear layers, forward with bias and ReLU, or backward (weight, bias, data added).
fn linears(backward: bool) -> Vec<Case> {
    let mut rng = Rng::new(2);
    let mut cases = Vec::new();
    for (fin, fout) in [(400, 120), (1024, 1000), (4096, 4096)] {
        let macs = (fin * fout) as u64;
        for n in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
            if n as u64 * macs > 1 << 29 {
                continue;
            }
            let x = random(&mut rng, n * fin);
            let w = random(&mut rng, fin * fout);
            let b = random(&mut rng, fout);
            let dy = random(&mut rng, n * fout);
            let (mut y, mut dx, mut dw, mut db) = (
                vec![0.0; n * fout],
                vec![0.0; n * fin],
                vec![0.0; fin * fout],
                vec![0.0; fout],
            );
            let run: Box<dyn FnMut()> = if backward {
                Box::new(move || {
                    linear_backward_weight(n, fin, fout, &x, &dy, &mut dw, Some(&mut db));
                    linear_backward_data_acc(n, fin, fout, &w, &dy, &mut dx);
                })
            } else {
                Box::new(move || {
                    linear_forward_act(n, fin, fout, &x, &w, Some(&b), Act::Relu, &mut y)
                })
            };
            cases.push(Case {
                label: format!("{fin}→{fout} n={n}"),
                work: n as u64 * macs,
                run,
            });
        }
    }
    cases
}

/// 2×2/2 max pooling, forward (values and argmaxes) or backward. Work: input and output
/// elements.
fn pools(backward: bool) -> Vec<Case> {
    let mut rng = Rng::new(3);
    let mut cases = Vec::new();
    for (c, hw) in [(6, 28), (64, 56)] {
        let p = Pool2d {
            c,
            h: hw,
            w: hw,
            kh: 2,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 0,
            pw: 0,
            ceil: false,
        };
        let (xs, ys) = (c * hw * hw, c * p.ho() * p.wo());
        for n in BATCHES.into_iter().filter(|&n| n * xs <= 1 << 25) {
            let x = random(&mut rng, n * xs);
            let dy = random(&mut rng, n * ys);
            let (mut y, mut dx) = (vec![0.0; n * ys], vec![0.0; n * xs]);
            let mut argmax = vec![0u32; n * ys];
            maxpool2d_forward(&p, n, &x, &mut y, &mut argmax);
            let run: Box<dyn FnMut()> = if backward {
                Box::new(move || maxpool2d_backward(&p, n, &dy, &argmax, &mut dx))
            } else {
                Box::new(move || maxpool2d_forward(&p, n, &x, &mut y, &mut argmax))
            };
            cases.push(Case {
                label: format!("{c}@{hw}×{hw} n={n}"),
                work: (n * (xs + ys)) as u64,
                run,
            });
        }
    }
    cases
}

/// Batchnorm in training, with ReLU, forward or backward. Work: input and output elements.
fn batchnorms(backward: bool) -> Vec<Case> {
    let mut rng = Rng::new(4);
    let mut cases = Vec::new();
    for (c, hw) in [(16, 10), (64, 28)] {
        let plane = hw * hw;
        for n in BATCHES.into_iter().filter(|&n| n * c * plane <= 1 << 24) {
            let len = n * c * plane;
            let x = random(&mut rng, len);
            let dy = random(&mut rng, len);
            let (gamma, beta) = (vec![1.1f32; c], vec![0.1f32; c]);
            let (mut rm, mut rv) = (vec![0.0f32; c], vec![1.0f32; c]);
            let (mut mean, mut rstd) = (vec![0.0f32; c], vec![0.0f32; c]);
            let (mut y, mut dx) = (vec![0.0f32; len], vec![0.0f32; len]);
            let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
            let mut forward = {
                let (x, gamma) = (x.clone(), gamma.clone());
                move |y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]| {
                    batchnorm_train_forward_act(
                        None,
                        n,
                        c,
                        plane,
                        1e-5,
                        0.1,
                        &x,
                        &gamma,
                        &beta,
                        Act::Relu,
                        &mut rm,
                        &mut rv,
                        y,
                        mean,
                        rstd,
                    )
                }
            };
            // Backward reads what forward wrote.
            forward(&mut y, &mut mean, &mut rstd);
            let run: Box<dyn FnMut()> = if backward {
                Box::new(move || {
                    batchnorm_train_backward_act(
                        None,
                        n,
                        c,
                        plane,
                        &x,
                        &y,
                        Act::Relu,
                        &gamma,
                        &mean,
                        &rstd,
                        &dy,
                        &mut dx,
                        &mut dg,
                        &mut db,
                    )
                })
            } else {
                Box::new(move || forward(&mut y, &mut mean, &mut rstd))
            };
            cases.push(Case {
                label: format!("{c}@{hw}×{hw} n={n}"),
                work: 2 * len as u64,
                run,
            });
        }
    }
    cases
}

/// ReLU in place, forward or backward (masking the gradient by the output). Work: input
/// and output elements (twice the tensor's).
fn relus(backward: bool) -> Vec<Case> {
    let mut rng = Rng::new(5);
    (10..=24)
        .step_by(2)
        .map(|log| {
            let len = 1usize << log;
            let mut x = random(&mut rng, len);
            let y = random(&mut rng, len);
            let run: Box<dyn FnMut()> = if backward {
                Box::new(move || backward_inplace(Relu, &y, &mut x))
            } else {
                Box::new(move || forward_inplace(Relu, &mut x))
            };
            Case {
                label: format!("2^{log} elements"),
                work: 2 * len as u64,
                run,
            }
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args
        .first()
        .map_or(2, |t| t.parse().expect("a thread count"));
    let rounds: usize = args
        .get(1)
        .map_or(3, |r| r.parse().expect("a number of rounds"));
    let only = args.get(2).cloned();
    set_num_threads(threads);
    let families: Vec<Family> = vec![
        ("conv forward", "MACs", || convs(false, false)),
        ("conv backward", "MACs", || convs(true, false)),
        ("depthwise forward", "MACs", || convs(false, true)),
        ("depthwise backward", "MACs", || convs(true, true)),
        ("linear forward", "MACs", || linears(false)),
        ("linear backward", "MACs", || linears(true)),
        ("maxpool forward", "elements", || pools(false)),
        ("maxpool backward", "elements", || pools(true)),
        ("batchnorm forward", "elements", || batchnorms(false)),
        ("batchnorm backward", "elements", || batchnorms(true)),
        ("relu forward", "elements", || relus(false)),
        ("relu backward", "elements", || relus(true)),
    ];
    let mut summary = Vec::new();
    for (family, unit, cases) in families {
        if only.as_deref().is_some_and(|o| !family.starts_with(o)) {
            continue;
        }
        println!("{family} ({unit}; µs on 1 thread and on {threads}, best of {rounds} rounds):");
        let mut cases = cases();
        // Rounds over all sizes, so that a disturbance hits one round of a size, not all.
        let mut best = vec![(f64::INFINITY, f64::INFINITY); cases.len()];
        for _ in 0..rounds {
            for (case, best) in cases.iter_mut().zip(&mut best) {
                let (one, all) = time_quiet(&mut *case.run);
                *best = (best.0.min(one), best.1.min(all));
            }
        }
        let mut rows = Vec::new();
        for (case, &(one, all)) in cases.iter().zip(&best) {
            println!(
                "  {:<28} {:>12} {:>10.1} {:>10.1}  ×{:.2}",
                case.label,
                case.work,
                one * 1e6,
                all * 1e6,
                one / all
            );
            rows.push((case.work, one, all));
        }
        // The least work from which no larger size measured ran slower on all threads (by
        // more than `NOISE`): the crossover. Sizes a kernel keeps on one thread by itself
        // measure the same either way and do not count.
        const NOISE: f64 = 1.03;
        rows.sort_by_key(|r| r.0);
        let slower = rows.iter().rposition(|&(_, one, all)| all > NOISE * one);
        let line = match slower {
            None => format!("{family}: {threads} threads never slower ({unit})"),
            Some(i) => match rows.get(i + 1) {
                Some(r) => format!(
                    "{family}: {threads} threads slower up to {} {unit}, never from {}",
                    rows[i].0, r.0
                ),
                None => format!(
                    "{family}: {threads} threads slower up to {} {unit}",
                    rows[i].0
                ),
            },
        };
        println!("{line}\n");
        summary.push(line);
    }
    for line in summary {
        println!("{line}");
    }
}
