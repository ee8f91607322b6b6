//! Kill a training stage with SIGKILL mid-run, rerun it, and get a finished stage whose
//! metrics are continuous: resumed from the last snapshot, nothing logged twice or lost.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_killed_stage_resumes_from_its_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kill.toml");
    let text = format!(
        "checkpoint_every = 40\n{}",
        tiny_config_text().replacen("steps = 30", "steps = 1500", 1)
    );
    std::fs::write(&config, text).unwrap();
    let runs = dir.path().join("runs");
    let stage = || {
        let mut cmd = xtask();
        cmd.args(["stage", "pretrain", "--quiet", "--run", "k", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(&runs);
        cmd
    };
    let stage_dir = runs.join("k/pretrain");

    // Start, wait for the first snapshot, kill without warning.
    let mut child = stage()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !stage_dir.join("resume-pretrain/state.json").is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no snapshot appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !stage_dir.join("manifest.json").exists(),
        "killed before it finished"
    );
    let logged_before = trainer::metrics::read_rows(&stage_dir.join("metrics.jsonl"))
        .unwrap()
        .len();

    // The rerun resumes and finishes.
    let out = run(&mut stage());
    assert_ok(&out);
    assert!(
        stderr(&out).contains("resuming from step"),
        "{}",
        stderr(&out)
    );
    assert!(stage_dir.join("manifest.json").is_file());
    assert!(
        !stage_dir.join("resume-pretrain").exists(),
        "snapshot removed when done"
    );
    let steps: Vec<u64> = trainer::metrics::read_rows(&stage_dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=300).map(|i| i * 5).collect();
    assert_eq!(steps, expected, "every logged step exactly once, in order");
    assert!(logged_before > 0 && logged_before < expected.len());

    // The final checkpoint is a valid one.
    let out = run(xtask()
        .args(["sample", "--max-tokens", "5", "--from"])
        .arg(&stage_dir));
    assert_ok(&out);
}

/// Every stage, stopped right after a snapshot and rerun, ends with the checkpoint and the
/// metrics of an uninterrupted run, bit for bit. RLVR's steps draw different numbers of
/// random values (rollouts end at different lengths), so a resume that replayed draws would
/// drift; one that derives each step's draws from (seed, step) cannot.
#[test]
fn every_stage_resumed_after_an_interruption_equals_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("resume.toml");
    std::fs::write(
        &config,
        format!("checkpoint_every = 2\n{}", tiny_config_text()),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let xtask_in = |args: &[&str]| {
        let mut cmd = xtask();
        cmd.args(args)
            .args(["--quiet", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(&runs);
        cmd
    };
    assert_ok(&run(&mut xtask_in(&["pipeline", "--run", "whole"])));

    // Stop each stage after a snapshot partway through its first loop; SFT also right after
    // its main loop ends (the snapshot at its last step), before its ablation twin: the rerun
    // resumes at that end instead of training the main loop again.
    for (stage, stop_after) in [
        ("pretrain", "10"),
        ("sft", "10"),
        ("sft", "20"),
        ("cot-sft", "10"),
        ("dpo", "2"),
        ("rlvr", "2"),
    ] {
        let out = run(xtask_in(&["stage", stage, "--run", "split"])
            .env("XTASK_INTERRUPT_AFTER_STEP", stop_after));
        assert!(!out.status.success(), "{stage} was not interrupted");
        assert!(
            stderr(&out).contains("interrupted after the snapshot at step"),
            "{stage}: {}",
            stderr(&out)
        );
        let out = run(&mut xtask_in(&["stage", stage, "--run", "split"]));
        assert_ok(&out);
        assert!(
            stderr(&out).contains("resuming from step"),
            "{stage}: {}",
            stderr(&out)
        );

        let manifest = |run: &str| -> serde_json::Value {
            let path = runs.join(run).join(stage).join("manifest.json");
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        assert_eq!(
            manifest("split")["checkpoint_hash"],
            manifest("whole")["checkpoint_hash"],
            "{stage}: the resumed checkpoint differs from the uninterrupted one"
        );
        let rows = |run: &str| {
            let path = runs.join(run).join(stage).join("metrics.jsonl");
            let mut rows = trainer::metrics::read_rows(&path).unwrap();
            for row in &mut rows {
                row.remove("tokens_per_s");
                row.remove("pairs_per_s");
            }
            rows
        };
        assert_eq!(rows("split"), rows("whole"), "{stage}: metrics differ");
    }
}
