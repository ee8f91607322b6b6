//! Lesson 02: next-token pretraining on Shakespeare, random windows, AdamW, global clip.
//! Reads top to bottom: data, model, the step, the loop, save.

mod config;
mod windows;

use std::time::Duration;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use data::corpus::{read_text, Corpus};
use model::Gpt;
use trainer::driver::LossWindow;
use trainer::outputs::config_hash;
use trainer::{parallel, Manifest, Row, StageContext, Step, StepBody};

pub use config::PretrainConfig;
use windows::{random_windows, validation_windows};

pub fn run(ctx: &StageContext, config: &PretrainConfig) -> Result<Manifest> {
    let stage = ctx.open()?;

    // Data: the whole corpus through the chain's tokenizer, split once.
    let text = read_text(&config.corpus)?;
    let ids = ctx
        .tokenizer
        .encode(&text)
        .with_context(|| format!("tokenizing {}", config.corpus.display()))?;
    let corpus = Corpus::split(ids, config.val_fraction, config.seq_len)?;
    let val_batches = validation_windows(
        &corpus.val,
        config.seq_len,
        config.batch_size,
        config.eval_batches,
        &ctx.device,
    );

    // Model on the autodiff device, seeded so a rerun gives the same weights.
    let device = ctx.device.clone().autodiff();
    device.seed(config.seed);
    let model = Gpt::new(&ctx.model, &device);

    let mut body = NextToken {
        train: &corpus.train,
        config,
        device: &device,
        window: LossWindow::default(),
    };
    let mut val_loss = |model: &Gpt| {
        Ok(vec![(
            "val_loss".to_string(),
            validation_loss(model, &val_batches) as f64,
        )])
    };
    let model = ctx
        .training_loop("pretrain", &config_hash(config), config)
        .run(model, &device, &mut body, &mut val_loss)?;
    stage.close(&model.valid(), config.steps, config)
}

/// The step: `batch_size` windows at random offsets, next-token loss on every position.
struct NextToken<'a> {
    train: &'a [u32],
    config: &'a PretrainConfig,
    device: &'a Device,
    window: LossWindow,
}

impl StepBody for NextToken<'_> {
    fn step(&mut self, model: Gpt, step: &mut Step) -> Result<Gpt> {
        let (len, rows) = (self.config.seq_len, self.config.batch_size);
        let batch = random_windows(self.train, len, rows, &mut step.rng, self.device);
        let (grads, loss) = parallel::cross_entropy_backward(&model, self.device, batch);
        let (model, report) = step.update_with_grads(model, grads, loss)?;
        self.window.add(report, len * rows);
        Ok(model)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        self.window.row(elapsed)
    }
}

/// Mean next-token loss over the fixed validation batches, off the autodiff graph.
fn validation_loss(model: &Gpt, batches: &[Tensor<2, Int>]) -> f32 {
    let total: f32 = batches
        .iter()
        .map(|batch| {
            let logits = parallel::sharded_forward(model, batch.clone());
            logprob::cross_entropy(logits, batch.clone()).into_scalar::<f32>()
        })
        .sum();
    total / batches.len() as f32
}
