//! Task accuracy of any checkpoint by greedy decoding: exact match for word reversal,
//! the strict verifier for digit sums (per K, per mode), with format failures counted.

mod greedy;
pub mod pass_at_k;

use std::cell::RefCell;
use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use data::tasks::digit_sum::{held_out_problems, Mode, Verdict};
use data::tasks::reverse;
use data::TextTokenizer;
use model::Gpt;
use serde::{Deserialize, Serialize};

pub use greedy::{greedy_completions, sampled_completions};

/// `task` of each kind of `eval.json` row.
pub mod task {
    pub const REVERSE: &str = "reverse";
    pub const DIGIT_SUM: &str = "digit_sum";
    pub const PREFERENCE: &str = "preference";
    pub const EXACT_MATCH: &str = "exact_match";
    /// DPO's on-policy pairs: of `n` sampled prompts, `correct` gave a pair.
    pub const ON_POLICY_PAIRS: &str = "on_policy_pairs";
}

/// Metric key of held-out digit-sum accuracy during training: `eval/accuracy_k3` for K = 3.
pub const PER_K_METRIC_PREFIX: &str = "eval/accuracy_k";

/// One line of `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `reverse` or `digit_sum`.
    pub task: String,
    /// Number of digits (digit sums only).
    pub k: Option<usize>,
    /// How the answer is written (`direct`, `cot`), or which variant of a stage produced the
    /// model (`masked`, `unmasked`) for word reversal.
    pub mode: String,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Completions not in the expected format.
    pub format_failures: usize,
    /// Preference rows only: the mean implicit-reward margin r̂w − r̂l.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

impl EvalRow {
    fn new(
        task: &str,
        k: Option<usize>,
        mode: &str,
        n: usize,
        correct: usize,
        format_failures: usize,
    ) -> Self {
        Self {
            task: task.to_string(),
            k,
            mode: mode.to_string(),
            n,
            correct,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            format_failures,
            margin: None,
        }
    }

    /// On-policy pair sampling at `k`: of `prompts` sampled prompts, `pairs` had both a right
    /// and a wrong sample (`mode` names the source: `on_policy` or `frontier`).
    pub fn on_policy_pairs(mode: &str, k: usize, prompts: usize, pairs: usize) -> Self {
        Self::new(task::ON_POLICY_PAIRS, Some(k), mode, prompts, pairs, 0)
    }

    /// Preference accuracy on `n` pairs (`task` = `preference`, `mode` names the split).
    pub fn preference(mode: &str, n: usize, correct: usize, margin: f64) -> Self {
        Self {
            margin: Some(margin),
            ..Self::new(task::PREFERENCE, None, mode, n, correct, 0)
        }
    }
}

/// Held-out word reversal: exact match of the greedy completion.
pub fn evaluate_reverse(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    held_out_words: &[String],
    label: &str,
    device: &Device,
) -> Result<EvalRow> {
    let prompts: Vec<String> = held_out_words.iter().map(|w| reverse::prompt(w)).collect();
    let outputs = greedy_completions(model, tokenizer, &prompts, device)?;
    let mut correct = 0;
    let mut malformed = 0;
    for ((word, prompt), out) in held_out_words.iter().zip(&prompts).zip(&outputs) {
        if reverse::is_correct(prompt, out) {
            correct += 1;
        } else if !reverse::is_well_formed(word, out) {
            malformed += 1;
        }
    }
    Ok(EvalRow::new(
        task::REVERSE,
        None,
        label,
        prompts.len(),
        correct,
        malformed,
    ))
}

/// Held-out digit sums for each K, answers read by the strict verifier of `mode`.
pub fn evaluate_digit_sum(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    mode: Mode,
    ks: &[usize],
    n_per_k: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<EvalRow>> {
    let mut rows = Vec::new();
    for &k in ks {
        let problems = held_out_problems(k, n_per_k, seed);
        let prompts: Vec<String> = problems.iter().map(|p| p.prompt()).collect();
        let outputs = greedy_completions(model, tokenizer, &prompts, device)?;
        let mut correct = 0;
        let mut malformed = 0;
        for (problem, out) in problems.iter().zip(&outputs) {
            match problem.verify(mode, out) {
                Verdict::Correct => correct += 1,
                Verdict::Malformed => malformed += 1,
                Verdict::Wrong => {}
            }
        }
        rows.push(EvalRow::new(
            task::DIGIT_SUM,
            Some(k),
            mode.name(),
            problems.len(),
            correct,
            malformed,
        ));
    }
    Ok(rows)
}

/// `[eval]` in `pipeline.toml`: the held-out digit-sum problems that CoT-SFT, DPO and RLVR
/// all measure on, so their tables compare. The config loader copies it into each of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuiteConfig {
    /// Digit counts evaluated.
    pub ks: Vec<usize>,
    /// Held-out problems per K.
    pub per_k: usize,
    /// Which held-out problems are drawn.
    pub seed: u64,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            ks: vec![2, 3, 4, 5, 6],
            per_k: 200,
            seed: 1,
        }
    }
}

impl SuiteConfig {
    pub fn validate(&self) -> Result<(), String> {
        data::tasks::digit_sum::check_ks("eval.ks", &self.ks)?;
        if self.per_k == 0 {
            return Err("eval.per_k must be > 0".into());
        }
        Ok(())
    }
}

/// Measurements a [`DigitSumSuite`] remembers: the final model's and the parent's.
const REMEMBERED: usize = 2;

/// One held-out digit-sum evaluation, fixed once per stage and run on any checkpoint: the
/// same problems every time, so numbers during and after training compare.
pub struct DigitSumSuite<'a> {
    pub mode: Mode,
    pub config: &'a SuiteConfig,
    pub tokenizer: &'a TextTokenizer,
    /// Where evaluation runs: the plain device, off the autodiff graph.
    pub device: &'a Device,
    /// The rows of the last weights measured, by [`Gpt::fingerprint`]: a stage's training
    /// loop measures its final model at the last step, and the stage's `eval.json` takes
    /// those rows instead of decoding every problem again (RLVR measures its parent between).
    last: RefCell<Vec<(u64, Vec<EvalRow>)>>,
}

impl<'a> DigitSumSuite<'a> {
    pub fn new(
        mode: Mode,
        config: &'a SuiteConfig,
        tokenizer: &'a TextTokenizer,
        device: &'a Device,
    ) -> Self {
        Self {
            mode,
            config,
            tokenizer,
            device,
            last: RefCell::new(Vec::new()),
        }
    }

    /// One row per K.
    pub fn rows(&self, model: &Gpt) -> Result<Vec<EvalRow>> {
        let fingerprint = model.fingerprint();
        let remembered = self
            .last
            .borrow()
            .iter()
            .find(|(f, _)| *f == fingerprint)
            .cloned();
        if let Some((_, rows)) = remembered {
            return Ok(rows);
        }
        let rows = evaluate_digit_sum(
            model,
            self.tokenizer,
            self.mode,
            &self.config.ks,
            self.config.per_k,
            self.config.seed,
            self.device,
        )?;
        let mut last = self.last.borrow_mut();
        if last.len() == REMEMBERED {
            last.remove(0);
        }
        last.push((fingerprint, rows.clone()));
        Ok(rows)
    }

    /// The rows as `eval/accuracy_kK` metric pairs, for a training loop's metrics row.
    pub fn metrics(&self, model: &Gpt) -> Result<Vec<(String, f64)>> {
        Ok(per_k_metrics(&self.rows(model)?))
    }
}

/// Per-K rows as `eval/accuracy_kK` metric pairs.
fn per_k_metrics(rows: &[EvalRow]) -> Vec<(String, f64)> {
    rows.iter()
        .map(|r| {
            (
                format!("{PER_K_METRIC_PREFIX}{}", r.k.unwrap_or(0)),
                r.accuracy,
            )
        })
        .collect()
}

/// A stage's final rows: one line each on stderr, tagged with the stage, then `eval.json`.
pub fn report_rows(stage: &str, path: &Path, rows: &[EvalRow]) -> Result<()> {
    for row in rows {
        eprintln!("{stage}: {}", format_row(row));
    }
    write_eval(path, rows)
}

/// Writes `eval.json` (a JSON array of rows), atomically.
pub fn write_eval(path: &Path, rows: &[EvalRow]) -> Result<()> {
    data::atomic::write(path, serde_json::to_string_pretty(rows)?)
}

pub fn read_eval(path: &Path) -> Result<Vec<EvalRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid eval.json", path.display()))
}

/// A one-line summary per row, for logs and the terminal.
pub fn format_row(row: &EvalRow) -> String {
    if let Some(margin) = row.margin {
        return format!(
            "{} [{}]: {}/{} = {:.1}% (margin {margin:.3})",
            row.task,
            row.mode,
            row.correct,
            row.n,
            100.0 * row.accuracy
        );
    }
    let k = row.k.map(|k| format!(" K={k}")).unwrap_or_default();
    format!(
        "{}{} [{}]: {}/{} = {:.1}% ({} malformed)",
        row.task,
        k,
        row.mode,
        row.correct,
        row.n,
        100.0 * row.accuracy,
        row.format_failures
    )
}

/// Exact match of greedy completions against the examples' completions (any JSONL task).
pub fn evaluate_exact_match(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    examples: &[data::tasks::Example],
    label: &str,
    device: &Device,
) -> Result<EvalRow> {
    let prompts: Vec<String> = examples.iter().map(|e| e.prompt.clone()).collect();
    let outputs = greedy_completions(model, tokenizer, &prompts, device)?;
    let correct = examples
        .iter()
        .zip(&outputs)
        .filter(|(e, out)| &e.completion == *out)
        .count();
    let malformed = outputs
        .iter()
        .filter(|out| !out.ends_with(data::tokenizer::END))
        .count();
    Ok(EvalRow::new(
        task::EXACT_MATCH,
        None,
        label,
        examples.len(),
        correct,
        malformed,
    ))
}
