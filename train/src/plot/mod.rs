//! `--plot DIR`: SVG charts of a run, rewritten after every epoch: `loss.svg` (training loss
//! per step, validation loss per epoch), `accuracy.svg` (training and validation top-1 per
//! epoch in percent, as the terminal prints it, for a classifier) and, with `--grad-norms`,
//! `grad_norms.svg` (each layer's weight-gradient L2 norm per step, on a log scale, so that
//! vanishing gradients show as lines far below the rest). Every axis has a title and round
//! ticks, the grid is light, and the legend stands beside the plot.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// A series: its name, its colour, whether its points are marked (a per-epoch series of one
/// epoch is a single point, which a line alone does not show) and its points.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    marked: bool,
    points: Vec<(f64, f64)>,
}

/// A chart: its title, the titles of its axes (x counts epochs or steps, so its ticks are
/// whole numbers), whether y is on a log scale, whether it is a percentage, whether spikes
/// may run off its top, and its series.
struct Chart<'a> {
    title: String,
    x: &'a str,
    y: &'a str,
    log_y: bool,
    percent: bool,
    cut_spikes: bool,
    series: Vec<Series<'a>>,
}

/// The chart's size without its legend, which goes to the right of it so that it never
/// covers a curve.
const SIZE: (u32, u32) = (800, 480);
const FONT: &str = "sans-serif";
/// Grid lines: light, at the labelled ticks only.
const GRID: RGBColor = RGBColor(225, 225, 225);
/// The height of a legend row, and the width of one character of its text (an estimate: an
/// SVG is laid out by the program that shows it).
const LEGEND_ROW: i32 = 20;
const LEGEND_CHAR: f64 = 7.5;
/// The height of a chart that is not beside the legend: the title and the x axis.
const LEGEND_SPARE: i32 = 120;

/// Draws a chart and writes it to `path` atomically (a reader never sees half a chart); a
/// chart without a finite point is not written.
fn chart(path: &Path, c: &Chart) -> Result<(), String> {
    let mut svg = String::new();
    let drawn = draw(&mut svg, c).map_err(|e| format!("{}: cannot draw: {e}", path.display()))?;
    if drawn {
        crate::files::write_atomic(path, svg.as_bytes())?;
    }
    Ok(())
}

/// An axis with its own ticks: plotters' choice puts "50.0" on a count of steps and a dense
/// grid of minor lines between its ticks.
struct Axis {
    range: Range<f64>,
    ticks: Vec<f64>,
    /// How a tick is labelled: with this many decimals, or as a power of ten.
    decimals: usize,
    log: bool,
}

impl Axis {
    /// Ticks at the multiples of a round step (1, 2 or 5 times a power of ten; at least 1
    /// when `whole`), about six to the span `lo..hi`. The axis starts at the tick at or below
    /// `lo`, and ends at `hi`, or at the tick at or above it when `round_hi`.
    fn new(lo: f64, hi: f64, whole: bool, round_hi: bool) -> Axis {
        let raw = (hi - lo) / 6.0;
        let mag = 10f64.powf(raw.log10().floor());
        let mut step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * mag)
            .find(|&s| s >= raw * 0.999)
            .unwrap_or(10.0 * mag);
        if whole {
            step = step.max(1.0).round();
        }
        let first = (lo / step + 1e-9).floor() as i64;
        let last = if round_hi {
            (hi / step - 1e-9).ceil() as i64
        } else {
            (hi / step + 1e-9).floor() as i64
        };
        Axis {
            range: first as f64 * step..if round_hi { last as f64 * step } else { hi },
            ticks: (first..=last).map(|k| k as f64 * step).collect(),
            decimals: (-step.log10().floor()).max(0.0) as usize,
            log: false,
        }
    }
}

impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = NoDefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (t * (limit.1 - limit.0) as f64).round() as i32
    }

    /// The ticks, which carry the labels and the grid; no light lines between them.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, v: &f64) -> String {
        if self.log {
            power_of_ten(*v)
        } else {
            format!("{v:.*}", self.decimals)
        }
    }
}

/// `10` raised to the whole number `e`, written with a superscript: `10⁻⁶`.
fn power_of_ten(e: f64) -> String {
    const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let e = e.round() as i64;
    let mut s = String::from("10");
    if e < 0 {
        s.push('⁻');
    }
    for d in e.unsigned_abs().to_string().bytes() {
        s.push(SUPERSCRIPT[(d - b'0') as usize]);
    }
    s
}

/// Draws a chart as SVG text into `svg`; false when there is nothing to draw. A log scale is
/// drawn as `log10 y` on a linear axis labelled with powers of ten.
fn draw(svg: &mut String, c: &Chart) -> Result<bool, String> {
    let points: Vec<Vec<(f64, f64)>> = c
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|&&(_, y)| y.is_finite() && (!c.log_y || y > 0.0))
                .map(|&(x, y)| (x, if c.log_y { y.log10() } else { y }))
                .collect()
        })
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.iter().flatten() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Ok(false);
    }
    // Epochs and steps count from 0: the charts of a run share their x axis, and a run of
    // one epoch is not a point on the frame.
    x0 = x0.min(0.0);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    // A spike in the first steps of SGD (a loss of 50 where the rest is below 3) would
    // squeeze the curves into the bottom of the chart: the top is each series' start or its
    // 95th percentile, whichever is higher, and the legend says what runs off it.
    let mut peak = None;
    if c.cut_spikes {
        let top = points
            .iter()
            .filter(|p| p.len() >= 20)
            .map(|p| {
                let mut ys: Vec<f64> = p.iter().map(|&(_, y)| y).collect();
                ys.sort_by(f64::total_cmp);
                ys[ys.len() * 95 / 100].max(p[0].1)
            })
            .chain(
                points
                    .iter()
                    .filter(|p| p.len() < 20)
                    .flatten()
                    .map(|&(_, y)| y),
            )
            .fold(f64::MIN, f64::max);
        if y1 - y0 > 1.25 * (top - y0) {
            peak = Some(y1);
            y1 = top;
        }
    }
    // A percentage spans at least 10 points of 0..100: a network at chance, between 10.4 and
    // 11.2 %, is a flat line, not a zigzag.
    if c.percent && y1 - y0 < 10.0 {
        let mid = ((y0 + y1) / 2.0).clamp(5.0, 95.0);
        (y0, y1) = (mid - 5.0, mid + 5.0);
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let x_axis = Axis::new(x0, x1, true, false);
    let y_axis = Axis {
        log: c.log_y,
        ..Axis::new(y0, y1, c.log_y, true)
    };

    // The legend: rows beside the plot, in a second column when they do not fit beside it,
    // and past two columns the chart grows taller.
    let fit = ((SIZE.1 as i32 - LEGEND_SPARE) / LEGEND_ROW) as usize;
    let columns = c.series.len().div_ceil(fit).min(2);
    let rows = c.series.len().div_ceil(columns.max(1)).max(fit);
    let note = peak.map(|p| format!("peaks up to {} cut off", three_digits(p)));
    let names = c.series.iter().map(|s| s.name).chain(note.as_deref());
    let longest = names.map(|s| s.chars().count()).max();
    let column_width = 36 + (longest.unwrap_or(0) as f64 * LEGEND_CHAR) as i32;
    let legend_width = columns as i32 * column_width;

    let err = |e: &dyn std::fmt::Display| e.to_string();
    let height = SIZE.1.max((rows as i32 * LEGEND_ROW + LEGEND_SPARE) as u32);
    let size = (SIZE.0 + legend_width as u32, height);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = y_axis.range.end;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, (FONT, 22))
        .margin(16)
        .margin_right(16 + legend_width)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_axis, y_axis)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(c.x)
        .y_desc(c.y)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|e| err(&e))?;
    for (s, pts) in c.series.iter().zip(&points) {
        for part in below(pts, top) {
            chart
                .draw_series(LineSeries::new(part, s.color.stroke_width(2)))
                .map_err(|e| err(&e))?;
        }
        if s.marked {
            let shown = pts.iter().filter(|&&(_, y)| y <= top);
            let dots = shown.map(|&p| Circle::new(p, 3, s.color.filled()));
            chart.draw_series(dots).map_err(|e| err(&e))?;
        }
    }

    let (px, py) = chart.plotting_area().get_pixel_range();
    let text = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, s) in c.series.iter().enumerate() {
        let x = px.end + 16 + (k / rows) as i32 * column_width;
        let y = py.start + LEGEND_ROW / 2 + (k % rows) as i32 * LEGEND_ROW;
        root.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            s.color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
        if s.marked {
            root.draw(&Circle::new((x + 12, y), 3, s.color.filled()))
                .map_err(|e| err(&e))?;
        }
        root.draw(&Text::new(s.name, (x + 32, y), text.clone()))
            .map_err(|e| err(&e))?;
    }
    if let Some(note) = note {
        let k = c.series.len();
        let x = px.end + 16 + (k / rows) as i32 * column_width;
        let y = py.start + LEGEND_ROW / 2 + (k % rows) as i32 * LEGEND_ROW;
        let gray = text.clone().color(&RGBColor(90, 90, 90));
        root.draw(&Text::new(note, (x, y), gray))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(true)
}

/// The parts of a polyline at or below `top`, each running to where the line crosses it.
fn below(pts: &[(f64, f64)], top: f64) -> Vec<Vec<(f64, f64)>> {
    let mut parts = vec![Vec::new()];
    for (k, &(x, y)) in pts.iter().enumerate() {
        if k > 0 {
            let (x0, y0) = pts[k - 1];
            if (y0 > top) != (y > top) {
                let t = (top - y0) / (y - y0);
                parts
                    .last_mut()
                    .expect("one")
                    .push((x0 + t * (x - x0), top));
                if y > top {
                    parts.push(Vec::new());
                }
            }
        }
        if y <= top {
            parts.last_mut().expect("one").push((x, y));
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// `v` with three significant digits (or all of its whole part): 50.3, 7.02, 1234.
fn three_digits(v: f64) -> String {
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Colours that stay apart for up to ten series, then repeat.
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
    // Column `k` of the epochs (training loss, training accuracy, validation loss,
    // validation accuracy), times `scale`.
    let per_epoch = |k: usize, scale: f64| -> Vec<(f64, f64)> {
        h.epochs
            .iter()
            .map(|e| (e.0 as f64, scale * [e.1, e.2, e.3, e.4][k]))
            .collect()
    };
    let train_loss: Vec<(f64, f64)> = h
        .steps
        .iter()
        .map(|&(s, l)| (s as f64 / steps_per_epoch, l))
        .collect();
    // Each chart on its own: one that cannot be written does not keep the others back.
    let mut failed = Vec::new();
    let loss = Chart {
        title: format!("{name}: loss"),
        x: "epoch",
        y: "loss",
        log_y: false,
        percent: false,
        cut_spikes: true,
        series: vec![
            Series {
                name: "training (per step)",
                color: COLORS[0],
                marked: false,
                points: train_loss,
            },
            Series {
                name: "validation",
                color: COLORS[1],
                marked: true,
                points: per_epoch(2, 1.0),
            },
        ],
    };
    failed.extend(chart(&dir.join("loss.svg"), &loss).err());
    // A network without labels has no accuracy (NaN): no chart.
    if h.epochs.iter().any(|e| e.2.is_finite() || e.4.is_finite()) {
        // In percent, as the terminal prints it.
        let accuracy = Chart {
            title: format!("{name}: top-1 accuracy"),
            x: "epoch",
            y: "top-1 accuracy (%)",
            log_y: false,
            percent: true,
            cut_spikes: false,
            series: vec![
                Series {
                    name: "training",
                    color: COLORS[0],
                    marked: true,
                    points: per_epoch(1, 100.0),
                },
                Series {
                    name: "validation",
                    color: COLORS[1],
                    marked: true,
                    points: per_epoch(3, 100.0),
                },
            ],
        };
        failed.extend(chart(&dir.join("accuracy.svg"), &accuracy).err());
    }
    if !h.layers.is_empty() && !h.norms.is_empty() {
        let series = h
            .layers
            .iter()
            .enumerate()
            .map(|(k, layer)| Series {
                name: layer,
                color: COLORS[k % COLORS.len()],
                marked: false,
                points: h.norms.iter().map(|(s, v)| (*s as f64, v[k])).collect(),
            })
            .collect();
        let norms = Chart {
            title: format!("{name}: weight-gradient L2 norm per layer"),
            x: "step",
            y: "L2 norm (log scale)",
            log_y: true,
            percent: false,
            cut_spikes: false,
            series,
        };
        failed.extend(chart(&dir.join("grad_norms.svg"), &norms).err());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

#[cfg(test)]
mod tests;
