//! JSONL in TRL's field names. A malformed line is an error naming the file and the line.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row =
            serde_json::from_str(line).map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(anyhow!("{}: no examples", path.display()));
    }
    Ok(rows)
}

/// Written atomically (`crate::atomic::write`).
pub fn write<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row)?);
        text.push('\n');
    }
    crate::atomic::write(path, text)
}

/// The user's JSONL when one is configured; otherwise `generate()`, saved as `train.jsonl` in
/// `out_dir` so the exact training set can be inspected or reused.
pub fn load_or_generate<T: Serialize + DeserializeOwned>(
    train_file: Option<&Path>,
    out_dir: &Path,
    generate: impl FnOnce() -> Vec<T>,
) -> Result<Vec<T>> {
    match train_file {
        Some(path) => read(path),
        None => {
            let rows = generate();
            write(&out_dir.join("train.jsonl"), &rows)?;
            Ok(rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Example;

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\":\"<abcd>\",\"completion\":\"dcba#\"}\n{\"prompt\":\"x\"}\n",
        )
        .unwrap();
        let err = read::<Example>(&path).unwrap_err().to_string();
        assert!(err.contains("train.jsonl:2"), "{err}");
        assert!(err.contains("completion"), "{err}");
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let rows = vec![Example {
            prompt: "a".into(),
            completion: "b#".into(),
        }];
        write(&path, &rows).unwrap();
        assert_eq!(read::<Example>(&path).unwrap(), rows);
    }
}
