//! Hand-computed checks on tensors small enough to verify on paper.

use super::*;
use burn::tensor::{Device, TensorData};

fn device() -> Device {
    Device::flex()
}

fn floats<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), &device())
}

fn ints(values: Vec<i64>, shape: [usize; 2]) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), &device())
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} != {b:?}");
    }
}

/// One sequence of 3 tokens over a vocabulary of 2. Logits at position 0 are [0, 0]
/// (log p = ln ½ for either token); at position 1 they are [ln 3, 0] (p = ¾, ¼).
fn tiny() -> (Tensor<3>, Tensor<2, Int>) {
    let ln3 = 3f32.ln();
    let logits = floats(vec![0.0, 0.0, ln3, 0.0, 5.0, 5.0], [1, 3, 2]);
    let tokens = ints(vec![1, 1, 0], [1, 3]);
    (logits, tokens)
}

#[test]
fn token_logprobs_shift_by_one() {
    let (logits, tokens) = tiny();
    // token 1 from position 0: ln ½; token 0 from position 1: ln ¾. Position 2 predicts nothing.
    close(
        &to_vec(token_logprobs(logits, tokens)),
        &[0.5f32.ln(), 0.75f32.ln()],
    );
}

#[test]
fn gather_logprobs_sums_only_the_response() {
    let (logits, tokens) = tiny();
    // Only the last token is response: its log-prob is ln ¾.
    let mask = floats(vec![0.0, 0.0, 1.0], [1, 3]);
    close(
        &to_vec(gather_logprobs(logits.clone(), tokens.clone(), mask)),
        &[0.75f32.ln()],
    );
    let all = floats(vec![1.0, 1.0, 1.0], [1, 3]);
    let lp = to_vec(gather_logprobs(logits, tokens, all));
    close(&lp, &[0.5f32.ln() + 0.75f32.ln()]);
}

#[test]
fn gather_logprobs_returns_one_value_per_sequence() {
    let logits = floats(vec![0.0; 2 * 4 * 3], [2, 4, 3]);
    let tokens = ints(vec![0, 1, 2, 0, 2, 2, 1, 0], [2, 4]);
    let mask = floats(vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0], [2, 4]);
    let lp = gather_logprobs(logits, tokens, mask);
    assert_eq!(lp.dims(), [2]);
    let third = (1.0f32 / 3.0).ln();
    close(&to_vec(lp), &[3.0 * third, third]);
}

#[test]
fn masked_cross_entropy_averages_over_scored_tokens() {
    let (logits, tokens) = tiny();
    let mask = floats(vec![1.0, 1.0, 1.0], [1, 3]);
    let ce = masked_cross_entropy(logits, tokens, mask).unwrap();
    close(&to_vec(ce), &[-(0.5f32.ln() + 0.75f32.ln()) / 2.0]);
}

#[test]
fn masked_cross_entropy_with_empty_mask_is_an_error_not_nan() {
    let (logits, tokens) = tiny();
    // Only position 0 is marked, and position 0 is never a target.
    let mask = floats(vec![1.0, 0.0, 0.0], [1, 3]);
    assert_eq!(
        masked_cross_entropy(logits, tokens, mask).unwrap_err(),
        EmptyMask
    );
}

#[test]
fn k3_is_zero_when_policy_equals_reference_and_positive_otherwise() {
    let policy = floats(vec![-1.0, -2.0, -0.5], [3]);
    close(
        &to_vec(k3_kl(policy.clone(), policy.clone())),
        &[0.0, 0.0, 0.0],
    );
    let reference = floats(vec![-2.0, -1.0, -0.5], [3]);
    // r = ref − policy = [−1, 1, 0]: e^−1 + 1 − 1 = 0.367879, e − 1 − 1 = 0.718282, 0.
    close(
        &to_vec(k3_kl(policy, reference)),
        &[(-1f32).exp(), 1f32.exp() - 2.0, 0.0],
    );
}
