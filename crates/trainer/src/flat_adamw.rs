//! AdamW over every parameter at once, for the GPU path.
//!
//! Burn's optimizer updates each parameter tensor on its own, and the global gradient norm
//! takes a reduction per tensor: several kernel launches per tensor, every step. On a GPU at
//! this size each launch costs more than its work (`docs/perf.md`, "Why the wgpu step is
//! slow"), so here the gradients are joined into one flat vector, its norm is one
//! reduction, and the update is one elementwise pass over flat parameters and moments. The
//! model's parameters then become views into the updated flat vector.
//!
//! The arithmetic is Burn's AdamW, operation for operation (decoupled weight decay,
//! bias-corrected moments), so each element gets the same value; a test checks it against
//! Burn's optimizer on flex. Only the norm's order of summation differs, which is why the CPU
//! path keeps Burn's optimizer: its results stay what they were.

use std::path::Path;

use anyhow::{bail, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::store::{BurnpackStore, ModuleSnapshot, ModuleStore};
use burn::tensor::{Device, Tensor};

use crate::OptimConfig;

/// The first and second moments, kept on the device between steps.
struct Moments {
    moment_1: Tensor<1>,
    moment_2: Tensor<1>,
}

/// What [`FlatAdamW::save`] writes: the moments and the step count, as a one-element tensor so
/// that one burnpack file holds all three.
#[derive(Module, Debug)]
struct SavedState {
    moment_1: Param<Tensor<1>>,
    moment_2: Param<Tensor<1>>,
    time: Param<Tensor<1>>,
}

pub struct FlatAdamW {
    config: OptimConfig,
    moments: Option<Moments>,
    time: i32,
    /// The flat vector the model's parameters are views of after a step, with their ids in
    /// order: the next step starts from it instead of joining the parameters again.
    params: Option<(Vec<ParamId>, Tensor<1>)>,
}

/// Every gradient, flattened and joined in the model's parameter order.
pub struct FlatGradients {
    flat: Tensor<1>,
}

impl FlatGradients {
    /// Joins `grads` in `model`'s parameter order. Every parameter must have a gradient: the
    /// flat update would otherwise move parameters that Burn's optimizer leaves alone.
    pub fn collect<M: Module>(model: &M, mut grads: GradientsParams) -> Result<Self> {
        let mut visitor = TakeGradients {
            grads: &mut grads,
            flat: Vec::new(),
            missing: 0,
        };
        model.visit(&mut visitor);
        if visitor.missing > 0 {
            bail!(
                "{} parameter tensors have no gradient; the GPU optimizer needs them all",
                visitor.missing
            );
        }
        Ok(Self {
            flat: cat_in_groups(visitor.flat),
        })
    }

    /// The sum of squares of every gradient.
    pub fn squared_norm(&self) -> Tensor<1> {
        self.flat.clone().square().sum()
    }
}

impl FlatAdamW {
    pub fn new(config: &OptimConfig) -> Self {
        Self {
            config: config.clone(),
            moments: None,
            time: 0,
            params: None,
        }
    }

    /// One AdamW step at learning rate `lr` with the gradients scaled by `grad_scale` (the
    /// global-norm clip), returning `model` with its parameters replaced.
    pub fn step<M: Module>(
        &mut self,
        lr: f64,
        model: M,
        grads: FlatGradients,
        grad_scale: Option<f32>,
    ) -> M {
        let grad = match grad_scale {
            Some(factor) => grads.flat.mul_scalar(factor),
            None => grads.flat,
        };
        let [beta_1, beta_2] = self.config.betas;
        let (factor_1, factor_2) = (1.0 - beta_1, 1.0 - beta_2);
        // Burn's `AdaptiveMomentumW::transform`, in its order of operations.
        let (moment_1, moment_2) = match self.moments.take() {
            Some(moments) => (
                moments
                    .moment_1
                    .mul_scalar(beta_1)
                    .add(grad.clone().mul_scalar(factor_1)),
                moments
                    .moment_2
                    .mul_scalar(beta_2)
                    .add(grad.square().mul_scalar(factor_2)),
            ),
            None => (
                grad.clone().mul_scalar(factor_1),
                grad.square().mul_scalar(factor_2),
            ),
        };
        self.time += 1;
        let corrected_1 = moment_1.clone().div_scalar(1f32 - beta_1.powi(self.time));
        let corrected_2 = moment_2.clone().div_scalar(1f32 - beta_2.powi(self.time));
        let delta = corrected_1.div(corrected_2.sqrt().add_scalar(self.config.eps));
        // Burn's `AdamW::step`: decoupled decay, then the update.
        let params = self.flat_params(&model);
        let decay_rate = lr * self.config.weight_decay as f64;
        let decayed = if decay_rate == 0.0 {
            params
        } else {
            params.mul_scalar(1.0 - decay_rate)
        };
        let updated = decayed - delta.mul_scalar(lr);
        self.params = Some((param_ids(&model), updated.clone()));
        self.moments = Some(Moments { moment_1, moment_2 });
        model.map(&mut ReplaceWithViews {
            flat: updated,
            offset: 0,
        })
    }

    /// Writes the moments and step count (nothing before the first step).
    pub fn save(&self, path: &Path) -> Result<()> {
        let Some(moments) = &self.moments else {
            return Ok(());
        };
        let device = moments.moment_1.device();
        let state = SavedState {
            moment_1: Param::from_tensor(moments.moment_1.clone()),
            moment_2: Param::from_tensor(moments.moment_2.clone()),
            time: Param::from_tensor(Tensor::from_floats([self.time as f32], &device)),
        };
        let mut store = BurnpackStore::from_file(path).overwrite(true);
        state
            .save_into(&mut store)
            .map_err(|e| anyhow::anyhow!("writing optimizer state {}: {e:?}", path.display()))
    }

    /// Restores what [`save`](Self::save) wrote, for training on `device`.
    pub fn load(&mut self, path: &Path, device: &Device) -> Result<()> {
        // The moments live off the autodiff graph, like the gradients they are made from.
        let device = &device.clone().inner();
        if !path.exists() {
            // Saved before the first step: nothing to restore.
            return Ok(());
        }
        let mut store = BurnpackStore::from_file(path);
        // The moments' length is the model's parameter count: read it from the file.
        let len = store
            .get_tensor("moment_1")
            .map_err(|e| {
                anyhow::anyhow!("optimizer state {} is unreadable: {e:?}", path.display())
            })?
            .map(|tensor| tensor.shape.num_elements())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "optimizer state {} was written on the CPU (one AdamW record per tensor); \
                     resume it there, or redo the stage with --restart-from",
                    path.display()
                )
            })?;
        let mut state = SavedState {
            moment_1: Param::from_tensor(Tensor::zeros([len], device)),
            moment_2: Param::from_tensor(Tensor::zeros([len], device)),
            time: Param::from_tensor(Tensor::zeros([1], device)),
        };
        let result = state.load_from(&mut store).map_err(|e| {
            anyhow::anyhow!("optimizer state {} is unreadable: {e:?}", path.display())
        })?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            bail!(
                "optimizer state {} does not hold this optimizer's moments",
                path.display()
            );
        }
        self.time = state.time.val().into_scalar::<f32>() as i32;
        self.moments = Some(Moments {
            moment_1: state.moment_1.val(),
            moment_2: state.moment_2.val(),
        });
        // The model to resume is restored separately: join its parameters afresh.
        self.params = None;
        Ok(())
    }
}

/// Burn fuses a concatenation into one kernel only while its inputs fit the device's storage
/// buffer bindings; past that it copies each input with a kernel of its own. Joining groups of
/// this many first keeps each join fused on any device with 16 or more bindings (`docs/perf.md`,
/// change 17).
const CAT_GROUP: usize = 15;

/// `parts` joined end to end, in groups of [`CAT_GROUP`].
fn cat_in_groups(parts: Vec<Tensor<1>>) -> Tensor<1> {
    if parts.len() <= CAT_GROUP {
        return Tensor::cat(parts, 0);
    }
    let groups = parts
        .chunks(CAT_GROUP)
        .map(|group| Tensor::cat(group.to_vec(), 0))
        .collect();
    Tensor::cat(groups, 0)
}

/// Whether `path` holds a flat optimizer state (a snapshot written on a GPU), so that the CPU's
/// per-tensor optimizer can refuse it instead of starting from empty moments.
pub fn is_flat_state(path: &Path) -> bool {
    let mut store = BurnpackStore::from_file(path);
    matches!(store.get_tensor("moment_1"), Ok(Some(_)))
}

impl FlatAdamW {
    /// Every parameter's current value, flattened and joined in the model's parameter order:
    /// the vector of the last step when the model is the one that step returned.
    fn flat_params<M: Module>(&mut self, model: &M) -> Tensor<1> {
        if let Some((ids, flat)) = self.params.take() {
            if ids == param_ids(model) {
                return flat;
            }
        }
        let mut visitor = TakeParams { flat: Vec::new() };
        model.visit(&mut visitor);
        cat_in_groups(visitor.flat)
    }
}

fn param_ids<M: Module>(model: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

struct TakeGradients<'a> {
    grads: &'a mut GradientsParams,
    flat: Vec<Tensor<1>>,
    missing: usize,
}

impl ModuleVisitor for TakeGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        match self.grads.remove::<D>(param.id) {
            Some(grad) => {
                let len = grad.shape().num_elements();
                self.flat.push(grad.reshape([len]));
            }
            None => self.missing += 1,
        }
    }
}

struct TakeParams {
    flat: Vec<Tensor<1>>,
}

impl ModuleVisitor for TakeParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let len = value.shape().num_elements();
        self.flat.push(value.reshape([len]));
    }
}

/// Gives each parameter, in order, the next stretch of `flat` in its own shape: a view, not a
/// copy. Keeps the parameter's id and whether it is tracked, as Burn's optimizer does.
struct ReplaceWithViews {
    flat: Tensor<1>,
    offset: usize,
}

impl ModuleMapper for ReplaceWithViews {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let len = tensor.shape().num_elements();
        let value = self.flat.clone().narrow(0, self.offset, len).reshape(dims);
        self.offset += len;
        let mut value = Tensor::from_inner(value);
        if tensor.is_require_grad() {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}
