//! A stage's checkpoint as a Hugging Face `transformers` model folder in
//! the GPT-2 layout (`GPT2LMHeadModel`), which the lesson-01 GPT maps onto without
//! approximation: the same pre-norm blocks, exact-erf GELU, LayerNorm ε 1e-5, a head tied to
//! the token embedding, and weights stored `[in, out]` like transformers' `Conv1D`. The only
//! additions are the two attention biases our model does not have, written as zeros.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use data::tokenizer::{TextTokenizer, END, PAD, UNK};
use model::{GptConfig, Position};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::json;

use crate::FinishedStage;

/// Writes the folder and returns the names of the files written.
pub fn export(stage_dir: &Path, out: &Path) -> Result<Vec<&'static str>> {
    let stage = FinishedStage::open(stage_dir)?;
    let (config, tokenizer) = (&stage.config, &stage.tokenizer);
    let ids = SpecialIds::of(tokenizer)?;
    export_model(&stage.checkpoint(), config, Some(&ids), out)?;
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON value");
    data::atomic::write(
        &out.join("generation_config.json"),
        pretty(generation_config_json(config, &ids)),
    )?;
    tokenizer.save(&out.join("tokenizer.json"))?;
    data::atomic::write(
        &out.join("tokenizer_config.json"),
        pretty(tokenizer_config_json(config, tokenizer)),
    )?;
    Ok(vec![
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ])
}

/// The model alone, `model.safetensors` and `config.json`, from one of our checkpoints: what
/// `transformers` needs to run it on token ids (the rollout benchmark's peer has no tokenizer).
/// Without `ids` the config names no special tokens.
pub fn export_model(
    checkpoint_path: &Path,
    config: &GptConfig,
    ids: Option<&SpecialIds>,
    out: &Path,
) -> Result<()> {
    if config.position == Position::Rope {
        bail!(
            "{} cannot be exported: model.position = \"rope\" has no place in GPT-2's layout \
             (transformers' GPT2LMHeadModel adds learned positions); export takes \"learned\" \
             or \"none\"",
            checkpoint_path.display()
        );
    }
    let bytes = std::fs::read(checkpoint_path)
        .with_context(|| format!("reading {}", checkpoint_path.display()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is unreadable: {e}", checkpoint_path.display()))?;
    let weights = gpt2_weights(&tensors, config)
        .map_err(|e| anyhow::anyhow!("{} cannot be exported: {e}", checkpoint_path.display()))?;

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let views: Vec<(String, TensorView)> = weights
        .iter()
        .map(|(name, w)| {
            let view = TensorView::new(Dtype::F32, w.shape.clone(), &w.bytes)
                .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let model_bytes = safetensors::serialize(views, metadata)
        .map_err(|e| anyhow::anyhow!("serialising model.safetensors: {e}"))?;
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON value");
    data::atomic::write(&out.join("model.safetensors"), model_bytes)?;
    data::atomic::write(&out.join("config.json"), pretty(config_json(config, ids)))
}

/// The ids transformers needs: `#` ends a completion (our generation's stop token) and `_`
/// pads. GPT-2 has no separate BOS; like GPT-2's own config, BOS is the end token.
pub struct SpecialIds {
    end: u32,
    pad: u32,
}

impl SpecialIds {
    fn of(tokenizer: &TextTokenizer) -> Result<Self> {
        Ok(Self {
            end: tokenizer.symbol_id(END)?,
            pad: tokenizer.symbol_id(PAD)?,
        })
    }
}

fn config_json(config: &GptConfig, ids: Option<&SpecialIds>) -> serde_json::Value {
    let mut value = json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.d_model,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": 4 * config.d_model,
        // Exact erf GELU, as ours; "gelu_new" would be the tanh approximation.
        "activation_function": "gelu",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "summary_first_dropout": 0.0,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "tie_word_embeddings": true,
        "torch_dtype": "float32",
    });
    if let Some(ids) = ids {
        value["bos_token_id"] = json!(ids.end);
        value["eos_token_id"] = json!(ids.end);
        value["pad_token_id"] = json!(ids.pad);
    }
    value
}

fn generation_config_json(config: &GptConfig, ids: &SpecialIds) -> serde_json::Value {
    json!({
        "bos_token_id": ids.end,
        "eos_token_id": ids.end,
        "pad_token_id": ids.pad,
        "max_length": config.block_size,
        "do_sample": false,
    })
}

fn tokenizer_config_json(config: &GptConfig, tokenizer: &TextTokenizer) -> serde_json::Value {
    let mut value = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": END,
        "pad_token": PAD,
        "model_max_length": config.block_size,
        // Our decoder joins tokens as they are; transformers' clean-up would drop spaces.
        "clean_up_tokenization_spaces": false,
        "add_bos_token": false,
        "add_eos_token": false,
    });
    if tokenizer.symbol_id(UNK).is_ok() {
        value["unk_token"] = json!(UNK);
    }
    value
}

/// One exported tensor: its shape and little-endian f32 bytes.
struct Weight {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Our tensor names → transformers' GPT-2 names, with every shape checked against the
/// checkpoint's own `gpt_config`.
fn gpt2_weights(tensors: &SafeTensors, config: &GptConfig) -> Result<BTreeMap<String, Weight>> {
    let (v, t, d) = (config.vocab_size, config.block_size, config.d_model);
    let mut out = BTreeMap::new();
    let mut copy = |ours: &str, theirs: String, shape: &[usize]| -> Result<()> {
        let weight = read_f32(tensors, ours, shape)?;
        out.insert(theirs, weight);
        Ok(())
    };
    copy("token_embedding", "transformer.wte.weight".into(), &[v, d])?;
    let learned = config.position == Position::Learned;
    if learned {
        copy(
            "position_embedding",
            "transformer.wpe.weight".into(),
            &[t, d],
        )?;
    }
    for layer in 0..config.n_layers {
        let ours = |name: &str| format!("blocks.{layer}.{name}");
        let theirs = |name: &str| format!("transformer.h.{layer}.{name}");
        copy(&ours("ln1.gamma"), theirs("ln_1.weight"), &[d])?;
        copy(&ours("ln1.beta"), theirs("ln_1.bias"), &[d])?;
        copy(&ours("attn.qkv"), theirs("attn.c_attn.weight"), &[d, 3 * d])?;
        copy(&ours("attn.proj"), theirs("attn.c_proj.weight"), &[d, d])?;
        copy(&ours("ln2.gamma"), theirs("ln_2.weight"), &[d])?;
        copy(&ours("ln2.beta"), theirs("ln_2.bias"), &[d])?;
        copy(
            &ours("mlp.fc_weight"),
            theirs("mlp.c_fc.weight"),
            &[d, 4 * d],
        )?;
        copy(&ours("mlp.fc_bias"), theirs("mlp.c_fc.bias"), &[4 * d])?;
        copy(
            &ours("mlp.proj_weight"),
            theirs("mlp.c_proj.weight"),
            &[4 * d, d],
        )?;
        copy(&ours("mlp.proj_bias"), theirs("mlp.c_proj.bias"), &[d])?;
    }
    copy("ln_f.gamma", "transformer.ln_f.weight".into(), &[d])?;
    copy("ln_f.beta", "transformer.ln_f.bias".into(), &[d])?;
    for layer in 0..config.n_layers {
        for (name, len) in [("attn.c_attn.bias", 3 * d), ("attn.c_proj.bias", d)] {
            out.insert(
                format!("transformer.h.{layer}.{name}"),
                Weight {
                    shape: vec![len],
                    bytes: vec![0; 4 * len],
                },
            );
        }
    }
    let expected = 3 + usize::from(learned) + 10 * config.n_layers;
    let found = tensors.names().len();
    if found != expected {
        bail!("it holds {found} tensors where the GPT-2 layout has {expected} of ours");
    }
    if !learned {
        // GPT-2 always adds a position vector; all zeros add nothing, exactly, so GPT-2 with
        // these is the model without positions.
        let zeros = Weight {
            shape: vec![t, d],
            bytes: vec![0; t * d * 4],
        };
        out.insert("transformer.wpe.weight".into(), zeros);
    }
    Ok(out)
}

fn read_f32(tensors: &SafeTensors, name: &str, shape: &[usize]) -> Result<Weight> {
    let view = tensors
        .tensor(name)
        .map_err(|_| anyhow::anyhow!("tensor {name} is missing"))?;
    if view.shape() != shape {
        bail!(
            "tensor {name} has shape {:?}, the model config says {shape:?}",
            view.shape()
        );
    }
    let bytes = match view.dtype() {
        Dtype::F32 => view.data().to_vec(),
        Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .flat_map(|c| (f64::from_le_bytes(c.try_into().unwrap()) as f32).to_le_bytes())
            .collect(),
        other => bail!("tensor {name} is {other:?}; only f32 and f64 checkpoints are exported"),
    };
    Ok(Weight {
        shape: shape.to_vec(),
        bytes,
    })
}
