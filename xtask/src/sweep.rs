//! `cargo xtask sweep --seeds 0,1,2`: the pipeline once per seed, each an ordinary run in
//! `RUNS_DIR/NAME/seed-S` (the same as `pipeline --run NAME/seed-S --seed S`, so a cluster can
//! run the seeds as separate jobs), then the sweep's report card in `RUNS_DIR/NAME`: every
//! headline number as mean ± sd with each seed's value, and which stage-to-stage changes are
//! beyond the noise between seeds. Finished stages are reused, as `pipeline` does.

use anyhow::{bail, Context, Result};
use chain::layout::{seed_dir, RUN_INFO, SWEEP_INFO};
use clap::Args;

use crate::lock::RunLock;
use crate::pipeline::pipeline;
use crate::run::RunArgs;

#[derive(Args)]
pub struct SweepArgs {
    /// Seed offsets, comma-separated (0 = the config as is); each gets RUNS_DIR/NAME/seed-S.
    #[arg(long, value_delimiter = ',', required = true)]
    seeds: Vec<u64>,
    /// Only write the report from the seeds' folders (after a cluster ran them); train nothing.
    #[arg(long)]
    report_only: bool,
    #[command(flatten)]
    args: RunArgs,
}

pub fn run(sweep: &SweepArgs) -> Result<()> {
    let mut seeds = sweep.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    let dir = sweep.args.run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join(RUN_INFO).exists() {
        bail!(
            "{} is a single run, not a sweep: use another --run name",
            dir.display()
        );
    }
    let _lock = RunLock::acquire(&dir)?;
    if !sweep.report_only {
        let info = serde_json::json!({
            "seeds": seeds,
            "config": sweep.args.config.display().to_string(),
            "overrides": sweep.args.overrides,
        });
        data::atomic::write(&dir.join(SWEEP_INFO), serde_json::to_string_pretty(&info)?)?;
        for &seed in &seeds {
            eprintln!("sweep: seed {seed} → {}", seed_dir(&dir, seed).display());
            let run = sweep.args.open_in(seed_dir(&dir, seed), seed)?;
            pipeline(&run, None)?;
        }
    }
    let path = report::write_sweep(&dir, &seeds)?;
    eprintln!("sweep report: {}", path.display());
    Ok(())
}
