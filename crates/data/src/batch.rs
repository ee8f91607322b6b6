//! Prompt + completion pairs → padded token batches with a response mask.

use anyhow::{bail, Result};

use crate::tasks::Example;
use crate::TextTokenizer;

/// One example as token ids: prompt and completion tokenized separately, so the boundary
/// between them is exact for any tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

impl TokenizedExample {
    pub fn new(example: &Example, tokenizer: &TextTokenizer) -> Result<Self> {
        Ok(Self {
            prompt: tokenizer.encode(&example.prompt)?,
            completion: tokenizer.encode(&example.completion)?,
        })
    }

    pub fn len(&self) -> usize {
        self.prompt.len() + self.completion.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokenizes every example; one that does not fit the model's block, or has nothing to
/// train on, is an error naming it.
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

/// Host-side batch: `tokens` and `mask` are row-major `[rows, width]`.
/// `mask` is 1 on tokens the loss scores (the completion, or prompt + completion when the
/// prompt is not masked) and 0 on padding.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    pub tokens: Vec<i64>,
    pub mask: Vec<f32>,
    pub rows: usize,
    pub width: usize,
}

impl PaddedBatch {
    pub fn new(examples: &[&TokenizedExample], pad_id: u32, mask_prompt: bool) -> Self {
        let width = examples.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(examples.len() * width);
        let mut mask = Vec::with_capacity(examples.len() * width);
        for e in examples {
            tokens.extend(e.prompt.iter().chain(&e.completion).map(|&t| t as i64));
            tokens.extend(std::iter::repeat_n(pad_id as i64, width - e.len()));
            let prompt_weight = if mask_prompt { 0.0 } else { 1.0 };
            mask.extend(std::iter::repeat_n(prompt_weight, e.prompt.len()));
            mask.extend(std::iter::repeat_n(1.0, e.completion.len()));
            mask.extend(std::iter::repeat_n(0.0, width - e.len()));
        }
        Self {
            tokens,
            mask,
            rows: examples.len(),
            width,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_and_masks_prompt_and_padding() {
        let a = TokenizedExample {
            prompt: vec![1, 2],
            completion: vec![3],
        };
        let b = TokenizedExample {
            prompt: vec![4],
            completion: vec![5, 6, 7],
        };
        let batch = PaddedBatch::new(&[&a, &b], 0, true);
        assert_eq!(batch.width, 4);
        assert_eq!(batch.tokens, vec![1, 2, 3, 0, 4, 5, 6, 7]);
        assert_eq!(batch.mask, vec![0., 0., 1., 0., 0., 1., 1., 1.]);
        let unmasked = PaddedBatch::new(&[&a, &b], 0, false);
        assert_eq!(unmasked.mask, vec![1., 1., 1., 0., 1., 1., 1., 1.]);
    }
}
