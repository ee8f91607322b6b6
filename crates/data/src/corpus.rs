//! The pretraining corpus and its deterministic train/validation split.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Token ids of the corpus, split once: the last `val_fraction` of the text is validation.
/// A contiguous tail (not a random sample) keeps validation windows from overlapping
/// training windows, and is the same split on every run.
pub struct Corpus {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

pub fn read_text(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    Ok(text)
}

impl Corpus {
    pub fn split(ids: Vec<u32>, val_fraction: f64, window: usize) -> Result<Self> {
        if !(0.0..1.0).contains(&val_fraction) {
            bail!("pretrain.val_fraction must be in [0, 1), got {val_fraction}");
        }
        let n_val = ((ids.len() as f64) * val_fraction).round() as usize;
        let n_train = ids.len() - n_val;
        if n_train <= window || (n_val > 0 && n_val <= window) {
            bail!(
                "corpus of {} tokens is too small for windows of {window} with val_fraction {val_fraction}",
                ids.len()
            );
        }
        let mut train = ids;
        let val = train.split_off(n_train);
        Ok(Self { train, val })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_deterministic_tail() {
        let ids: Vec<u32> = (0..100).collect();
        let c = Corpus::split(ids, 0.1, 4).unwrap();
        assert_eq!(c.train, (0..90).collect::<Vec<_>>());
        assert_eq!(c.val, (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn too_small_corpus_is_an_error() {
        assert!(Corpus::split((0..10).collect(), 0.1, 8).is_err());
    }
}
