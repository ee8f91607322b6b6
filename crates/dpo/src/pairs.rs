//! Pair building: the training pairs (the user's, corrupted answers, or on-policy samples,
//! with replayed reverse-word pairs) and the held-out pairs.

use anyhow::{bail, Result};
use data::jsonl;
use data::split::Split;
use data::tasks::digit_sum::{held_out_problems, train_problems};
use data::tasks::preference::{corrupted_pairs, reverse_pairs, PreferencePair};
use data::tasks::reverse;
use model::Gpt;
use trainer::StageContext;

use crate::config::{DpoConfig, PairSource};
use crate::logps::{tokenize_pairs, TokenizedPair};
use crate::on_policy;

/// The user's pairs, or generated ones with the replayed reverse-word pairs mixed in (saved
/// as `train.jsonl` to inspect or reuse).
pub fn training_pairs(
    ctx: &StageContext,
    config: &DpoConfig,
    parent: &Gpt,
) -> Result<Vec<PreferencePair>> {
    if let Some(path) = &config.train_file {
        return jsonl::read(path);
    }
    let problems = train_problems(&config.ks, config.n_train, config.seed);
    let pairs = match config.pairs {
        PairSource::Corrupted => corrupted_pairs(&problems, config.seed),
        PairSource::OnPolicy => {
            let found = on_policy::sample_pairs(
                parent,
                &ctx.tokenizer,
                &problems,
                config.on_policy_samples,
                config.seed,
                &ctx.device,
            )?;
            eprintln!(
                "{}: on-policy pairs from {} prompts: {} pairs, {} all correct, {} none correct",
                ctx.stage,
                found.prompts,
                found.pairs.len(),
                found.all_correct,
                found.none_correct
            );
            if found.pairs.is_empty() {
                bail!(
                    "on-policy sampling found no prompt with both a correct and an incorrect \
                     sample ({} all correct, {} none correct); raise dpo.on_policy_samples or \
                     use pairs = \"corrupted\"",
                    found.all_correct,
                    found.none_correct
                );
            }
            found.pairs
        }
    };
    let pairs = with_replay(pairs, config)?;
    jsonl::write(&ctx.out_dir.join("train.jsonl"), &pairs)?;
    Ok(pairs)
}

/// `pairs` plus reverse-word pairs from SFT's train split, `replay` of the whole. Appended:
/// batches are drawn at random, and the train-split preference accuracy (the first
/// `eval_pairs`) stays about the task.
fn with_replay(mut pairs: Vec<PreferencePair>, config: &DpoConfig) -> Result<Vec<PreferencePair>> {
    let Some(path) = config.words.as_ref().filter(|_| config.replay > 0.0) else {
        return Ok(pairs);
    };
    let train_words: Vec<String> = reverse::read_words(path)?
        .into_iter()
        .filter(|w| data::split::split_of(w) == Split::Train)
        .collect();
    let n = data::replay::replay_count(pairs.len(), config.replay);
    pairs.extend(reverse_pairs(&train_words, n, config.seed));
    Ok(pairs)
}

/// Corrupted pairs on held-out problems, spread over the configured K.
pub fn held_out_pairs(ctx: &StageContext, config: &DpoConfig) -> Result<Vec<TokenizedPair>> {
    let suite = &config.eval;
    let per_k = config.eval_pairs.div_ceil(suite.ks.len());
    let problems: Vec<_> = suite
        .ks
        .iter()
        .flat_map(|&k| held_out_problems(k, per_k, suite.seed))
        .collect();
    debug_assert!(problems.iter().all(|p| p.split() == Split::HeldOut));
    tokenize_pairs(
        &corrupted_pairs(&problems, suite.seed),
        &ctx.tokenizer,
        ctx.model.block_size,
    )
}
