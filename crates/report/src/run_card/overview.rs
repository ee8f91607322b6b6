//! "The chain": one row per stage, in order, with its parent, budget, throughput,
//! checkpoint and whether it starts from its parent's final checkpoint.

use anyhow::Result;
use data::hash::short;
use trainer::files;

use super::card::{number, Report};
use chain::Stage;

pub(super) fn section(report: &mut Report) -> Result<()> {
    report.heading("The chain");
    let mut rows = Vec::new();
    for stage in Stage::ALL {
        let parent = stage.parent();
        let parent_name = parent.map_or("—", Stage::name).to_string();
        let Some(files) = report.stage(stage)? else {
            rows.push(vec![
                stage.to_string(),
                parent_name,
                "not run".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ]);
            continue;
        };
        let m = &files.manifest;
        let throughput = {
            let (key, unit) = stage.throughput();
            let values: Vec<f64> = files
                .metrics(files::METRICS)?
                .iter()
                .filter_map(|r| number(r, key))
                .collect();
            if values.is_empty() {
                "—".to_string()
            } else {
                format!(
                    "{:.0} {unit}",
                    values.iter().sum::<f64>() / values.len() as f64
                )
            }
        };
        let link = match (parent, &m.parent_checkpoint_hash) {
            (Some(p), Some(hash)) => match report.stage(p)? {
                Some(ps) if &ps.manifest.checkpoint_hash == hash => {
                    "✓ parent's final checkpoint".to_string()
                }
                Some(_) => "✗ parent was retrained since".to_string(),
                None => format!("from {}", m.parent_dir.clone().unwrap_or_default()),
            },
            _ => "—".to_string(),
        };
        rows.push(vec![
            stage.to_string(),
            parent_name,
            m.step.to_string(),
            match m.time {
                Some(t) => format!(
                    "{:.0} s: steps {:.0}, sampling {:.0}, eval {:.0}, I/O {:.0}",
                    m.wall_time_s, t.training_s, t.sampling_s, t.evaluation_s, t.io_s
                ),
                None => format!("{:.0} s", m.wall_time_s),
            },
            throughput,
            format!("`{}`", short(&m.checkpoint_hash)),
            link,
        ]);
    }
    report.table(
        &[
            "stage",
            "parent",
            "steps",
            "wall time",
            "throughput",
            "checkpoint",
            "init",
        ],
        rows,
    );
    Ok(())
}
