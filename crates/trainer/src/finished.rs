//! A finished stage folder, read the one way every reader reads it: a stage loading its parent,
//! and every command that evaluates, samples, serves, exports or measures a checkpoint.

use std::path::{Path, PathBuf};

use crate::{files, Manifest};
use anyhow::{bail, Result};
use burn::tensor::Device;
use data::TextTokenizer;
use model::{checkpoint, Gpt, GptConfig};

/// A stage folder's tokenizer and model shape, checked against each other; the weights and the
/// manifest are read on demand (the export needs neither through Burn).
pub struct FinishedStage {
    pub dir: PathBuf,
    pub config: GptConfig,
    pub tokenizer: TextTokenizer,
}

impl FinishedStage {
    /// Reads the checkpoint's model config and `DIR/tokenizer.json`; a missing or corrupt file
    /// is an error naming it, as is a tokenizer whose size does not match the checkpoint's.
    pub fn open(dir: &Path) -> Result<Self> {
        let checkpoint = dir.join(files::CHECKPOINT);
        let config = checkpoint::read_config(&checkpoint)?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", checkpoint.display()))?;
        let tokenizer = TextTokenizer::load(&dir.join(files::TOKENIZER))?;
        if tokenizer.vocab_size() != config.vocab_size {
            bail!(
                "{}: the tokenizer has {} tokens but the checkpoint's vocab_size is {}",
                dir.join(files::TOKENIZER).display(),
                tokenizer.vocab_size(),
                config.vocab_size
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
        })
    }

    /// The stage's final checkpoint file.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(files::CHECKPOINT)
    }

    /// The final weights on `device`.
    pub fn model(&self, device: &Device) -> Result<Gpt> {
        Ok(checkpoint::load(&self.checkpoint(), device)?.0)
    }

    /// What the stage recorded when it finished (settings, parent, checkpoint hash).
    pub fn manifest(&self) -> Result<Manifest> {
        Manifest::load(&self.dir.join(files::MANIFEST))
    }
}
