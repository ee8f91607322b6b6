//! SVG charts for the report, through plotters' SVG backend (no fonts or image libraries).
//! Each chart is drawn into a string (`plot`, its file name, only names it in errors); the
//! report writes the files once everything was read.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub type Series = (String, Vec<(f64, f64)>);

fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-9);
    (lo - pad * span, hi + pad * span)
}

/// One chart of several lines over a shared x axis (steps), as SVG.
pub fn lines(plot: &str, title: &str, y_label: &str, series: &[Series]) -> Result<String> {
    lines_over(plot, title, "step", y_label, series)
}

/// Like [`lines`], over an x axis named `x_label`.
pub fn lines_over(
    plot: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String> {
    let mut svg = String::new();
    draw_lines(&mut svg, plot, title, x_label, y_label, series)?;
    Ok(svg)
}

fn draw_lines(
    svg: &mut String,
    plot: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {plot}.svg: {e}");
    let (x0, x1) = range(series.iter().flat_map(|(_, s)| s.iter().map(|p| p.0)), 0.0);
    let (y0, y1) = range(series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1)), 0.05);
    let root = SVGBackend::with_string(svg, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 2, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Grouped bars: one group per category, one bar per series, values in [0, 100], as SVG.
pub fn grouped_bars(
    plot: &str,
    title: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<String> {
    let mut svg = String::new();
    draw_grouped_bars(&mut svg, plot, title, categories, series)?;
    Ok(svg)
}

fn draw_grouped_bars(
    svg: &mut String,
    plot: &str,
    title: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {plot}.svg: {e}");
    let root = SVGBackend::with_string(svg, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = categories.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n, 0f64..115f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("accuracy (%)")
        .draw()
        .map_err(|e| err(&e))?;
    // Category names above each group (plotters' numeric x labels cannot name groups).
    chart
        .draw_series(categories.iter().enumerate().map(|(c, name)| {
            Text::new(
                name.clone(),
                (c as f64 + 0.4, 113.0),
                ("sans-serif", 14).into_font(),
            )
        }))
        .map_err(|e| err(&e))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        chart
            .draw_series(values.iter().enumerate().map(|(c, &v)| {
                let x = c as f64 + 0.1 + s as f64 * width;
                Rectangle::new([(x, 0.0), (x + width * 0.95, v)], color.filled())
            }))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
