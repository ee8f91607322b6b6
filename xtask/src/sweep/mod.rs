//! `cargo xtask sweep --seeds 0,1,2 [--grid KEY=V1,V2 …] [--launcher slurm]`: the pipeline
//! once per seed and grid cell, each an ordinary run, then the report cards.
//!
//! ```text
//! RUNS_DIR/NAME/seed-S                     without --grid: one run per seed
//! RUNS_DIR/NAME/KEY=V,KEY2=W/seed-S        with --grid: one folder per cell (grid.rs)
//! ```
//!
//! Each run is exactly `pipeline --run NAME[/CELL]/seed-S --seed S` with the cell's settings
//! as `--set` items, so the runs may go one after another here (`local`, the default) or as a
//! Slurm job array (`slurm.rs`). Finished stages are reused as `pipeline` reuses them, and a
//! stage that another cell of the grid already trained for the same seed is copied
//! (`crate::adopt`). Each folder that holds seeds gets the sweep's report card (mean ± sd
//! over seeds, stage over stage beyond noise); a grid's folder gets the grid's, cell against
//! cell.

mod grid;
mod slurm;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chain::layout::{seed_dir, RUN_INFO, SWEEP_INFO};
use clap::{Args, ValueEnum};

use crate::lock::RunLock;
use crate::pipeline::pipeline;
use crate::run::RunArgs;
use grid::{Axis, Cell};

#[derive(Args)]
pub struct SweepArgs {
    /// Seed offsets, comma-separated (0 = the config as is); each gets RUNS_DIR/NAME/seed-S.
    #[arg(long, value_delimiter = ',', required = true)]
    seeds: Vec<u64>,
    /// Cross one setting's values with the seeds (repeatable; the axes cross too), e.g.
    /// `--grid dpo.loss.loss_type=sigmoid,orpo`: each cell is RUNS_DIR/NAME/KEY=VALUE/seed-S.
    #[arg(long = "grid", value_name = "KEY=V1,V2")]
    grid: Vec<String>,
    /// Where the runs go: one after another on this machine, or as a Slurm job array.
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    launcher: Launcher,
    #[command(flatten)]
    slurm: slurm::SlurmArgs,
    /// Only write the report cards from the runs' folders (after a cluster ran them); train
    /// nothing.
    #[arg(long)]
    report_only: bool,
    #[command(flatten)]
    args: RunArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Launcher {
    Local,
    Slurm,
}

/// What a sweep will run: its folder, the seeds, and one cell per combination of the grid
/// (a single cell, the sweep's folder itself, without `--grid`).
pub struct Plan {
    dir: PathBuf,
    seeds: Vec<u64>,
    axes: Vec<Axis>,
    cells: Vec<PlannedCell>,
}

struct PlannedCell {
    /// `KEY=VALUE,…`; empty without a grid.
    name: String,
    dir: PathBuf,
    /// The sweep's own `--set` items, then the cell's.
    args: RunArgs,
}

/// One run of the sweep: `pipeline --run NAME[/CELL]/seed-S --seed S` with the cell's args.
pub struct PlannedRun<'a> {
    cell: &'a PlannedCell,
    seed: u64,
}

impl PlannedRun<'_> {
    pub fn dir(&self) -> PathBuf {
        seed_dir(&self.cell.dir, self.seed)
    }

    /// `CELL/seed-S`, or `seed-S` without a grid: the run's name inside the sweep.
    pub fn name_in_sweep(&self) -> String {
        let seed = format!("seed-{}", self.seed);
        if self.cell.name.is_empty() {
            seed
        } else {
            format!("{}/{seed}", self.cell.name)
        }
    }

    /// The `xtask` arguments that run it: `pipeline --run NAME/CELL/seed-S --seed S …`.
    pub fn command(&self, sweep_name: &str) -> Vec<String> {
        let name = format!("{sweep_name}/{}", self.name_in_sweep());
        let mut command = self.cell.args.command("pipeline", &name);
        command.extend(["--seed".to_string(), self.seed.to_string()]);
        command
    }

    /// Whether every stage of the run is finished with these settings (it takes the run's
    /// lock for the look, so a run in progress elsewhere is an error naming it).
    pub fn is_complete(&self) -> Result<bool> {
        self.cell.args.open_in(self.dir(), self.seed)?.is_complete()
    }
}

impl Plan {
    /// Checks every cell's settings before anything is written: an unknown key or a value of
    /// the wrong type is one line naming the cell.
    fn new(sweep: &SweepArgs) -> Result<Self> {
        let axes = grid::parse_axes(&sweep.grid, &sweep.args.overrides)?;
        let dir = sweep.args.run_dir();
        let mut cells = Vec::new();
        for cell in grid::cells(&axes) {
            let mut args = sweep.args.clone();
            args.overrides.extend(cell.overrides());
            let checked = args.load_config();
            if axes.is_empty() {
                checked?;
            } else {
                checked.with_context(|| format!("--grid cell {}", cell.name()))?;
            }
            cells.push(PlannedCell {
                dir: cell_dir(&dir, &cell),
                name: cell.name(),
                args,
            });
        }
        let mut seeds = sweep.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        Ok(Self {
            dir,
            seeds,
            axes,
            cells,
        })
    }

    /// Every run, cell by cell, seed by seed.
    fn runs(&self) -> Vec<PlannedRun<'_>> {
        self.cells
            .iter()
            .flat_map(|cell| {
                self.seeds
                    .iter()
                    .map(move |&seed| PlannedRun { cell, seed })
            })
            .collect()
    }

    /// Creates the folders and writes `sweep.json` in the sweep's folder and each cell's,
    /// refusing a folder that is a single run, or a sweep of the other kind (with or
    /// without a grid).
    fn write_info(&self, sweep: &SweepArgs) -> Result<()> {
        let info = |overrides: &[String]| {
            serde_json::json!({
                "seeds": self.seeds,
                "config": sweep.args.config.display().to_string(),
                "overrides": overrides,
            })
        };
        let mut top = info(&sweep.args.overrides);
        if !self.axes.is_empty() {
            top["grid"] = self
                .axes
                .iter()
                .map(|a| serde_json::json!({ "key": a.key, "values": a.values }))
                .collect();
            top["cells"] = self.cells.iter().map(|c| c.name.clone()).collect();
            for cell in &self.cells {
                create(&cell.dir)?;
                let mut info = info(&cell.args.overrides);
                info["cell"] = cell.name.clone().into();
                data::atomic::write(&cell.dir.join(SWEEP_INFO), info.to_string())?;
            }
        }
        data::atomic::write(
            &self.dir.join(SWEEP_INFO),
            serde_json::to_string_pretty(&top)?,
        )
    }

    /// Each cell's report card, then the grid's.
    fn write_reports(&self) -> Result<PathBuf> {
        if self.axes.is_empty() {
            return report::write_sweep(&self.dir, &self.seeds);
        }
        let mut cells = Vec::new();
        for cell in &self.cells {
            report::write_sweep(&cell.dir, &self.seeds)?;
            cells.push((cell.name.clone(), cell.dir.clone()));
        }
        report::write_grid(&self.dir, &cells, &self.seeds)
    }
}

fn cell_dir(sweep_dir: &Path, cell: &Cell) -> PathBuf {
    if cell.settings.is_empty() {
        sweep_dir.to_path_buf()
    } else {
        sweep_dir.join(cell.name())
    }
}

fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

pub fn run(sweep: &SweepArgs) -> Result<()> {
    match sweep.launcher {
        Launcher::Local => sweep.slurm.refuse_without_slurm()?,
        Launcher::Slurm => sweep.slurm.check_cluster()?,
    }
    let plan = Plan::new(sweep)?;
    create(&plan.dir)?;
    check_kind(&plan)?;
    let lock = RunLock::acquire(&plan.dir)?;
    if sweep.report_only {
        let path = plan.write_reports()?;
        eprintln!("sweep report: {}", path.display());
        return Ok(());
    }
    plan.write_info(sweep)?;
    match sweep.launcher {
        Launcher::Local => {
            for run in plan.runs() {
                eprintln!("sweep: {}", run.dir().display());
                pipeline(&run.cell.args.open_in(run.dir(), run.seed)?, None)?;
            }
            let path = plan.write_reports()?;
            eprintln!("sweep report: {}", path.display());
            Ok(())
        }
        Launcher::Slurm => {
            // The report job takes this lock when the runs are done.
            drop(lock);
            slurm::launch(&plan, sweep)
        }
    }
}

/// A sweep's folder is neither a single run nor a sweep of the other kind.
fn check_kind(plan: &Plan) -> Result<()> {
    if plan.dir.join(RUN_INFO).exists() {
        bail!(
            "{} is a single run, not a sweep: use another --run name",
            plan.dir.display()
        );
    }
    let info_path = plan.dir.join(SWEEP_INFO);
    if let Ok(text) = std::fs::read_to_string(&info_path) {
        let info: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", info_path.display()))?;
        if info.get("cell").is_some() {
            bail!(
                "{} is a cell of a grid: sweep the grid's folder, or use another --run name",
                plan.dir.display()
            );
        }
        let was_grid = info.get("grid").is_some();
        let is_grid = !plan.axes.is_empty();
        if was_grid != is_grid {
            let (was, now) = if was_grid {
                ("with a --grid", "without one")
            } else {
                ("without a --grid", "with one")
            };
            bail!(
                "{} is a sweep {was}, this command asks for one {now}: use another --run name",
                plan.dir.display()
            );
        }
    }
    Ok(())
}
