//! KTO, the unpaired variant: labelled completions (desirable or not) instead of pairs, each
//! rewarded against a reference point z₀, the policy's KL from the reference estimated on
//! mismatched probes (a prompt with another completion of the same batch, as TRL's).

use anyhow::{bail, Result};
use burn::tensor::Tensor;
use data::jsonl;
use data::tasks::preference::{unpair, LabeledCompletion, PreferencePair};
use model::Gpt;
use trainer::{StageContext, Step, StepReport};

use crate::config::DpoConfig;
use crate::logps::{host_tensor, pair_logps, tokenize_labeled, TokenizedPair};
use crate::loss::kto_loss;
use crate::step::PreferenceStep;

/// KTO's examples: the user's `kto_file`, or the training pairs unpaired; each with its probe
/// (as `rejected`) and its label (1.0 desirable, 0.0 not).
pub fn labelled_examples(
    ctx: &StageContext,
    config: &DpoConfig,
    pairs: &[PreferencePair],
) -> Result<(Vec<TokenizedPair>, Vec<f32>)> {
    let rows = match &config.kto_file {
        Some(path) => jsonl::read::<LabeledCompletion>(path)?,
        None => unpair(pairs, config.seed),
    };
    let (examples, labels) = tokenize_labeled(
        &rows,
        &ctx.tokenizer,
        ctx.model.block_size,
        config.batch_size,
    )?;
    check_both_labels(&labels)?;
    Ok((examples, labels))
}

fn check_both_labels(labels: &[f32]) -> Result<()> {
    let desirable = labels.iter().filter(|&&l| l > 0.5).count();
    if desirable == 0 || desirable == labels.len() {
        bail!(
            "kto needs both desirable and undesirable examples ({desirable} of {} are desirable)",
            labels.len()
        );
    }
    Ok(())
}

impl PreferenceStep<'_> {
    /// KTO's step on `batch` (completions as `chosen`, probes as `rejected`) with the
    /// reference's log-probs of both and each completion's label. Not sharded: z₀ is estimated
    /// from the whole batch.
    pub(crate) fn kto_update(
        &mut self,
        policy: Gpt,
        batch: &[&TokenizedPair],
        reference: Option<(Tensor<1>, Tensor<1>)>,
        desirable: Vec<f32>,
        step: &mut Step,
    ) -> Result<(Gpt, StepReport)> {
        let device = self.device;
        let (chosen, probes) = pair_logps(&policy, batch, self.config.pad_id, device);
        let logps = (chosen.sum.clone().detach(), probes.sum.clone().detach());
        let (ref_matched, ref_probe) = reference.expect("kto uses a reference");
        // z₀: the policy's KL from the reference on mismatched probes, detached, ≥ 0.
        let kl = mean(probes.sum.detach() - ref_probe).max(0.0);
        self.window.kl += kl;
        let labels = host_tensor(desirable.clone(), device);
        let out = kto_loss(self.config.loss.beta, chosen.sum, ref_matched, labels, kl);
        self.window.add(&out, logps, Some(&desirable));
        step.update(policy, out.loss)
    }
}

fn mean(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f32>() as f64
}
