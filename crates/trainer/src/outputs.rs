use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use data::hash::sha256_hex;
use model::phase::PhaseTotals;
use model::{checkpoint, Gpt};
use serde::Serialize;

use crate::manifest::TimeSplit;
use crate::{files, Manifest, StageContext};

/// SHA-256 of a stage's resolved config: equal hashes mean "same settings".
pub fn config_hash<C: Serialize>(config: &C) -> String {
    sha256_hex(
        serde_json::to_string(config)
            .expect("config serialises")
            .as_bytes(),
    )
}

/// When a stage started, and the process's phase totals then: what its manifest's wall time
/// and [`TimeSplit`] are measured from.
#[derive(Debug, Clone, Copy)]
pub struct StageClock {
    started: Instant,
    phases: PhaseTotals,
}

impl StageClock {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            phases: PhaseTotals::now(),
        }
    }

    /// The time since the start, split by phase; the rest is training.
    pub fn split(&self) -> TimeSplit {
        let wall = self.started.elapsed().as_secs_f64();
        let spent = PhaseTotals::now().since(self.phases);
        TimeSplit {
            training_s: (wall - spent.sampling_s - spent.evaluation_s - spent.io_s).max(0.0),
            sampling_s: spent.sampling_s,
            evaluation_s: spent.evaluation_s,
            io_s: spent.io_s,
        }
    }
}

/// Writes a stage's checkpoint, its copy of the tokenizer and its manifest, each atomically,
/// then removes the stage's resume snapshots. The manifest goes last: a folder with a manifest
/// holds a complete stage.
pub fn save_stage(
    ctx: &StageContext,
    model: &Gpt,
    step: usize,
    config_hash: &str,
    clock: StageClock,
) -> Result<Manifest> {
    std::fs::create_dir_all(&ctx.out_dir)?;
    let checkpoint_path = ctx.checkpoint_path();
    checkpoint::save(model, &ctx.model, &checkpoint_path)?;
    ctx.tokenizer.save(&ctx.out_dir.join(files::TOKENIZER))?;
    let parent_checkpoint_hash = match &ctx.parent_dir {
        Some(dir) => Some(checkpoint_hash(&dir.join(files::CHECKPOINT))?),
        None => None,
    };
    let manifest = Manifest {
        stage: ctx.stage.clone(),
        step,
        config_hash: config_hash.to_string(),
        tokenizer_hash: ctx.tokenizer.hash(),
        checkpoint_hash: checkpoint_hash(&checkpoint_path)?,
        parent_checkpoint_hash,
        parent_dir: ctx.parent_dir.as_ref().map(|d| d.display().to_string()),
        model: ctx.model.clone(),
        device: ctx.device_name.clone(),
        wall_time_s: clock.started.elapsed().as_secs_f64(),
        time: Some(clock.split()),
    };
    manifest.save(&ctx.out_dir.join(files::MANIFEST))?;
    // The stage is complete: its loops' resume snapshots are no longer needed.
    crate::resume::discard_snapshots(&ctx.out_dir)?;
    Ok(manifest)
}

/// The identity of a checkpoint's content: SHA-256 of its header with keys in sorted order,
/// then its tensor bytes. Burn writes the header's metadata map in no fixed order, so a plain
/// file hash could differ for identical weights; this one does not.
pub fn checkpoint_hash(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {} to hash it", path.display()))?;
    let corrupt = || anyhow::anyhow!("checkpoint {} is corrupt: bad header", path.display());
    let len = u64::from_le_bytes(bytes.get(..8).ok_or_else(corrupt)?.try_into()?) as usize;
    let header = bytes.get(8..8 + len).ok_or_else(corrupt)?;
    // serde_json's map is ordered by key, so re-serialising sorts every object.
    let header: serde_json::Value = serde_json::from_slice(header).map_err(|_| corrupt())?;
    let mut canonical = serde_json::to_vec(&header)?;
    canonical.extend_from_slice(&bytes[8 + len..]);
    Ok(sha256_hex(&canonical))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use model::{checkpoint, Gpt};

    use super::checkpoint_hash;

    #[test]
    fn equal_weights_hash_equal_and_other_weights_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = test_support::tiny(7);
        let device = Device::flex();
        let (a, b) = test_support::seeded(&device, 1, || {
            (Gpt::new(&config, &device), Gpt::new(&config, &device))
        });
        let hash = |model: &Gpt, name: &str| {
            let path = dir.path().join(name);
            checkpoint::save(model, &config, &path).unwrap();
            checkpoint_hash(&path).unwrap()
        };
        // Several saves, so differently ordered metadata maps are likely among them.
        let first = hash(&a, "a0");
        for i in 1..6 {
            assert_eq!(hash(&a, &format!("a{i}")), first);
        }
        assert_ne!(hash(&b, "b"), first);
    }
}
