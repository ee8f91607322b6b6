//! The preference step, as the lesson: draw a batch of pairs; the four log-prob sums (the
//! reference's of chosen and rejected, from the cache or a pass of the frozen reference; the
//! policy's, in one concatenated pass sharded across cores, see `backward`); the loss and its
//! implicit rewards; one update. KTO's unpaired step is its neighbour in `kto`, the metrics
//! window in `metrics`.

use std::time::Duration;

use anyhow::{bail, Result};
use burn::tensor::Device;
use model::Gpt;
use rand::Rng;
use trainer::parallel::shard_count;
use trainer::{Reference, Row, Step, StepBody};

use crate::backward::{pair_loss_backward, PairStep};
use crate::config::{LossConfig, LossType};
use crate::logps::TokenizedPair;
use crate::metrics::Window;
use crate::reference::ReferenceSource;

/// What a preference loop trains on.
#[derive(Clone, Copy)]
pub enum Examples<'a> {
    Pairs(&'a [TokenizedPair]),
    /// KTO's labelled completions, each with its mismatched probe as `rejected` (see
    /// `logps::tokenize_labeled`); `labels` holds 1.0 for a desirable one, 0.0 otherwise.
    Labelled {
        rows: &'a [TokenizedPair],
        labels: &'a [f32],
    },
}

/// How a preference loop trains.
#[derive(Clone, Copy)]
pub struct StepConfig<'a> {
    pub loss: &'a LossConfig,
    pub batch_size: usize,
    /// The reference's log-probs of every example computed once, before training (TRL's
    /// `precompute_ref_log_probs`), rather than by a pass over each batch.
    pub precompute_ref_log_probs: bool,
    pub pad_id: u32,
}

/// One preference loss's step over a fixed set of examples.
pub struct PreferenceStep<'a> {
    pub(crate) examples: Examples<'a>,
    pub(crate) config: StepConfig<'a>,
    /// The autodiff device the policy trains on.
    pub(crate) device: &'a Device,
    pub(crate) reference: ReferenceSource<'a>,
    pub(crate) window: Window,
}

impl<'a> PreferenceStep<'a> {
    /// `reference` is required by every loss but SimPO and ORPO; it is only ever read.
    pub fn new(
        examples: Examples<'a>,
        config: StepConfig<'a>,
        reference: Option<Reference<'a>>,
        device: &'a Device,
    ) -> Result<Self> {
        let loss_type = config.loss.loss_type;
        let reference = match reference {
            Some(reference) if loss_type.needs_reference() => Some(reference),
            None if loss_type.needs_reference() => {
                bail!("loss_type {} needs a reference", loss_type.name())
            }
            _ => None,
        };
        let (rows, labelled) = match examples {
            Examples::Pairs(pairs) => (pairs, false),
            Examples::Labelled { rows, .. } => (rows, true),
        };
        if labelled != (loss_type == LossType::Kto) {
            bail!("kto, and only kto, trains on labelled examples");
        }
        let precompute = config.precompute_ref_log_probs;
        Ok(Self {
            examples,
            config,
            device,
            reference: ReferenceSource::new(reference, precompute, rows, config.pad_id),
            window: Window::default(),
        })
    }
}

impl StepBody for PreferenceStep<'_> {
    fn step(&mut self, policy: Gpt, step: &mut Step) -> Result<Gpt> {
        let StepConfig {
            loss,
            batch_size,
            pad_id,
            ..
        } = self.config;
        let (pairs, labels) = match self.examples {
            Examples::Pairs(pairs) => (pairs, None),
            Examples::Labelled { rows, labels } => (rows, Some(labels)),
        };
        let indices: Vec<usize> = (0..batch_size)
            .map(|_| step.rng.random_range(0..pairs.len()))
            .collect();
        let batch: Vec<&TokenizedPair> = indices.iter().map(|&i| &pairs[i]).collect();
        // log π_ref(chosen), log π_ref(rejected).
        let reference = self.reference.logps(&indices, &batch, pad_id, self.device);
        let (policy, report) = if let Some(labels) = labels {
            let desirable: Vec<f32> = indices.iter().map(|&i| labels[i]).collect();
            self.kto_update(policy, &batch, reference, desirable, step)?
        } else {
            // log π(chosen), log π(rejected) → the loss and the implicit rewards → gradients.
            let shards = shard_count(self.device);
            let PairStep { grads, out, logps } = pair_loss_backward(
                &policy,
                &batch,
                reference,
                loss,
                pad_id,
                self.device,
                shards,
            );
            self.window.add(&out, logps, None);
            step.update_with_grads(policy, grads, out.loss)?
        };
        self.window.last = Some(report);
        Ok(policy)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        let kto = self.config.loss.loss_type == LossType::Kto;
        std::mem::take(&mut self.window).row(elapsed, kto)
    }
}
