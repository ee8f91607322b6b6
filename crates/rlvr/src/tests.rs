//! GRPO's loss on a tiny random model: KL is 0 while policy = reference, and one step on a
//! group with one success raises that rollout's log-prob and moves the policy off the reference.

use burn::tensor::Device;
use data::batch::{PaddedBatch, TokenizedExample};
use model::{checkpoint, Gpt, GptConfig};
use trainer::tensors::padded_batch;
use trainer::{LrSchedule, OptimConfig, OptimizerStep};

use crate::advantage::group_advantages;
use crate::groups::LiveGroup;
use crate::loss::GrpoLoss;
use crate::rollout::Rollout;
use data::tasks::digit_sum::DigitSum;
use test_support::seeded_model;

fn shape() -> GptConfig {
    test_support::small(13)
}

fn rollout(completion: &[u32]) -> Rollout {
    Rollout {
        prompt_index: 0,
        prompt: vec![1, 2, 3],
        completion: completion.to_vec(),
        text: String::new(),
        clipped: false,
    }
}

fn logp(model: &Gpt, r: &Rollout, device: &Device) -> f32 {
    let example = TokenizedExample {
        prompt: r.prompt.clone(),
        completion: r.completion.clone(),
    };
    let batch = PaddedBatch::new(&[&example], 0, true);
    let (tokens, mask) = padded_batch(&batch, device);
    logprob::gather_logprobs(model.forward(tokens.clone()), tokens, mask).into_scalar::<f32>()
}

/// In every loss type, the lesson's and TRL's.
#[test]
fn kl_starts_at_zero_and_a_step_favours_the_rewarded_rollout() {
    use crate::loss::GrpoLossType::*;
    for loss_type in [Lesson, Grpo, Bnpo, DrGrpo, Dapo] {
        step_favours_the_rewarded_rollout(loss_type);
    }
}

/// A seeded parent as policy (on `device`) and frozen reference (on `plain`), and one group of
/// four rollouts of which the first alone is rewarded.
fn parent_and_group(plain: &Device, device: &Device) -> (Gpt, Gpt, [Rollout; 4], [LiveGroup; 1]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parent.safetensors");
    checkpoint::save(&seeded_model(&shape(), 11, plain), &shape(), &path).unwrap();
    let policy = checkpoint::load(&path, device).unwrap().0;
    let reference = checkpoint::load(&path, plain).unwrap().0;
    let group = [
        rollout(&[4, 5, 12]),
        rollout(&[6, 7, 12]),
        rollout(&[8, 9, 10, 12]),
        rollout(&[11, 12]),
    ];
    let live = [LiveGroup {
        rollouts: group.to_vec(),
        advantages: group_advantages(&[1.0, 0.0, 0.0, 0.0]).unwrap(),
    }];
    (policy, reference, group, live)
}

fn step_favours_the_rewarded_rollout(loss_type: crate::loss::GrpoLossType) {
    let plain = Device::flex();
    let device = plain.clone().autodiff();
    let (policy, reference, group, live) = parent_and_group(&plain, &device);
    let grpo = GrpoLoss {
        reference: trainer::Reference {
            model: &reference,
            device: &plain,
        },
        beta: 0.05,
        loss_type,
        clip_range: (0.2, 0.2),
        pad_id: 0,
        device: &device,
    };
    let (loss, stats) = grpo.compute(&policy, &live, &grpo.frozen(&live, None));
    let kl = stats.kl;
    assert!(
        kl.abs() < 1e-6,
        "{loss_type:?}: KL with policy = reference: {kl}"
    );

    let before = logp(&reference, &group[0], &plain);
    let optim = OptimConfig {
        weight_decay: 0.0,
        ..OptimConfig::with_lr(1e-2)
    };
    let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, 1);
    let (policy, _) = step.apply(policy, loss, 0).unwrap();
    use burn::module::Module;
    let after = logp(&policy.valid(), &group[0], &plain);
    assert!(
        after > before,
        "{loss_type:?}: log π(rewarded) {before} → {after}"
    );
    let (_, after_step) = grpo.compute(&policy, &live, &grpo.frozen(&live, None));
    let kl_after = after_step.kl;
    assert!(kl_after > 0.0, "{loss_type:?}: KL after a step: {kl_after}");
    assert!(after_step.entropy > 0.0, "{loss_type:?}: {after_step:?}");
}

/// TRL's num_iterations: later updates on the same rollouts divide by the sampling policy's
/// log-probs. At the start the ratio is 1 (the loss equals the first update's, nothing
/// clipped); after large steps some of the rewarded rollout's tokens pass 1 + ε and some of
/// the others' fall below 1 − ε, and the clip shares count them.
#[test]
fn later_iterations_clip_the_ratio_to_the_sampling_policy() {
    let plain = Device::flex();
    let device = plain.clone().autodiff();
    let (mut policy, reference, _, live) = parent_and_group(&plain, &device);
    let grpo = GrpoLoss {
        reference: trainer::Reference {
            model: &reference,
            device: &plain,
        },
        beta: 0.0,
        loss_type: crate::loss::GrpoLossType::Grpo,
        clip_range: (0.2, 0.2),
        pad_id: 0,
        device: &device,
    };
    let frozen = grpo.frozen(&live, Some(&reference));
    let (first, first_stats) = grpo.compute(&policy, &live, &frozen);
    let (same, _) = grpo.compute(&policy, &live, &grpo.frozen(&live, None));
    let value = |t: burn::tensor::Tensor<1>| t.into_scalar::<f32>();
    assert!((value(first.clone()) - value(same)).abs() < 1e-6);
    assert_eq!(first_stats.clip_region, 0.0, "{first_stats:?}");

    let optim = OptimConfig {
        weight_decay: 0.0,
        ..OptimConfig::with_lr(5e-2)
    };
    let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, 1);
    let mut loss = first;
    for i in 0..6 {
        policy = step.apply(policy, loss, i).unwrap().0;
        loss = grpo.compute(&policy, &live, &frozen).0;
    }
    let (_, stats) = grpo.compute(&policy, &live, &frozen);
    assert!(stats.clip_high > 0.0, "{stats:?}");
    assert!(stats.clip_low > 0.0, "{stats:?}");
    assert!((stats.clip_region - stats.clip_low - stats.clip_high).abs() < 1e-12);
}

/// The GRPO step through the training loop with an injected reward that is sure to mix
/// groups (odd-length completions earn 1): every step updates, loss and KL are finite, the
/// policy's weights move, and the frozen reference's do not.
type MetricsRow = serde_json::Map<String, serde_json::Value>;

/// The rows of three GRPO steps through the training loop on a tiny random policy, with
/// `reward` in place of the verifier; then the token embeddings of the parent, the trained
/// policy and the reference.
fn grpo_steps(
    reward: &crate::step::RewardFn,
    resample_rounds: usize,
) -> (Vec<MetricsRow>, [Vec<f32>; 3]) {
    grpo_steps_with(reward, |config| config.resample_rounds = resample_rounds)
}

/// [`grpo_steps`] with the test's `[rlvr]` settings changed by `set`.
fn grpo_steps_with(
    reward: &crate::step::RewardFn,
    set: impl FnOnce(&mut crate::config::RlvrConfig),
) -> (Vec<MetricsRow>, [Vec<f32>; 3]) {
    use burn::module::Module;
    use data::tokenizer::{TokenizerConfig, TASK_ALPHABET};
    use data::TextTokenizer;
    use trainer::resume::Resume;
    use trainer::TrainingLoop;

    use crate::config::RlvrConfig;
    use crate::step::{GrpoStep, Task};

    let dir = tempfile::tempdir().unwrap();
    let tokenizer = TextTokenizer::train(&TokenizerConfig::default(), &[TASK_ALPHABET]).unwrap();
    let shape = GptConfig {
        vocab_size: tokenizer.vocab_size(),
        block_size: 24,
        ..shape()
    };
    let plain = Device::flex();
    let path = dir.path().join("parent.safetensors");
    checkpoint::save(&seeded_model(&shape, 5, &plain), &shape, &path).unwrap();
    let device = plain.clone().autodiff();
    let policy = checkpoint::load(&path, &device).unwrap().0;
    let reference = checkpoint::load(&path, &plain).unwrap().0;
    let weights = |model: &Gpt| {
        model
            .token_embedding
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let parent_weights = weights(&reference);

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipeline.toml"))
        .unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut config: RlvrConfig = table["rlvr"].clone().try_into().unwrap();
    config.ks = vec![2];
    config.steps = 3;
    config.log_every = 1;
    config.eval_every = 0;
    config.optimizer.lr = 1e-2;
    set(&mut config);
    config.validate().unwrap();
    let task = Task {
        pool: crate::curriculum::Pool::new(&config.ks, 10, 0),
        tokenizer: &tokenizer,
        reward,
    };
    let frozen = trainer::Reference {
        model: &reference,
        device: &plain,
    };
    let mut body = GrpoStep::new(task, &config, frozen, &device).unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    let training = TrainingLoop {
        label: "test".into(),
        cadence: trainer::LoopSettings::cadence(&config),
        optimizer: &config.optimizer,
        schedule: &config.schedule,
        metrics_path: metrics.clone(),
        resume: Resume::new(dir.path(), "test", "x", 0, &shape),
        quiet: true,
    };
    let policy = training
        .run(policy, &device, &mut body, &mut |_| Ok(Vec::new()))
        .unwrap();
    let rows = trainer::metrics::read_rows(&metrics).unwrap();
    (
        rows,
        [
            parent_weights,
            weights(&policy.valid()),
            weights(&reference),
        ],
    )
}

/// Rewards completions of odd length: groups of random samples are mixed.
fn odd_length(_: &DigitSum, completion: &str) -> f64 {
    (completion.len() % 2) as f64
}

#[test]
fn grpo_steps_update_the_policy_when_groups_are_mixed() {
    let (rows, [parent, policy, reference]) = grpo_steps(&odd_length, 0);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["updates"].as_u64(), Some(1), "{row:?}");
        for key in ["loss", "kl", "grad_norm"] {
            let value = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(value.is_finite(), "{key}: {row:?}");
        }
    }
    assert_ne!(policy, parent, "the policy moved");
    assert_eq!(reference, parent, "the reference did not");
}

#[test]
fn num_iterations_updates_each_batch_several_times_and_logs_trls_metrics() {
    let (rows, [parent, policy, _]) = grpo_steps_with(&odd_length, |config| {
        config.loss_type = crate::loss::GrpoLossType::Grpo;
        config.num_iterations = 2;
        config.epsilon_high = Some(0.28);
    });
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["updates"].as_u64(), Some(2), "{row:?}");
        for key in [
            "entropy",
            "clip_ratio/low_mean",
            "clip_ratio/high_mean",
            "clip_ratio/region_mean",
        ] {
            let value = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(value.is_finite() && value >= 0.0, "{key}: {row:?}");
        }
    }
    assert_ne!(policy, parent);
}

/// The curriculum's plumbing through the loop: a check each step (the random policy solves
/// nothing at K = 3, so the pool stays), logged as `curriculum/*`.
#[test]
fn a_curriculum_checks_the_newest_k_and_logs_it() {
    let (rows, _) = grpo_steps_with(&odd_length, |config| {
        config.curriculum = Some(crate::curriculum::CurriculumConfig {
            frontier: vec![3, 4],
            advance_at: 0.9,
            check_every: 1,
            check_problems: 4,
        });
    });
    for row in &rows {
        assert_eq!(row["curriculum/max_k"].as_u64(), Some(2), "{row:?}");
    }
    assert_eq!(
        rows[0]["curriculum/check_accuracy"],
        serde_json::Value::Null
    );
    assert_eq!(rows[1]["curriculum/check_accuracy"].as_f64(), Some(0.0));
}

/// Hints through the loop: the verifier sees hint + completion (a reward that pays a trace
/// whose first step is right pays every hinted rollout), and the share anneals to 0, where
/// the random policy's own traces are scored.
#[test]
fn hints_reach_the_verifier_and_anneal_away() {
    use data::tasks::digit_sum::Mode;
    let first_step_right = |problem: &DigitSum, text: &str| {
        let trace = problem.completion(Mode::Cot);
        let first = &trace[..trace.find(';').unwrap() + 1];
        f64::from(u8::from(text.starts_with(first)))
    };
    let (rows, _) = grpo_steps_with(&first_step_right, |config| {
        config.ks = vec![3];
        config.hints = Some(crate::hints::HintConfig {
            min_k: 3,
            fraction: 0.9,
            anneal_steps: 2,
        });
    });
    let share = |i: usize| rows[i]["hints/share"].as_f64().unwrap();
    assert_eq!((share(0), share(1), share(2)), (0.9, 0.45, 0.0));
    assert_eq!(rows[0]["reward"].as_f64(), Some(1.0), "{:?}", rows[0]);
    assert!(rows[2]["reward"].as_f64().unwrap() < 1.0, "{:?}", rows[2]);
}

#[test]
fn num_iterations_needs_a_ratio_and_epsilons_their_range() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipeline.toml"))
        .unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let config: crate::config::RlvrConfig = table["rlvr"].clone().try_into().unwrap();
    let error = |set: fn(&mut crate::config::RlvrConfig)| {
        let mut config = config.clone();
        set(&mut config);
        config.validate().unwrap_err()
    };
    assert!(error(|c| c.num_iterations = 2)
        .contains("rlvr.num_iterations = 2 needs one of TRL's loss types"));
    assert!(error(|c| c.num_iterations = 0).contains("rlvr.num_iterations must be >= 1"));
    assert!(error(|c| c.epsilon = 1.5).contains("rlvr.epsilon must be < 1"));
    assert!(error(|c| c.epsilon_high = Some(-0.1)).contains("rlvr.epsilon_high must be > 0"));
}

#[test]
fn dynamic_sampling_replaces_dead_groups_and_counts_only_the_first_draw() {
    // Prompts whose first digit is even always score 0: their groups are dead.
    let half_dead = |problem: &DigitSum, completion: &str| {
        if problem.digits[0].is_multiple_of(2) {
            0.0
        } else {
            odd_length(problem, completion)
        }
    };
    let (once, _) = grpo_steps(&half_dead, 0);
    let (resampled, _) = grpo_steps(&half_dead, 3);
    let live = |rows: &[MetricsRow]| -> f64 {
        rows.iter()
            .map(|r| r["live_groups"].as_f64().unwrap())
            .sum()
    };
    // The first step's first draw is the same in both: the dead-group rate compares.
    assert_eq!(
        once[0]["frac_reward_zero_std"],
        resampled[0]["frac_reward_zero_std"]
    );
    assert!(once[0]["frac_reward_zero_std"].as_f64().unwrap() > 0.0);
    assert!(
        live(&resampled) > live(&once),
        "resampling found more live groups: {} vs {}",
        live(&resampled),
        live(&once)
    );
}
