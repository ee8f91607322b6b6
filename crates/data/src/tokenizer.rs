//! One vocabulary for the whole chain, built with the `tokenizers` crate and saved as an
//! HF `tokenizer.json`, so Python's `tokenizers` loads the very same file.
//!
//! - `char` (the lessons' choice): one token per character. A BPE model with no merges
//!   over the character set, a `Fuse` decoder, and `<|unk|>` for characters never seen.
//! - `bpe`: byte-level BPE with one token per digit (good for arithmetic).
//!
//! Either way the task alphabet below is in the vocabulary from the start, whatever the
//! training text, and in `bpe` the task's structural symbols are special tokens that never
//! merge with their neighbours.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BpeTrainerBuilder, Vocab, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::hash::sha256_hex;

/// Marks a character the vocabulary does not know (char tokenizer only); encoding such text
/// is an error, never a silent substitution.
pub const UNK: &str = "<|unk|>";
/// The lessons' padding symbol.
pub const PAD: &str = "_";
/// The lessons' end-of-answer symbol.
pub const END: &str = "#";
/// Symbols the task formats are built from: `<abcd>` → `dcba#`, `{3+4=7;…}18#`, `_` padding.
pub const STRUCTURAL_SYMBOLS: [&str; 9] = ["<", ">", "#", "{", "}", "=", ";", "+", "_"];
/// Every character a task can produce, guaranteed a token even if no training text has it.
pub const TASK_ALPHABET: &str = "<>#{}=;+_0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    #[default]
    Char,
    Bpe,
}

impl FromStr for TokenizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "char" => Ok(Self::Char),
            "bpe" => Ok(Self::Bpe),
            other => Err(format!(
                "unknown tokenizer kind `{other}` (expected char or bpe)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    pub kind: TokenizerKind,
    /// Target vocabulary size for `bpe`; ignored by `char`, whose size is its alphabet's.
    pub vocab_size: usize,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            kind: TokenizerKind::Char,
            vocab_size: 512,
        }
    }
}

pub struct TextTokenizer {
    inner: Tokenizer,
    json: String,
}

impl TextTokenizer {
    /// Builds the vocabulary from `texts`, the union of every stage's text.
    pub fn train(config: &TokenizerConfig, texts: &[&str]) -> Result<Self> {
        let inner = match config.kind {
            TokenizerKind::Char => char_tokenizer(texts)?,
            TokenizerKind::Bpe => bpe_tokenizer(config.vocab_size, texts)?,
        };
        Self::from_tokenizer(inner)
    }

    fn from_tokenizer(inner: Tokenizer) -> Result<Self> {
        let json = inner
            .to_string(false)
            .map_err(|e| anyhow!("serialising tokenizer: {e}"))?;
        Ok(Self { inner, json })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("reading tokenizer {}", path.display()))?;
        let inner = Tokenizer::from_str(&json).map_err(|e| {
            anyhow!(
                "tokenizer {} is not a valid tokenizer.json: {e}",
                path.display()
            )
        })?;
        Ok(Self { inner, json })
    }

    /// Writes `tokenizer.json` atomically (`crate::atomic::write`).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, &self.json)
    }

    /// SHA-256 of the serialised tokenizer: two runs share a vocabulary iff hashes match.
    pub fn hash(&self) -> String {
        sha256_hex(self.json.as_bytes())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
        let ids = encoding.get_ids().to_vec();
        if let Some(unk) = self.inner.token_to_id(UNK) {
            if let Some(pos) = ids.iter().position(|&id| id == unk) {
                let offsets = encoding.get_offsets()[pos];
                bail!(
                    "character {:?} is not in the vocabulary (in {:?})",
                    &text[offsets.0..offsets.1],
                    truncate(text, 60)
                );
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }

    /// Id of a single-token symbol such as `PAD` or `END`.
    pub fn symbol_id(&self, symbol: &str) -> Result<u32> {
        self.inner
            .token_to_id(symbol)
            .or_else(|| match self.encode(symbol).ok()?.as_slice() {
                [id] => Some(*id),
                _ => None,
            })
            .ok_or_else(|| anyhow!("symbol {symbol:?} is not a single token in this vocabulary"))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn char_tokenizer(texts: &[&str]) -> Result<Tokenizer> {
    let mut alphabet: BTreeSet<char> = TASK_ALPHABET.chars().collect();
    for text in texts {
        alphabet.extend(text.chars());
    }
    let mut vocab = Vocab::new();
    vocab.insert(UNK.to_string(), 0);
    for (i, c) in alphabet.iter().enumerate() {
        vocab.insert(c.to_string(), i as u32 + 1);
    }
    let model = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .unk_token(UNK.to_string())
        .build()
        .map_err(|e| anyhow!("building char tokenizer: {e}"))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_decoder(Some(Fuse::new()));
    tokenizer
        .add_special_tokens(vec![AddedToken::from(UNK, true)])
        .map_err(|e| anyhow!("adding special tokens: {e}"))?;
    Ok(tokenizer)
}

fn bpe_tokenizer(vocab_size: usize, texts: &[&str]) -> Result<Tokenizer> {
    let specials: Vec<AddedToken> = STRUCTURAL_SYMBOLS
        .iter()
        .map(|s| AddedToken::from(*s, true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .train(&mut trainer, texts.iter().map(|t| t.to_string()))
        .map_err(|e| anyhow!("training BPE tokenizer: {e}"))?;
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| anyhow!("adding special tokens: {e}"))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "To be, or not to be: that is the question.\n<abcd>dcba#";

    fn round_trip(config: TokenizerConfig) {
        let tk = TextTokenizer::train(&config, &[SAMPLE, "{3+4=7;7+5=12}12#"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tk.save(&path).unwrap();
        let loaded = TextTokenizer::load(&path).unwrap();
        assert_eq!(loaded.hash(), tk.hash());
        for text in [SAMPLE, "{3+4=7;7+5=12}12#", "<wxyz>zyxw#__"] {
            let ids = loaded.encode(text).unwrap();
            assert_eq!(ids, tk.encode(text).unwrap());
            assert_eq!(loaded.decode(&ids), text, "{config:?}");
        }
        for symbol in STRUCTURAL_SYMBOLS {
            loaded.symbol_id(symbol).unwrap();
        }
    }

    #[test]
    fn char_tokenizer_round_trips_through_tokenizer_json() {
        round_trip(TokenizerConfig::default());
    }

    #[test]
    fn bpe_tokenizer_round_trips_through_tokenizer_json() {
        round_trip(TokenizerConfig {
            kind: TokenizerKind::Bpe,
            vocab_size: 300,
        });
    }

    #[test]
    fn char_tokenizer_is_one_token_per_character() {
        let tk = TextTokenizer::train(&TokenizerConfig::default(), &[SAMPLE]).unwrap();
        assert_eq!(tk.encode("{3+4=7;}7#").unwrap().len(), 10);
    }

    #[test]
    fn unknown_character_is_an_error_naming_it() {
        let tk = TextTokenizer::train(&TokenizerConfig::default(), &["abc"]).unwrap();
        let err = tk.encode("ab€").unwrap_err().to_string();
        assert!(err.contains('€'), "{err}");
    }
}
