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
fn unimplemented_stage_says_so_and_fails() {
    let out = run(xtask()
        .args(["stage", "dpo", "--config"])
        .arg(tiny_config()));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stage `dpo` is not implemented yet"),
        "{}",
        stderr(&out)
    );
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
fn mistyped_config_key_is_named() {
    let text = tiny_config_text().replace("batch_size = 8", "batch_sise = 8");
    let (_dir, out) = with_config(&text);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("batch_sise"), "{}", stderr(&out));
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
