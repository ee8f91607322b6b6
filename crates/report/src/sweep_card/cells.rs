//! How the sweep's tables write a value: a fraction in points, and mean ± sd over seeds.

use crate::stats::mean_sd;

pub(super) fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

pub(super) fn mean_sd_cell(values: &[f64], show: impl Fn(f64) -> String) -> String {
    match values.len() {
        0 => "—".into(),
        1 => show(values[0]),
        _ => {
            let (m, s) = mean_sd(values);
            format!("{} ± {}", show(m), show(s))
        }
    }
}
