//! How the sweep's tables write a value: a fraction in points, and mean ± sd over seeds.

use super::collect::Unit;
use crate::stats::{change, mean_sd};

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

/// A headline number as its unit prints it.
pub(super) fn show(unit: Unit) -> impl Fn(f64) -> String {
    move |x: f64| match unit {
        Unit::Percent => format!("{:.1}%", 100.0 * x),
        Unit::Plain(d) => format!("{x:.d$}"),
        Unit::Seconds => format!("{x:.0} s"),
    }
}

/// A change in points, paired by seed, marked by the noise test: `+4.5 ▲`, `−0.5 ~`.
/// `diffs` are fractions per seed, each from two accuracies near `accuracy` on `n` problems.
pub(super) fn change_cell(diffs: &[f64], n: usize, accuracy: f64) -> String {
    if diffs.is_empty() {
        return "—".into();
    }
    let c = change(diffs, n, accuracy);
    let mark = match c.beyond_noise {
        Some(true) if c.mean > 0.0 => " ▲",
        Some(true) => " ▼",
        Some(false) => " ~",
        None => "",
    };
    format!("{:+.1}{mark}", 100.0 * c.mean)
}
