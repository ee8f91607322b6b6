use anyhow::{bail, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::Tensor;

use crate::clip::{clip_to_norm, squared_grad_norm};
use crate::{LrSchedule, OptimConfig};

/// What one optimizer step did, for the metrics row and the progress bar.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub loss: f32,
    pub grad_norm: f32,
    pub lr: f64,
}

/// Backward pass, NaN guard, global-norm clip, scheduled AdamW update: one call per step.
pub struct OptimizerStep {
    optim: ModuleOptimizer,
    config: OptimConfig,
    schedule: LrSchedule,
    total_steps: usize,
}

impl OptimizerStep {
    pub fn new(config: &OptimConfig, schedule: &LrSchedule, total_steps: usize) -> Self {
        Self {
            optim: config.init(),
            config: config.clone(),
            schedule: schedule.clone(),
            total_steps,
        }
    }

    /// Writes the optimizer's state (AdamW moments and step counts, keyed by parameter id).
    pub fn save_state(&self, path: &std::path::Path) -> Result<()> {
        self.optim
            .to_record()
            .save(path)
            .map_err(|e| anyhow::anyhow!("writing optimizer state {}: {e:?}", path.display()))
    }

    /// Restores a state written by [`save_state`](Self::save_state).
    pub fn load_state(&mut self, path: &std::path::Path) -> Result<()> {
        let record = OptimizerRecord::load(path)
            .map_err(|e| anyhow::anyhow!("reading optimizer state {}: {e:?}", path.display()))?;
        let fresh = self.config.init();
        let current = std::mem::replace(&mut self.optim, fresh);
        self.optim = current.load_record(record);
        Ok(())
    }

    /// Applies `loss`'s gradients to `model`. A non-finite loss or gradient norm is an error
    /// raised *before* the update, so the weights (and every checkpoint) stay clean.
    pub fn apply<M: Module>(
        &mut self,
        model: M,
        loss: Tensor<1>,
        step: usize,
    ) -> Result<(M, StepReport)> {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.apply_grads(model, grads, loss.inner(), step)
    }

    /// [`apply`](Self::apply) for gradients already computed, e.g. by
    /// [`sharded_backward`](crate::parallel::sharded_backward); `loss` is off the graph.
    pub fn apply_grads<M: Module>(
        &mut self,
        model: M,
        mut grads: GradientsParams,
        loss: Tensor<1>,
        step: usize,
    ) -> Result<(M, StepReport)> {
        // The loss and the gradient norm come to the host in one read: on a GPU every read
        // drains the queue, and this is the step's only one.
        let squared_norm =
            squared_grad_norm(&model, &grads).unwrap_or_else(|| Tensor::zeros([1], &loss.device()));
        let [loss_value, squared_norm]: [f32; 2] = Tensor::cat(vec![loss, squared_norm], 0)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the loss: {e:?}"))?
            .try_into()
            .map_err(|v| anyhow::anyhow!("expected the loss and the gradient norm, got {v:?}"))?;
        let grad_norm = squared_norm.sqrt();
        if !loss_value.is_finite() {
            bail!(
                "loss is {loss_value} at step {step}: stopped before the update, weights untouched"
            );
        }
        if !grad_norm.is_finite() {
            bail!("gradient norm is {grad_norm} at step {step}: stopped before the update, weights untouched");
        }
        if self.config.grad_clip > 0.0 {
            clip_to_norm(&model, &mut grads, grad_norm, self.config.grad_clip);
        }
        let lr = self.schedule.lr(self.config.lr, step, self.total_steps);
        let model = self.optim.step(lr, model, grads);
        Ok((
            model,
            StepReport {
                loss: loss_value,
                grad_norm,
                lr,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, Tensor, TensorData};
    use model::{Gpt, GptConfig};

    use super::*;

    #[test]
    fn a_nan_loss_stops_before_the_update() {
        let device = Device::flex().autodiff();
        let config = GptConfig {
            vocab_size: 7,
            block_size: 8,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
        };
        let model = Gpt::new(&config, &device);
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4], [1, 4]), &device);
        let loss = model.forward(ids).sum() * f32::NAN;
        let mut step = OptimizerStep::new(&OptimConfig::with_lr(1e-3), &LrSchedule::Constant, 1);
        let err = step.apply(model, loss, 7).unwrap_err().to_string();
        assert!(
            err.contains("loss is NaN at step 7") && err.contains("before the update"),
            "{err}"
        );
    }
}
