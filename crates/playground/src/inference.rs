//! One stage's checkpoint loaded for answering prompts: the shared core of `serve` and `chat`.
//! The model is read-only once loaded, so one copy answers any number of requests at once.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use chain::FinishedStage;
use data::tasks::recognise::{self, TaskVerdict};
use data::tokenizer::END;
use data::TextTokenizer;
use model::generate::{generate, SamplingOptions, Streams};
use model::{Gpt, GptConfig};
use serde::Serialize;

pub struct LoadedStage {
    pub dir: PathBuf,
    pub model: Gpt,
    pub config: GptConfig,
    pub tokenizer: TextTokenizer,
    end: u32,
}

/// How to continue a prompt. Temperature 0 is greedy.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    pub temperature: f32,
    pub top_k: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for Decoding {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            max_new_tokens: usize::MAX,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoredToken {
    pub text: String,
    /// log p(token | everything before it) under the stage's model.
    pub logprob: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub text: String,
    pub tokens: Vec<ScoredToken>,
    /// Sum of the tokens' log-probs: log π(completion | prompt).
    pub logprob: f64,
    /// The strict verifier's verdict where the prompt is a task problem.
    pub verdict: Option<TaskVerdict>,
}

impl LoadedStage {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let stage = FinishedStage::open(dir)?;
        let model = stage.model(device)?;
        let end = stage.tokenizer.symbol_id(END)?;
        Ok(Self {
            dir: stage.dir,
            model,
            config: stage.config,
            tokenizer: stage.tokenizer,
            end,
        })
    }

    /// The prompt's token ids; an empty prompt, one with no room left for an answer, or a
    /// character outside the vocabulary is an error saying which.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        let ids = self.tokenizer.encode(prompt)?;
        if ids.len() >= self.config.block_size {
            bail!(
                "the prompt is {} tokens; this model sees {} positions, so at most {} leave room for an answer",
                ids.len(),
                self.config.block_size,
                self.config.block_size - 1
            );
        }
        Ok(ids)
    }

    /// Continues `prompt` until the end token `#`, the token budget or the block's end.
    pub fn complete(
        &self,
        prompt: &str,
        decoding: Decoding,
        device: &Device,
    ) -> Result<Completion> {
        let prompt_ids = self.encode_prompt(prompt)?;
        let options = SamplingOptions {
            max_new_tokens: decoding.max_new_tokens,
            temperature: decoding.temperature,
            top_k: decoding.top_k,
            stop_token: Some(self.end),
        };
        let ids = generate(
            &self.model,
            std::slice::from_ref(&prompt_ids),
            options,
            Streams::new(decoding.seed),
            device,
        )
        .remove(0);
        Ok(self.scored(prompt, &prompt_ids, &ids, device))
    }

    /// `completion` scored as if this model had written it: log π(completion | prompt).
    pub fn score(&self, prompt: &str, completion: &str, device: &Device) -> Result<Completion> {
        let prompt_ids = self.encode_prompt(prompt)?;
        let ids = self.tokenizer.encode(completion)?;
        if ids.is_empty() || prompt_ids.len() + ids.len() > self.config.block_size {
            bail!(
                "prompt and completion must fit in {} tokens with a non-empty completion, got {} + {}",
                self.config.block_size,
                prompt_ids.len(),
                ids.len()
            );
        }
        Ok(self.scored(prompt, &prompt_ids, &ids, device))
    }

    fn scored(&self, prompt: &str, prompt_ids: &[u32], ids: &[u32], device: &Device) -> Completion {
        let logprobs = self.completion_logprobs(prompt_ids, ids, device);
        let text = self.tokenizer.decode(ids);
        let tokens = ids
            .iter()
            .zip(&logprobs)
            .map(|(&id, &logprob)| ScoredToken {
                text: self.tokenizer.decode(&[id]),
                logprob,
            })
            .collect();
        Completion {
            verdict: recognise::verdict(prompt, &text),
            logprob: logprobs.iter().map(|&l| l as f64).sum(),
            text,
            tokens,
        }
    }

    /// log p of each completion token, from one forward pass over prompt + completion.
    fn completion_logprobs(&self, prompt_ids: &[u32], ids: &[u32], device: &Device) -> Vec<f32> {
        if ids.is_empty() {
            return Vec::new();
        }
        let all: Vec<i64> = prompt_ids.iter().chain(ids).map(|&i| i as i64).collect();
        let len = all.len();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(all, [1, len]), device);
        let logits = self.model.forward(tokens.clone());
        let per_token: Vec<f32> = logprob::token_logprobs(logits, tokens)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 log-probs");
        per_token[prompt_ids.len() - 1..].to_vec()
    }
}
