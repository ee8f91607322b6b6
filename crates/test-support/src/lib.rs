//! What the crates' tests share: the tiny model shapes they build, reading a tensor back and
//! comparing two, and seeding the flex device without racing other tests.
//!
//! A dev-dependency only. The model and kernels crates use it too, for the helpers that take
//! Burn's own types (`values`, `max_abs_diff`): a `GptConfig` or `Gpt` made here is another
//! crate's type inside their own unit tests.

use std::sync::Mutex;

use burn::tensor::{Device, Tensor};
use model::{Gpt, GptConfig};

/// The smallest model a test builds: one layer of width 16, two heads, 8 positions.
pub fn tiny(vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: 8,
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        position: model::Position::Learned,
    }
}

/// Two layers of width 32, four heads, 16 positions: for tests that need depth and heads.
pub fn small(vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        position: model::Position::Learned,
    }
}

/// A tensor's values as f32, in row-major order.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// The largest elementwise difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "comparing slices of different lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Held while a test seeds the device and draws from it.
static SEEDING: Mutex<()> = Mutex::new(());

/// Runs `draw` right after `device.seed(seed)`, with no other test of this process seeding or
/// drawing in between: flex keeps one random generator per process, and the tests of a
/// binary run in parallel, so a bare `seed` then `Gpt::new` can start from another test's
/// state (rlvr's tests once failed 3 runs in 20 that way).
pub fn seeded<T>(device: &Device, seed: u64, draw: impl FnOnce() -> T) -> T {
    let _guard = SEEDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    draw()
}

/// A model with the weights `seed` gives on `device`, whatever other tests do meanwhile.
pub fn seeded_model(config: &GptConfig, seed: u64, device: &Device) -> Gpt {
    seeded(device, seed, || Gpt::new(config, device))
}
