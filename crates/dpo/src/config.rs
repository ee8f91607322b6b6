use std::path::Path;

use data::DataPath;

use eval::SuiteConfig;
use serde::{Deserialize, Serialize};
use trainer::{LrSchedule, OptimConfig};

/// `[dpo]` in `pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    /// Where the training pairs come from.
    pub pairs: PairSource,
    /// Problems to build generated pairs from, K drawn uniformly from `ks`.
    pub n_train: usize,
    pub ks: Vec<usize>,
    /// Your own `{"prompt","chosen","rejected"}` JSONL instead of generated pairs.
    #[serde(default)]
    pub train_file: Option<DataPath>,
    /// Your own `{"prompt","completion","label"}` JSONL for KTO; without one, KTO trains on
    /// the pairs split into unpaired desirable/undesirable rows.
    #[serde(default)]
    pub kto_file: Option<DataPath>,
    /// On-policy pairs: samples drawn per prompt from the parent (temperature 1).
    #[serde(default = "default_samples")]
    pub on_policy_samples: usize,
    /// On-policy pairs past the demonstrations, on top of `pairs` (`[dpo.frontier]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontier: Option<FrontierPairs>,
    /// Share of the generated pairs that replay SFT's reverse-word task (reversed word over
    /// a one-swap slip), so this stage keeps that skill; 0 = the lesson's sums only.
    #[serde(default)]
    pub replay: f64,
    /// Word list of the replayed pairs (train split); needed when `replay` > 0.
    #[serde(default)]
    pub words: Option<DataPath>,
    pub loss: LossConfig,
    /// Also train these loss types from the same parent, data and budget, for comparison.
    #[serde(default)]
    pub compare: Vec<LossType>,
    /// Compute the frozen reference's log-probs once before training (TRL's
    /// `precompute_ref_log_probs`); `false` runs the reference every step (the lesson's four passes).
    #[serde(default = "yes")]
    pub precompute_ref_log_probs: bool,
    pub steps: usize,
    /// Pairs per step (each pair is two sequences).
    pub batch_size: usize,
    pub seed: u64,
    /// Lesson: log margin and preference accuracy every 100 steps.
    pub log_every: usize,
    /// Held-out task accuracy per K every this many steps and at the last (`eval/accuracy_kK`
    /// in metrics.jsonl); 0 = only after training.
    #[serde(default)]
    pub eval_every: usize,
    /// Held-out pairs for the held-out preference accuracy, corrupted pairs of held-out
    /// problems spread over the suite's `[eval].ks`, drawn with `[eval].seed`.
    pub eval_pairs: usize,
    /// The held-out suite (`[eval]`), copied in by the config loader.
    #[serde(skip_deserializing)]
    pub eval: SuiteConfig,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
}

trainer::loop_settings!(DpoConfig);

fn default_samples() -> usize {
    8
}

fn yes() -> bool {
    true
}

/// `[dpo.frontier]`: pairs at Ks no demonstration shows, from the parent's own samples
/// labelled by the verifier (a correct sample over a wrong one for the same prompt, as in
/// Iterative RPO, Pang et al. 2024). Nothing here is written by hand: the chosen trace is
/// one the parent already wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontierPairs {
    /// K drawn uniformly from these for each prompt.
    pub ks: Vec<usize>,
    /// Prompts to sample; only those with both a right and a wrong sample give a pair.
    pub prompts: usize,
    /// Samples per prompt at temperature 1.
    pub samples: usize,
    /// Keep at most this many of the pairs found (the first prompts' ones), so that a parent
    /// that samples the frontier well gets no more pairs than a weak one; prompts are sampled
    /// 64 at a time, and none after the part in which the last of them is found. Unset: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pairs: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// The lesson's toy: correct trace vs the same trace with one corrupted step.
    Corrupted,
    /// Samples of the parent, labelled by the verifier: a correct and an incorrect one per prompt.
    OnPolicy,
}

/// TRL's `loss_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossType {
    /// The lesson's DPO: −log σ(β·(Δw − Δl)).
    Sigmoid,
    /// (Δw − Δl − 1/(2β))² on per-token-averaged log-ratios.
    Ipo,
    /// max(0, 1 − β·(Δw − Δl)).
    Hinge,
    /// DPO made unbiased under label noise ε.
    Robust,
    /// Reference-free, length-normalised, target margin γ.
    Simpo,
    /// Reference-free: NLL on chosen − β·log σ(log-odds ratio).
    Orpo,
    /// Unpaired desirable / undesirable labels.
    Kto,
}

impl LossType {
    pub fn name(self) -> &'static str {
        match self {
            LossType::Sigmoid => "sigmoid",
            LossType::Ipo => "ipo",
            LossType::Hinge => "hinge",
            LossType::Robust => "robust",
            LossType::Simpo => "simpo",
            LossType::Orpo => "orpo",
            LossType::Kto => "kto",
        }
    }

    /// SimPO and ORPO never look at a reference, so none is loaded.
    pub fn needs_reference(self) -> bool {
        !matches!(self, LossType::Simpo | LossType::Orpo)
    }

    pub const ALL: [LossType; 7] = [
        LossType::Sigmoid,
        LossType::Ipo,
        LossType::Hinge,
        LossType::Robust,
        LossType::Simpo,
        LossType::Orpo,
        LossType::Kto,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub loss_type: LossType,
    /// Lesson: 0.1 (range 0.1-0.5). The temperature of every variant (λ for ORPO).
    pub beta: f64,
    /// ε of `robust` (and of `sigmoid`, TRL's cDPO), in [0, 0.5).
    #[serde(default)]
    pub label_smoothing: f64,
    /// SimPO's target reward margin γ.
    #[serde(default = "default_gamma")]
    pub simpo_gamma: f64,
    /// TRL's `rpo_alpha` (DPOTrainer's): adds α × the chosen responses' NLL, one cross-entropy
    /// pooled over every chosen token of the batch, which keeps the chosen likelihood from
    /// falling with the rejected one. Not with `orpo` (ORPO's loss has its own NLL; TRL's
    /// ORPOTrainer has no rpo_alpha) or `kto`. 0 = the lesson's plain loss.
    #[serde(default)]
    pub rpo_alpha: f64,
    /// DPO-Positive's λ (Pal et al. 2024, arXiv 2402.13228), `sigmoid` only: the logit loses
    /// λ·max(0, log π_ref(y_w|x) − log πθ(y_w|x)), so the chosen response's likelihood falling
    /// below the reference's costs the margin. 0 = plain DPO (left out of the settings hash).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dpop_lambda: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn default_gamma() -> f64 {
    0.5
}

impl DpoConfig {
    /// Makes relative paths relative to the config file's folder `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.train_file, &mut self.kto_file, &mut self.words]
            .into_iter()
            .flatten()
        {
            path.resolve(base);
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("n_train", self.n_train),
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("eval_pairs", self.eval_pairs),
        ] {
            if value == 0 {
                return Err(format!("dpo.{key} must be > 0"));
            }
        }
        data::tasks::digit_sum::check_ks("dpo.ks", &self.ks)?;
        if self.pairs == PairSource::OnPolicy && self.on_policy_samples < 2 {
            return Err("dpo.on_policy_samples must be >= 2 to find a pair".into());
        }
        if let Some(frontier) = &self.frontier {
            data::tasks::digit_sum::check_ks("dpo.frontier.ks", &frontier.ks)?;
            if frontier.prompts == 0 {
                return Err("dpo.frontier.prompts must be > 0".into());
            }
            if frontier.max_pairs == Some(0) {
                return Err(
                    "dpo.frontier.max_pairs must be > 0 (a value above the pairs found keeps every pair)"
                        .into(),
                );
            }
            if frontier.samples < 2 {
                return Err("dpo.frontier.samples must be >= 2 to find a pair".into());
            }
            if self.train_file.is_some() {
                return Err(
                    "dpo.frontier adds generated pairs, dpo.train_file replaces them; use one"
                        .into(),
                );
            }
        }
        if !(0.0..0.9).contains(&self.replay) {
            return Err(format!(
                "dpo.replay must be in [0, 0.9), got {}",
                self.replay
            ));
        }
        if self.replay > 0.0 && self.words.is_none() {
            return Err("dpo.replay > 0 needs dpo.words (the reverse-word list)".into());
        }
        let loss = &self.loss;
        if !(loss.beta > 0.0 && loss.beta.is_finite()) {
            return Err(format!("dpo.loss.beta must be > 0, got {}", loss.beta));
        }
        if !(0.0..0.5).contains(&loss.label_smoothing) {
            return Err(format!(
                "dpo.loss.label_smoothing must be in [0, 0.5), got {}",
                loss.label_smoothing
            ));
        }
        if !loss.simpo_gamma.is_finite() || loss.simpo_gamma < 0.0 {
            return Err(format!(
                "dpo.loss.simpo_gamma must be >= 0, got {}",
                loss.simpo_gamma
            ));
        }
        if !loss.rpo_alpha.is_finite() || loss.rpo_alpha < 0.0 {
            return Err(format!(
                "dpo.loss.rpo_alpha must be >= 0, got {}",
                loss.rpo_alpha
            ));
        }
        if loss.rpo_alpha > 0.0 && matches!(loss.loss_type, LossType::Orpo | LossType::Kto) {
            return Err(format!(
                "dpo.loss.rpo_alpha is DPOTrainer's NLL term and does not apply to loss_type \
                 {:?} (ORPO has its own NLL; KTO has none in TRL); set it to 0",
                loss.loss_type.name()
            ));
        }
        if !loss.dpop_lambda.is_finite() || loss.dpop_lambda < 0.0 {
            return Err(format!(
                "dpo.loss.dpop_lambda must be >= 0, got {}",
                loss.dpop_lambda
            ));
        }
        if loss.dpop_lambda > 0.0 && loss.loss_type != LossType::Sigmoid {
            return Err(format!(
                "dpo.loss.dpop_lambda is DPO-Positive's penalty on the sigmoid loss; \
                 loss_type is {:?} (set dpo.loss.dpop_lambda=0 with it)",
                loss.loss_type.name()
            ));
        }
        self.optimizer.validate("dpo.optimizer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_config_file() {
        let source: PairSource = serde_json::from_str("\"on_policy\"").unwrap();
        assert_eq!(source, PairSource::OnPolicy);
        for loss in LossType::ALL {
            let parsed: LossType = serde_json::from_str(&format!("\"{}\"", loss.name())).unwrap();
            assert_eq!(parsed, loss);
        }
    }

    #[test]
    fn an_unset_pair_cap_leaves_the_settings_as_they_were() {
        // Settings hash as serialized: a table without max_pairs must serialize as before
        // it existed, so that finished DPO stages stay up to date.
        let frontier: FrontierPairs =
            serde_json::from_str(r#"{"ks": [7], "prompts": 20, "samples": 4}"#).unwrap();
        assert_eq!(frontier.max_pairs, None);
        let written = serde_json::to_value(&frontier).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"ks": [7], "prompts": 20, "samples": 4})
        );
        let capped: FrontierPairs =
            serde_json::from_str(r#"{"ks": [7], "prompts": 20, "samples": 4, "max_pairs": 3}"#)
                .unwrap();
        assert_eq!(capped.max_pairs, Some(3));
    }
}
