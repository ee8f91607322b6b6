use std::path::Path;

use anyhow::{bail, Result};
use data::batch::TokenizedExample;
use data::tasks::Example;
use data::{jsonl, TextTokenizer};

/// The user's JSONL when one is configured; otherwise `generate()`, saved as `train.jsonl` in
/// the stage folder so the exact training set can be inspected or reused.
pub fn load_or_generate(
    train_file: Option<&Path>,
    out_dir: &Path,
    generate: impl FnOnce() -> Vec<Example>,
) -> Result<Vec<Example>> {
    match train_file {
        Some(path) => jsonl::read(path),
        None => {
            let examples = generate();
            jsonl::write(&out_dir.join("train.jsonl"), &examples)?;
            Ok(examples)
        }
    }
}

/// Tokenizes every example; one that does not fit the model's block is an error naming it.
pub fn tokenize_all(
    examples: &[Example],
    tokenizer: &TextTokenizer,
    block_size: usize,
) -> Result<Vec<TokenizedExample>> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let t = TokenizedExample::new(e, tokenizer)?;
            if t.len() > block_size {
                bail!(
                    "example {} ({:?}) is {} tokens, longer than model.block_size {block_size}",
                    i + 1,
                    e.prompt,
                    t.len()
                );
            }
            if t.completion.is_empty() {
                bail!(
                    "example {} ({:?}) has an empty completion: nothing to train on",
                    i + 1,
                    e.prompt
                );
            }
            Ok(t)
        })
        .collect()
}
