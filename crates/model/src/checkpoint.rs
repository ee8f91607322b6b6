//! Checkpoints are safetensors files. The model shape travels inside the file's metadata
//! (`gpt_config`, JSON), so a checkpoint can be loaded without any other file.
//! Writes are atomic: burn-store builds the file beside the target and renames it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;

use crate::{Gpt, GptConfig};

const CONFIG_KEY: &str = "gpt_config";

pub fn save(model: &Gpt, config: &GptConfig, path: &Path) -> Result<()> {
    let config_json = serde_json::to_string(config)?;
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .metadata(CONFIG_KEY, config_json);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing checkpoint {}: {e:?}", path.display()))
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
}

/// A training-state snapshot in Burn's own format, which keeps every parameter's id: the
/// optimizer's state is keyed by those ids, so a resumed run finds its moments again.
/// (Safetensors carries no ids; it is the format for finished checkpoints.)
pub fn save_state(model: &Gpt, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing training state {}: {e:?}", path.display()))
}

pub fn load_state(config: &GptConfig, path: &Path, device: &Device) -> Result<Gpt> {
    let mut model = Gpt::new(config, device);
    let mut store = BurnpackStore::from_file(path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("training state {} is unreadable: {e:?}", path.display()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        bail!(
            "training state {} does not match the model: missing {:?}, errors {:?}",
            path.display(),
            result.missing,
            result.errors
        );
    }
    Ok(model)
}
