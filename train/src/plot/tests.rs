//! The charts as SVG text: what a reader looks for (titles, percent, whole-number ticks, a
//! legend beside the plot), checked without a renderer.

use super::*;
use plotters::coord::ranged1d::LightPoints;

/// A run as the trainer records it: 3 epochs of 100 steps, the loss falling from 2.3 to
/// 0.1, accuracy rising to 97 %, five layers' gradient norms spread over 1e-6..1.
fn sample() -> History {
    let spe = 100u64;
    // A deterministic wobble, so that the curves look measured.
    let noise = |s: u64, k: u64| {
        let mut h = (s << 8 | k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h = (h ^ h >> 31).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let steps: Vec<(u64, f64)> = (1..=3 * spe)
        .map(|s| {
            let t = s as f64 / (3 * spe) as f64;
            (s, 0.1 + 2.2 * (-5.0 * t).exp() * (1.0 + 0.3 * noise(s, 0)))
        })
        .collect();
    let layers: Vec<String> = ["conv1", "conv2", "fc1", "fc2", "fc3"]
        .iter()
        .map(|l| format!("{l}.weight"))
        .collect();
    let norms = (1..=3 * spe)
        .map(|s| {
            let v = (0..layers.len() as u64)
                .map(|k| 10f64.powf(-1.4 * k as f64 + 0.4 * noise(s, k + 1)) * 0.8)
                .collect();
            (s, v)
        })
        .collect();
    History {
        steps_per_epoch: spe,
        steps,
        epochs: vec![
            (1, 0.92, 0.71, 0.41, 0.88),
            (2, 0.28, 0.91, 0.19, 0.94),
            (3, 0.13, 0.96, 0.11, 0.97),
        ],
        layers,
        norms,
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("netc-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The texts of an SVG, each with its x coordinate.
fn texts(svg: &str) -> Vec<(f64, String)> {
    svg.split("<text x=\"")
        .skip(1)
        .map(|t| {
            let x = t[..t.find('"').unwrap()].parse().unwrap();
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            (x, body.trim().to_string())
        })
        .collect()
}

fn has(texts: &[(f64, String)], s: &str) -> bool {
    texts.iter().any(|(_, t)| t == s)
}

#[test]
fn every_chart_has_axis_titles_and_a_legend_beside_the_plot() {
    let d = dir("titles");
    write(&d, "lenet", &sample()).unwrap();
    for (file, x, y, legend) in [
        ("loss.svg", "epoch", "loss", "validation"),
        ("accuracy.svg", "epoch", "top-1 accuracy (%)", "validation"),
        (
            "grad_norms.svg",
            "step",
            "L2 norm (log scale)",
            "fc3.weight",
        ),
    ] {
        let svg = std::fs::read_to_string(d.join(file)).unwrap();
        let t = texts(&svg);
        assert!(has(&t, x) && has(&t, y), "{file}: {t:?}");
        // Right of the plot, which ends before SIZE.0: the legend covers no curve.
        let (lx, _) = t.iter().find(|(_, s)| s == legend).unwrap();
        assert!(*lx > SIZE.0 as f64, "{file}: legend at x = {lx}");
    }
}

#[test]
fn accuracy_is_in_percent_and_steps_are_whole_numbers() {
    let d = dir("labels");
    write(&d, "lenet", &sample()).unwrap();
    let accuracy = texts(&std::fs::read_to_string(d.join("accuracy.svg")).unwrap());
    for label in ["70", "80", "90", "100", "0", "1", "2", "3"] {
        assert!(has(&accuracy, label), "{label}: {accuracy:?}");
    }
    assert!(
        !accuracy.iter().any(|(_, s)| s.starts_with("0.")),
        "{accuracy:?}"
    );
    let norms = texts(&std::fs::read_to_string(d.join("grad_norms.svg")).unwrap());
    for label in ["0", "50", "300", "10⁻⁶", "10⁰"] {
        assert!(has(&norms, label), "{label}: {norms:?}");
    }
    assert!(!norms.iter().any(|(_, s)| s.ends_with(".0")), "{norms:?}");
}

#[test]
fn ticks_are_round_and_the_grid_has_no_lines_between_them() {
    let a = Axis::new(0.01, 3.0, true, false);
    assert_eq!(
        (a.range.clone(), a.ticks.clone()),
        (0.0..3.0, vec![0.0, 1.0, 2.0, 3.0])
    );
    let a = Axis::new(1.0, 300.0, true, false);
    assert_eq!(a.ticks, [0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0]);
    assert_eq!(a.format_ext(&50.0), "50");
    let a = Axis::new(1.0, 317.0, true, false);
    assert_eq!((a.range.clone(), a.ticks.len()), (0.0..317.0, 4));
    let a = Axis::new(0.07, 2.43, false, true);
    assert_eq!(
        (a.range.clone(), a.ticks.len(), a.decimals),
        (0.0..2.5, 6, 1)
    );
    assert_eq!(a.format_ext(&0.5), "0.5");
    let light = a.key_points(LightPoints::new(10, 10));
    assert!(light.is_empty(), "{light:?}");
    assert_eq!(power_of_ten(-12.0), "10⁻¹²");
}

#[test]
fn a_legend_too_tall_for_two_columns_makes_the_chart_taller() {
    let mut h = sample();
    h.layers = (0..60)
        .map(|k| format!("inception{k}.conv.weight"))
        .collect();
    h.norms = h
        .norms
        .iter()
        .map(|(s, v)| (*s, (0..60).map(|k| v[k % 5]).collect()))
        .collect();
    let d = dir("legend");
    write(&d, "googlenet", &h).unwrap();
    let svg = std::fs::read_to_string(d.join("grad_norms.svg")).unwrap();
    let t = texts(&svg);
    let xs: std::collections::BTreeSet<i64> = t
        .iter()
        .filter(|(_, s)| s.starts_with("inception"))
        .map(|(x, _)| *x as i64)
        .collect();
    assert!(
        xs.len() == 2 && xs.iter().all(|&x| x > SIZE.0 as i64),
        "{xs:?}"
    );
    assert!(!svg.contains(&format!("height=\"{}\"", SIZE.1)), "taller");
}

#[test]
fn a_run_of_one_epoch_shows_its_points() {
    let mut h = sample();
    h.epochs.truncate(1);
    h.steps.truncate(100);
    h.norms.truncate(100);
    let d = dir("one-epoch");
    write(&d, "lenet", &h).unwrap();
    // A line through one point draws nothing; the point is marked.
    let svg = std::fs::read_to_string(d.join("accuracy.svg")).unwrap();
    assert!(svg.matches("<circle").count() >= 2, "{svg}");
}

#[test]
fn an_early_spike_runs_off_the_top_and_the_legend_says_so() {
    let mut h = sample();
    for (s, l) in h.steps.iter_mut().take(12).skip(2) {
        *l = 5.0 * *s as f64;
    }
    let d = dir("spike");
    write(&d, "bn", &h).unwrap();
    let t = texts(&std::fs::read_to_string(d.join("loss.svg")).unwrap());
    assert!(has(&t, "peaks up to 60.0 cut off"), "{t:?}");
    assert!(
        has(&t, "2.5") && !has(&t, "50"),
        "the axis stays at the rest: {t:?}"
    );
    // Without a spike nothing is cut.
    let d = dir("no-spike");
    write(&d, "lenet", &sample()).unwrap();
    let t = texts(&std::fs::read_to_string(d.join("loss.svg")).unwrap());
    assert!(!t.iter().any(|(_, s)| s.contains("cut off")), "{t:?}");
}

#[test]
fn a_line_is_cut_where_it_crosses_the_top() {
    let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 3.0), (3.0, 1.0), (4.0, 0.0)];
    assert_eq!(
        below(&pts, 2.0),
        [
            vec![(0.0, 1.0), (0.5, 2.0)],
            vec![(2.5, 2.0), (3.0, 1.0), (4.0, 0.0)]
        ]
    );
    assert_eq!(three_digits(50.3), "50.3");
    assert_eq!(three_digits(7.0234), "7.02");
    assert_eq!(three_digits(1234.4), "1234");
}

#[test]
fn accuracy_at_chance_is_drawn_flat() {
    let mut h = sample();
    h.epochs = vec![
        (1, 2.3, 0.1051, 2.3, 0.105),
        (2, 2.3, 0.1065, 2.3, 0.105),
        (3, 2.3, 0.1037, 2.3, 0.112),
    ];
    let d = dir("chance");
    write(&d, "plain", &h).unwrap();
    let t = texts(&std::fs::read_to_string(d.join("accuracy.svg")).unwrap());
    assert!(
        has(&t, "6") && has(&t, "16"),
        "ten points around 10.8: {t:?}"
    );
}

/// `cargo test -p netc-train plot -- --nocapture` says where the charts are, to look at.
#[test]
fn writes_the_three_charts() {
    let d = dir("sample");
    write(&d, "lenet", &sample()).unwrap();
    for f in ["loss.svg", "accuracy.svg", "grad_norms.svg"] {
        assert!(d.join(f).is_file(), "{f}");
    }
    eprintln!("charts in {}", d.display());
}
