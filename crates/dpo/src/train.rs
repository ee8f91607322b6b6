//! The preference-training loop: sample pairs, policy log-probs in one concatenated pass
//! (sharded across cores, see `step`), reference log-probs from the cache (or a pass of the
//! frozen reference), loss, step; every `log_every` steps the window's averages under TRL's
//! metric names.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use model::Gpt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sft::supervised::Evaluator;
use trainer::parallel::shard_count;
use trainer::resume::Resume;
use trainer::{OptimizerStep, Progress};

use crate::config::{DpoConfig, LossConfig, LossType};
use crate::logps::{host_tensor, pair_logps, to_host, TokenizedPair};
use crate::loss::{kto_loss, PairLoss};
use crate::reference::ReferenceLogps;
use crate::step::{pair_loss_backward, PairStep};

/// What one run trains on and with.
pub struct DpoRun<'a> {
    pub pairs: &'a [TokenizedPair],
    /// KTO only: 1.0 for a desirable `chosen`, 0.0 for an undesirable one.
    pub labels: Option<&'a [f32]>,
    pub config: &'a DpoConfig,
    pub loss: &'a LossConfig,
    pub pad_id: u32,
    pub label: &'a str,
    pub metrics_path: &'a Path,
    pub quiet: bool,
    /// Snapshots for resuming this loop after a kill.
    pub resume: Resume,
}

/// The frozen reference and the plain device it runs on (no autodiff: no graph, no gradient).
pub struct Reference<'a> {
    pub model: &'a Gpt,
    pub device: &'a Device,
}

impl DpoRun<'_> {
    /// Trains `policy` on the autodiff `device`. `reference` is required by every loss but
    /// SimPO and ORPO; it is only ever read. Every `eval_every` steps `evaluate` adds its
    /// numbers to the metrics row.
    pub fn train(
        &self,
        policy: Gpt,
        reference: Option<Reference>,
        device: &Device,
        evaluate: &mut Evaluator,
    ) -> Result<Gpt> {
        let config = self.config;
        let uses_reference = self.loss.loss_type.needs_reference();
        let reference = if uses_reference {
            Some(reference.ok_or_else(|| {
                anyhow::anyhow!("loss_type {} needs a reference", self.loss.loss_type.name())
            })?)
        } else {
            None
        };
        let cache = match &reference {
            Some(r) if config.precompute_ref_log_probs => {
                let all: Vec<&TokenizedPair> = self.pairs.iter().collect();
                Some(ReferenceLogps::compute(
                    r.model,
                    &all,
                    self.pad_id,
                    r.device,
                ))
            }
            _ => None,
        };

        let mut optimizer = OptimizerStep::new(&config.optimizer, &config.schedule, config.steps);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let start = self
            .resume
            .start(policy, &mut optimizer, self.metrics_path, device)?;
        let (mut policy, mut metrics) = (start.model, start.metrics);
        // Replay the pair sampler's draws up to the resumed step.
        for _ in 0..start.step * config.batch_size {
            let _ = rng.random_range(0..self.pairs.len());
        }
        let progress = Progress::new(self.label, config.steps, self.quiet);
        let mut window = Window::default();

        for step in start.step..config.steps {
            let indices: Vec<usize> = (0..config.batch_size)
                .map(|_| rng.random_range(0..self.pairs.len()))
                .collect();
            let batch: Vec<&TokenizedPair> = indices.iter().map(|&i| &self.pairs[i]).collect();
            let reference_logps = match (&cache, &reference) {
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
            let (updated, report) = match (self.loss.loss_type, &batch_labels) {
                (LossType::Kto, Some(desirable)) => {
                    let (chosen, rejected) = pair_logps(&policy, &batch, self.pad_id, device);
                    let logps = (chosen.sum.clone().detach(), rejected.sum.clone().detach());
                    let (ref_matched, ref_probe) = reference_logps.expect("kto uses a reference");
                    // z₀: the policy's KL from the reference on mismatched probes, detached, ≥ 0.
                    let kl = mean(rejected.sum.detach() - ref_probe).max(0.0);
                    window.kl += kl;
                    let out = kto_loss(
                        self.loss.beta,
                        chosen.sum,
                        ref_matched,
                        host_tensor(desirable.clone(), device),
                        kl,
                    );
                    window.add(&out, logps, batch_labels.as_deref());
                    optimizer.apply(policy, out.loss, step)?
                }
                (LossType::Kto, None) => anyhow::bail!("kto needs labelled examples"),
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
                    window.add(&out, logps, batch_labels.as_deref());
                    optimizer.apply_grads(policy, grads, out.loss, step)?
                }
            };
            policy = updated;

            let done = step + 1;
            let evaluate_now = config.eval_every > 0 && done % config.eval_every == 0;
            if done % config.log_every == 0 || done == config.steps || evaluate_now {
                let w = window.averages();
                let mut row = vec![
                    ("step", json!(done)),
                    ("loss", json!(w.loss)),
                    ("rewards/chosen", json!(w.chosen)),
                    ("rewards/rejected", json!(w.rejected)),
                    ("rewards/margins", json!(w.margin)),
                    ("rewards/accuracies", json!(w.accuracy)),
                    ("logps/chosen", json!(w.logps_chosen)),
                    ("logps/rejected", json!(w.logps_rejected)),
                    ("lr", json!(report.lr)),
                    ("grad_norm", json!(report.grad_norm)),
                    ("pairs_per_s", json!(w.pairs_per_s)),
                ];
                if self.loss.loss_type == LossType::Kto {
                    row.push(("kl", json!(w.kl)));
                }
                let evaluated = if evaluate_now {
                    evaluate(&policy.valid())?
                } else {
                    Vec::new()
                };
                for (name, value) in &evaluated {
                    progress.println(format!("{} step {done}: {name} {value:.3}", self.label));
                    row.push((name.as_str(), json!(value)));
                }
                metrics.log(&row)?;
                progress.update(
                    done,
                    format!(
                        "loss {:.4} | margin {:.3} | pref-acc {:.2}",
                        w.loss, w.margin, w.accuracy
                    ),
                );
                window = Window::default();
            }
            self.resume
                .save_if_due(done, config.steps, &policy, &optimizer, &metrics)?;
        }
        progress.finish();
        self.resume.finish();
        Ok(policy)
    }
}

fn mean(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f32>() as f64
}

/// Running sums over the steps since the last metrics row (TRL logs window averages).
struct Window {
    steps: usize,
    pairs: usize,
    /// Rows behind `chosen`/`rejected` (pairs, or KTO's desirable/undesirable rows).
    n_chosen: usize,
    n_rejected: usize,
    started: Instant,
    loss: f64,
    chosen: f64,
    rejected: f64,
    correct: usize,
    logps_chosen: f64,
    logps_rejected: f64,
    kl: f64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            steps: 0,
            pairs: 0,
            n_chosen: 0,
            n_rejected: 0,
            started: Instant::now(),
            loss: 0.0,
            chosen: 0.0,
            rejected: 0.0,
            correct: 0,
            logps_chosen: 0.0,
            logps_rejected: 0.0,
            kl: 0.0,
        }
    }
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

    fn averages(&self) -> Averages {
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
            pairs_per_s: self.pairs as f64 / self.started.elapsed().as_secs_f64(),
        }
    }
}
