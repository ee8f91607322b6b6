//! The five-stage chain on the tiny config: each stage starts from its parent's final
//! weights, and each writes the evaluation its lesson asks for.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn losses(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn rows_with<'a>(eval: &'a Value, task: &str, mode: &str) -> Vec<&'a Value> {
    eval.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["task"] == task && r["mode"] == mode)
        .collect()
}

#[test]
fn the_chain_links_each_stage_to_its_parent() {
    let runs = tempfile::tempdir().unwrap();
    let out = run(xtask()
        .args(["pipeline", "--run", "c", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&out);
    let run_dir = runs.path().join("c");

    // With [pass_at_k] on (tiny.toml: K = 3, 4 problems, n = 4), the checkpoints that write
    // traces carry pass@k in their skills, those before them do not, and the report shows it.
    for stage in ["pretrain", "sft", "cot-sft", "dpo", "rlvr"] {
        let skills = json(&run_dir.join(stage).join("skills.json"));
        let pass = skills["pass_at_k"].as_array();
        let wants = !matches!(stage, "pretrain" | "sft");
        assert_eq!(pass.is_some(), wants, "{stage}: {skills}");
        if let Some(pass) = pass {
            assert_eq!(pass.len(), 1);
            assert_eq!(pass[0]["k"], 3);
            assert_eq!(pass[0]["correct"].as_array().unwrap().len(), 4);
            let budgets: Vec<&String> = pass[0]["pass_at"].as_object().unwrap().keys().collect();
            assert_eq!(budgets, ["1", "2", "4"]);
        }
    }
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("## pass@k after every stage"), "{report}");
    assert!(report.contains("| K=3 | rlvr |"), "{report}");
    assert!(run_dir.join("report/pass_at_k_k3.svg").is_file());

    for (stage, parent) in [
        ("sft", "pretrain"),
        ("cot-sft", "sft"),
        ("dpo", "cot-sft"),
        ("rlvr", "dpo"),
    ] {
        let manifest = json(&run_dir.join(stage).join("manifest.json"));
        let parent_manifest = json(&run_dir.join(parent).join("manifest.json"));
        assert_eq!(
            manifest["parent_checkpoint_hash"], parent_manifest["checkpoint_hash"],
            "{stage} starts from {parent}'s final checkpoint"
        );
        // On the tiny model every RLVR group is dead (no rollout is correct), so GRPO
        // rightly makes no update; its rows below say so.
        if stage != "rlvr" {
            assert_ne!(
                manifest["checkpoint_hash"], parent_manifest["checkpoint_hash"],
                "{stage} trained"
            );
        }
        assert_eq!(
            manifest["tokenizer_hash"],
            parent_manifest["tokenizer_hash"]
        );
        if !["dpo", "rlvr"].contains(&stage) {
            let l = losses(&run_dir.join(stage).join("metrics.jsonl"));
            assert!(l.last() < l.first(), "{stage} loss went down: {l:?}");
        }
    }

    // DPO: policy = reference at step 0, so the first step's loss is ln 2 and its margin 0;
    // the margin then grows. Metrics under TRL's names; preference accuracy in eval.json.
    let rows = trainer::metrics::read_rows(&run_dir.join("dpo/metrics.jsonl")).unwrap();
    let first = &rows[0];
    assert_eq!(first["step"], 1);
    let loss0 = first["loss"].as_f64().unwrap();
    assert!(
        (loss0 - std::f64::consts::LN_2).abs() < 1e-4,
        "loss at step 1: {loss0}"
    );
    assert!(first["rewards/margins"].as_f64().unwrap().abs() < 1e-4);
    let last = rows.last().unwrap();
    for key in [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
    ] {
        assert!(last[key].as_f64().unwrap().is_finite(), "{key}");
    }
    assert!(
        last["rewards/margins"].as_f64().unwrap() > 0.0,
        "the margin grew: {last:?}"
    );
    let dpo = json(&run_dir.join("dpo/eval.json"));
    for split in ["train", "held_out"] {
        let rows = rows_with(&dpo, "preference", split);
        assert_eq!(rows.len(), 1, "{split}");
        assert!(rows[0]["margin"].as_f64().is_some());
    }
    assert_eq!(rows_with(&dpo, "digit_sum", "cot").len(), 2);
    let pairs = std::fs::read_to_string(run_dir.join("dpo/train.jsonl")).unwrap();
    let pair: Value = serde_json::from_str(pairs.lines().next().unwrap()).unwrap();
    assert_eq!(
        pair["chosen"].as_str().unwrap().len(),
        pair["rejected"].as_str().unwrap().len()
    );
    // SFT: the ablation pair, on the held-out words.
    let sft = json(&run_dir.join("sft/eval.json"));
    for mode in ["masked", "unmasked"] {
        let rows = rows_with(&sft, "reverse", mode);
        assert_eq!(rows.len(), 1, "one {mode} row");
        assert!(rows[0]["n"].as_u64().unwrap() > 100);
    }

    // CoT-SFT: per K, both formats, plus the old skill.
    let cot = json(&run_dir.join("cot-sft/eval.json"));
    for mode in ["cot", "direct"] {
        let ks: Vec<u64> = rows_with(&cot, "digit_sum", mode)
            .iter()
            .map(|r| r["k"].as_u64().unwrap())
            .collect();
        assert_eq!(ks, vec![2, 3], "{mode}");
    }
    assert_eq!(rows_with(&cot, "reverse", "after-cot").len(), 1);

    // The training sets are written out in TRL's shape.
    let first = std::fs::read_to_string(run_dir.join("cot-sft/train.jsonl")).unwrap();
    let row: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert!(row["prompt"].as_str().unwrap().ends_with('='));
    assert!(row["completion"].as_str().unwrap().starts_with('{'));

    // RLVR: TRL's GRPO metric names every step, per-K accuracy of parent and policy. The tiny
    // settings give mixed groups, so the update path runs: loss and KL are finite where a
    // step updated (null where every group was dead), and the policy moved off its parent.
    let rows = trainer::metrics::read_rows(&run_dir.join("rlvr/metrics.jsonl")).unwrap();
    assert_eq!(rows.len(), 4);
    for key in [
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "completions/mean_length",
        "completions/clipped_ratio",
    ] {
        assert!(rows.iter().all(|r| r[key].is_number()), "{key}: {rows:?}");
    }
    let mut updates = 0;
    for r in &rows {
        let dead = r["frac_reward_zero_std"].as_f64().unwrap();
        let updated = r["updates"].as_u64().unwrap();
        assert!(
            (dead < 1.0) == (updated > 0),
            "a step updates iff some group is alive: {r:?}"
        );
        for key in ["loss", "kl"] {
            match r[key].as_f64() {
                Some(value) => assert!(value.is_finite() && updated > 0, "{key}: {r:?}"),
                None => assert!(r[key].is_null() && updated == 0, "{key}: {r:?}"),
            }
        }
        assert!(r["kl"].as_f64().is_none_or(|kl| kl >= 0.0), "{r:?}");
        updates += updated;
    }
    assert!(updates > 0, "RLVR never updated the policy: {rows:?}");
    assert_ne!(
        json(&run_dir.join("rlvr/manifest.json"))["checkpoint_hash"],
        json(&run_dir.join("dpo/manifest.json"))["checkpoint_hash"],
        "the policy moved"
    );
    let rlvr = json(&run_dir.join("rlvr/eval.json"));
    for mode in ["parent", "cot"] {
        assert_eq!(rows_with(&rlvr, "digit_sum", mode).len(), 2, "{mode}");
    }

    // Any stage runs alone from an explicit parent folder, into another run.
    let out = run(xtask()
        .args(["stage", "cot-sft", "--run", "other", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path())
        .arg("--from")
        .arg(run_dir.join("sft")));
    assert_ok(&out);
    let manifest = json(&runs.path().join("other/cot-sft/manifest.json"));
    assert_eq!(
        manifest["parent_checkpoint_hash"],
        json(&run_dir.join("sft/manifest.json"))["checkpoint_hash"]
    );

    // `eval` scores any checkpoint and writes eval.suite.json beside it, leaving the stage's
    // own eval.json (what the report reads) as it was.
    let stage_eval = std::fs::read(run_dir.join("cot-sft/eval.json")).unwrap();
    for stage in ["pretrain", "cot-sft"] {
        let out = run(xtask()
            .args(["eval", "--ks", "2", "--per-k", "3", "--words"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/words4.txt"))
            .arg("--from")
            .arg(run_dir.join(stage)));
        assert_ok(&out);
        let eval = json(&run_dir.join(stage).join("eval.suite.json"));
        assert_eq!(rows_with(&eval, "digit_sum", "cot").len(), 1);
    }
    assert_eq!(
        std::fs::read(run_dir.join("cot-sft/eval.json")).unwrap(),
        stage_eval
    );
    // With --samples, pass@k per K beside it: budgets 1, 2, 4 and 6, from each problem's count
    // of correct samples, pass@1 their mean, and pass@k never falling as k grows.
    let out = run(xtask()
        .args([
            "eval",
            "--ks",
            "2,3",
            "--per-k",
            "3",
            "--samples",
            "6",
            "--words",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/words4.txt"))
        .arg("--from")
        .arg(run_dir.join("cot-sft"))
        // A folder that does not exist yet is made.
        .arg("--out")
        .arg(run_dir.join("passk/new/suite.json")));
    assert_ok(&out);
    let pass = json(&run_dir.join("passk/new/pass_at_k.json"));
    let pass = pass.as_array().unwrap();
    assert_eq!(pass.len(), 2);
    for row in pass {
        let counts: Vec<f64> = row["correct"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_f64().unwrap())
            .collect();
        assert_eq!(counts.len(), 3);
        let at = |b: &str| row["pass_at"][b].as_f64().unwrap();
        let mean = counts.iter().sum::<f64>() / (3.0 * 6.0);
        assert!((at("1") - mean).abs() < 1e-12, "{row}");
        assert!(
            at("1") <= at("2") && at("2") <= at("4") && at("4") <= at("6"),
            "{row}"
        );
    }
    let greedy_t = run(xtask()
        .args(["eval", "--samples", "4", "--temperature", "0", "--from"])
        .arg(run_dir.join("cot-sft")));
    assert!(!greedy_t.status.success());
    assert!(
        stderr(&greedy_t).contains("--temperature 0"),
        "{}",
        stderr(&greedy_t)
    );

    // `--restart-from` redoes a stage from step 0: a snapshot that a killed run left there is
    // discarded, never resumed.
    let snapshot = run_dir.join("rlvr/resume-rlvr");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(snapshot.join("state.json"), "{}").unwrap();
    let out = run(xtask()
        .args([
            "pipeline",
            "--run",
            "c",
            "--quiet",
            "--restart-from",
            "rlvr",
        ])
        .arg("--config")
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert_ok(&out);
    assert!(
        stderr(&out).contains("rlvr: restarting, 1 resume snapshot(s) discarded"),
        "{}",
        stderr(&out)
    );
    assert!(!snapshot.exists());
}

/// Every loss variant, end to end through the stage, from one pretrain parent.
#[test]
fn every_dpo_variant_runs_end_to_end() {
    let runs = tempfile::tempdir().unwrap();
    let config = runs.path().join("variants.toml");
    let text = tiny_config_text()
        .replace(
            "[dpo.loss]",
            "compare = [\"ipo\", \"hinge\", \"robust\", \"simpo\", \"orpo\", \"kto\"]\n\n[dpo.loss]",
        )
        .replace("replay = 0.0", "replay = 0.1");
    std::fs::write(&config, text).unwrap();
    let args = |stage: &str| {
        let mut cmd = xtask();
        cmd.args(["stage", stage, "--run", "v", "--quiet", "--config"])
            .arg(&config)
            .arg("--runs-dir")
            .arg(runs.path());
        cmd
    };
    assert_ok(&run(&mut args("pretrain")));
    // With on-policy pairs at K = 4 (the pairs are K = 2, 3): the parent samples 8 prompts.
    let out = run(args("dpo")
        .arg("--from")
        .arg(runs.path().join("v/pretrain"))
        .args([
            "--set",
            "dpo.frontier.ks=[4]",
            "--set",
            "dpo.frontier.prompts=8",
        ])
        .args(["--set", "dpo.frontier.samples=2"]));
    assert_ok(&out);
    let dir = runs.path().join("v/dpo");
    let eval = json(&dir.join("eval.json"));
    let sampled = rows_with(&eval, "on_policy_pairs", "frontier");
    assert_eq!(sampled.len(), 1, "{eval}");
    assert_eq!(
        (sampled[0]["k"].as_u64(), sampled[0]["n"].as_u64()),
        (Some(4), Some(8))
    );
    // Every pair it found is in train.jsonl, and only those are at K = 4.
    let train = std::fs::read_to_string(dir.join("train.jsonl")).unwrap();
    let at_k4 = train
        .lines()
        .filter(|l| {
            let pair: Value = serde_json::from_str(l).unwrap();
            pair["prompt"].as_str().unwrap().matches('+').count() == 3
        })
        .count();
    assert_eq!(Some(at_k4 as u64), sampled[0]["correct"].as_u64());
    // dpo.replay = 0.1 mixes reverse-word pairs (prompts without a digit sum) in.
    let pairs = std::fs::read_to_string(dir.join("train.jsonl")).unwrap();
    let replayed = pairs
        .lines()
        .filter(|l| {
            let pair: Value = serde_json::from_str(l).unwrap();
            !pair["prompt"].as_str().unwrap().contains('+')
        })
        .count();
    assert!(
        replayed > 0,
        "no replayed reverse-word pairs in dpo/train.jsonl"
    );
    for variant in ["ipo", "hinge", "robust", "simpo", "orpo", "kto"] {
        let rows =
            trainer::metrics::read_rows(&dir.join(format!("metrics.{variant}.jsonl"))).unwrap();
        assert!(
            rows.iter().all(|r| r["loss"].as_f64().unwrap().is_finite()),
            "{variant}"
        );
        assert_eq!(
            rows_with(&eval, "preference", &format!("held_out:{variant}")).len(),
            1,
            "{variant}"
        );
    }
    // The reference-free losses are also scored with the lesson's margin against the parent.
    for variant in ["simpo", "orpo"] {
        let rows = rows_with(
            &eval,
            "preference",
            &format!("held_out_vs_parent:{variant}"),
        );
        assert_eq!(rows.len(), 1, "{variant}");
        assert!(rows[0]["margin"].as_f64().unwrap().is_finite());
    }
    assert!(rows_with(&eval, "preference", "held_out_vs_parent:ipo").is_empty());
    assert!(
        dir.join("metrics.jsonl").is_file(),
        "the main (sigmoid) run"
    );
}

#[test]
fn a_stage_without_its_parent_says_which_is_missing() {
    let runs = tempfile::tempdir().unwrap();
    let out = run(xtask()
        .args(["stage", "sft", "--run", "lonely", "--quiet", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("lonely/pretrain") && err.contains("manifest.json"),
        "{err}"
    );
}

#[test]
fn malformed_training_jsonl_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mine.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"<abcd>\", \"completion\": \"dcba#\"}\n{\"prompt\": \"<efgh>\"\n",
    )
    .unwrap();
    let config = tiny_config_text().replace(
        "ablation = true",
        &format!(
            "ablation = true\ntrain_file = {:?}",
            data.display().to_string()
        ),
    );
    let config_path = dir.path().join("c.toml");
    std::fs::write(&config_path, config).unwrap();
    let runs = dir.path().join("runs");
    assert_ok(&run(xtask()
        .args(["stage", "pretrain", "--run", "j", "--quiet", "--config"])
        .arg(&config_path)
        .arg("--runs-dir")
        .arg(&runs)));
    let out = run(xtask()
        .args(["stage", "sft", "--run", "j", "--quiet", "--config"])
        .arg(&config_path)
        .arg("--runs-dir")
        .arg(&runs));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mine.jsonl:2"), "{}", stderr(&out));
}
