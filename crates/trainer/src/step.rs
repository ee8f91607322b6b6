use anyhow::{bail, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Tensor};
use kernels::KernelPath;

use crate::clip::{clip_factor, clip_to_norm, squared_grad_norm};
use crate::flat_adamw::{is_flat_state, FlatAdamW, FlatGradients};
use crate::{LrSchedule, OptimConfig};

/// What one optimizer step did, for the metrics row and the progress bar.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub loss: f32,
    pub grad_norm: f32,
    pub lr: f64,
}

/// How the parameters are updated, chosen at the first step (or resume) by the kernels' device
/// rule (`kernels::dispatch`).
enum Updater {
    /// The CPU: Burn's AdamW, tensor by tensor, and the norm summed tensor by tensor.
    PerTensor(ModuleOptimizer),
    /// A GPU: the same AdamW over one flat vector, a handful of kernels instead of several per
    /// tensor (see `flat_adamw`).
    Flat(Box<FlatAdamW>),
}

/// Backward pass, NaN guard, global-norm clip, scheduled AdamW update: one call per step.
pub struct OptimizerStep {
    updater: Option<Updater>,
    config: OptimConfig,
    schedule: LrSchedule,
    total_steps: usize,
}

impl OptimizerStep {
    pub fn new(config: &OptimConfig, schedule: &LrSchedule, total_steps: usize) -> Self {
        Self {
            updater: None,
            config: config.clone(),
            schedule: schedule.clone(),
            total_steps,
        }
    }

    fn updater(&mut self, device: &Device) -> &mut Updater {
        let config = &self.config;
        // The device may be the loss's, off the graph: both GPU paths get the flat optimizer.
        self.updater
            .get_or_insert_with(|| match KernelPath::of(device) {
                KernelPath::FusedCpu => Updater::PerTensor(config.init()),
                KernelPath::GpuOps | KernelPath::Burn => {
                    Updater::Flat(Box::new(FlatAdamW::new(config)))
                }
            })
    }

    /// Writes the optimizer's state (AdamW moments and step counts).
    pub fn save_state(&self, path: &std::path::Path) -> Result<()> {
        match &self.updater {
            Some(Updater::Flat(flat)) => flat.save(path),
            Some(Updater::PerTensor(optim)) => save_record(optim, path),
            None => save_record(&self.config.init(), path),
        }
    }

    /// Restores a state written by [`save_state`](Self::save_state) for training on `device`.
    pub fn load_state(&mut self, path: &std::path::Path, device: &Device) -> Result<()> {
        let fresh = self.config.init();
        match self.updater(device) {
            Updater::Flat(flat) => flat.load(path, device),
            Updater::PerTensor(optim) => {
                if is_flat_state(path) {
                    bail!(
                        "optimizer state {} was written on a GPU (one flat AdamW state); resume \
                         it there, or redo the stage with --restart-from",
                        path.display()
                    );
                }
                let record = OptimizerRecord::load(path).map_err(|e| {
                    anyhow::anyhow!("reading optimizer state {}: {e:?}", path.display())
                })?;
                let current = std::mem::replace(optim, fresh);
                *optim = current.load_record(record);
                Ok(())
            }
        }
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
        let lr = self.schedule.lr(self.config.lr, step, self.total_steps);
        let grad_clip = self.config.grad_clip;
        let device = loss.device();
        let (model, loss, grad_norm) = match self.updater(&device) {
            Updater::PerTensor(optim) => {
                let squared_norm = squared_grad_norm(&model, &grads)
                    .unwrap_or_else(|| Tensor::zeros([1], &device));
                let (loss, grad_norm) = read_loss_and_norm(loss, squared_norm, step)?;
                if grad_clip > 0.0 {
                    clip_to_norm(&model, &mut grads, grad_norm, grad_clip);
                }
                (optim.step(lr, model, grads), loss, grad_norm)
            }
            Updater::Flat(flat) => {
                let grads = FlatGradients::collect(&model, grads)?;
                let (loss, grad_norm) = read_loss_and_norm(loss, grads.squared_norm(), step)?;
                let scale = (grad_clip > 0.0)
                    .then(|| clip_factor(grad_norm, grad_clip))
                    .flatten();
                (flat.step(lr, model, grads, scale), loss, grad_norm)
            }
        };
        Ok((
            model,
            StepReport {
                loss,
                grad_norm,
                lr,
            },
        ))
    }
}

/// The loss and the gradient norm, brought to the host in one read: on a GPU every read
/// drains the queue, and this is the step's only one. Non-finite values are errors.
fn read_loss_and_norm(loss: Tensor<1>, squared_norm: Tensor<1>, step: usize) -> Result<(f32, f32)> {
    let [loss, squared_norm]: [f32; 2] = Tensor::cat(vec![loss, squared_norm], 0)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the loss: {e:?}"))?
        .try_into()
        .map_err(|v| anyhow::anyhow!("expected the loss and the gradient norm, got {v:?}"))?;
    let grad_norm = squared_norm.sqrt();
    if !loss.is_finite() {
        bail!("loss is {loss} at step {step}: stopped before the update, weights untouched");
    }
    if !grad_norm.is_finite() {
        bail!("gradient norm is {grad_norm} at step {step}: stopped before the update, weights untouched");
    }
    Ok((loss, grad_norm))
}

fn save_record(optim: &ModuleOptimizer, path: &std::path::Path) -> Result<()> {
    optim
        .to_record()
        .save(path)
        .map_err(|e| anyhow::anyhow!("writing optimizer state {}: {e:?}", path.display()))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, Tensor, TensorData};
    use model::Gpt;

    use super::*;

    #[test]
    fn a_nan_loss_stops_before_the_update() {
        let device = Device::flex().autodiff();
        let model = tiny_model(&device);
        let loss = loss_of(&model, &device) * f32::NAN;
        let mut step = OptimizerStep::new(&OptimConfig::with_lr(1e-3), &LrSchedule::Constant, 1);
        let err = step.apply(model, loss, 7).unwrap_err().to_string();
        assert!(
            err.contains("loss is NaN at step 7") && err.contains("before the update"),
            "{err}"
        );
    }

    fn tiny_model(device: &Device) -> Gpt {
        test_support::seeded_model(&test_support::tiny(7), 5, device)
    }

    fn loss_of(model: &Gpt, device: &Device) -> Tensor<1> {
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 2, 3, 4, 5, 6, 0, 2], [2, 4]),
            device,
        );
        // Large enough that the gradient norm exceeds the clip below.
        model.forward(ids).square().mean().mul_scalar(50.0)
    }

    fn flat_step(config: &OptimConfig) -> OptimizerStep {
        let mut step = OptimizerStep::new(config, &LrSchedule::Constant, 3);
        step.updater = Some(Updater::Flat(Box::new(FlatAdamW::new(config))));
        step
    }

    /// Every parameter's values, in the model's order.
    fn parameters(model: &Gpt) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let values = param.val().into_data().convert::<f32>();
                self.0.extend(values.try_to_vec::<f32>().unwrap());
            }
        }
        let mut collect = Collect(Vec::new());
        model.visit(&mut collect);
        collect.0
    }

    fn run(model: Gpt, step: &mut OptimizerStep, steps: std::ops::Range<usize>) -> (Gpt, Vec<f32>) {
        let device = Device::flex().autodiff();
        let mut model = model;
        let mut norms = Vec::new();
        for i in steps {
            let loss = loss_of(&model, &device);
            let (updated, report) = step.apply(model, loss, i).unwrap();
            model = updated;
            norms.push(report.grad_norm);
        }
        (model, norms)
    }

    /// The GPU path's flat AdamW against Burn's per-tensor AdamW on the same steps, with the
    /// global clip active and weight decay on.
    #[test]
    fn flat_adamw_matches_burns_adamw() {
        let device = Device::flex().autodiff();
        let config = OptimConfig {
            lr: 1e-2,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 0.5,
        };
        let start = tiny_model(&device);
        let mut per_tensor = OptimizerStep::new(&config, &LrSchedule::Constant, 3);
        let (reference, reference_norms) = run(start.clone(), &mut per_tensor, 0..3);
        assert!(matches!(per_tensor.updater, Some(Updater::PerTensor(_))));
        let (flat, flat_norms) = run(start.clone(), &mut flat_step(&config), 0..3);
        assert!(
            reference_norms[0] > config.grad_clip,
            "the clip is exercised"
        );
        for (a, b) in reference_norms.iter().zip(&flat_norms) {
            assert!(
                (a - b).abs() <= 1e-5 * a,
                "{reference_norms:?} vs {flat_norms:?}"
            );
        }
        let (reference, flat, start) = (
            parameters(&reference),
            parameters(&flat),
            parameters(&start),
        );
        let moved = reference
            .iter()
            .zip(&start)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let diff = reference
            .iter()
            .zip(&flat)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(moved > 1e-3, "the steps moved the weights ({moved})");
        assert!(diff <= 1e-6, "flat AdamW is off by {diff}");
    }

    /// A flat optimizer saved after two steps and restored takes the same third step.
    #[test]
    fn flat_adamw_state_survives_save_and_load() {
        let device = Device::flex().autodiff();
        let config = OptimConfig::with_lr(1e-2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.bpk");
        let mut straight = flat_step(&config);
        let (two, _) = run(tiny_model(&device), &mut straight, 0..2);
        straight.save_state(&path).unwrap();
        let (three, _) = run(two.clone(), &mut straight, 2..3);

        let mut resumed = flat_step(&config);
        resumed.load_state(&path, &device).unwrap();
        let (resumed_three, _) = run(two, &mut resumed, 2..3);
        assert_eq!(parameters(&three), parameters(&resumed_three));
    }

    /// A snapshot's optimizer state only resumes on the kind of device that wrote it: the
    /// other kind refuses it by name instead of starting from empty moments.
    #[test]
    fn optimizer_states_are_not_resumed_across_device_kinds() {
        let device = Device::flex().autodiff();
        let config = OptimConfig::with_lr(1e-2);
        let dir = tempfile::tempdir().unwrap();
        let (flat_path, per_tensor_path) =
            (dir.path().join("flat.bpk"), dir.path().join("cpu.bpk"));

        let mut flat = flat_step(&config);
        let _ = run(tiny_model(&device), &mut flat, 0..1);
        flat.save_state(&flat_path).unwrap();
        let mut per_tensor = OptimizerStep::new(&config, &LrSchedule::Constant, 3);
        let _ = run(tiny_model(&device), &mut per_tensor, 0..1);
        per_tensor.save_state(&per_tensor_path).unwrap();

        let err = OptimizerStep::new(&config, &LrSchedule::Constant, 3)
            .load_state(&flat_path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("written on a GPU") && err.contains("flat.bpk"),
            "{err}"
        );
        let err = flat_step(&config)
            .load_state(&per_tensor_path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("written on the CPU") && err.contains("cpu.bpk"),
            "{err}"
        );
    }
}
