//! The preference losses, in TRL's formulas, over sequence log-probs. Pure tensor math: no
//! model, no data, so each formula is tested on hand-computed values.

use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::Tensor;

use crate::config::{LossConfig, LossType};

/// Log-probs of a batch of responses: `sum` is log π(y|x) (`[B]`), `count` the response tokens,
/// `prompt_sum` the prompt's own tokens after its first (ORPO's NLL scores them, as TRL's does).
#[derive(Debug, Clone)]
pub struct SequenceLogps {
    pub sum: Tensor<1>,
    pub count: Tensor<1>,
    pub prompt_sum: Tensor<1>,
}

impl SequenceLogps {
    /// Per-token average, the length-normalised log-prob of IPO, SimPO and ORPO.
    pub fn mean(&self) -> Tensor<1> {
        self.sum.clone() / self.count.clone()
    }
}

/// A batch of pairs: the policy's log-probs (with gradient) and, for losses that use one, the
/// frozen reference's (`[B]` sums, no gradient).
pub struct PairInputs {
    pub chosen: SequenceLogps,
    pub rejected: SequenceLogps,
    pub reference: Option<(Tensor<1>, Tensor<1>)>,
}

/// The loss (`[1]`) and TRL's implicit rewards per pair (`[B]`, detached).
pub struct PairLoss {
    pub loss: Tensor<1>,
    pub chosen_rewards: Tensor<1>,
    pub rejected_rewards: Tensor<1>,
}

/// `loss_type` applied to one batch of pairs. KTO is unpaired: see [`kto_loss`].
pub fn pair_loss(config: &LossConfig, inputs: PairInputs) -> PairLoss {
    let beta = config.beta;
    let eps = config.label_smoothing;
    let PairInputs {
        chosen,
        rejected,
        reference,
    } = inputs;
    match config.loss_type {
        LossType::Sigmoid | LossType::Hinge | LossType::Robust | LossType::Ipo => {
            let (ref_chosen, ref_rejected) =
                reference.expect("reference log-probs for a reference-based loss");
            // IPO works on per-token averages (as TRL does), the others on sums.
            let (policy_chosen, policy_rejected, ref_chosen, ref_rejected) =
                if config.loss_type == LossType::Ipo {
                    (
                        chosen.mean(),
                        rejected.mean(),
                        ref_chosen / chosen.count.clone(),
                        ref_rejected / rejected.count.clone(),
                    )
                } else {
                    (chosen.sum, rejected.sum, ref_chosen, ref_rejected)
                };
            let chosen_ratio = policy_chosen - ref_chosen;
            let rejected_ratio = policy_rejected - ref_rejected;
            let mut logits = chosen_ratio.clone() - rejected_ratio.clone();
            if config.dpop_lambda > 0.0 {
                // DPO-Positive: λ·max(0, log π_ref(y_w) − log πθ(y_w)) off the logit.
                logits = logits - relu(-chosen_ratio.clone()) * config.dpop_lambda;
            }
            let losses = match config.loss_type {
                LossType::Sigmoid => smoothed_sigmoid(logits * beta, eps),
                LossType::Robust => {
                    let scaled = logits * beta;
                    (-log_sigmoid(scaled.clone()) * (1.0 - eps) + log_sigmoid(-scaled) * eps)
                        / (1.0 - 2.0 * eps)
                }
                LossType::Hinge => relu(-(logits * beta) + 1.0),
                LossType::Ipo => (logits - 1.0 / (2.0 * beta)).square(),
                _ => unreachable!(),
            };
            PairLoss {
                loss: losses.mean(),
                chosen_rewards: (chosen_ratio * beta).detach(),
                rejected_rewards: (rejected_ratio * beta).detach(),
            }
        }
        LossType::Simpo => {
            let (chosen, rejected) = (chosen.mean(), rejected.mean());
            let logits = chosen.clone() - rejected.clone() - config.simpo_gamma / beta;
            PairLoss {
                loss: smoothed_sigmoid(logits * beta, eps).mean(),
                chosen_rewards: (chosen * beta).detach(),
                rejected_rewards: (rejected * beta).detach(),
            }
        }
        LossType::Orpo => {
            // The odds-ratio term only: ORPO's NLL is one cross-entropy pooled over the batch's
            // chosen tokens, prompts included ([`pooled_nll`], added by the step).
            let (chosen, rejected) = (chosen.mean(), rejected.mean());
            let log_odds = (chosen.clone() - rejected.clone())
                - (log1m_exp(chosen.clone()) - log1m_exp(rejected.clone()));
            PairLoss {
                loss: (-log_sigmoid(log_odds) * beta).mean(),
                chosen_rewards: (chosen * beta).detach(),
                rejected_rewards: (rejected * beta).detach(),
            }
        }
        LossType::Kto => panic!("kto is unpaired: use kto_loss"),
    }
}

/// −(1 − ε)·log σ(x) − ε·log σ(−x): DPO, with TRL's conservative label smoothing.
fn smoothed_sigmoid(x: Tensor<1>, eps: f64) -> Tensor<1> {
    let loss = -log_sigmoid(x.clone()) * (1.0 - eps);
    if eps > 0.0 {
        loss - log_sigmoid(-x) * eps
    } else {
        loss
    }
}

/// One cross-entropy pooled over tokens: −Σ `logps` / `tokens`, where `logps` sums a shard's
/// sequences and `tokens` counts the whole batch's, so the shards' parts add up to the batch's
/// mean. ORPO's NLL (chosen prompt and response tokens, as TRL's ORPOTrainer labels them) and
/// DPO's `rpo_alpha` term (chosen response tokens) are both this.
pub fn pooled_nll(logps: Tensor<1>, tokens: usize) -> Tensor<1> {
    -logps.sum() / tokens.max(1) as f64
}

/// log(1 − eˣ) for x < 0 (an average log-prob), accurate on both sides of −ln 2 as TRL's
/// `log(-expm1(x))` / `log1p(-exp(x))` split is: near 0, eˣ − 1 = 2t / (1 − t) with
/// t = tanh(x / 2) keeps its digits where 1 − eˣ would cancel. Only x = 0 exactly (a policy
/// certain of every token) is held just below, where the value is large and finite.
pub fn log1m_exp(x: Tensor<1>) -> Tensor<1> {
    let near_zero = x.clone().greater_elem(-std::f64::consts::LN_2);
    // Each branch sees only inputs where it is finite, so no NaN gradient leaks from the other.
    let t = (x.clone().clamp(-std::f64::consts::LN_2, -1e-30) * 0.5).tanh();
    let near = (-t.clone() * 2.0).log() - (-t).log1p();
    let far = (-(x.clamp_max(-std::f64::consts::LN_2).exp())).log1p();
    far.mask_where(near_zero, near)
}

/// KTO on unpaired examples: `policy`/`reference` are sums `[B]`, `desirable` is 1.0/0.0
/// per row, `kl` the detached reference point z₀ ≥ 0 (estimated on mismatched pairs).
/// Desirable rows lose 1 − σ(β(Δ − z₀)), undesirable rows 1 − σ(β(z₀ − Δ)).
/// Both reward fields hold every row's β·Δ; the caller splits them by label.
pub fn kto_loss(
    beta: f64,
    policy: Tensor<1>,
    reference: Tensor<1>,
    desirable: Tensor<1>,
    kl: f64,
) -> PairLoss {
    let ratio = policy - reference;
    let good = -sigmoid((ratio.clone() - kl) * beta) + 1.0;
    let bad = -sigmoid((-ratio.clone() + kl) * beta) + 1.0;
    let undesirable = -desirable.clone() + 1.0;
    let loss = (good * desirable + bad * undesirable).mean();
    let rewards = (ratio * beta).detach();
    PairLoss {
        loss,
        chosen_rewards: rewards.clone(),
        rejected_rewards: rewards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &Device::flex(),
        )
    }

    fn scalar(x: Tensor<1>) -> f64 {
        x.into_scalar::<f32>() as f64
    }

    fn config(loss_type: LossType, beta: f64) -> LossConfig {
        LossConfig {
            loss_type,
            beta,
            label_smoothing: 0.0,
            simpo_gamma: 0.5,
            rpo_alpha: 0.0,
            dpop_lambda: 0.0,
        }
    }

    /// Chosen: policy −4 (2 tokens), ref −5; rejected: policy −6 (3 tokens), ref −5.
    /// Sums: Δw = 1, Δl = −1, logits = 2.
    fn inputs() -> PairInputs {
        PairInputs {
            chosen: SequenceLogps {
                sum: t(&[-4.0]),
                count: t(&[2.0]),
                prompt_sum: t(&[0.0]),
            },
            rejected: SequenceLogps {
                sum: t(&[-6.0]),
                count: t(&[3.0]),
                prompt_sum: t(&[0.0]),
            },
            reference: Some((t(&[-5.0]), t(&[-5.0]))),
        }
    }

    fn loss_of(loss_type: LossType, beta: f64) -> f64 {
        scalar(pair_loss(&config(loss_type, beta), inputs()).loss)
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    fn log_sigmoid_f(x: f64) -> f64 {
        -(1.0 + (-x).exp()).ln()
    }

    #[test]
    fn dpo_is_ln2_when_policy_equals_reference() {
        let out = pair_loss(
            &config(LossType::Sigmoid, 0.1),
            PairInputs {
                chosen: SequenceLogps {
                    sum: t(&[-3.0, -7.0]),
                    count: t(&[2.0, 2.0]),
                    prompt_sum: t(&[0.0]),
                },
                rejected: SequenceLogps {
                    sum: t(&[-4.0, -1.0]),
                    count: t(&[2.0, 2.0]),
                    prompt_sum: t(&[0.0]),
                },
                reference: Some((t(&[-3.0, -7.0]), t(&[-4.0, -1.0]))),
            },
        );
        close(scalar(out.loss), std::f64::consts::LN_2);
        close(
            scalar((out.chosen_rewards - out.rejected_rewards).abs().sum()),
            0.0,
        );
    }

    /// DPOP leaves a pair whose chosen response rose above the reference as DPO scores it,
    /// and takes λ × the fall off the logit of one whose chosen response fell.
    #[test]
    fn dpop_penalises_only_a_falling_chosen_likelihood() {
        let dpop = LossConfig {
            dpop_lambda: 5.0,
            ..config(LossType::Sigmoid, 0.1)
        };
        // inputs(): the chosen log-ratio is +1, no penalty.
        close(scalar(pair_loss(&dpop, inputs()).loss), -log_sigmoid_f(0.2));
        // Chosen −6 against ref −5 (ratio −1), rejected −6 against −5 (ratio −1):
        // logits = −1 − (−1) − 5·1 = −5.
        let falling = PairInputs {
            chosen: SequenceLogps {
                sum: t(&[-6.0]),
                count: t(&[2.0]),
                prompt_sum: t(&[0.0]),
            },
            rejected: SequenceLogps {
                sum: t(&[-6.0]),
                count: t(&[3.0]),
                prompt_sum: t(&[0.0]),
            },
            reference: Some((t(&[-5.0]), t(&[-5.0]))),
        };
        close(scalar(pair_loss(&dpop, falling).loss), -log_sigmoid_f(-0.5));
    }

    #[test]
    fn sigmoid_hinge_robust_ipo_by_hand() {
        // β·logits = 0.2
        close(loss_of(LossType::Sigmoid, 0.1), -log_sigmoid_f(0.2));
        close(loss_of(LossType::Hinge, 0.1), 1.0 - 0.2);
        close(loss_of(LossType::Hinge, 1.0), 0.0);
        let eps = 0.1;
        let robust = pair_loss(
            &LossConfig {
                label_smoothing: eps,
                ..config(LossType::Robust, 0.1)
            },
            inputs(),
        );
        close(
            scalar(robust.loss),
            (-(1.0 - eps) * log_sigmoid_f(0.2) + eps * log_sigmoid_f(-0.2)) / (1.0 - 2.0 * eps),
        );
        // IPO on averages: Δw = −2 − (−2.5) = 0.5, Δl = −2 − (−5/3) = −1/3, logits = 5/6.
        let logits: f64 = 0.5 + 1.0 / 3.0;
        close(loss_of(LossType::Ipo, 0.1), (logits - 5.0).powi(2));
        // Rewards are β·log-ratios (sums for DPO).
        let out = pair_loss(&config(LossType::Sigmoid, 0.1), inputs());
        close(scalar(out.chosen_rewards), 0.1);
        close(scalar(out.rejected_rewards), -0.1);
    }

    #[test]
    fn simpo_and_orpo_by_hand_without_reference() {
        let mut no_ref = inputs();
        no_ref.reference = None;
        // Averages: chosen −2, rejected −2; SimPO logits = 0 − γ/β = −0.25 at β = 2.
        let simpo = pair_loss(&config(LossType::Simpo, 2.0), no_ref);
        close(scalar(simpo.loss), -log_sigmoid_f(2.0 * -0.25));
        // ORPO's odds-ratio term with averages −2 (chosen) and −3 (rejected); its NLL is
        // pooled over the batch by the step (`pooled_nll`).
        let mut orpo_in = inputs();
        orpo_in.reference = None;
        orpo_in.rejected.sum = t(&[-9.0]); // average −3
        let odds = |x: f64| x - (1.0 - x.exp()).ln();
        let expected = -0.1 * log_sigmoid_f(odds(-2.0) - odds(-3.0));
        close(
            scalar(pair_loss(&config(LossType::Orpo, 0.1), orpo_in).loss),
            expected,
        );
    }

    #[test]
    fn kto_by_hand() {
        // Row 0 desirable, Δ = 1; row 1 undesirable, Δ = −2; z₀ = 0.5; β = 0.1.
        let out = kto_loss(0.1, t(&[-4.0, -7.0]), t(&[-5.0, -5.0]), t(&[1.0, 0.0]), 0.5);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = ((1.0 - sig(0.1 * 0.5)) + (1.0 - sig(0.1 * 2.5))) / 2.0;
        close(scalar(out.loss), expected);
    }

    #[test]
    fn log1m_exp_keeps_its_digits_near_zero_and_its_gradient() {
        for x in [-1e-7f64, -1e-4, -0.1, -0.5, -0.7, -1.0, -5.0] {
            let exact = (-x.exp_m1()).ln();
            let got = scalar(log1m_exp(t(&[x as f32])));
            assert!(
                ((got - exact) / exact).abs() < 1e-4,
                "log1m_exp({x}) = {got}, want {exact}"
            );
        }
        // The old clamp at −1e-6 gave log(1 − e^(−1e-6)) ≈ −13.8 here, with no gradient.
        let x = -1e-8;
        assert!((scalar(log1m_exp(t(&[x]))) - (1e-8f64).ln()).abs() < 1e-3);
        let device = burn::tensor::Device::flex().autodiff();
        let input = Tensor::<1>::from_floats([-1e-8f32, -0.3, -2.0], &device).require_grad();
        let grads = log1m_exp(input.clone()).sum().backward();
        let grad: Vec<f32> = input
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (g, x) in grad.iter().zip([-1e-8f64, -0.3, -2.0]) {
            let exact = -x.exp() / (-x.exp_m1()); // d/dx log(1 − eˣ)
            assert!(
                ((*g as f64 - exact) / exact).abs() < 1e-3,
                "{g} vs {exact} at {x}"
            );
        }
    }

    #[test]
    fn log_sigmoid_is_stable_far_out() {
        let x = scalar(-log_sigmoid(t(&[-200.0])));
        close(x, 200.0);
    }
}
