//! Checkpoints are safetensors files. The model shape travels inside the file's metadata
//! (`gpt_config`, JSON), so a checkpoint can be loaded without any other file.
//! Writes are atomic: burn-store builds the file beside the target and renames it.

use crate::phase::{self, Phase};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;

use crate::{Gpt, GptConfig};

const CONFIG_KEY: &str = "gpt_config";

pub fn save(model: &Gpt, config: &GptConfig, path: &Path) -> Result<()> {
    phase::timed(Phase::Io, || {
        let config_json = serde_json::to_string(config)?;
        let mut store = SafetensorsStore::from_file(path)
            .overwrite(true)
            .metadata(CONFIG_KEY, config_json);
        model
            .save_into(&mut store)
            .map_err(|e| anyhow::anyhow!("writing checkpoint {}: {e:?}", path.display()))?;
        sort_header(path).with_context(|| format!("writing checkpoint {}", path.display()))
    })
}

/// Rewrites the file's JSON header with its keys, and its metadata's, in sorted order.
/// burn-store hands the metadata to safetensors in a `HashMap`, whose order changes from one
/// map to the next: without this, two checkpoints of the same weights differ in their bytes,
/// and so in their hashes. The header keeps its length, so the data offsets stand; the new
/// file replaces the old one by a rename.
fn sort_header(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let corrupt = || anyhow::anyhow!("burn-store wrote no safetensors header");
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(corrupt)?;
    let header = bytes.get(8..8 + len).ok_or_else(corrupt)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)?;
    let mut text = serde_json::to_string(&sorted(header))?;
    if text.len() > len {
        bail!("the sorted safetensors header is longer than the original");
    }
    text.push_str(&" ".repeat(len - text.len()));

    let staging = path.with_extension("safetensors.sorting");
    let mut file = File::create(&staging)?;
    file.write_all(&bytes[..8])?;
    file.write_all(text.as_bytes())?;
    file.write_all(&bytes[8 + len..])?;
    file.sync_all()?;
    std::fs::rename(&staging, path)?;
    Ok(())
}

/// The object with its entries in key order, and so every object inside it (the metadata).
fn sorted(
    object: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut entries: Vec<_> = object.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::Object(inner) => (key, serde_json::Value::Object(sorted(inner))),
            other => (key, other),
        })
        .collect()
}

/// Reads the model shape from a checkpoint's header without loading the weights.
pub fn read_config(path: &Path) -> Result<GptConfig> {
    let mut file =
        File::open(path).with_context(|| format!("opening checkpoint {}", path.display()))?;
    let corrupt = |what: &str| anyhow::anyhow!("checkpoint {} is corrupt: {what}", path.display());
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| corrupt("shorter than its 8-byte header length"))?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata()?.len();
    if len > file_len.saturating_sub(8) {
        return Err(corrupt("header length runs past the end of the file"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|_| corrupt("truncated header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| corrupt("header is not JSON"))?;
    let config = header
        .get("__metadata__")
        .and_then(|m| m.get(CONFIG_KEY))
        .and_then(|c| c.as_str())
        .ok_or_else(|| corrupt("no gpt_config in its metadata"))?;
    serde_json::from_str(config).map_err(|e| corrupt(&format!("bad gpt_config: {e}")))
}

/// Loads a checkpoint on `device`. On an autodiff device the result is trainable;
/// on a plain device it is frozen by construction.
pub fn load(path: &Path, device: &Device) -> Result<(Gpt, GptConfig)> {
    phase::timed(Phase::Io, || {
        let config = read_config(path)?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
        let mut model = Gpt::new(&config, device);
        let mut store = SafetensorsStore::from_file(path);
        let result = model
            .load_from(&mut store)
            .map_err(|e| anyhow::anyhow!("checkpoint {} is unreadable: {e:?}", path.display()))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            bail!(
                "checkpoint {} does not match its model shape: missing {:?}, errors {:?}",
                path.display(),
                result.missing,
                result.errors
            );
        }
        Ok((model, config))
    })
}

/// A training-state snapshot in Burn's own format, which keeps every parameter's id: the
/// optimizer's state is keyed by those ids, so a resumed run finds its moments again.
/// (Safetensors carries no ids; it is the format for finished checkpoints.)
pub fn save_state(model: &Gpt, path: &Path) -> Result<()> {
    phase::timed(Phase::Io, || {
        let mut store = BurnpackStore::from_file(path).overwrite(true);
        model
            .save_into(&mut store)
            .map_err(|e| anyhow::anyhow!("writing training state {}: {e:?}", path.display()))
    })
}

pub fn load_state(config: &GptConfig, path: &Path, device: &Device) -> Result<Gpt> {
    phase::timed(Phase::Io, || {
        let mut model = Gpt::new(config, device);
        let mut store = BurnpackStore::from_file(path);
        let result = model.load_from(&mut store).map_err(|e| {
            anyhow::anyhow!("training state {} is unreadable: {e:?}", path.display())
        })?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            bail!(
                "training state {} does not match the model: missing {:?}, errors {:?}",
                path.display(),
                result.missing,
                result.errors
            );
        }
        Ok(model)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_weights_give_the_same_file_and_it_loads() {
        let device = Device::flex();
        let config = GptConfig {
            vocab_size: 11,
            block_size: 8,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            position: crate::Position::Learned,
        };
        let model = Gpt::new(&config, &device);
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let path = dir.path().join(format!("model{i}.safetensors"));
                save(&model, &config, &path).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        // The metadata's order varied from save to save before the header was sorted.
        assert!(
            files.iter().all(|f| f == &files[0]),
            "checkpoints of one model differ"
        );
        let path = dir.path().join("model0.safetensors");
        let (loaded, loaded_config) = load(&path, &device).unwrap();
        assert_eq!(read_config(&path).unwrap().d_model, 16);
        assert_eq!(loaded_config.n_heads, 2);
        let tokens = burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(vec![1i64, 2, 3], [1, 3]),
            &device,
        );
        let diff = (model.forward(tokens.clone()) - loaded.forward(tokens))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
    }
}
