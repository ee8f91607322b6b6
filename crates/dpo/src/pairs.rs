//! Pair building: the training pairs (the user's, corrupted answers, or on-policy samples,
//! with replayed reverse-word pairs) and the held-out pairs.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use data::jsonl;
use data::split::Split;
use data::tasks::digit_sum::{held_out_problems, train_problems, DigitSum};
use data::tasks::preference::{corrupted_pairs, reverse_pairs, PreferencePair};
use data::tasks::reverse;
use eval::EvalRow;
use model::Gpt;
use trainer::StageContext;

use crate::config::{DpoConfig, PairSource};
use crate::logps::{tokenize_pairs, TokenizedPair};
use crate::on_policy;

/// The user's pairs, or generated ones with the replayed reverse-word pairs mixed in (saved
/// as `train.jsonl` to inspect or reuse), and for sampled pairs how many prompts gave one, per
/// K (`eval.json` rows).
pub fn training_pairs(
    ctx: &StageContext,
    config: &DpoConfig,
    parent: &Gpt,
) -> Result<(Vec<PreferencePair>, Vec<EvalRow>)> {
    if let Some(path) = &config.train_file {
        return Ok((jsonl::read(path)?, Vec::new()));
    }
    let mut rows = Vec::new();
    let problems = train_problems(&config.ks, config.n_train, config.seed);
    let mut pairs = match config.pairs {
        PairSource::Corrupted => corrupted_pairs(&problems, config.seed),
        PairSource::OnPolicy => {
            let found = sampled_pairs(
                ctx,
                parent,
                &problems,
                config.on_policy_samples,
                None,
                config.seed,
                ("on_policy", &mut rows),
            )?;
            if found.is_empty() {
                bail!(
                    "on-policy sampling found no prompt with both a correct and an incorrect \
                     sample; raise dpo.on_policy_samples or use pairs = \"corrupted\""
                );
            }
            found
        }
    };
    if let Some(frontier) = &config.frontier {
        // Their own problem and sampling streams, so adding them leaves the pairs above as they were.
        let seed = config.seed ^ FRONTIER_STREAM;
        let problems = train_problems(&frontier.ks, frontier.prompts, seed);
        // None found is an answer, not an error: a parent that never samples a right trace
        // there gives DPO nothing to prefer, and the stage goes on with the pairs above.
        let mut found = sampled_pairs(
            ctx,
            parent,
            &problems,
            frontier.samples,
            frontier.max_pairs,
            seed,
            ("frontier", &mut rows),
        )?;
        if let Some(max) = frontier.max_pairs.filter(|&max| found.len() > max) {
            eprintln!(
                "{}: keeping the first {max} of {} frontier pairs",
                ctx.stage,
                found.len()
            );
            found.truncate(max);
        }
        pairs.extend(found);
    }
    let pairs = with_replay(pairs, config)?;
    jsonl::write(&ctx.out_dir.join("train.jsonl"), &pairs)?;
    Ok((pairs, rows))
}

/// Separates the frontier's problems and samples from the main pairs' (ASCII "frontier").
const FRONTIER_STREAM: u64 = 0x6672_6f6e_7469_6572;

/// The parent's own samples paired by the verifier (sampling stops once `max_pairs` are
/// found), with what sampling found printed and added to `rows` per K under the source's name.
fn sampled_pairs(
    ctx: &StageContext,
    parent: &Gpt,
    problems: &[DigitSum],
    samples: usize,
    max_pairs: Option<usize>,
    seed: u64,
    (source, rows): (&str, &mut Vec<EvalRow>),
) -> Result<Vec<PreferencePair>> {
    let found = on_policy::sample_pairs(
        parent,
        &ctx.tokenizer,
        problems,
        samples,
        max_pairs,
        seed,
        &ctx.device,
    )?;
    let ks: BTreeSet<usize> = problems.iter().map(|p| p.k()).collect();
    eprintln!(
        "{}: on-policy pairs at K {:?} from {} prompts: {} pairs, {} all correct, {} none correct",
        ctx.stage,
        ks,
        found.prompts,
        found.pairs.len(),
        found.all_correct,
        found.none_correct
    );
    for (&k, &(prompts, pairs)) in &found.per_k {
        rows.push(EvalRow::on_policy_pairs(source, k, prompts, pairs));
    }
    Ok(found.pairs)
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
