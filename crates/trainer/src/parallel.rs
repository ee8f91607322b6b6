//! Data-parallel backward on one CPU.
//!
//! On the lesson's model, Burn's CPU backend keeps barely more than one core busy: most of its
//! operations are too small to split. Here the batch is split into shards instead. Each shard's
//! forward and backward runs on its own core, in its own autodiff graph (`Module::fork`), and
//! the shards' gradients are summed: the same gradients as one pass over the whole batch, up to
//! float rounding (docs/perf.md).

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use logprob::EmptyMask;
use model::Gpt;
use rayon::prelude::*;

pub use model::device::{forward_shard_count, shard_count};

/// Pretraining's loss, next-token cross-entropy over every position of `batch` (`[B, T]`),
/// and its gradients, computed on [`shard_count`] shards of rows.
pub fn cross_entropy_backward(
    model: &Gpt,
    device: &Device,
    batch: Tensor<2, Int>,
) -> (GradientsParams, Tensor<1>) {
    let rows = batch.dims()[0] as f32;
    let shards = batch.chunk(shard_count(device), 0);
    sharded_backward(model, device, shards, |replica, shard: Tensor<2, Int>| {
        let share = shard.dims()[0] as f32 / rows;
        logprob::cross_entropy(replica.forward(shard.clone()), shard).mul_scalar(share)
    })
}

/// Supervised fine-tuning's loss, cross-entropy over the tokens `mask` scores, averaged over
/// the whole batch's scored tokens, and its gradients, computed on shards of rows.
pub fn masked_cross_entropy_backward(
    model: &Gpt,
    device: &Device,
    tokens: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Result<(GradientsParams, Tensor<1>), EmptyMask> {
    let count = logprob::scored_token_count(mask.clone());
    if count <= 0.0 {
        return Err(EmptyMask);
    }
    let n = shard_count(device);
    let shards: Vec<_> = tokens
        .chunk(n, 0)
        .into_iter()
        .zip(mask.chunk(n, 0))
        .collect();
    Ok(sharded_backward(
        model,
        device,
        shards,
        |replica, (tokens, mask): (Tensor<2, Int>, Tensor<2>)| {
            logprob::masked_nll_sum(replica.forward(tokens.clone()), tokens, mask) / count
        },
    ))
}

/// `model.forward(tokens)` with the rows split into [`forward_shard_count`] shards that run in
/// parallel: the same logits, up to float rounding. For passes without a backward
/// (evaluation, reference log-probs). On the autodiff device it is one plain forward pass:
/// shards there would share the parameters' nodes and so one graph.
pub fn sharded_forward(model: &Gpt, tokens: Tensor<2, Int>) -> Tensor<3> {
    let n = forward_shard_count(&tokens.device());
    let shards = tokens.chunk(n, 0);
    if shards.len() == 1 {
        return model.forward(shards.into_iter().next().expect("one shard"));
    }
    let logits: Vec<Tensor<3>> = shards
        .into_par_iter()
        .map(|shard| model.forward(shard))
        .collect();
    Tensor::cat(logits, 0)
}

/// Runs `loss_of(model, shard)` and its backward pass for every shard in parallel and returns
/// the summed gradients and the summed loss (off the autodiff graph). `loss_of` must return
/// the shard's share of the batch loss, so that the shares add up to the batch loss: for a
/// mean over tokens, the shard's token sum divided by the batch's token count.
pub fn sharded_backward<M, S, F>(
    model: &M,
    device: &Device,
    shards: Vec<S>,
    loss_of: F,
) -> (GradientsParams, Tensor<1>)
where
    M: Module + Send,
    S: Send,
    F: Fn(&M, S) -> Tensor<1> + Sync,
{
    let (grads, loss, _) = sharded_backward_with(model, device, shards, |model, shard| {
        (loss_of(model, shard), ())
    });
    (grads, loss)
}

/// [`sharded_backward`] for a loss that also reports something per shard (DPO's rewards, say):
/// `loss_of` returns the shard's loss share and that report, and the reports come back in
/// shard order.
pub fn sharded_backward_with<M, S, R, F>(
    model: &M,
    device: &Device,
    shards: Vec<S>,
    loss_of: F,
) -> (GradientsParams, Tensor<1>, Vec<R>)
where
    M: Module + Send,
    S: Send,
    R: Send,
    F: Fn(&M, S) -> (Tensor<1>, R) + Sync,
{
    if shards.len() == 1 {
        // One shard (a GPU, or one thread): the model's own graph, no replica.
        let shard = shards.into_iter().next().expect("one shard");
        let (loss, report) = loss_of(model, shard);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return (grads, loss.inner(), vec![report]);
    }
    let replicas: Vec<M> = shards.iter().map(|_| model.clone().fork(device)).collect();
    let results: Vec<(GradientsParams, Tensor<1>, R)> = replicas
        .into_par_iter()
        .zip(shards)
        .map(|(replica, shard)| {
            let (loss, report) = loss_of(&replica, shard);
            let grads = GradientsParams::from_grads(loss.backward(), &replica);
            (grads, loss.inner(), report)
        })
        .collect();
    let mut accumulator = GradientsAccumulator::new();
    let mut losses = Vec::with_capacity(results.len());
    let mut reports = Vec::with_capacity(results.len());
    for (grads, loss, report) in results {
        accumulator.accumulate(model, grads);
        losses.push(loss);
        reports.push(report);
    }
    (accumulator.grads(), Tensor::cat(losses, 0).sum(), reports)
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::TensorData;
    use model::GptConfig;

    use super::*;

    /// The largest |difference| between two sets of gradients over every parameter.
    struct MaxDifference<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        max: f32,
        compared: usize,
    }

    impl ModuleVisitor for MaxDifference<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let a = self.a.get::<D>(param.id).expect("gradient in a");
            let b = self.b.get::<D>(param.id).expect("gradient in b");
            let diff = (a - b).abs().max().into_scalar::<f32>();
            self.max = self.max.max(diff);
            self.compared += 1;
        }
    }

    fn setup() -> (Gpt, Device, Tensor<2, Int>, Tensor<2>) {
        let device = Device::flex().autodiff();
        let config = GptConfig {
            n_layers: 2,
            ..test_support::tiny(11)
        };
        let model = test_support::seeded_model(&config, 3, &device);
        let ids: Vec<i64> = (0..5 * 8).map(|i| (i * 7 + 3) % 11).collect();
        let tokens = Tensor::from_data(TensorData::new(ids, [5, 8]), &device);
        // Rows score different numbers of tokens, so the shards' shares differ.
        let mask: Vec<f32> = (0..5 * 8)
            .map(|i| if i % 8 >= 2 + i / 8 { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::from_data(TensorData::new(mask, [5, 8]), &device);
        (model, device, tokens, mask)
    }

    fn assert_same(model: &Gpt, a: &GradientsParams, b: &GradientsParams) {
        let mut visitor = MaxDifference {
            a,
            b,
            max: 0.0,
            compared: 0,
        };
        model.visit(&mut visitor);
        assert!(visitor.compared > 10, "compared {}", visitor.compared);
        assert!(visitor.max < 1e-5, "gradients differ by {}", visitor.max);
    }

    #[test]
    fn shards_give_the_whole_batch_gradients_for_pretraining_loss() {
        let (model, device, tokens, _) = setup();
        let whole = logprob::cross_entropy(model.forward(tokens.clone()), tokens.clone());
        let expected = GradientsParams::from_grads(whole.backward(), &model);
        // Uneven shards (2 + 2 + 1 rows), whatever the machine's thread count.
        let shards = tokens.clone().chunk(3, 0);
        assert_eq!(shards.len(), 3);
        let (grads, loss) = sharded_backward(&model, &device, shards, |replica, shard| {
            let share = shard.dims()[0] as f32 / 5.0;
            logprob::cross_entropy(replica.forward(shard.clone()), shard).mul_scalar(share)
        });
        let (whole, loss) = (whole.into_scalar::<f32>(), loss.into_scalar::<f32>());
        assert!((whole - loss).abs() < 1e-5, "{whole} vs {loss}");
        assert_same(&model, &expected, &grads);
        // One shard takes the model's own graph.
        let (grads, _) = sharded_backward(&model, &device, vec![tokens.clone()], |m, all| {
            logprob::cross_entropy(m.forward(all.clone()), all)
        });
        assert_same(&model, &expected, &grads);
        // And through the helper the stages call.
        let (grads, _) = cross_entropy_backward(&model, &device, tokens);
        assert_same(&model, &expected, &grads);
    }

    #[test]
    fn shards_give_the_whole_batch_gradients_for_masked_loss() {
        let (model, device, tokens, mask) = setup();
        let whole = logprob::masked_cross_entropy(
            model.forward(tokens.clone()),
            tokens.clone(),
            mask.clone(),
        )
        .unwrap();
        let expected = GradientsParams::from_grads(whole.backward(), &model);
        let (grads, loss) = masked_cross_entropy_backward(&model, &device, tokens, mask).unwrap();
        let (whole, loss) = (whole.into_scalar::<f32>(), loss.into_scalar::<f32>());
        assert!((whole - loss).abs() < 1e-5, "{whole} vs {loss}");
        assert_same(&model, &expected, &grads);
    }

    #[test]
    fn the_cpu_is_sharded_by_thread_count_autodiff_or_not() {
        let threads = rayon::current_num_threads();
        assert_eq!(shard_count(&Device::flex()), threads);
        assert_eq!(shard_count(&Device::flex().autodiff()), threads);
    }

    #[test]
    fn sharded_forward_gives_the_same_logits() {
        let (model, _, tokens, _) = setup();
        let model = model.valid();
        let tokens: Tensor<2, Int> = Tensor::from_data(tokens.into_data(), &Device::flex());
        let whole = model.forward(tokens.clone());
        let sharded = sharded_forward(&model, tokens);
        assert_eq!(whole.dims(), sharded.dims());
        let diff = (whole - sharded).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "logits differ by {diff}");
    }

    #[test]
    fn an_empty_mask_is_an_error_not_nan() {
        let (model, device, tokens, mask) = setup();
        let err = masked_cross_entropy_backward(&model, &device, tokens, mask.zeros_like());
        assert!(err.is_err());
    }
}
