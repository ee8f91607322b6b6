use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::gpt::KvCache;
use crate::{checkpoint, Gpt, GptConfig, Position};
use test_support::{max_abs_diff, values};

fn config() -> GptConfig {
    GptConfig {
        vocab_size: 11,
        block_size: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        position: Position::Learned,
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
    model_with(Position::Learned)
}

fn model_with(position: Position) -> Gpt {
    let device = Device::flex();
    let config = GptConfig {
        position,
        ..config()
    };
    // Seeded under test-support's lock: the tests of this binary draw in parallel.
    test_support::seeded(&device, 7, || Gpt::new(&config, &device))
}

/// Without positions nothing tells one copy of a token from the next, so a run of one token
/// gets the same logits at every position; with learned positions it does not (the test can
/// fail). The parameter count has no position rows.
#[test]
fn without_positions_a_repeated_token_looks_the_same_everywhere() {
    let spread = |position: Position| {
        let logits = values(model_with(position).forward(ids(&[4; 6], 1)));
        let first = logits[..11].to_vec();
        logits
            .chunks(11)
            .map(|at| max_abs_diff(at, &first))
            .fold(0.0f32, f32::max)
    };
    assert!(
        spread(Position::Absent) < 1e-5,
        "{}",
        spread(Position::Absent)
    );
    assert!(spread(Position::Learned) > 1e-3);

    let mut shapes = Shapes(vec![]);
    model_with(Position::Absent).visit(&mut shapes);
    let counted: usize = shapes.0.iter().map(|s| s.iter().product::<usize>()).sum();
    let config = GptConfig {
        position: Position::Absent,
        ..config()
    };
    assert_eq!(counted, config.num_params());
    assert_eq!(config.num_params() + 16 * 32, self::config().num_params());
}

/// A model without positions saves and loads as itself; its file says so, and a learned
/// model's file says nothing of positions (its bytes are as before the option existed).
#[test]
fn a_model_without_positions_round_trips_through_its_checkpoint() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let gpt = model_with(Position::Absent);
    let config = GptConfig {
        position: Position::Absent,
        ..config()
    };
    let path = dir.path().join("nope.safetensors");
    checkpoint::save(&gpt, &config, &path).unwrap();
    let (loaded, loaded_config) = checkpoint::load(&path, &device).unwrap();
    assert_eq!(loaded_config.position, Position::Absent);
    assert!(loaded.position_embedding.is_none());
    let tokens = ids(&[1, 2, 3, 4], 1);
    let diff = max_abs_diff(
        &values(gpt.forward(tokens.clone())),
        &values(loaded.forward(tokens)),
    );
    assert_eq!(diff, 0.0);
    let learned = dir.path().join("learned.safetensors");
    checkpoint::save(&model(), &self::config(), &learned).unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(&learned).unwrap()).into_owned();
    assert!(
        !text.contains("\\\"position\\\""),
        "the learned config names its position"
    );
    assert!(text.contains("position_embedding"));
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
    for position in [Position::Learned, Position::Absent, Position::Rope] {
        cached_matches_full(position);
    }
}

fn cached_matches_full(position: Position) {
    let gpt = model_with(position);
    let tokens = [3i64, 1, 4, 1, 5, 9, 2, 6];
    let full = values(gpt.forward(ids(&tokens, 1)));
    let mut cache = KvCache::default();
    // A 3-token prefill, then one token at a time.
    let mut cached = values(gpt.forward_cached(ids(&tokens[..3], 1), &mut cache));
    for &t in &tokens[3..] {
        cached.extend(values(gpt.forward_cached(ids(&[t], 1), &mut cache)));
    }
    let diff = max_abs_diff(&full, &cached);
    assert!(diff < 1e-5, "{position:?}: {diff}");
}

fn sampling(temperature: f32, max_new_tokens: usize) -> crate::generate::SamplingOptions {
    crate::generate::SamplingOptions {
        max_new_tokens,
        temperature,
        top_k: 0,
        stop_token: Some(0),
    }
}

/// Prompts of three lengths, interleaved: the decoder reads them together, the tensor path
/// groups them by length.
fn mixed_prompts() -> Vec<Vec<u32>> {
    (0..7u32)
        .map(|i| (0..3 + i % 3).map(|j| 1 + (i * 3 + j) % 10).collect())
        .collect()
}

#[test]
fn cached_and_uncached_sampling_draw_the_same_tokens() {
    use crate::generate::{generate_with_tensors, Streams};
    let gpt = model();
    let device = Device::flex();
    let streams = Streams::new(5);
    let prompts = mixed_prompts();
    let cached = generate_with_tensors(&gpt, &prompts, sampling(1.0, 10), streams, &device, true);
    let full = generate_with_tensors(&gpt, &prompts, sampling(1.0, 10), streams, &device, false);
    assert_eq!(cached, full);
    assert!(cached.iter().all(|row| !row.is_empty() && row.len() <= 10));
}

/// The decoder and the tensor path compute the same logits to float rounding (the parity
/// tests' 1e-4), so the same streams draw the same tokens, sampled and greedy.
#[test]
fn the_decoder_draws_the_tensor_paths_tokens_from_the_same_streams() {
    for position in [Position::Learned, Position::Absent, Position::Rope] {
        decoder_matches_the_tensor_path(position);
    }
}

fn decoder_matches_the_tensor_path(position: Position) {
    use crate::decode::logits_along;
    use crate::generate::{generate, generate_with_tensors, Streams};
    let gpt = model_with(position);
    let device = Device::flex();
    let tokens: Vec<u32> = (0..16).map(|i| (i * 7 + 3) % 11).collect();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let want = values(gpt.forward(self::ids(&ids, 1)));
    let got = logits_along(&gpt, &tokens);
    let diff = max_abs_diff(&want, &got);
    assert!(diff < 1e-4, "decoder logits differ by {diff}");

    let prompts = mixed_prompts();
    for (temperature, seed) in [(1.0, 5), (1.0, 6), (0.7, 7), (0.0, 0)] {
        let options = sampling(temperature, 16);
        let streams = Streams::new(seed);
        let decoded = generate(&gpt, &prompts, options, streams, &device);
        let reference = generate_with_tensors(&gpt, &prompts, options, streams, &device, true);
        assert_eq!(
            decoded, reference,
            "{position:?}, temperature {temperature}, seed {seed}"
        );
        assert!(
            decoded.iter().any(|row| row.len() > 3),
            "nothing was generated"
        );
    }
}

/// A draw made in two calls, the second's streams skipped past the first's rows, samples what
/// one call over every row does (DPO's capped frontier pairs stop sampling this way).
#[test]
fn a_draw_made_in_parts_samples_what_one_call_does() {
    use crate::generate::{generate, Streams};
    let gpt = model();
    let device = Device::flex();
    let prompts = mixed_prompts();
    let streams = Streams::new(11);
    let whole = generate(&gpt, &prompts, sampling(1.0, 12), streams, &device);
    let mut parts = generate(&gpt, &prompts[..3], sampling(1.0, 12), streams, &device);
    let rest = &prompts[3..];
    parts.extend(generate(
        &gpt,
        rest,
        sampling(1.0, 12),
        streams.skip(3),
        &device,
    ));
    assert_eq!(whole, parts);
    let unskipped = generate(&gpt, rest, sampling(1.0, 12), streams, &device);
    assert_ne!(
        unskipped,
        whole[3..],
        "skipping changes which streams the rows draw from"
    );
}

/// A batch reads a repeated prompt once and hands its keys, values and logits to the other
/// rows with it (RLVR's groups): each row's logits at every token it draws are, to the bit,
/// those it gets alone, and so are its tokens, from its own stream; repeats apart or together,
/// prompts of any length (across a key tile, too).
#[test]
fn rows_that_share_a_prompt_compute_what_each_computes_alone() {
    use crate::decode::logits_drawn_from;
    use crate::generate::Streams;
    let device = Device::flex();
    let config = GptConfig {
        block_size: 40,
        ..config()
    };
    let gpt = test_support::seeded(&device, 7, || Gpt::new(&config, &device));
    // 19 tokens: the prompt's keys end inside the second tile of 16 positions.
    let long: Vec<u32> = (0..19).map(|i| 1 + (i * 5) % 10).collect();
    let (a, b) = (vec![3, 1, 4], vec![2, 7]);
    let prompts = vec![
        a.clone(),
        a.clone(),
        long.clone(),
        b.clone(),
        a.clone(),
        long.clone(),
        b,
        long,
        a,
    ];
    // And pass@k's shape: more rows than the prompt has tokens, so that a later step has more
    // slots than the first.
    let one_prompt = vec![vec![5, 2]; 6];
    let streams = Streams::new(21);
    let options = sampling(1.0, 12);
    for prompts in [prompts, one_prompt] {
        let together = logits_drawn_from(&gpt, &prompts, options, streams);
        for (i, prompt) in prompts.iter().enumerate() {
            let alone =
                logits_drawn_from(&gpt, std::slice::from_ref(prompt), options, streams.skip(i));
            let same_bits = together[i].len() == alone[0].len()
                && together[i]
                    .iter()
                    .zip(&alone[0])
                    .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same_bits, "row {i}: its logits differ from its own alone");
        }
        assert_ne!(together[0], together[1], "a shared prompt, two streams");
    }
}

/// Rows draw from their own streams and the decoder's kernels give a row the same bits in any
/// batch: one thread (one batch) and two or three (a batch each) write the same tokens.
#[test]
fn sampled_tokens_do_not_depend_on_the_thread_count() {
    use crate::generate::{generate, Streams};
    let gpt = model();
    let device = Device::flex();
    let prompts: Vec<Vec<u32>> = (0..3).flat_map(|_| mixed_prompts()).collect();
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| generate(&gpt, &prompts, sampling(1.0, 12), Streams::new(9), &device))
    };
    let one = in_pool(1);
    assert_eq!(one, in_pool(2));
    assert_eq!(one, in_pool(3));
    // Each row is its own: the same prompt twice, in two rows, draws two continuations.
    assert_ne!(
        one[0], one[7],
        "rows 0 and 7 share a prompt but not a stream"
    );
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
