//! `--plot DIR`: SVG charts of a run, rewritten after every epoch: `loss.svg` (training loss
//! per step, validation loss per epoch), `accuracy.svg` (training and validation top-1 per
//! epoch, for a classifier) and, with `--grad-norms`, `grad_norms.svg` (each layer's weight-gradient L2 norm
//! per step, on a log scale, so that vanishing gradients show as lines far below the rest).

use std::path::Path;

use plotters::prelude::*;

/// What the charts draw.
#[derive(Default)]
pub struct History {
    /// Optimizer steps in one epoch.
    pub steps_per_epoch: u64,
    /// (step, training loss).
    pub steps: Vec<(u64, f64)>,
    /// (epoch, training loss, training accuracy, validation loss, validation accuracy).
    pub epochs: Vec<(usize, f64, f64, f64, f64)>,
    /// Layer names, and per recorded step the L2 norm of each one's weight gradient.
    pub layers: Vec<String>,
    pub norms: Vec<(u64, Vec<f64>)>,
}

/// A series: its name, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws a chart and writes it to `path` atomically (a reader never sees half a chart); a
/// chart without a finite point is not written.
fn chart(path: &Path, title: &str, x: &str, log_y: bool, series: &[Series]) -> Result<(), String> {
    let mut svg = String::new();
    let drawn = draw(&mut svg, title, x, log_y, series)
        .map_err(|e| format!("{}: cannot draw: {e}", path.display()))?;
    if drawn {
        crate::files::write_atomic(path, svg.as_bytes())?;
    }
    Ok(())
}

/// Draws a chart as SVG text into `svg`; false when there is nothing to draw.
fn draw(
    svg: &mut String,
    title: &str,
    x: &str,
    log_y: bool,
    series: &[Series],
) -> Result<bool, String> {
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(px, py) in points {
        if py.is_finite() && (!log_y || py > 0.0) {
            x0 = x0.min(px);
            x1 = x1.max(px);
            y0 = y0.min(py);
            y1 = y1.max(py);
        }
    }
    if x0 > x1 {
        return Ok(false);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let root = SVGBackend::with_string(svg, (800, 480)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(64);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x)
                .draw()
                .map_err(|e| err(&e))?;
            for (name, color, pts) in series {
                let pts: Vec<(f64, f64)> = pts
                    .iter()
                    .copied()
                    .filter(|&(_, y)| y.is_finite() && (!log_y || y > 0.0))
                    .collect();
                let color = *color;
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if log_y {
        draw!(builder
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(|e| err(&e))?);
    } else {
        draw!(builder
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(true)
}

/// Colours that stay apart for up to a dozen series, then repeat.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Writes every chart of `h` into `dir`; an error lists the charts that could not be written
/// (the others are).
pub fn write(dir: &Path, name: &str, h: &History) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let steps_per_epoch = h.steps_per_epoch.max(1) as f64;
    let per_epoch = |k: usize| -> Vec<(f64, f64)> {
        h.epochs
            .iter()
            .map(|e| {
                let v = [e.1, e.2, e.3, e.4][k];
                (e.0 as f64, v)
            })
            .collect()
    };
    let train_loss: Vec<(f64, f64)> = h
        .steps
        .iter()
        .map(|&(s, l)| (s as f64 / steps_per_epoch, l))
        .collect();
    // Each chart on its own: one that cannot be written does not keep the others back.
    let mut failed = Vec::new();
    failed.extend(
        chart(
            &dir.join("loss.svg"),
            &format!("{name}: loss"),
            "epoch",
            false,
            &[
                ("training (per step)", COLORS[0], train_loss),
                ("validation", COLORS[1], per_epoch(2)),
            ],
        )
        .err(),
    );
    // A network without labels has no accuracy (NaN): no chart.
    if h.epochs.iter().any(|e| e.2.is_finite() || e.4.is_finite()) {
        failed.extend(
            chart(
                &dir.join("accuracy.svg"),
                &format!("{name}: top-1 accuracy"),
                "epoch",
                false,
                &[
                    ("training", COLORS[0], per_epoch(1)),
                    ("validation", COLORS[1], per_epoch(3)),
                ],
            )
            .err(),
        );
    }
    if !h.layers.is_empty() && !h.norms.is_empty() {
        let series: Vec<Series> = h
            .layers
            .iter()
            .enumerate()
            .map(|(k, layer)| {
                let pts = h.norms.iter().map(|(s, v)| (*s as f64, v[k])).collect();
                (layer.as_str(), COLORS[k % COLORS.len()], pts)
            })
            .collect();
        failed.extend(
            chart(
                &dir.join("grad_norms.svg"),
                &format!("{name}: weight-gradient L2 norm per layer"),
                "step",
                true,
                &series,
            )
            .err(),
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
