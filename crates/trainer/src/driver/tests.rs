//! The driver's promises, on a tiny model: a run interrupted after a snapshot and resumed
//! ends bit for bit where the uninterrupted run ends, with the same metrics rows, even
//! though its steps draw different numbers of random values; evaluation runs at its cadence
//! and at the last step, once.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{Gpt, GptConfig};
use rand::Rng;
use serde_json::{json, Value};

use super::*;
use crate::metrics::read_rows;
use crate::parallel;

fn shape() -> GptConfig {
    test_support::tiny(11)
}

/// Random-token batches; step `i` draws `i % 3 + 1` batches and trains on the last, so the
/// number of random values each step consumes varies. Its state counts the draws.
#[derive(Default)]
struct VaryingDraws {
    draws: u64,
    window: LossWindow,
}

impl StepBody for VaryingDraws {
    fn step(&mut self, model: Gpt, step: &mut Step) -> Result<Gpt> {
        let device = Device::flex().autodiff();
        let mut tokens = Vec::new();
        for _ in 0..step.index % 3 + 1 {
            tokens = (0..4 * 8)
                .map(|_| step.rng.random_range(0..11) as i64)
                .collect();
            self.draws += 1;
        }
        let batch = Tensor::<2, Int>::from_data(TensorData::new(tokens, [4, 8]), &device);
        let (grads, loss) = parallel::cross_entropy_backward(&model, &device, batch);
        let (model, report) = step.update_with_grads(model, grads, loss)?;
        self.window.add(report, 32);
        Ok(model)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        let mut row = self.window.row(elapsed);
        row.push("draws", self.draws);
        row
    }

    fn state(&self) -> Value {
        json!(self.draws)
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        self.draws = state.as_u64().unwrap_or(0);
        Ok(())
    }
}

struct Outcome {
    weights: Vec<f32>,
    rows: Vec<serde_json::Map<String, Value>>,
    evaluated_at: Vec<usize>,
}

/// The same initial weights for every run of this file, whatever other tests do to the
/// device's global random seed meanwhile: drawn once, saved, loaded by each run.
fn initial_model(device: &Device) -> Gpt {
    static CHECKPOINT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = CHECKPOINT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plain = Device::flex();
        let path = dir.path().join("init.safetensors");
        let model = test_support::seeded_model(&shape(), 3, &plain);
        model::checkpoint::save(&model, &shape(), &path).unwrap();
        dir
    });
    model::checkpoint::load(&dir.path().join("init.safetensors"), device)
        .unwrap()
        .0
}

fn train(dir: &std::path::Path, interrupt_after: Option<usize>) -> Result<Outcome> {
    let device = Device::flex().autodiff();
    let model = initial_model(&device);
    let metrics_path = dir.join("metrics.jsonl");
    let optimizer = OptimConfig::with_lr(1e-2);
    let training = TrainingLoop {
        label: "test".into(),
        cadence: Cadence {
            steps: 12,
            log_every: 2,
            eval_every: 5,
            seed: 7,
        },
        optimizer: &optimizer,
        schedule: &LrSchedule::Constant,
        metrics_path: metrics_path.clone(),
        resume: Resume::new(dir, "test", "settings", 4, &shape()).interrupt_after(interrupt_after),
        quiet: true,
    };
    let mut evaluated_at = Vec::new();
    let mut calls = 0usize;
    let mut evaluate = |_: &Gpt| {
        calls += 1;
        Ok(vec![("eval/calls".to_string(), calls as f64)])
    };
    let model = training.run(model, &device, &mut VaryingDraws::default(), &mut evaluate)?;
    let rows = read_rows(&metrics_path)?;
    for row in &rows {
        if row.contains_key("eval/calls") {
            evaluated_at.push(row["step"].as_u64().unwrap() as usize);
        }
    }
    let weights = model.valid().blocks[0]
        .attn
        .qkv
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    Ok(Outcome {
        weights,
        rows,
        evaluated_at,
    })
}

/// A row without its wall-clock field.
fn without_timing(rows: &[serde_json::Map<String, Value>]) -> Vec<serde_json::Map<String, Value>> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove("tokens_per_s");
            r.remove("eval/calls");
            r
        })
        .collect()
}

#[test]
fn a_resumed_run_ends_exactly_where_the_uninterrupted_one_does() {
    let whole = tempfile::tempdir().unwrap();
    let uninterrupted = train(whole.path(), None).unwrap();

    let split = tempfile::tempdir().unwrap();
    let stopped = train(split.path(), Some(5));
    let message = format!("{:#}", stopped.err().expect("the first run is interrupted"));
    assert!(
        message.contains("interrupted after the snapshot at step 8"),
        "{message}"
    );
    let resumed = train(split.path(), None).unwrap();

    assert_eq!(
        resumed.weights, uninterrupted.weights,
        "same final weights, bit for bit"
    );
    assert_eq!(
        without_timing(&resumed.rows),
        without_timing(&uninterrupted.rows)
    );
    assert_eq!(resumed.rows.len(), 7, "every row once");
    assert_eq!(
        resumed.rows.last().unwrap()["draws"],
        json!(4 * (1 + 2 + 3))
    );
}

#[test]
fn evaluation_runs_at_its_cadence_and_once_at_the_last_step() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = train(dir.path(), None).unwrap();
    assert_eq!(outcome.evaluated_at, [5, 10, 12]);
    let steps: Vec<u64> = outcome
        .rows
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        [2, 4, 5, 6, 8, 10, 12],
        "rows at log_every, evaluations, the end"
    );
}
