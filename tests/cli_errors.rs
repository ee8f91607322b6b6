//! Bad input gets a clear error naming the key, and a non-zero exit.

mod common;

use common::*;

fn with_config(text: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(xtask()
        .args(["stage", "pretrain", "--quiet", "--config"])
        .arg(&path)
        .arg("--runs-dir")
        .arg(dir.path().join("runs")));
    (dir, out)
}

/// A mistyped stage name is clap's usage error (exit 2), on one line, listing the stages.
#[test]
fn unknown_stage_is_an_error_listing_the_stages() {
    let valid = "[possible values: pretrain, sft, cot-sft, dpo, rlvr]";
    for args in [
        &["stage", "finetune"][..],
        &["pipeline", "--restart-from", "finetune"][..],
    ] {
        let out = run(xtask().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("invalid value 'finetune'"), "{err}");
        assert!(err.contains(valid), "{err}");
    }
}

#[test]
fn mistyped_config_key_is_named_on_one_line() {
    let text = tiny_config_text().replacen("batch_size = 8", "batch_sise = 8", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("batch_sise"))
        .unwrap()
        + 1;
    let (_dir, out) = with_config(&text);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&format!("bad.toml:{line}:1:")), "{err}");
    assert!(err.contains("batch_sise"), "{err}");
}

#[test]
fn out_of_range_value_is_named() {
    let text = tiny_config_text().replace("lr = 3e-3", "lr = -1.0");
    let (dir, out) = with_config(&text);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pretrain.optimizer.lr must be > 0"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("runs").exists(),
        "nothing written for a bad config"
    );
}

#[test]
fn heads_must_divide_the_width() {
    let text = tiny_config_text().replace("n_heads = 2", "n_heads = 3");
    let (_dir, out) = with_config(&text);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("model.n_heads"), "{}", stderr(&out));
}

#[test]
fn wgpu_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "wgpu") {
        return; // this build has the GPU path; the message below is for builds without it
    }
    let out = run(xtask().args(["bench", "--device", "wgpu", "--steps", "1"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`wgpu` feature"), "{}", stderr(&out));
}

/// Each bad value names its key; nothing is written.
#[test]
fn out_of_range_stage_values_are_named() {
    for (from, to, message) in [
        ("beta = 0.1", "beta = 0.0", "dpo.loss.beta must be > 0"),
        (
            "ks = [2, 3]\ndirect_twin",
            "ks = [1, 3]\ndirect_twin",
            "cot-sft.ks must be digit counts in 2..=10",
        ),
        (
            "group_size = 8",
            "group_size = 1",
            "rlvr.group_size must be >= 2",
        ),
        (
            "lr = 1e-3\nweight_decay = 0.0\ngrad_clip = 1.0\n\n[rlvr]",
            "lr = 0.0\nweight_decay = 0.0\ngrad_clip = 1.0\n\n[rlvr]",
            "dpo.optimizer.lr must be > 0",
        ),
        ("per_k = 4", "per_k = 0", "eval.per_k must be > 0"),
    ] {
        let text = tiny_config_text();
        assert!(text.contains(from), "the tiny config has {from:?}");
        let (dir, out) = with_config(&text.replacen(from, to, 1));
        assert!(!out.status.success(), "{to}");
        assert!(stderr(&out).contains(message), "{to}: {}", stderr(&out));
        assert!(
            !dir.path().join("runs").exists(),
            "nothing written for {to}"
        );
    }
}

#[test]
fn malformed_jsonl_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"prompt\": \"1+2=\", \"chosen\": \"{1+2=3}3#\", \"rejected\": \"{1+2=4}4#\"}\n{\"prompt\": \"1+2=\"}\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    let text = tiny_config_text().replace(
        "[dpo]\n",
        &format!("[dpo]\ntrain_file = {:?}\n", pairs.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    let stage = |name: &str, from: Option<&std::path::Path>| {
        let mut cmd = xtask();
        cmd.args(["stage", name, "--quiet", "--run", "j", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(dir.path().join("runs"));
        if let Some(from) = from {
            cmd.arg("--from").arg(from);
        }
        run(&mut cmd)
    };
    assert_ok(&stage("pretrain", None));
    let out = stage("dpo", Some(&dir.path().join("runs/j/pretrain")));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("pairs.jsonl:2:") && err.contains("chosen"),
        "{err}"
    );
    assert!(
        !dir.path().join("runs/j/dpo/model.safetensors").exists(),
        "no checkpoint from bad data"
    );
}

fn stage_in(
    dir: &std::path::Path,
    config: &std::path::Path,
    run_name: &str,
    stage: &str,
    from: Option<&std::path::Path>,
) -> std::process::Output {
    let mut cmd = xtask();
    cmd.args(["stage", stage, "--quiet", "--run", run_name, "--config"])
        .arg(config)
        .arg("--runs-dir")
        .arg(dir.join("runs"));
    if let Some(from) = from {
        cmd.arg("--from").arg(from);
    }
    run(&mut cmd)
}

#[test]
fn a_truncated_parent_checkpoint_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "t", "pretrain", None));
    let checkpoint = dir.path().join("runs/t/pretrain/model.safetensors");
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 3]).unwrap();
    let out = stage_in(dir.path(), &config, "t", "sft", None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("pretrain/model.safetensors"), "{err}");
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        &bytes[..bytes.len() / 3]
    );
    assert!(!dir.path().join("runs/t/sft/model.safetensors").exists());
}

#[test]
fn a_parent_from_another_tokenizer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "chars", "pretrain", None));
    let bpe = dir.path().join("bpe.toml");
    std::fs::write(
        &bpe,
        tiny_config_text().replace("kind = \"char\"", "kind = \"bpe\""),
    )
    .unwrap();
    let parent = dir.path().join("runs/chars/pretrain");
    let out = stage_in(dir.path(), &bpe, "bytes", "sft", Some(&parent));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("was trained with tokenizer"), "{err}");
    assert!(!dir.path().join("runs/bytes/sft/model.safetensors").exists());
}

#[test]
fn an_example_with_nothing_to_train_on_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sft.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"<abcd>\", \"completion\": \"dcba#\"}\n{\"prompt\": \"<wxyz>\", \"completion\": \"\"}\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    let text = tiny_config_text().replace(
        "[sft]\n",
        &format!("[sft]\ntrain_file = {:?}\n", data.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "e", "pretrain", None));
    let out = stage_in(dir.path(), &config, "e", "sft", None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("example 2") && err.contains("empty completion"),
        "{err}"
    );
}

#[test]
fn set_overrides_a_setting_and_is_checked_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    let stage = |extra: &[&str]| {
        run(xtask()
            .args(["stage", "pretrain", "--quiet", "--run", "s", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(dir.path().join("runs"))
            .args(extra))
    };
    let out = stage(&["--set", "dpo.loss.beta=0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("dpo.loss.beta must be > 0"),
        "{}",
        stderr(&out)
    );
    let out = stage(&["--set", "pretrain.stepz=3"]);
    assert!(stderr(&out).contains("stepz"), "{}", stderr(&out));
    let out = stage(&["--set", "rlvr.loss_type=grpoo"]);
    let err = stderr(&out);
    assert!(
        err.contains("--set rlvr.loss_type=grpoo") && err.contains("dr_grpo"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // TRL's names, TRL's math: rpo_alpha is DPOTrainer's, not ORPO's; μ > 1 needs a ratio.
    let out = stage(&[
        "--set",
        "dpo.loss.loss_type=orpo",
        "--set",
        "dpo.loss.rpo_alpha=1",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("dpo.loss.rpo_alpha") && err.contains("orpo"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = stage(&["--set", "rlvr.num_iterations=2"]);
    let err = stderr(&out);
    assert!(
        err.contains("rlvr.num_iterations = 2 needs one of TRL's loss types"),
        "{err}"
    );
    let out = stage(&[
        "--set",
        "rlvr.curriculum.frontier=[3]",
        "--set",
        "rlvr.curriculum.advance_at=0.5",
        "--set",
        "rlvr.curriculum.check_every=10",
        "--set",
        "rlvr.curriculum.check_problems=4",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("rlvr.curriculum.frontier: K = 3 is in rlvr.ks"),
        "{err}"
    );
    let out = stage(&["--set", "pass_at_k.temperature=0"]);
    assert!(
        stderr(&out).contains("pass_at_k.temperature must be > 0"),
        "{}",
        stderr(&out)
    );
    assert_ok(&stage(&[
        "--set",
        "pretrain.steps=7",
        "--set",
        "pretrain.log_every=7",
    ]));
    let rows =
        trainer::metrics::read_rows(&dir.path().join("runs/s/pretrain/metrics.jsonl")).unwrap();
    assert_eq!(rows.last().unwrap()["step"], 7);
}

#[test]
fn eval_refuses_to_overwrite_a_stages_own_eval_json() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("cot-sft");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("eval.json"), "[]").unwrap();
    let out = run(xtask()
        .args(["eval", "--from"])
        .arg(&stage)
        .arg("--out")
        .arg(stage.join("eval.json")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("eval.json belongs to the stage"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(stage.join("eval.json")).unwrap(),
        "[]"
    );
}

/// A stage folder's files (path → bytes), to check that a refused command touched nothing.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// One line, exit 1, no panic.
fn assert_one_line_error(out: &std::process::Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_malformed_manifest_is_named_by_report_pipeline_and_stage() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "m", "pretrain", None));
    let manifest = dir.path().join("runs/m/pretrain/manifest.json");
    let good = std::fs::read_to_string(&manifest).unwrap();
    let hash = serde_json::from_str::<serde_json::Value>(&good).unwrap()["checkpoint_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let report = || {
        run(xtask()
            .args(["report", "--run", "m", "--runs-dir"])
            .arg(dir.path().join("runs")))
    };
    let pipeline = || {
        run(xtask()
            .args(["pipeline", "--quiet", "--run", "m", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(dir.path().join("runs")))
    };
    for (bad, field) in [
        (good.replace(&hash, "abc"), "checkpoint_hash"),
        (good[..good.len() / 2].to_string(), "EOF"),
    ] {
        std::fs::write(&manifest, &bad).unwrap();
        for out in [
            report(),
            pipeline(),
            stage_in(dir.path(), &config, "m", "sft", None),
        ] {
            let err = assert_one_line_error(&out);
            assert!(
                err.contains("m/pretrain/manifest.json is not a valid manifest"),
                "{err}"
            );
            assert!(err.contains(field), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(&manifest).unwrap(),
            bad,
            "left alone"
        );
        for file in ["model.safetensors", "manifest.json"] {
            let path = dir.path().join("runs/m/sft").join(file);
            assert!(!path.exists(), "nothing trained on it: {}", path.display());
        }
        assert!(!dir.path().join("runs/m/report.md").exists());
    }
}

/// `report` refuses a malformed metrics line, naming file and line, and writes nothing.
#[test]
fn a_malformed_metrics_line_fails_the_report_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "r", "pretrain", None));
    let metrics = dir.path().join("runs/r/pretrain/metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("{\"step\": 35, \"loss\"\n");
    std::fs::write(&metrics, text).unwrap();
    let out = run(xtask()
        .args(["report", "--run", "r", "--runs-dir"])
        .arg(dir.path().join("runs")));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains(&format!("r/pretrain/metrics.jsonl:{line}:")),
        "{err}"
    );
    let run_dir = dir.path().join("runs/r");
    for written in ["report.md", "report.html", "report"] {
        assert!(!run_dir.join(written).exists(), "{written} written");
    }
}

/// While another process holds a run's lock, every command that writes the run refuses in
/// one line naming the run and the holder's pid, and leaves every file as it was.
#[test]
fn a_run_in_use_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    assert_ok(&stage_in(dir.path(), &config, "l", "pretrain", None));
    let run_dir = dir.path().join("runs/l");

    // This test process is the first holder.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(run_dir.join("run.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(
        run_dir.join("run.lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let before = snapshot(&run_dir);

    let runs = dir.path().join("runs");
    let commands: [Vec<&std::ffi::OsStr>; 3] = [
        [
            "stage",
            "pretrain",
            "--quiet",
            "--run",
            "l",
            "--set",
            "pretrain.steps=5",
        ]
        .map(std::ffi::OsStr::new)
        .to_vec(),
        ["pipeline", "--quiet", "--run", "l"]
            .map(std::ffi::OsStr::new)
            .to_vec(),
        ["report", "--run", "l"].map(std::ffi::OsStr::new).to_vec(),
    ];
    for args in commands {
        let mut cmd = xtask();
        cmd.args(&args).arg("--runs-dir").arg(&runs);
        if args[0] != "report" {
            cmd.arg("--config").arg(&config);
        }
        let err = assert_one_line_error(&run(&mut cmd));
        assert!(
            err.contains(&format!("run {} is in use", run_dir.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {} holds", std::process::id())),
            "{err}"
        );
    }
    assert_eq!(
        snapshot(&run_dir),
        before,
        "the first run's files are untouched"
    );

    // Released: the run is usable again.
    drop(lock);
    assert_ok(&run(xtask()
        .args(["report", "--run", "l", "--runs-dir"])
        .arg(&runs)));
}

/// Kills its child when dropped, so a failed assertion never leaves a training process.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two real processes: the second names the first's pid; killing the first (a crash)
/// releases the run.
#[test]
fn a_killed_holder_releases_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, tiny_config_text()).unwrap();
    let runs = dir.path().join("runs");
    let mut first = KillOnDrop(
        xtask()
            .args(["stage", "pretrain", "--quiet", "--run", "k", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(&runs)
            .args(["--set", "pretrain.steps=100000000"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = first.0.id().to_string();
    let lock = runs.join("k/run.lock");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != pid {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first process ended early"
        );
        assert!(started.elapsed().as_secs() < 120, "no lock after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = || {
        run(xtask()
            .args(["report", "--run", "k", "--runs-dir"])
            .arg(&runs))
    };
    let err = assert_one_line_error(&report());
    assert!(err.contains(&format!("pid {pid} holds")), "{err}");

    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert_ok(&report());
}

/// A bad `--grid` or launcher option is one line naming it, before anything is written.
#[test]
fn bad_sweep_grids_and_launchers_are_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let sweep = |extra: &[&str]| {
        run(xtask()
            .args([
                "sweep", "--seeds", "0,1", "--run", "g", "--quiet", "--config",
            ])
            .arg(tiny_config())
            .arg("--runs-dir")
            .arg(&runs)
            .env("PATH", empty_path.path())
            .args(extra))
    };
    for (extra, needle) in [
        (
            &["--grid", "dpo.loss.loss_typo=sigmoid,orpo"][..],
            "--grid cell dpo.loss.loss_typo=sigmoid",
        ),
        (&["--grid", "dpo.loss.beta=0.1,high"][..], "dpo.loss.beta"),
        (&["--grid", "dpo.loss.beta"][..], "expected KEY=V1,V2"),
        (
            &["--launcher", "slurm"][..],
            "--launcher slurm needs Slurm's sbatch on the PATH",
        ),
        (
            &["--partition", "gpu"][..],
            "--partition is an option of --launcher slurm",
        ),
    ] {
        let out = sweep(extra);
        assert!(!out.status.success(), "{extra:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let unknown = stderr(&sweep(&["--grid", "dpo.loss.loss_typo=sigmoid,orpo"]));
    assert!(unknown.contains("loss_typo"), "{unknown}");
    // Nothing was written, for any of them.
    assert!(!runs.join("g").exists());
}
