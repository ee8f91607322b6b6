use std::time::Instant;

use anyhow::Result;
use data::hash::{file_sha256, sha256_hex};
use model::{checkpoint, Gpt};
use serde::Serialize;

use crate::{files, Manifest, StageContext};

/// SHA-256 of a stage's resolved config: equal hashes mean "same settings".
pub fn config_hash<C: Serialize>(config: &C) -> String {
    sha256_hex(
        serde_json::to_string(config)
            .expect("config serialises")
            .as_bytes(),
    )
}

/// Writes a stage's checkpoint, its copy of the tokenizer and its manifest, each atomically.
/// The manifest goes last: a folder with a manifest holds a complete stage.
pub fn save_stage(
    ctx: &StageContext,
    model: &Gpt,
    step: usize,
    config_hash: &str,
    started: Instant,
) -> Result<Manifest> {
    std::fs::create_dir_all(&ctx.out_dir)?;
    let checkpoint_path = ctx.checkpoint_path();
    checkpoint::save(model, &ctx.model, &checkpoint_path)?;
    ctx.tokenizer.save(&ctx.out_dir.join(files::TOKENIZER))?;
    let parent_checkpoint_hash = match &ctx.parent_dir {
        Some(dir) => Some(file_sha256(&dir.join(files::CHECKPOINT))?),
        None => None,
    };
    let manifest = Manifest {
        stage: ctx.stage.clone(),
        step,
        config_hash: config_hash.to_string(),
        tokenizer_hash: ctx.tokenizer.hash(),
        checkpoint_hash: file_sha256(&checkpoint_path)?,
        parent_checkpoint_hash,
        parent_dir: ctx.parent_dir.as_ref().map(|d| d.display().to_string()),
        model: ctx.model.clone(),
        device: ctx.device_name.clone(),
        wall_time_s: started.elapsed().as_secs_f64(),
    };
    manifest.save(&ctx.out_dir.join(files::MANIFEST))?;
    Ok(manifest)
}
