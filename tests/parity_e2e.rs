//! An independent implementation agrees with ours: a NumPy forward pass of the lesson model
//! (bench/parity.py) reads our checkpoint and reproduces our logits to 1e-4, and Python's
//! `tokenizers` reading our tokenizer.json gives the same ids. The same holds for the
//! `transformers` folder that `xtask export` writes, read by GPT-2's names and config, with the
//! greedy completion equal too. Needs Python 3 with numpy, safetensors and tokenizers: `python3`
//! when it has them, else a venv the tests make under target/ (`common::parity_python`); the
//! check by `transformers` itself needs torch and transformers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tiny pretrained checkpoint and our logits and greedy completion for one prompt.
fn pretrained_with_logits(dir: &Path, prompt: &str) -> (PathBuf, PathBuf) {
    pretrained_with_logits_and(dir, prompt, &[])
}

/// The same with `--set` items for the stage.
fn pretrained_with_logits_and(dir: &Path, prompt: &str, sets: &[&str]) -> (PathBuf, PathBuf) {
    let runs = dir.join("runs");
    assert_ok(&run(xtask()
        .args(["stage", "pretrain", "--quiet", "--run", "p", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(&runs)
        .args(sets.iter().flat_map(|s| ["--set", s]))));
    let stage = runs.join("p/pretrain");
    let logits = dir.join("logits.json");
    assert_ok(&run(xtask()
        .args(["logits", "--prompt", prompt, "--from"])
        .arg(&stage)
        .arg("--out")
        .arg(&logits)));
    (stage, logits)
}

fn export(stage: &Path, out: &Path) {
    assert_ok(&run(xtask()
        .args(["export", "--from"])
        .arg(stage)
        .arg("--out")
        .arg(out)));
}

fn bench_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench")
        .join(name)
}

/// Runs a Python check; returns (success, stdout + stderr).
fn python(interpreter: &Path, script: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(interpreter)
        .arg(bench_script(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", interpreter.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// bench/parity.py on `--from STAGE` or `--hf FOLDER` against our logits in `expect`.
fn numpy_parity(python_path: &Path, flag: &str, source: &Path, expect: &Path) -> (bool, String) {
    python(
        python_path,
        "parity.py",
        &[
            flag.as_ref(),
            source.as_os_str(),
            "--expect".as_ref(),
            expect.as_os_str(),
        ],
    )
}

#[test]
fn numpy_forward_and_python_tokenizers_match_ours() {
    let Some(numpy_python) =
        parity_python_or_skip("numpy_forward_and_python_tokenizers_match_ours")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, logits) = pretrained_with_logits(dir.path(), "ROMEO:\nWhat? 3+4+5={3+4=7}7#");
    let (ok, text) = numpy_parity(&numpy_python, "--from", &stage, &logits);
    assert!(ok, "parity failed:\n{text}");
    assert!(text.contains("ids equal"), "{text}");
}

#[test]
fn the_transformers_export_read_by_gpt2_names_matches_ours() {
    let Some(numpy_python) =
        parity_python_or_skip("the_transformers_export_read_by_gpt2_names_matches_ours")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, logits) = pretrained_with_logits(dir.path(), "3+4+5=");
    let hf = dir.path().join("hf");
    export(&stage, &hf);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "gpt2");
    assert_eq!(config["activation_function"], "gelu");
    assert_eq!(config["n_positions"], 32);
    let (ok, text) = numpy_parity(&numpy_python, "--hf", &hf, &logits);
    assert!(ok, "export parity failed:\n{text}");
    assert!(
        text.contains("ids equal") && text.contains("greedy completion"),
        "{text}"
    );

    // A broken weight is caught: the check must be able to fail.
    let broken = dir.path().join("broken");
    export(&stage, &broken);
    std::fs::copy(
        hf.join("model.safetensors"),
        broken.join("model.safetensors"),
    )
    .unwrap();
    let mut config = config;
    config["layer_norm_epsilon"] = serde_json::json!(1e-1);
    std::fs::write(broken.join("config.json"), config.to_string()).unwrap();
    let (ok, text) = numpy_parity(&numpy_python, "--hf", &broken, &logits);
    assert!(!ok, "a wrong ε still matched:\n{text}");
}

/// A model without positions (`model.position = "none"`): the NumPy forward pass reads it from
/// our checkpoint, and the export (GPT-2 with all-zero position vectors) gives our logits too.
#[test]
fn without_positions_numpy_and_the_export_match_ours() {
    let Some(numpy_python) =
        parity_python_or_skip("without_positions_numpy_and_the_export_match_ours")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, logits) =
        pretrained_with_logits_and(dir.path(), "3+4+5={3+4=7}7#", &["model.position=none"]);
    let hf = dir.path().join("hf");
    export(&stage, &hf);
    for (flag, source) in [("--from", &stage), ("--hf", &hf)] {
        let (ok, text) = numpy_parity(&numpy_python, flag, source, &logits);
        assert!(ok, "parity without positions failed ({flag}):\n{text}");
    }
}

/// RoPE (`model.position = "rope"`): the NumPy forward pass turns queries and keys as we do
/// and gives our logits; the export refuses it in one line naming the setting, since GPT-2's
/// layout cannot hold it.
#[test]
fn with_rope_numpy_matches_ours_and_the_export_refuses() {
    let Some(numpy_python) =
        parity_python_or_skip("with_rope_numpy_matches_ours_and_the_export_refuses")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, logits) =
        pretrained_with_logits_and(dir.path(), "3+4+5={3+4=7}7#", &["model.position=rope"]);
    let (ok, text) = numpy_parity(&numpy_python, "--from", &stage, &logits);
    assert!(ok, "parity with RoPE failed:\n{text}");
    let out = run(xtask()
        .args(["export", "--from"])
        .arg(&stage)
        .arg("--out")
        .arg(dir.path().join("hf")));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("model.position = \"rope\""), "{err}");
    assert!(!dir.path().join("hf").exists());
}

/// The Python that has torch and transformers: `GPT_MINI_TRANSFORMERS_PYTHON`, else the
/// bench's venv (`target/pytorch-venv`, README "How fast").
fn transformers_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("GPT_MINI_TRANSFORMERS_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pytorch-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import torch, transformers"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn transformers_itself_loads_the_export_and_matches_ours() {
    let Some(interpreter) = transformers_python() else {
        eprintln!(
            "SKIPPED transformers_itself_loads_the_export_and_matches_ours: no Python with torch \
             and transformers (set GPT_MINI_TRANSFORMERS_PYTHON, or create target/pytorch-venv \
             as the README says); the NumPy check by transformers' names still ran"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, logits) = pretrained_with_logits(dir.path(), "3+4+5=");
    let hf = dir.path().join("hf");
    export(&stage, &hf);
    let (ok, text) = python(
        &interpreter,
        "hf_check.py",
        &[
            "--hf".as_ref(),
            hf.as_os_str(),
            "--expect".as_ref(),
            logits.as_os_str(),
        ],
    );
    assert!(ok, "transformers disagrees:\n{text}");
    assert!(
        text.contains("GPT2LMHeadModel") && text.contains("equal"),
        "{text}"
    );
}
