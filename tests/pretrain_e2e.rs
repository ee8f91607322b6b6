//! The pretrain stage end to end on the tiny config: files, manifest, falling loss, sampling.

mod common;

use common::*;
use serde_json::Value;

fn rows(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sha256(path: &std::path::Path) -> String {
    trainer::outputs::checkpoint_hash(path).unwrap()
}

#[test]
fn pretrain_writes_its_files_and_the_loss_goes_down() {
    let runs = tempfile::tempdir().unwrap();
    let out = run(xtask()
        .args(["stage", "pretrain", "--run", "t", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&out);

    let dir = runs.path().join("t/pretrain");
    for file in [
        "model.safetensors",
        "manifest.json",
        "metrics.jsonl",
        "tokenizer.json",
    ] {
        assert!(dir.join(file).is_file(), "missing {file}");
    }

    let metrics = rows(&dir.join("metrics.jsonl"));
    for row in &metrics {
        for key in ["step", "loss", "lr", "tokens_per_s"] {
            assert!(row.get(key).is_some(), "row without {key}: {row}");
        }
    }
    let val: Vec<f64> = metrics
        .iter()
        .filter_map(|r| r["val_loss"].as_f64())
        .collect();
    assert!(val.len() >= 2, "val_loss logged at every eval");
    assert!(
        val.last() < val.first(),
        "validation loss went down: {val:?}"
    );
    let first = metrics.first().unwrap()["loss"].as_f64().unwrap();
    let last = metrics.last().unwrap()["loss"].as_f64().unwrap();
    assert!(last < first, "training loss went down: {first} → {last}");

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["stage"], "pretrain");
    assert_eq!(manifest["step"], 30);
    assert_eq!(
        manifest["checkpoint_hash"],
        sha256(&dir.join("model.safetensors"))
    );
    let tokenizer = data::TextTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    assert_eq!(manifest["tokenizer_hash"], tokenizer.hash());
    assert!(manifest["parent_checkpoint_hash"].is_null());
    assert_eq!(manifest["model"]["vocab_size"], tokenizer.vocab_size());

    // The checkpoint samples: the continuation has the requested length in tokens.
    let out = run(xtask()
        .args([
            "sample",
            "--prompt",
            "ROMEO:",
            "--max-tokens",
            "20",
            "--seed",
            "1",
            "--from",
        ])
        .arg(&dir));
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.starts_with("ROMEO:"), "{text}");
    let continuation = text.trim_end_matches('\n').strip_prefix("ROMEO:").unwrap();
    assert_eq!(
        tokenizer.encode(continuation).unwrap().len(),
        20,
        "{text:?}"
    );
}

#[test]
fn pipeline_runs_every_stage_and_writes_the_report() {
    let runs = tempfile::tempdir().unwrap();
    let out = run(xtask()
        .args(["pipeline", "--run", "p", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&out);
    assert!(runs.path().join("p/pretrain/model.safetensors").is_file());
    assert!(runs.path().join("p/tokenizer.json").is_file());
    assert!(runs.path().join("p/rlvr/model.safetensors").is_file());
    let report = std::fs::read_to_string(runs.path().join("p/report.md")).unwrap();
    for section in [
        "## The chain",
        "## Pretrain",
        "## SFT",
        "## CoT-SFT",
        "## DPO",
        "## RLVR",
        "per K after every stage",
    ] {
        assert!(report.contains(section), "{section} in\n{report}");
    }
    let html = std::fs::read_to_string(runs.path().join("p/report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("report/pretrain_loss.svg"));
    let svg = std::fs::read_to_string(runs.path().join("p/report/pretrain_loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    // A rerun skips every finished stage; --restart-from redoes a stage and what follows.
    let again = |extra: &[&str]| {
        run(xtask()
            .args(["pipeline", "--run", "p", "--quiet", "--config"])
            .arg(tiny_config())
            .arg("--runs-dir")
            .arg(runs.path())
            .args(extra))
    };
    let modified = |stage: &str| {
        std::fs::metadata(runs.path().join(format!("p/{stage}/manifest.json")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = ["pretrain", "sft", "cot-sft", "dpo", "rlvr"]
        .map(modified)
        .into();
    let out = again(&[]);
    assert_ok(&out);
    assert_eq!(
        stderr(&out).matches("up to date").count(),
        5,
        "{}",
        stderr(&out)
    );
    // The same config reached by another spelling of its path (relative, from its own
    // folder): the settings hash what the file wrote, so nothing is retrained.
    let config = tiny_config();
    let out = run(xtask()
        .current_dir(config.parent().unwrap())
        .args(["pipeline", "--run", "p", "--quiet", "--config"])
        .arg(config.file_name().unwrap())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&out);
    assert_eq!(
        stderr(&out).matches("up to date").count(),
        5,
        "{}",
        stderr(&out)
    );
    let out = again(&["--restart-from", "dpo"]);
    assert_ok(&out);
    assert_eq!(
        stderr(&out).matches("up to date").count(),
        3,
        "{}",
        stderr(&out)
    );
    let after: Vec<_> = ["pretrain", "sft", "cot-sft", "dpo", "rlvr"]
        .map(modified)
        .into();
    assert_eq!(before[..3], after[..3], "pretrain, sft, cot-sft untouched");
    assert!(
        after[3] > before[3] && after[4] > before[4],
        "dpo and rlvr redone"
    );
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}
