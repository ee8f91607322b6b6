use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::gpt::KvCache;
use crate::{checkpoint, Gpt, GptConfig};
use test_support::{max_abs_diff, values};

fn config() -> GptConfig {
    GptConfig {
        vocab_size: 11,
        block_size: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
    }
}

fn ids(values: &[i64], batch: usize) -> Tensor<2, Int> {
    let t = values.len() / batch;
    Tensor::from_data(
        TensorData::new(values.to_vec(), [batch, t]),
        &Device::flex(),
    )
}

fn model() -> Gpt {
    let device = Device::flex();
    // Seeded under test-support's lock: the tests of this binary draw in parallel.
    test_support::seeded(&device, 7, || Gpt::new(&config(), &device))
}

#[test]
fn forward_gives_logits_per_position_over_the_vocabulary() {
    let logits = model().forward(ids(&[1, 2, 3, 4, 5, 6, 7, 8], 2));
    assert_eq!(logits.dims(), [2, 4, 11]);
}

#[test]
fn changing_a_later_token_leaves_earlier_logits_unchanged() {
    let gpt = model();
    let a = gpt.forward(ids(&[1, 2, 3, 4, 5, 6], 1));
    let b = gpt.forward(ids(&[1, 2, 3, 9, 5, 6], 1));
    // Positions 0..=2 see only tokens 0..=2, which are equal.
    let prefix = |t: Tensor<3>| values(t.narrow(1, 0, 3));
    assert_eq!(max_abs_diff(&prefix(a.clone()), &prefix(b.clone())), 0.0);
    // Position 3 sees the changed token: its logits must differ (the test can fail).
    let at3 = |t: Tensor<3>| values(t.narrow(1, 3, 1));
    assert!(max_abs_diff(&at3(a), &at3(b)) > 1e-4);
}

struct Shapes(Vec<Vec<usize>>);
impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().dims().to_vec());
    }
}

#[test]
fn head_is_tied_to_the_token_embedding() {
    let gpt = model();
    let mut shapes = Shapes(Vec::new());
    gpt.visit(&mut shapes);
    let vocab_by_d = shapes.0.iter().filter(|s| **s == vec![11, 32]).count();
    assert_eq!(
        vocab_by_d, 1,
        "one [V, d] tensor serves as embedding and head"
    );
    // The head really reads that tensor: zeroing the embedding zeroes every logit.
    let mut zeroed = gpt.clone();
    zeroed.token_embedding = Param::from_tensor(Tensor::zeros([11, 32], &Device::flex()));
    let logits = values(zeroed.forward(ids(&[1, 2, 3], 1)));
    assert!(logits.iter().all(|&x| x == 0.0));
}

#[test]
fn parameter_count_matches_the_closed_form() {
    let cfg = config();
    assert_eq!(model().num_params(), cfg.num_params());
    // The lesson size with a 65-symbol vocabulary: "about 0.8M".
    let lesson = GptConfig {
        vocab_size: 65,
        block_size: 64,
        ..GptConfig::default()
    };
    let device = Device::flex();
    assert_eq!(Gpt::new(&lesson, &device).num_params(), lesson.num_params());
    assert_eq!(lesson.num_params(), 807_808);
}

#[test]
fn cached_decoding_matches_the_full_forward_pass() {
    let gpt = model();
    let tokens = [3i64, 1, 4, 1, 5, 9, 2, 6];
    let full = values(gpt.forward(ids(&tokens, 1)));
    let mut cache = KvCache::default();
    // A 3-token prefill, then one token at a time.
    let mut cached = values(gpt.forward_cached(ids(&tokens[..3], 1), &mut cache));
    for &t in &tokens[3..] {
        cached.extend(values(gpt.forward_cached(ids(&[t], 1), &mut cache)));
    }
    assert!(max_abs_diff(&full, &cached) < 1e-5);
}

#[test]
fn cached_and_uncached_sampling_draw_the_same_tokens() {
    use crate::generate::{generate, generate_without_cache, SamplingOptions};
    use rand::{rngs::StdRng, SeedableRng};
    let gpt = model();
    let prompts = vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]];
    let options = SamplingOptions {
        max_new_tokens: 10,
        temperature: 1.0,
        top_k: 0,
        stop_token: Some(0),
    };
    let device = Device::flex();
    let cached = generate(
        &gpt,
        &prompts,
        options,
        &mut StdRng::seed_from_u64(5),
        &device,
    );
    let full = generate_without_cache(
        &gpt,
        &prompts,
        options,
        &mut StdRng::seed_from_u64(5),
        &device,
    );
    assert_eq!(cached, full);
    assert!(cached.iter().all(|row| !row.is_empty() && row.len() <= 10));
}

#[test]
fn checkpoint_round_trips_and_rejects_a_truncated_file() {
    let gpt = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&gpt, &config(), &path).unwrap();
    let (loaded, cfg) = checkpoint::load(&path, &Device::flex()).unwrap();
    assert_eq!(cfg, config());
    let x = ids(&[1, 2, 3, 4], 1);
    assert_eq!(values(gpt.forward(x.clone())), values(loaded.forward(x)));

    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&cut, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
}
