//! `xtask sweep` on the tiny config with two seeds: ordinary run folders per seed, seeds that
//! really differ, the sweep's report card with mean ± sd and each seed's value, reuse of
//! finished stages, and the same folder as `pipeline --seed` makes.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sweep(runs: &Path, extra: &[&str]) -> std::process::Output {
    run(xtask()
        .args([
            "sweep", "--seeds", "0,1", "--run", "s", "--quiet", "--config",
        ])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs)
        .args(extra))
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    (mean, var.sqrt())
}

#[test]
fn a_sweep_runs_each_seed_and_reports_mean_and_sd() {
    let runs = tempfile::tempdir().unwrap();
    let out = sweep(runs.path(), &[]);
    assert_ok(&out);
    let dir = runs.path().join("s");

    // Each seed is an ordinary run, every stage measured on the skill suite.
    for seed in ["seed-0", "seed-1"] {
        for stage in ["pretrain", "sft", "cot-sft", "dpo", "rlvr"] {
            let skills = json(&dir.join(seed).join(stage).join("skills.json"));
            let rows = skills["rows"].as_array().unwrap();
            assert!(
                rows.iter().any(|r| r["task"] == "reverse"),
                "{seed}/{stage}"
            );
            assert!(rows.iter().any(|r| r["task"] == "digit_sum" && r["k"] == 3));
        }
        assert!(dir.join(seed).join("report.md").is_file());
    }
    // The seeds differ from the model's init on, and seed 1's run.json says how.
    let hash = |seed: &str| {
        json(&dir.join(seed).join("pretrain/manifest.json"))["checkpoint_hash"].clone()
    };
    assert_ne!(hash("seed-0"), hash("seed-1"));
    let info = json(&dir.join("seed-1/run.json"));
    let sets: Vec<&str> = info["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        sets.contains(&"pretrain.seed=1") && sets.contains(&"rlvr.seed=1"),
        "{sets:?}"
    );
    assert!(!sets.iter().any(|s| s.starts_with("eval.")), "{sets:?}");

    // The report's reverse-word cell after SFT is the two seeds' mean ± sd.
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let acc = |seed: &str| {
        json(&dir.join(seed).join("sft/skills.json"))["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["task"] == "reverse")
            .unwrap()["accuracy"]
            .as_f64()
            .unwrap()
    };
    let (m, s) = mean_sd(&[acc("seed-0"), acc("seed-1")]);
    let cell = format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * s);
    let reverse_line = report
        .lines()
        .find(|l| l.starts_with("| reverse words |"))
        .unwrap();
    assert!(reverse_line.contains(&cell), "{cell} not in {reverse_line}");
    for needle in [
        "Stage over stage",
        "sft − pretrain",
        "rlvr − dpo",
        "seed 1",
        "★",
        "wall time",
    ] {
        assert!(
            report.contains(needle),
            "{needle} missing from the sweep report:\n{report}"
        );
    }
    assert!(dir.join("report.html").is_file());
    assert!(dir.join("report/sweep_per_k.svg").is_file());
    // pass@k (tiny.toml has it on at K = 3): mean ± sd over the seeds, per stage, and a plot.
    assert!(report.contains("## pass@k after every stage"), "{report}");
    assert!(report.contains("| K=3 | cot-sft |"), "{report}");
    assert!(dir.join("report/sweep_pass_at_k_k3.svg").is_file());

    // Again: every stage is reused, and the report is written again.
    let again = sweep(runs.path(), &[]);
    assert_ok(&again);
    let err = stderr(&again);
    assert_eq!(err.matches("up to date").count(), 10, "{err}");

    // `pipeline --seed 1` into a seed's folder is the same run: nothing to redo.
    let single = run(xtask()
        .args([
            "pipeline", "--seed", "1", "--run", "s/seed-1", "--quiet", "--config",
        ])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&single);
    assert_eq!(
        stderr(&single).matches("up to date").count(),
        5,
        "{}",
        stderr(&single)
    );

    // The sweep's folder is not a run, nor a run a sweep.
    let into_sweep = run(xtask()
        .args(["pipeline", "--run", "s", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(!into_sweep.status.success());
    assert!(
        stderr(&into_sweep).contains("sweep"),
        "{}",
        stderr(&into_sweep)
    );
    let as_sweep = run(xtask()
        .args([
            "sweep", "--seeds", "0", "--run", "s/seed-0", "--quiet", "--config",
        ])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(!as_sweep.status.success());
    assert!(
        stderr(&as_sweep).contains("single run"),
        "{}",
        stderr(&as_sweep)
    );
}

#[test]
fn a_report_only_sweep_names_the_missing_seed() {
    let runs = tempfile::tempdir().unwrap();
    let out = sweep(runs.path(), &["--report-only"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("seed-0"), "{err}");
}

#[test]
fn a_bad_seed_list_is_one_line() {
    let out = run(xtask().args(["sweep", "--seeds", "0,x"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn checkpoint(run: &Path, stage: &str) -> Value {
    json(&run.join(stage).join("manifest.json"))["checkpoint_hash"].clone()
}

#[test]
fn a_grid_crosses_settings_with_seeds_and_cells_share_the_stages_before_it() {
    let runs = tempfile::tempdir().unwrap();
    let grid = ["--grid", "dpo.loss.loss_type=sigmoid,orpo"];
    let out = sweep(runs.path(), &grid);
    assert_ok(&out);
    let dir = runs.path().join("s");
    let sigmoid = dir.join("dpo.loss.loss_type=sigmoid");
    let orpo = dir.join("dpo.loss.loss_type=orpo");

    // The second cell copied the three stages the grid does not touch, seed by seed, and
    // trained its own DPO and RLVR.
    let err = stderr(&out);
    assert_eq!(err.matches(", copied").count(), 6, "{err}");
    for seed in ["seed-0", "seed-1"] {
        for stage in ["pretrain", "sft", "cot-sft"] {
            assert_eq!(
                checkpoint(&sigmoid.join(seed), stage),
                checkpoint(&orpo.join(seed), stage)
            );
        }
        assert_ne!(
            checkpoint(&sigmoid.join(seed), "dpo"),
            checkpoint(&orpo.join(seed), "dpo")
        );
        let info = json(&orpo.join(seed).join("run.json"));
        let sets = info["overrides"].as_array().unwrap();
        assert!(
            sets.iter().any(|s| s == "dpo.loss.loss_type=orpo"),
            "{sets:?}"
        );
    }
    // A copied stage is the stage training would make: an ordinary run with the cell's
    // settings, trained from scratch elsewhere, has the same five checkpoints.
    let alone = tempfile::tempdir().unwrap();
    assert_ok(&run(xtask()
        .args(["pipeline", "--seed", "1", "--run", "alone", "--quiet"])
        .args(["--set", "dpo.loss.loss_type=orpo", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(alone.path())));
    for stage in ["pretrain", "sft", "cot-sft", "dpo", "rlvr"] {
        assert_eq!(
            checkpoint(&alone.path().join("alone"), stage),
            checkpoint(&orpo.join("seed-1"), stage),
            "{stage}"
        );
    }

    // Each cell has its sweep report; the grid's compares the cells where they differ.
    assert!(sigmoid.join("report.md").is_file() && orpo.join("report.md").is_file());
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "pretrain, sft, cot-sft: the same checkpoints in every cell",
        "## After dpo",
        "## After rlvr",
        "| skill | dpo.loss.loss_type=sigmoid | dpo.loss.loss_type=orpo | \
         dpo.loss.loss_type=orpo − first |",
        "--grid dpo.loss.loss_type=sigmoid,orpo --report-only",
    ] {
        assert!(report.contains(needle), "{needle} not in:\n{report}");
    }
    assert!(!report.contains("## After cot-sft"), "{report}");
    assert!(dir.join("report.html").is_file());

    // Again: every run's every stage is up to date; a finished cell is never retrained.
    let again = sweep(runs.path(), &grid);
    assert_ok(&again);
    assert_eq!(stderr(&again).matches("up to date").count(), 20);

    // A grid's folder takes no sweep without a grid, and a cell is not a sweep's folder.
    let plain = sweep(runs.path(), &[]);
    assert!(!plain.status.success());
    assert!(
        stderr(&plain).contains("with a --grid"),
        "{}",
        stderr(&plain)
    );
    let into_cell = run(xtask()
        .args(["sweep", "--seeds", "0", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(&dir)
        .args(["--run", "dpo.loss.loss_type=orpo"]));
    assert!(!into_cell.status.success());
    assert!(
        stderr(&into_cell).contains("is a cell of a grid"),
        "{}",
        stderr(&into_cell)
    );
}
