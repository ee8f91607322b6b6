use eval::SuiteConfig;

use crate::advantage::ScaleRewards;
use crate::curriculum::CurriculumConfig;
use crate::hints::HintConfig;
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
    /// TRL's `num_iterations` (μ): optimizer updates per batch of rollouts, each on the clipped
    /// ratio to the policy that sampled them. 1 = the lesson's one update; more needs one of
    /// TRL's loss types (the lesson's form has no ratio).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub num_iterations: usize,
    /// TRL's `epsilon`: the ratio is clipped to [1 − ε, 1 + ε_high] (TRL's default 0.2).
    #[serde(
        default = "default_epsilon",
        skip_serializing_if = "is_default_epsilon"
    )]
    pub epsilon: f64,
    /// TRL's `epsilon_high` (DAPO's clip-higher); unset = `epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_high: Option<f64>,
    /// A curriculum over K (`crate::curriculum`); unset = the lesson's fixed `ks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<CurriculumConfig>,
    /// Hint prefixes annealed to zero (`crate::hints`); unset = none, as in the lesson.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<HintConfig>,
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

fn one() -> usize {
    1
}

fn is_one(value: &usize) -> bool {
    *value == 1
}

/// TRL's `GRPOConfig.epsilon`.
const DEFAULT_EPSILON: f64 = 0.2;

fn default_epsilon() -> f64 {
    DEFAULT_EPSILON
}

fn is_default_epsilon(value: &f64) -> bool {
    *value == DEFAULT_EPSILON
}

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
        if let Some(curriculum) = &self.curriculum {
            curriculum.validate(&self.ks)?;
        }
        if let Some(hints) = &self.hints {
            hints.validate()?;
        }
        if self.num_iterations == 0 {
            return Err("rlvr.num_iterations must be >= 1".to_string());
        }
        if self.num_iterations > 1 && self.loss_type.is_lesson() {
            return Err(format!(
                "rlvr.num_iterations = {} needs one of TRL's loss types (loss_type = \"grpo\", \
                 \"bnpo\", \"dr_grpo\" or \"dapo\"): the lesson's form has no ratio to clip",
                self.num_iterations
            ));
        }
        for (key, value) in [
            ("epsilon", Some(self.epsilon)),
            ("epsilon_high", self.epsilon_high),
        ] {
            if let Some(value) = value {
                if !(value > 0.0 && value.is_finite()) {
                    return Err(format!("rlvr.{key} must be > 0, got {value}"));
                }
            }
        }
        if self.epsilon >= 1.0 {
            return Err(format!(
                "rlvr.epsilon must be < 1 (the ratio's floor is 1 − ε), got {}",
                self.epsilon
            ));
        }
        self.optimizer.validate("rlvr.optimizer")
    }

    /// The ratio's clipping range, `(ε, ε_high)`.
    pub fn clip_range(&self) -> (f64, f64) {
        (self.epsilon, self.epsilon_high.unwrap_or(self.epsilon))
    }
}
