//! An independent implementation agrees with ours: a NumPy forward pass of the lesson model
//! (bench/parity.py) reads our checkpoint and reproduces our logits to 1e-4, and Python's
//! `tokenizers` reading our tokenizer.json gives the same ids. Needs python3 with numpy,
//! safetensors and tokenizers (`.ci/run` installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn numpy_forward_and_python_tokenizers_match_ours() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    assert_ok(&run(xtask()
        .args(["stage", "pretrain", "--quiet", "--run", "p", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(&runs)));
    let stage = runs.join("p/pretrain");
    let logits = dir.path().join("logits.json");
    assert_ok(&run(xtask()
        .args([
            "logits",
            "--prompt",
            "ROMEO:\nWhat? 3+4+5={3+4=7}7#",
            "--from",
        ])
        .arg(&stage)
        .arg("--out")
        .arg(&logits)));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/parity.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--from")
        .arg(&stage)
        .arg("--expect")
        .arg(&logits)
        .output()
        .expect("python3 runs (install it with numpy, safetensors and tokenizers)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "parity failed:\n{text}");
    assert!(text.contains("ids equal"), "{text}");
}
