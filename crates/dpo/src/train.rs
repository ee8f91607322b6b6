//! The preference step: sample pairs, policy log-probs in one concatenated pass (sharded
//! across cores, see `step`), reference log-probs from the cache (or a pass of the frozen
//! reference), loss, update; every row the window's averages under TRL's metric names.

use std::time::Duration;

use anyhow::Result;
use burn::tensor::{Device, Tensor};
use model::Gpt;
use rand::Rng;
use serde_json::json;
use trainer::parallel::shard_count;
use trainer::{Row, Step, StepBody, StepReport};

use crate::config::{LossConfig, LossType};
use crate::logps::{host_tensor, pair_logps, to_host, TokenizedPair};
use crate::loss::{kto_loss, PairLoss};
use crate::reference::ReferenceLogps;
use crate::step::{pair_loss_backward, PairStep};

/// The frozen reference and the plain device it runs on (no autodiff: no graph, no gradient).
pub struct Reference<'a> {
    pub model: &'a Gpt,
    pub device: &'a Device,
}

/// One preference loss's step over a fixed set of pairs.
pub struct PreferenceStep<'a> {
    pairs: &'a [TokenizedPair],
    /// KTO only: 1.0 for a desirable `chosen`, 0.0 for an undesirable one.
    labels: Option<&'a [f32]>,
    loss: &'a LossConfig,
    batch_size: usize,
    pad_id: u32,
    /// The autodiff device the policy trains on.
    device: &'a Device,
    reference: Option<Reference<'a>>,
    /// The reference's log-probs of every pair, computed once (`precompute_ref_log_probs`).
    cache: Option<ReferenceLogps>,
    window: Window,
}

impl<'a> PreferenceStep<'a> {
    /// `reference` is required by every loss but SimPO and ORPO; it is only ever read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pairs: &'a [TokenizedPair],
        labels: Option<&'a [f32]>,
        loss: &'a LossConfig,
        batch_size: usize,
        precompute_ref_log_probs: bool,
        pad_id: u32,
        device: &'a Device,
        reference: Option<Reference<'a>>,
    ) -> Result<Self> {
        let reference = if loss.loss_type.needs_reference() {
            Some(reference.ok_or_else(|| {
                anyhow::anyhow!("loss_type {} needs a reference", loss.loss_type.name())
            })?)
        } else {
            None
        };
        if loss.loss_type == LossType::Kto && labels.is_none() {
            anyhow::bail!("kto needs labelled examples");
        }
        let cache = match &reference {
            Some(r) if precompute_ref_log_probs => {
                let all: Vec<&TokenizedPair> = pairs.iter().collect();
                Some(ReferenceLogps::compute(r.model, &all, pad_id, r.device))
            }
            _ => None,
        };
        Ok(Self {
            pairs,
            labels,
            loss,
            batch_size,
            pad_id,
            device,
            reference,
            cache,
            window: Window::default(),
        })
    }
}

impl StepBody for PreferenceStep<'_> {
    fn step(&mut self, policy: Gpt, step: &mut Step) -> Result<Gpt> {
        let device = self.device;
        let indices: Vec<usize> = (0..self.batch_size)
            .map(|_| step.rng.random_range(0..self.pairs.len()))
            .collect();
        let batch: Vec<&TokenizedPair> = indices.iter().map(|&i| &self.pairs[i]).collect();
        let reference_logps = match (&self.cache, &self.reference) {
            (Some(cache), _) => Some(cache.select(&indices, device)),
            (None, Some(r)) => {
                let fresh = ReferenceLogps::compute(r.model, &batch, self.pad_id, r.device);
                Some(fresh.select(&(0..batch.len()).collect::<Vec<_>>(), device))
            }
            (None, None) => None,
        };
        let batch_labels: Option<Vec<f32>> = self
            .labels
            .map(|labels| indices.iter().map(|&i| labels[i]).collect());
        let (policy, report) = match &batch_labels {
            Some(desirable) if self.loss.loss_type == LossType::Kto => {
                let (chosen, rejected) = pair_logps(&policy, &batch, self.pad_id, device);
                let logps = (chosen.sum.clone().detach(), rejected.sum.clone().detach());
                let (ref_matched, ref_probe) = reference_logps.expect("kto uses a reference");
                // z₀: the policy's KL from the reference on mismatched probes, detached, ≥ 0.
                let kl = mean(rejected.sum.detach() - ref_probe).max(0.0);
                self.window.kl += kl;
                let out = kto_loss(
                    self.loss.beta,
                    chosen.sum,
                    ref_matched,
                    host_tensor(desirable.clone(), device),
                    kl,
                );
                self.window.add(&out, logps, batch_labels.as_deref());
                step.update(policy, out.loss)?
            }
            _ => {
                let PairStep { grads, out, logps } = pair_loss_backward(
                    &policy,
                    &batch,
                    reference_logps,
                    self.loss,
                    self.pad_id,
                    device,
                    shard_count(device),
                );
                self.window.add(&out, logps, batch_labels.as_deref());
                step.update_with_grads(policy, grads, out.loss)?
            }
        };
        self.window.last = Some(report);
        Ok(policy)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        let w = std::mem::take(&mut self.window).averages(elapsed);
        let mut row = Row::new(format!(
            "loss {:.4} | margin {:.3} | pref-acc {:.2}",
            w.loss, w.margin, w.accuracy
        ));
        row.push("loss", w.loss);
        row.push("rewards/chosen", w.chosen);
        row.push("rewards/rejected", w.rejected);
        row.push("rewards/margins", w.margin);
        row.push("rewards/accuracies", w.accuracy);
        row.push("logps/chosen", w.logps_chosen);
        row.push("logps/rejected", w.logps_rejected);
        row.push("lr", json!(w.lr));
        row.push("grad_norm", json!(w.grad_norm));
        row.push("pairs_per_s", w.pairs_per_s);
        if self.loss.loss_type == LossType::Kto {
            row.push("kl", w.kl);
        }
        row
    }
}

fn mean(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f32>() as f64
}

/// Running sums over the steps since the last metrics row (TRL logs window averages).
#[derive(Default)]
struct Window {
    steps: usize,
    pairs: usize,
    /// Rows behind `chosen`/`rejected` (pairs, or KTO's desirable/undesirable rows).
    n_chosen: usize,
    n_rejected: usize,
    loss: f64,
    chosen: f64,
    rejected: f64,
    correct: usize,
    logps_chosen: f64,
    logps_rejected: f64,
    kl: f64,
    /// The window's last update, for `lr` and the pre-clip `grad_norm`.
    last: Option<StepReport>,
}

struct Averages {
    loss: f64,
    chosen: f64,
    rejected: f64,
    margin: f64,
    accuracy: f64,
    logps_chosen: f64,
    logps_rejected: f64,
    kl: f64,
    pairs_per_s: f64,
    lr: Option<f64>,
    grad_norm: Option<f32>,
}

impl Window {
    /// One step's pairs. With KTO `labels`, a row counts as chosen when desirable and as
    /// rejected otherwise, and it is "accurate" when its reward has the label's sign.
    fn add(
        &mut self,
        out: &PairLoss,
        (logps_chosen, logps_rejected): (Tensor<1>, Tensor<1>),
        labels: Option<&[f32]>,
    ) {
        let chosen = to_host(out.chosen_rewards.clone());
        let rejected = to_host(out.rejected_rewards.clone());
        let logps_chosen = to_host(logps_chosen);
        let logps_rejected = to_host(logps_rejected);
        self.steps += 1;
        self.pairs += chosen.len();
        self.loss += out.loss.clone().into_scalar::<f32>() as f64;
        match labels {
            None => {
                self.n_chosen += chosen.len();
                self.n_rejected += rejected.len();
                self.chosen += chosen.iter().map(|&x| x as f64).sum::<f64>();
                self.rejected += rejected.iter().map(|&x| x as f64).sum::<f64>();
                self.correct += chosen.iter().zip(&rejected).filter(|(c, r)| c > r).count();
                self.logps_chosen += logps_chosen.iter().map(|&x| x as f64).sum::<f64>();
                self.logps_rejected += logps_rejected.iter().map(|&x| x as f64).sum::<f64>();
            }
            Some(labels) => {
                for ((&reward, &logp), &label) in chosen.iter().zip(&logps_chosen).zip(labels) {
                    if label > 0.5 {
                        self.n_chosen += 1;
                        self.chosen += reward as f64;
                        self.logps_chosen += logp as f64;
                        self.correct += usize::from(reward > 0.0);
                    } else {
                        self.n_rejected += 1;
                        self.rejected += reward as f64;
                        self.logps_rejected += logp as f64;
                        self.correct += usize::from(reward < 0.0);
                    }
                }
            }
        }
    }

    fn averages(&self, elapsed: Duration) -> Averages {
        let pairs = self.pairs.max(1) as f64;
        let steps = self.steps.max(1) as f64;
        let n_chosen = self.n_chosen.max(1) as f64;
        let n_rejected = self.n_rejected.max(1) as f64;
        Averages {
            loss: self.loss / steps,
            chosen: self.chosen / n_chosen,
            rejected: self.rejected / n_rejected,
            margin: self.chosen / n_chosen - self.rejected / n_rejected,
            accuracy: self.correct as f64 / pairs,
            logps_chosen: self.logps_chosen / n_chosen,
            logps_rejected: self.logps_rejected / n_rejected,
            kl: self.kl / steps,
            pairs_per_s: self.pairs as f64 / elapsed.as_secs_f64(),
            lr: self.last.map(|r| r.lr),
            grad_norm: self.last.map(|r| r.grad_norm),
        }
    }
}
