//! Gradient clipping by the *global* norm over all parameters, as PyTorch's
//! `clip_grad_norm_` does. Burn's built-in clipping is per tensor, which changes the
//! direction of the update; the lessons clip the global norm.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Sum of squares of every gradient, accumulated on the device (the caller reads it).
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}

/// The sum of squares of every gradient, still on the device (`None` without gradients), so
/// that a caller can read it together with other values in one sync.
pub fn squared_grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    let mut visitor = SquaredNorm { grads, total: None };
    model.visit(&mut visitor);
    visitor.total
}

/// Scales all gradients by `min(1, max_norm / (norm + 1e-6))`, PyTorch's formula, given the
/// norm before clipping.
pub fn clip_to_norm<M: Module>(model: &M, grads: &mut GradientsParams, norm: f32, max_norm: f32) {
    if let Some(factor) = clip_factor(norm, max_norm) {
        model.visit(&mut Scale { grads, factor });
    }
}

/// The factor that clips a gradient of norm `norm` to `max_norm`, or `None` where it is
/// already within it.
pub fn clip_factor(norm: f32, max_norm: f32) -> Option<f32> {
    let factor = max_norm / (norm + 1e-6);
    (factor < 1.0).then_some(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct TwoParams {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn global_norm(model: &TwoParams, grads: &GradientsParams) -> f32 {
        squared_grad_norm(model, grads)
            .unwrap()
            .into_scalar::<f32>()
            .sqrt()
    }

    #[test]
    fn clips_the_global_norm_not_each_tensor() {
        let device = Device::flex().autodiff();
        let model = TwoParams {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.0f32, 0.0], [2]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.0f32; 2], [1, 2]),
                &device,
            )),
        };
        // loss = 3·a0 + 4·b00 → gradients a = [3, 0], b = [[4, 0]]: global norm 5.
        let loss = model.a.val().narrow(0, 0, 1).sum().mul_scalar(3.0)
            + model.b.val().slice([0..1, 0..1]).sum().mul_scalar(4.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = global_norm(&model, &grads);
        assert!((norm - 5.0).abs() < 1e-5);
        clip_to_norm(&model, &mut grads, norm, 1.0);
        let a: Vec<f32> = grads
            .get::<1>(model.a.id)
            .unwrap()
            .into_data()
            .try_into_vec()
            .unwrap();
        let b: Vec<f32> = grads
            .get::<2>(model.b.id)
            .unwrap()
            .into_data()
            .try_into_vec()
            .unwrap();
        // Both scaled by the same 1/5: directions kept, global norm 1.
        assert!(
            (a[0] - 0.6).abs() < 1e-5 && (b[0] - 0.8).abs() < 1e-5,
            "{a:?} {b:?}"
        );
        assert!((global_norm(&model, &grads) - 1.0).abs() < 1e-4);
    }
}
