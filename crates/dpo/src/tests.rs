//! The stage's invariants on a tiny random model: cached reference = per-step passes, loss
//! ln 2 and margin 0 at step 0, one step raises the margin, the reference never changes.

use burn::tensor::Device;
use data::batch::TokenizedExample;
use model::{checkpoint, Gpt, GptConfig};
use trainer::driver::LoopSettings;
use trainer::resume::Resume;
use trainer::{LrSchedule, OptimConfig, OptimizerStep, TrainingLoop};

use crate::backward::pair_loss_backward;
use crate::config::{DpoConfig, LossConfig, LossType, PairSource};
use crate::logps::{four_pass_logps, pair_logps, TokenizedPair};
use crate::loss::{pair_loss, PairInputs};
use crate::reference::ReferenceLogps;
use crate::step::{Examples, PreferenceStep, StepConfig};
use trainer::Reference;

const PAD: u32 = 0;

fn shape() -> GptConfig {
    test_support::small(13)
}

/// The same random weights on the plain device (reference) and the autodiff one (policy).
fn policy_and_reference(dir: &std::path::Path) -> (Gpt, Gpt) {
    let device = Device::flex();
    let path = dir.join("parent.safetensors");
    let parent = test_support::seeded_model(&shape(), 3, &device);
    checkpoint::save(&parent, &shape(), &path).unwrap();
    let policy = checkpoint::load(&path, &device.clone().autodiff())
        .unwrap()
        .0;
    let reference = checkpoint::load(&path, &device).unwrap().0;
    (policy, reference)
}

fn example(prompt: &[u32], completion: &[u32]) -> TokenizedExample {
    TokenizedExample {
        prompt: prompt.to_vec(),
        completion: completion.to_vec(),
    }
}

/// Pairs of different lengths, so padding and masks matter.
fn pairs() -> Vec<TokenizedPair> {
    vec![
        TokenizedPair {
            chosen: example(&[1, 2, 3], &[4, 5, 12]),
            rejected: example(&[1, 2, 3], &[4, 6, 12]),
        },
        TokenizedPair {
            chosen: example(&[7, 8], &[9, 10, 11, 12]),
            rejected: example(&[7, 8], &[9, 12]),
        },
        TokenizedPair {
            chosen: example(&[3, 3, 3, 3], &[5, 12]),
            rejected: example(&[3, 3, 3, 3], &[6, 6, 6, 6, 12]),
        },
    ]
}

/// The policy, the pairs, and the reference's log-probs of all of them (cached).
fn policy_pairs_and_cache(dir: &std::path::Path) -> (Gpt, Vec<TokenizedPair>, ReferenceLogps) {
    let (policy, reference) = policy_and_reference(dir);
    let pairs = pairs();
    let all: Vec<&TokenizedPair> = pairs.iter().collect();
    let cache = ReferenceLogps::compute(&reference, &all, PAD, &Device::flex());
    (policy, pairs, cache)
}

fn values(t: burn::tensor::Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

fn sigmoid_loss() -> LossConfig {
    LossConfig {
        loss_type: LossType::Sigmoid,
        beta: 0.1,
        label_smoothing: 0.0,
        simpo_gamma: 0.5,
        rpo_alpha: 0.0,
        dpop_lambda: 0.0,
    }
}

#[test]
fn cached_reference_log_probs_equal_the_four_pass_values() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, reference) = policy_and_reference(dir.path());
    let pairs = pairs();
    let all: Vec<&TokenizedPair> = pairs.iter().collect();
    let cache = ReferenceLogps::compute(&reference, &all, PAD, &Device::flex());
    let device = Device::flex().autodiff();
    // The lesson's step: four separate passes over one sub-batch, picked out of order.
    let batch = [&pairs[2], &pairs[0]];
    let (_, _, ref_chosen, ref_rejected) =
        four_pass_logps(&policy, &reference, &batch, PAD, &device, &Device::flex());
    let (cached_chosen, cached_rejected) = cache.select(&[2, 0], &device);
    assert_close(&values(cached_chosen), &values(ref_chosen), 1e-5);
    assert_close(&values(cached_rejected), &values(ref_rejected), 1e-5);
    // And a log-prob is a real log-prob: negative, finite.
    assert!(cache.chosen.iter().all(|&x| x < 0.0 && x.is_finite()));
}

#[test]
fn step_zero_loss_is_ln2_and_one_step_raises_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, pairs, cache) = policy_pairs_and_cache(dir.path());
    let batch: Vec<&TokenizedPair> = pairs.iter().collect();
    let device = Device::flex().autodiff();
    let margin_and_loss = |policy: &Gpt| {
        let (chosen, rejected) = pair_logps(policy, &batch, PAD, &device);
        let out = pair_loss(
            &sigmoid_loss(),
            PairInputs {
                chosen,
                rejected,
                reference: Some(cache.select(&[0, 1, 2], &device)),
            },
        );
        let margin: f32 = values(out.chosen_rewards.clone() - out.rejected_rewards.clone())
            .iter()
            .sum::<f32>()
            / 3.0;
        (margin, out)
    };
    let (margin, out) = margin_and_loss(&policy);
    assert!(margin.abs() < 1e-6, "margin at step 0: {margin}");
    let loss = out.loss.clone().into_scalar::<f32>();
    assert!(
        (loss - std::f32::consts::LN_2).abs() < 1e-5,
        "loss at step 0: {loss}"
    );

    let optim = OptimConfig {
        weight_decay: 0.0,
        ..OptimConfig::with_lr(1e-2)
    };
    let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, 1);
    let (policy, _) = step.apply(policy, out.loss, 0).unwrap();
    let (after, _) = margin_and_loss(&policy);
    assert!(after > 0.0, "margin after one step: {after}");
}

fn config(loss_type: LossType, precompute: bool) -> DpoConfig {
    DpoConfig {
        pairs: PairSource::Corrupted,
        n_train: 3,
        ks: vec![2],
        train_file: None,
        kto_file: None,
        replay: 0.0,
        words: None,
        on_policy_samples: 2,
        frontier: None,
        loss: LossConfig {
            loss_type,
            ..sigmoid_loss()
        },
        compare: vec![],
        precompute_ref_log_probs: precompute,
        steps: 3,
        batch_size: 2,
        seed: 0,
        log_every: 1,
        eval_every: 0,
        eval_pairs: 3,
        eval: eval::SuiteConfig::default(),
        optimizer: OptimConfig::with_lr(1e-2),
        schedule: LrSchedule::Constant,
    }
}

/// `config.steps` steps of `config.loss` on `pairs` through the training loop, no snapshots.
fn train(
    config: &DpoConfig,
    pairs: &[TokenizedPair],
    labels: Option<&[f32]>,
    policy: Gpt,
    reference: Option<Reference>,
    metrics: &std::path::Path,
) -> anyhow::Result<Gpt> {
    let device = Device::flex().autodiff();
    let examples = match labels {
        Some(labels) => Examples::Labelled {
            rows: pairs,
            labels,
        },
        None => Examples::Pairs(pairs),
    };
    let step_config = StepConfig {
        loss: &config.loss,
        batch_size: config.batch_size,
        precompute_ref_log_probs: config.precompute_ref_log_probs,
        pad_id: PAD,
    };
    let mut body = PreferenceStep::new(examples, step_config, reference, &device)?;
    let dir = metrics.parent().unwrap();
    let training = TrainingLoop {
        label: "test".into(),
        cadence: config.cadence(),
        optimizer: &config.optimizer,
        schedule: &config.schedule,
        metrics_path: metrics.to_path_buf(),
        resume: Resume::new(dir, "test", "x", 0, &shape()),
        quiet: true,
    };
    training.run(policy, &device, &mut body, &mut |_| Ok(Vec::new()))
}

#[test]
fn reference_is_bit_identical_after_training_and_policy_moves() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, reference) = policy_and_reference(dir.path());
    let pairs = pairs();
    let config = config(LossType::Sigmoid, false); // the reference runs every step
    let metrics = dir.path().join("metrics.jsonl");
    let plain = Device::flex();
    let reference_handle = Reference {
        model: &reference,
        device: &plain,
    };
    let trained = train(
        &config,
        &pairs,
        None,
        policy,
        Some(reference_handle),
        &metrics,
    )
    .unwrap();
    // The tensor bytes of a saved checkpoint (burn writes its metadata map in no fixed order,
    // so whole files of equal weights can differ).
    let save = |model: &Gpt, name: &str| {
        let path = dir.path().join(name);
        checkpoint::save(model, &shape(), &path).unwrap();
        let bytes = std::fs::read(path).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    // The reference after training and a fresh load of the parent: the same bits.
    let parent = checkpoint::load(&dir.path().join("parent.safetensors"), &plain)
        .unwrap()
        .0;
    let before = data::hash::sha256_hex(&save(&parent, "fresh.safetensors"));
    let after = data::hash::sha256_hex(&save(&reference, "reference.safetensors"));
    assert_eq!(after, before, "the frozen reference changed");
    use burn::module::Module;
    let trained = data::hash::sha256_hex(&save(&trained.valid(), "policy.safetensors"));
    assert_ne!(trained, before, "the policy did not move");
    let rows = trainer::metrics::read_rows(&metrics).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].contains_key("rewards/margins") && rows[0].contains_key("rewards/accuracies"));
}

#[test]
fn every_loss_type_trains_a_few_steps() {
    for loss_type in LossType::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (policy, reference) = policy_and_reference(dir.path());
        let pairs = pairs();
        let labels = [1.0, 0.0, 1.0];
        let config = config(loss_type, true);
        let metrics = dir.path().join("metrics.jsonl");
        let plain = Device::flex();
        // Reference-free losses get no reference at all.
        let reference = loss_type.needs_reference().then_some(Reference {
            model: &reference,
            device: &plain,
        });
        let labels = (loss_type == LossType::Kto).then_some(&labels[..]);
        train(&config, &pairs, labels, policy, reference, &metrics)
            .unwrap_or_else(|e| panic!("{loss_type:?}: {e:#}"));
        let rows = trainer::metrics::read_rows(&metrics).unwrap();
        let loss = rows[2]["loss"].as_f64().unwrap();
        assert!(loss.is_finite(), "{loss_type:?}");
    }
}

/// The largest |difference| between two gradients of `model`'s parameters, and the largest
/// |entry| of the first (so a test can tell that there was a gradient to compare).
struct GradientDifference<'a> {
    a: &'a burn::optim::GradientsParams,
    b: &'a burn::optim::GradientsParams,
    max_difference: f32,
    max_entry: f32,
}

impl burn::module::ModuleVisitor for GradientDifference<'_> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<D>>,
    ) {
        let a = self.a.get::<D>(param.id).expect("gradient in a");
        let b = self.b.get::<D>(param.id).expect("gradient in b");
        let entry = a.clone().abs().max().into_scalar::<f32>();
        let difference = (a - b).abs().max().into_scalar::<f32>();
        self.max_entry = self.max_entry.max(entry);
        self.max_difference = self.max_difference.max(difference);
    }
}

/// TRL's rpo_alpha: the loss grows by α × the chosen tokens' NLL pooled over the batch (Σ
/// log-probs over Σ tokens), not by the mean of the responses' means.
#[test]
fn rpo_alpha_adds_the_chosen_nll_pooled_over_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, pairs, cache) = policy_pairs_and_cache(dir.path());
    let batch: Vec<&TokenizedPair> = pairs.iter().collect();
    let device = Device::flex().autodiff();
    let loss = |rpo_alpha| {
        let config = LossConfig {
            rpo_alpha,
            ..sigmoid_loss()
        };
        let reference = Some(cache.select(&[0, 1, 2], &device));
        let step = pair_loss_backward(&policy, &batch, reference, &config, PAD, &device, 1);
        step.out.loss.into_scalar::<f32>() as f64
    };
    let (chosen, _) = crate::logps::pair_logps(&policy, &batch, PAD, &device);
    let sums = chosen.sum.into_data().try_to_vec::<f32>().unwrap();
    let counts = chosen.count.into_data().try_to_vec::<f32>().unwrap();
    let pooled = -sums.iter().sum::<f32>() as f64 / counts.iter().sum::<f32>() as f64;
    let per_response = -sums.iter().zip(&counts).map(|(s, c)| s / c).sum::<f32>() as f64 / 3.0;
    assert!(
        (pooled - per_response).abs() > 1e-3,
        "the pairs' lengths differ"
    );
    let added = loss(0.5) - loss(0.0);
    assert!(
        (added - 0.5 * pooled).abs() < 1e-4,
        "{added} vs 0.5 × {pooled}"
    );
}

/// TRL's ORPO: the odds-ratio term plus one NLL pooled over the chosen sequences' tokens,
/// prompt included (ORPOTrainer labels every non-pad token); `logps/*` are per-token means.
#[test]
fn orpo_adds_the_nll_of_prompt_and_response_pooled_over_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, pairs, _) = policy_pairs_and_cache(dir.path());
    let batch: Vec<&TokenizedPair> = pairs.iter().collect();
    let device = Device::flex().autodiff();
    let config = LossConfig {
        loss_type: LossType::Orpo,
        ..sigmoid_loss()
    };
    let step = pair_loss_backward(&policy, &batch, None, &config, PAD, &device, 1);
    let (chosen, rejected) = crate::logps::pair_logps(&policy, &batch, PAD, &device);
    let values = |t: burn::tensor::Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let (means, logged) = (values(chosen.mean()), values(step.logps.0));
    for (mean, logged) in means.iter().zip(&logged) {
        assert!(
            (mean - logged).abs() < 1e-6,
            "logps/chosen {logged} vs mean {mean}"
        );
    }
    let odds_term = pair_loss(
        &config,
        PairInputs {
            chosen,
            rejected,
            reference: None,
        },
    )
    .loss
    .into_scalar::<f32>() as f64;
    // Every token after the first as the "completion": log π of the whole chosen sequence.
    let whole: Vec<TokenizedExample> = pairs
        .iter()
        .map(|p| {
            let tokens: Vec<u32> = p
                .chosen
                .prompt
                .iter()
                .chain(&p.chosen.completion)
                .copied()
                .collect();
            example(&tokens[..1], &tokens[1..])
        })
        .collect();
    let whole_refs: Vec<&TokenizedExample> = whole.iter().collect();
    let sums = values(crate::logps::sequence_logps(&policy, &whole_refs, PAD, &device).sum);
    let tokens: usize = whole.iter().map(|e| e.completion.len()).sum();
    let nll = -sums.iter().map(|&x| x as f64).sum::<f64>() / tokens as f64;
    let total = step.out.loss.into_scalar::<f32>() as f64;
    assert!(
        (total - (odds_term + nll)).abs() < 1e-4,
        "{total} vs {odds_term} + {nll}"
    );
}

#[test]
fn sharded_step_equals_the_whole_batch_step_for_every_paired_loss() {
    use burn::module::Module;

    let dir = tempfile::tempdir().unwrap();
    let (policy, pairs, cache) = policy_pairs_and_cache(dir.path());
    let batch: Vec<&TokenizedPair> = pairs.iter().collect();
    let device = Device::flex().autodiff();
    let with_rpo = LossConfig {
        rpo_alpha: 0.5,
        ..sigmoid_loss()
    };
    // Every paired loss; KTO is unpaired and never sharded.
    let losses: Vec<LossConfig> = LossType::ALL
        .into_iter()
        .filter(|&loss_type| loss_type != LossType::Kto)
        .map(|loss_type| LossConfig {
            loss_type,
            ..sigmoid_loss()
        })
        .collect();
    for loss in losses.iter().chain([&with_rpo]) {
        let step = |shards| {
            let reference = Some(cache.select(&[0, 1, 2], &device));
            pair_loss_backward(&policy, &batch, reference, loss, PAD, &device, shards)
        };
        // Three pairs on two shards: uneven, 2 + 1.
        let (whole, sharded) = (step(1), step(2));
        let name = loss.loss_type.name();
        let scalar = |t: burn::tensor::Tensor<1>| t.into_scalar::<f32>();
        let (whole_loss, sharded_loss) = (scalar(whole.out.loss), scalar(sharded.out.loss));
        // Relative: IPO's loss starts at (1/2β)² = 25.
        assert!(
            (whole_loss - sharded_loss).abs() <= 1e-6 * whole_loss.abs().max(1.0),
            "{name}: loss {whole_loss} vs {sharded_loss}"
        );
        assert_close(
            &values(whole.out.chosen_rewards),
            &values(sharded.out.chosen_rewards),
            1e-6,
        );
        assert_close(&values(whole.logps.1), &values(sharded.logps.1), 1e-5);
        let mut diff = GradientDifference {
            a: &whole.grads,
            b: &sharded.grads,
            max_difference: 0.0,
            max_entry: 0.0,
        };
        policy.visit(&mut diff);
        assert!(diff.max_entry > 1e-4, "{name}: no gradient to compare");
        assert!(
            diff.max_difference <= 1e-6 * diff.max_entry.max(1.0),
            "{name}: gradients differ by {} (largest entry {})",
            diff.max_difference,
            diff.max_entry
        );
    }
}

/// The displacement's whole-response log-probs are the sums the loss uses, and a policy
/// equal to its reference moves nothing anywhere.
#[test]
fn displacement_sums_match_the_losss_log_probs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, reference) = policy_and_reference(dir.path());
    let device = Device::flex();
    let pairs = pairs();
    let refs: Vec<&TokenizedPair> = pairs.iter().collect();
    let (chosen, rejected) = pair_logps(&reference, &refs, PAD, &device);
    let mean = |t: burn::tensor::Tensor<1>| {
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
    };
    let shown = crate::displacement::measure(&reference, &reference, &pairs, PAD, &device);
    assert!((shown.policy_chosen - mean(chosen.sum)).abs() < 1e-4);
    assert!((shown.policy_rejected - mean(rejected.sum)).abs() < 1e-4);
    for region in &shown.regions {
        assert_eq!(region.chosen.unwrap_or(0.0), 0.0, "{}", region.name);
        assert_eq!(region.rejected.unwrap_or(0.0), 0.0, "{}", region.name);
    }
    // Pairs 1 and 2 diverge at their second token, pair 3 at its first: 1 + 1 + 0 chosen
    // tokens before the divergence, one at it in each pair.
    assert_eq!(shown.regions[0].chosen_tokens, 2);
    assert_eq!(shown.regions[1].chosen_tokens, 3);
}
