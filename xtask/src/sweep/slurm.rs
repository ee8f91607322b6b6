//! `sweep --launcher slurm`: the sweep's unfinished runs as one Slurm job array, then the report
//! cards as a job that starts when every task has succeeded (`--dependency=afterok`, and
//! `--kill-on-invalid-dep=yes` so that it is cancelled, not left pending, when one fails).
//!
//! Nothing is built on the nodes: every task runs this very `xtask` binary (by its absolute
//! path) in the folder this command runs in, so the binary, that folder, the config and the
//! runs folder must be at the same paths on the nodes (a shared file system, as on any
//! cluster's home or project space). Each task is the
//! command the local launcher would run, `pipeline --run NAME[/CELL]/seed-S --seed S …`, and
//! writes its output to its own log, `LOG_DIR/[CELL/]seed-S.log`.
//!
//! Success is read from the runs' folders, not from the scheduler: after the jobs leave the
//! queue, a run whose stages are not all finished has failed, whatever the scheduler says, and
//! is named with its log. The same command again submits only the runs still unfinished.
//! The options follow Hydra's Submitit launcher (`partition`, `timeout`, `cpus_per_task`,
//! `additional_parameters`), spelled as sbatch spells them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{Plan, PlannedRun, SweepArgs};

#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Slurm (with --launcher slurm)")]
pub struct SlurmArgs {
    /// The partition to submit to [default: the cluster's default partition].
    #[arg(long)]
    partition: Option<String>,
    /// Each task's time limit, as sbatch reads it (`90` minutes, `2:00:00`, `1-0`).
    #[arg(long, value_name = "LIMIT")]
    time: Option<String>,
    /// CPUs per task (the training uses as many threads as the task may run).
    #[arg(long, value_name = "N")]
    cpus_per_task: Option<u32>,
    /// One more argument for sbatch, e.g. `--sbatch-arg=--mem=4G` (repeatable).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    /// Where each task's log goes [default: RUNS_DIR/NAME/logs].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Submit, print the job ids and return, instead of waiting for the report.
    #[arg(long)]
    no_wait: bool,
}

impl SlurmArgs {
    /// A Slurm option without `--launcher slurm` is a mistake, not something to ignore.
    pub fn refuse_without_slurm(&self) -> Result<()> {
        let given = [
            ("--partition", self.partition.is_some()),
            ("--time", self.time.is_some()),
            ("--cpus-per-task", self.cpus_per_task.is_some()),
            ("--sbatch-arg", !self.sbatch_args.is_empty()),
            ("--log-dir", self.log_dir.is_some()),
            ("--no-wait", self.no_wait),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            bail!("{flag} is an option of --launcher slurm; this sweep runs locally");
        }
        Ok(())
    }

    /// Slurm is there, and has the partition asked for: checked before anything is written.
    pub fn check_cluster(&self) -> Result<()> {
        find_on_path("sbatch").with_context(|| {
            "--launcher slurm needs Slurm's sbatch on the PATH, and there is none (run from a \
             cluster's login node, or drop --launcher slurm)"
        })?;
        match &self.partition {
            Some(partition) => check_partition(partition),
            None => Ok(()),
        }
    }

    /// The sbatch options every job of the sweep shares.
    /// The jobs start in `workdir`, where this command runs: the runs' paths are relative
    /// to it, as given.
    fn shared_options(&self, log: &Path, workdir: &Path) -> Vec<String> {
        let mut options = vec![
            format!("--output={}", log.display()),
            format!("--chdir={}", workdir.display()),
        ];
        if let Some(partition) = &self.partition {
            options.push(format!("--partition={partition}"));
        }
        if let Some(time) = &self.time {
            options.push(format!("--time={time}"));
        }
        options.extend(self.sbatch_args.iter().cloned());
        options
    }
}

/// Submits the runs still to do and the report job; waits for them unless `--no-wait`.
pub fn launch(plan: &Plan, sweep: &SweepArgs) -> Result<()> {
    let options = &sweep.slurm;
    let name = sweep.args.run_name();
    let mut todo = Vec::new();
    for run in plan.runs() {
        if !run.is_complete()? {
            todo.push(run);
        }
    }
    let total = plan.cells.len() * plan.seeds.len();
    if todo.is_empty() {
        eprintln!("slurm: all {total} runs are finished already; nothing to submit");
        let path = plan.write_reports()?;
        eprintln!("sweep report: {}", path.display());
        return Ok(());
    }

    let log_dir = std::path::absolute(options.log_dir.clone().unwrap_or(plan.dir.join("logs")))
        .context("resolving --log-dir")?;
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let workdir = std::env::current_dir().context("reading the current folder")?;
    let script = log_dir.join("runs.sh");
    let logs: Vec<PathBuf> = todo
        .iter()
        .map(|r| log_dir.join(format!("{}.log", r.name_in_sweep())))
        .collect();
    data::atomic::write(&script, array_script(&exe, &name, &todo, &logs))?;

    let submitted = SystemTime::now();
    let started = Instant::now();
    let mut runs_job = vec![
        "--parsable".to_string(),
        format!("--array=0-{}", todo.len() - 1),
        format!("--job-name={name}"),
    ];
    runs_job.extend(options.shared_options(&log_dir.join("slurm-%A_%a.out"), &workdir));
    if let Some(cpus) = options.cpus_per_task {
        runs_job.push(format!("--cpus-per-task={cpus}"));
    }
    runs_job.push(script.display().to_string());
    let runs_id = sbatch(&runs_job)?;

    let mut report = sweep.args.command("sweep", &name);
    report.push("--report-only".into());
    report.push(format!(
        "--seeds={}",
        plan.seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    report.extend(sweep.grid.iter().map(|g| format!("--grid={g}")));
    let mut report_job = vec![
        "--parsable".to_string(),
        format!("--job-name={name}-report"),
        format!("--dependency=afterok:{runs_id}"),
        "--kill-on-invalid-dep=yes".into(),
    ];
    report_job.extend(options.shared_options(&log_dir.join("report.log"), &workdir));
    report_job.push(format!("--wrap={}", shell_line(&exe, &report)));
    let report_id = sbatch(&report_job)?;

    eprintln!(
        "slurm: {} of {total} runs submitted as job array {runs_id} (logs in {}), the report \
         as job {report_id}",
        todo.len(),
        log_dir.display()
    );
    if options.no_wait {
        println!("{runs_id} {report_id}");
        eprintln!(
            "slurm: not waiting; `squeue -j {runs_id},{report_id}` follows them. Run this \
             command again to resubmit whatever did not finish."
        );
        return Ok(());
    }

    wait_until_gone(&[&runs_id, &report_id])?;
    eprintln!(
        "slurm: the jobs left the queue after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut failed = Vec::new();
    for (i, (run, log)) in todo.iter().zip(&logs).enumerate() {
        let finished = run.is_complete().unwrap_or(false);
        if !finished {
            let where_to_look = if log.exists() {
                format!("its log: {}", log.display())
            } else {
                // Killed or refused before its script began: only Slurm's own output exists.
                format!(
                    "it wrote no log ({}); Slurm's output: {}",
                    log.display(),
                    log_dir.join(format!("slurm-{runs_id}_{i}.out")).display()
                )
            };
            eprintln!(
                "slurm: run {name}/{} (task {runs_id}_{i}) did not finish; {where_to_look}",
                run.name_in_sweep()
            );
            failed.push((run.name_in_sweep(), log));
        }
    }
    if let Some((first, log)) = failed.first() {
        bail!(
            "{} of {} submitted runs failed on Slurm (first: {name}/{first}, log {}); the same \
             command resubmits only the unfinished runs",
            failed.len(),
            todo.len(),
            log.display()
        );
    }
    let report_path = plan.dir.join("report.md");
    let written = std::fs::metadata(&report_path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t + Duration::from_secs(2) >= submitted);
    if !written {
        bail!(
            "every run finished, but the report job {report_id} did not write {}; its log: {}",
            report_path.display(),
            log_dir.join("report.log").display()
        );
    }
    eprintln!("sweep report: {}", report_path.display());
    Ok(())
}

/// The job array's script: task i runs the i-th run, its output in its own log.
fn array_script(exe: &Path, name: &str, runs: &[PlannedRun], logs: &[PathBuf]) -> String {
    let mut script = String::from(
        "#!/usr/bin/env bash\n\
         # Written by `cargo xtask sweep --launcher slurm`: array task i runs the sweep's i-th\n\
         # unfinished run, exactly the command the local launcher would run.\n\
         set -euo pipefail\n\
         case \"$SLURM_ARRAY_TASK_ID\" in\n",
    );
    for (i, (run, log)) in runs.iter().zip(logs).enumerate() {
        script.push_str(&format!(
            "{i})\n    log={}\n    command=({})\n    ;;\n",
            quote(&log.display().to_string()),
            shell_line(exe, &run.command(name))
        ));
    }
    script.push_str(
        "*)\n    echo \"no run for array task $SLURM_ARRAY_TASK_ID\" >&2\n    exit 2\n    ;;\n\
         esac\n\
         mkdir -p \"$(dirname \"$log\")\"\n\
         echo \"task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname): ${command[*]}\" >\"$log\"\n\
         exec \"${command[@]}\" >>\"$log\" 2>&1\n",
    );
    script
}

/// `sbatch ARGS`, returning the job id from `--parsable`'s `ID[;CLUSTER]`.
fn sbatch(args: &[String]) -> Result<String> {
    let out = slurm("sbatch", args)?;
    let id = out.split(';').next().unwrap_or_default().trim().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed {out:?}, not a job id");
    }
    Ok(id)
}

/// Runs a Slurm command; its failure is one line with the command's own first error line.
fn slurm(program: &str, args: &[String]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("{program} failed ({}): {}", out.status, line.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A partition the cluster does not have is refused before anything is submitted.
fn check_partition(partition: &str) -> Result<()> {
    let listed = slurm("sinfo", &["-h".into(), "-o".into(), "%P".into()])?;
    let partitions: Vec<&str> = listed
        .lines()
        .map(|p| p.trim().trim_end_matches('*'))
        .collect();
    if !partitions.contains(&partition) {
        bail!(
            "--partition {partition}: this cluster has no such partition (sinfo lists: {})",
            partitions.join(", ")
        );
    }
    Ok(())
}

/// Polls `squeue` until none of `jobs` is pending, running or completing.
fn wait_until_gone(jobs: &[&str]) -> Result<()> {
    let args = [
        "-h".to_string(),
        "-j".into(),
        jobs.join(","),
        "-o".into(),
        "%T".into(),
    ];
    let mut last = String::new();
    loop {
        // squeue refuses ids it has already forgotten: then they are gone too.
        let states = match slurm("squeue", &args) {
            Ok(states) => states,
            Err(e) if e.to_string().contains("Invalid job id") => String::new(),
            Err(e) => return Err(e),
        };
        if states.is_empty() {
            return Ok(());
        }
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for state in states.lines() {
            *counts.entry(state.trim()).or_default() += 1;
        }
        let now = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
        if now != last {
            eprintln!("slurm: {now}");
            last = now;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn find_on_path(program: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("{program} not found on the PATH"))
}

/// `exe` and `args` as one shell command line.
fn shell_line(exe: &Path, args: &[String]) -> String {
    std::iter::once(quote(&exe.display().to_string()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Single-quoted for the shell: `it's` → `'it'\''s'`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        let line = shell_line(
            Path::new("/opt/x task"),
            &["--set=dpo.loss.loss_type=it's".into(), "$HOME".into()],
        );
        let out = Command::new("bash")
            .args(["-c", &format!("printf '%s\\n' {line}")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/opt/x task\n--set=dpo.loss.loss_type=it's\n$HOME\n"
        );
    }
}
