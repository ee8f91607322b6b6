//! Lesson 03's task: reverse a 4-letter word. Prompt `<abcd>`, completion `dcba#`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::example::Example;
use crate::split::{split_of, Split};

pub fn prompt(word: &str) -> String {
    format!("<{word}>")
}

pub fn completion(word: &str) -> String {
    format!("{}#", word.chars().rev().collect::<String>())
}

pub fn example(word: &str) -> Example {
    Example {
        prompt: prompt(word),
        completion: completion(word),
    }
}

/// Reads the word list (one lowercase 4-letter word a line); a bad line is an error naming it.
pub fn read_words(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading word list {}", path.display()))?;
    let mut words = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let word = line.trim();
        if word.len() != 4 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
            bail!(
                "{}:{}: {word:?} is not a lowercase 4-letter word",
                path.display(),
                i + 1
            );
        }
        words.push(word.to_string());
    }
    Ok(words)
}

/// Every word of `split`, shuffled with `seed`.
pub fn examples(words: &[String], split: Split, seed: u64) -> Vec<Example> {
    let mut chosen: Vec<&String> = words.iter().filter(|w| split_of(w) == split).collect();
    chosen.shuffle(&mut StdRng::seed_from_u64(seed));
    chosen.into_iter().map(|w| example(w)).collect()
}

/// The held-out words, in list order: the reverse task's evaluation set.
pub fn held_out_words(words: &[String]) -> Vec<String> {
    words
        .iter()
        .filter(|w| split_of(w) == Split::HeldOut)
        .cloned()
        .collect()
}

/// Exact match of the generated completion (cut at `#`) against the gold one.
pub fn is_correct(word_prompt: &str, generated: &str) -> bool {
    let word = word_prompt.trim_start_matches('<').trim_end_matches('>');
    generated == completion(word)
}

/// A completion in the task's format for `word`, right or wrong: as many letters as the
/// word, then the end mark `#`.
pub fn is_well_formed(word: &str, generated: &str) -> bool {
    generated
        .strip_suffix('#')
        .is_some_and(|letters| letters.chars().count() == word.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matches_the_lesson() {
        assert_eq!(
            example("abcd"),
            Example {
                prompt: "<abcd>".into(),
                completion: "dcba#".into()
            }
        );
        assert!(is_correct("<abcd>", "dcba#"));
        assert!(!is_correct("<abcd>", "dcb#"));
        assert!(is_well_formed("abcd", "dcbx#") && is_well_formed("abcd", "dcba#"));
        assert!(!is_well_formed("abcd", "dcb#") && !is_well_formed("abcd", "dcbax"));
    }

    #[test]
    fn train_and_held_out_never_share_a_word() {
        let words: Vec<String> = [
            "able", "back", "cold", "dark", "east", "face", "gold", "hand", "iron", "jump",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let train = examples(&words, Split::Train, 1);
        let held = examples(&words, Split::HeldOut, 2);
        assert_eq!(train.len() + held.len(), words.len());
        assert!(train.iter().all(|e| !held.contains(e)));
    }
}
