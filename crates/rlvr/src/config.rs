use eval::SuiteConfig;

use crate::advantage::ScaleRewards;
use crate::loss::GrpoLossType;
use serde::{Deserialize, Serialize};
use trainer::{LrSchedule, OptimConfig};

/// `[rlvr]` in `pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlvrConfig {
    /// Digit counts of the prompts.
    pub ks: Vec<usize>,
    /// Train-split problems the prompts are drawn from.
    pub n_prompts: usize,
    pub prompts_per_step: usize,
    /// Rollouts per prompt (lesson: K = 4).
    pub group_size: usize,
    /// Lesson: 1.0.
    pub temperature: f32,
    #[serde(default)]
    pub top_k: usize,
    /// Weight of the k3 KL penalty (lesson: 0.05).
    pub beta: f64,
    /// Reward for a well-formed but wrong trace; 0 = the lesson's binary reward.
    #[serde(default)]
    pub partial_credit: f64,
    /// Reward for the share of a trace's steps written right, paid to a completion that is
    /// not correct (a process reward; 0 = off).
    #[serde(default)]
    pub step_credit: f64,
    /// Dynamic sampling (DAPO): up to this many more rounds of fresh prompts per step, each
    /// replacing the groups that came back dead (all rewards equal), so an update sees more
    /// live groups when the policy saturates. 0 = the lesson's one draw.
    #[serde(default)]
    pub resample_rounds: usize,
    /// How the policy-gradient loss averages (TRL's `loss_type`); the lesson's form by default.
    #[serde(default, skip_serializing_if = "GrpoLossType::is_lesson")]
    pub loss_type: GrpoLossType,
    /// TRL's `scale_rewards`: `group` (the lesson's) or `none` (Dr. GRPO).
    #[serde(default, skip_serializing_if = "ScaleRewards::is_group")]
    pub scale_rewards: ScaleRewards,
    /// Lesson: 800.
    pub steps: usize,
    pub seed: u64,
    pub log_every: usize,
    /// Held-out accuracy per K every this many steps and at the last; 0 = only after training.
    #[serde(default)]
    pub eval_every: usize,
    /// The held-out suite (`[eval]`), copied in by the config loader.
    #[serde(skip_deserializing)]
    pub eval: SuiteConfig,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
}

trainer::loop_settings!(RlvrConfig);

impl RlvrConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("n_prompts", self.n_prompts),
            ("prompts_per_step", self.prompts_per_step),
            ("steps", self.steps),
            ("log_every", self.log_every),
        ] {
            if value == 0 {
                return Err(format!("rlvr.{key} must be > 0"));
            }
        }
        if self.group_size < 2 {
            return Err(format!(
                "rlvr.group_size must be >= 2 (a group of one has no advantage), got {}",
                self.group_size
            ));
        }
        data::tasks::digit_sum::check_ks("rlvr.ks", &self.ks)?;
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "rlvr.temperature must be > 0, got {}",
                self.temperature
            ));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(format!("rlvr.beta must be >= 0, got {}", self.beta));
        }
        if !(0.0..1.0).contains(&self.partial_credit) {
            return Err(format!(
                "rlvr.partial_credit must be in [0, 1), got {}",
                self.partial_credit
            ));
        }
        if !(0.0..1.0).contains(&self.step_credit) {
            return Err(format!(
                "rlvr.step_credit must be in [0, 1), got {}",
                self.step_credit
            ));
        }
        self.optimizer.validate("rlvr.optimizer")
    }
}
