//! Lesson 02: next-token pretraining on Shakespeare, random windows, AdamW, global clip.
//! Reads top to bottom: data, model, loop (step, log, evaluate), save.

mod config;
mod windows;

use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Int, Tensor};
use data::corpus::{read_text, Corpus};
use model::Gpt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use trainer::outputs::{config_hash, save_stage};
use trainer::{files, parallel, Manifest, OptimizerStep, Progress, StageContext};

pub use config::PretrainConfig;
use windows::{random_windows, skip_windows, validation_windows};

pub fn run(ctx: &StageContext, config: &PretrainConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;

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
    let mut optimizer = OptimizerStep::new(&config.optimizer, &config.schedule, config.steps);
    let mut rng = StdRng::seed_from_u64(config.seed);

    // A killed run picks up from its last snapshot: weights, optimizer, step, metrics rows;
    // the sampler's random stream is replayed to the same point.
    let resume = ctx.resume("pretrain", &config_hash(config));
    let start = resume.start(
        model,
        &mut optimizer,
        &ctx.out_dir.join(files::METRICS),
        &device,
    )?;
    let (mut model, mut metrics) = (start.model, start.metrics);
    for _ in 0..start.step {
        skip_windows(
            corpus.train.len(),
            config.seq_len,
            config.batch_size,
            &mut rng,
        );
    }
    let progress = Progress::new(&ctx.stage, config.steps, ctx.quiet);
    let tokens_per_step = (config.batch_size * config.seq_len) as f64;
    let mut window_start = Instant::now();
    let mut window_steps = 0usize;

    for step in start.step..config.steps {
        let batch = random_windows(
            &corpus.train,
            config.seq_len,
            config.batch_size,
            &mut rng,
            &device,
        );
        let (grads, loss) = parallel::cross_entropy_backward(&model, &device, batch);
        let (updated, report) = optimizer.apply_grads(model, grads, loss, step)?;
        model = updated;
        window_steps += 1;

        let done = step + 1;
        let evaluate = done % config.eval_every == 0 || done == config.steps;
        if done % config.log_every == 0 || evaluate {
            let tokens_per_s =
                tokens_per_step * window_steps as f64 / window_start.elapsed().as_secs_f64();
            let mut row = vec![
                ("step", json!(done)),
                ("loss", json!(report.loss)),
                ("lr", json!(report.lr)),
                ("grad_norm", json!(report.grad_norm)),
                ("tokens_per_s", json!(tokens_per_s)),
            ];
            let mut message = format!("loss {:.4} | {:.0} tok/s", report.loss, tokens_per_s);
            if evaluate {
                let val_loss = validation_loss(&model.valid(), &val_batches);
                row.push(("val_loss", json!(val_loss)));
                message.push_str(&format!(" | val {val_loss:.4}"));
                progress.println(format!(
                    "step {done:>6}  loss {:.4}  val_loss {val_loss:.4}",
                    report.loss
                ));
            }
            metrics.log(&row)?;
            progress.update(done, message);
            window_start = Instant::now();
            window_steps = 0;
        }
        resume.save_if_due(done, config.steps, &model, &optimizer, &metrics)?;
    }
    progress.finish();
    resume.finish();

    save_stage(
        ctx,
        &model.valid(),
        config.steps,
        &config_hash(config),
        started,
    )
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
