use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use data::hash::short;
use model::Gpt;

use crate::{files, FinishedStage, StageContext};

/// The frozen reference (the parent) and the plain device it runs on: no autodiff, so no
/// graph and no gradient can reach it.
#[derive(Clone, Copy)]
pub struct Reference<'a> {
    pub model: &'a Gpt,
    pub device: &'a Device,
}

/// Loads the parent stage's final checkpoint onto `device` (autodiff for a policy, plain for
/// a frozen reference), after checking it belongs to this chain: same tokenizer, same shape.
pub fn load_parent(ctx: &StageContext, device: &Device) -> Result<Gpt> {
    let Some(dir) = &ctx.parent_dir else {
        bail!(
            "stage {} needs a parent checkpoint and none was given",
            ctx.stage
        );
    };
    if !dir.join(files::MANIFEST).is_file() {
        bail!(
            "parent {} has no {}: run its stage first (or pass --from a finished stage folder)",
            dir.display(),
            files::MANIFEST
        );
    }
    let loading = || format!("loading parent of {}", ctx.stage);
    let parent = FinishedStage::open(dir).with_context(loading)?;
    let manifest = parent.manifest()?;
    if manifest.tokenizer_hash != ctx.tokenizer.hash() {
        bail!(
            "parent {} was trained with tokenizer {} but this run's tokenizer is {}",
            dir.display(),
            short(&manifest.tokenizer_hash),
            short(&ctx.tokenizer.hash())
        );
    }
    if parent.config != ctx.model {
        bail!(
            "parent {} has model shape {:?}, this run expects {:?}",
            parent.checkpoint().display(),
            parent.config,
            ctx.model
        );
    }
    parent.model(device).with_context(loading)
}
