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

#[test]
fn unknown_stage_is_an_error() {
    let out = run(xtask().args(["stage", "finetune"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown stage `finetune`"),
        "{}",
        stderr(&out)
    );
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
            "cot-sft.ks must be digit counts in 2..=9",
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
