//! The chain's stages: their order, parents, folder and file names and the metric keys the
//! report reads. The one place that knows a stage by name; everything else holds a `Stage`.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// One stage of the chain. As a command-line value it is spelled as its folder name
/// (`cot-sft`), so a mistyped name is clap's error listing the valid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Stage {
    Pretrain,
    Sft,
    CotSft,
    Dpo,
    Rlvr,
}

impl Stage {
    /// Every stage, in the order the pipeline runs them.
    pub const ALL: [Stage; 5] = [
        Stage::Pretrain,
        Stage::Sft,
        Stage::CotSft,
        Stage::Dpo,
        Stage::Rlvr,
    ];

    /// The stage's name: its folder in a run, its section of `pipeline.toml`, its manifest's
    /// `stage` field.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Sft => "sft",
            Stage::CotSft => "cot-sft",
            Stage::Dpo => "dpo",
            Stage::Rlvr => "rlvr",
        }
    }

    /// The stage whose final checkpoint this one starts from by default.
    pub fn parent(self) -> Option<Stage> {
        match self {
            Stage::Pretrain => None,
            Stage::Sft => Some(Stage::Pretrain),
            Stage::CotSft => Some(Stage::Sft),
            Stage::Dpo => Some(Stage::CotSft),
            Stage::Rlvr => Some(Stage::Dpo),
        }
    }

    /// `RUN_DIR/NAME`.
    pub fn dir(self, run_dir: &Path) -> PathBuf {
        run_dir.join(self.name())
    }

    /// The metrics file of the twin run a stage trains beside its own, from the same parent
    /// with the same budget: SFT's mask ablation (unmasked, with the default settings) and
    /// CoT-SFT's direct-answer twin.
    pub fn twin_metrics(self) -> Option<&'static str> {
        match self {
            Stage::Sft => Some(sft::UNMASKED_METRICS),
            Stage::CotSft => Some(cot_sft::DIRECT_METRICS),
            Stage::Pretrain | Stage::Dpo | Stage::Rlvr => None,
        }
    }

    /// The throughput a stage logs in its `metrics.jsonl`: the key and its unit.
    pub fn throughput(self) -> (&'static str, &'static str) {
        match self {
            Stage::Dpo => (keys::PAIRS_PER_S, "pairs/s"),
            Stage::Pretrain | Stage::Sft | Stage::CotSft | Stage::Rlvr => {
                (keys::TOKENS_PER_S, "tokens/s")
            }
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `metrics.jsonl` keys the report reads: TRL's names, as the stages' step bodies log them
/// (`trainer::driver::LossWindow` for pretrain, SFT and CoT-SFT, `dpo::train`, `rlvr::train`;
/// the driver adds `step`).
pub mod keys {
    pub const STEP: &str = "step";
    pub const LOSS: &str = "loss";
    pub const TOKENS_PER_S: &str = "tokens_per_s";
    pub const PAIRS_PER_S: &str = "pairs_per_s";
    /// Pretrain: held-out cross-entropy.
    pub const VAL_LOSS: &str = "val_loss";
    /// SFT (both runs): held-out reverse-word accuracy.
    pub const EVAL_ACCURACY: &str = sft::EVAL_ACCURACY;
    /// DPO and RLVR: held-out digit-sum accuracy per K, `eval/accuracy_kK`.
    pub const PER_K_ACCURACY_PREFIX: &str = eval::PER_K_METRIC_PREFIX;
    /// DPO.
    pub const MARGINS: &str = "rewards/margins";
    pub const ACCURACIES: &str = "rewards/accuracies";
    pub const LOGPS_CHOSEN: &str = "logps/chosen";
    /// RLVR.
    pub const REWARD: &str = "reward";
    pub const REWARD_EMA: &str = "reward_ema";
    pub const DEAD_GROUPS: &str = "frac_reward_zero_std";
    pub const KL: &str = "kl";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_starts_from_the_one_before_it() {
        assert_eq!(Stage::ALL[0].parent(), None);
        for pair in Stage::ALL.windows(2) {
            assert_eq!(pair[1].parent(), Some(pair[0]));
            assert!(pair[0] < pair[1]);
        }
    }

    #[test]
    fn the_command_line_spelling_is_the_folder_name() {
        for stage in Stage::ALL {
            let value = stage.to_possible_value().unwrap();
            assert_eq!(value.get_name(), stage.name());
            assert_eq!(Stage::from_str(stage.name(), false), Ok(stage));
        }
    }
}
