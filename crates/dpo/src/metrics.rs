//! What a preference loop logs: TRL's metric names, averaged over the steps since the last
//! row (TRL logs window averages).

use std::time::Duration;

use burn::tensor::Tensor;
use serde_json::json;
use trainer::{Row, StepReport};

use crate::logps::to_host;
use crate::loss::PairLoss;

/// Running sums over the steps since the last metrics row (TRL logs window averages).
#[derive(Default)]
pub(crate) struct Window {
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
    pub(crate) kl: f64,
    /// The window's last update, for `lr` and the pre-clip `grad_norm`.
    pub(crate) last: Option<StepReport>,
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
    /// The window's averages under TRL's names (with KTO's `kl`), and the progress message;
    /// `elapsed` is its wall time.
    pub(crate) fn row(self, elapsed: Duration, kto: bool) -> Row {
        let w = self.averages(elapsed);
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
        if kto {
            row.push("kl", w.kl);
        }
        row
    }

    /// One step's pairs. With KTO `labels`, a row counts as chosen when desirable and as
    /// rejected otherwise, and it is "accurate" when its reward has the label's sign.
    pub(crate) fn add(
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
