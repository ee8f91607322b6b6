//! Rotary position embedding (RoPE; Su et al. 2021, "RoFormer", arXiv 2104.09864), in
//! GPT-NeoX's half-split form: the first and second halves of a head's vector are the two
//! coordinates of `head_dim / 2` planes, and plane `i` of the vector at position `p` is turned
//! by the angle `p · BASE^(−2i / head_dim)`. Queries and keys are turned, values are not, so a
//! query–key product depends on the two positions only through their distance.
//!
//! The tensor path ([`rotate`]) and the decoder ([`rotate_row`]) use the same tables, computed
//! in f64 and rounded once, and the same arithmetic, so they agree to rounding.

use burn::tensor::{Device, Tensor, TensorData};

/// RoFormer's (and GPT-NeoX's, Llama's) base of the angle frequencies.
const BASE: f64 = 10_000.0;

/// `(cos, sin)` of every angle: `[positions, half]` each, row-major, from position `offset`.
pub fn tables(offset: usize, positions: usize, half: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for p in offset..offset + positions {
        for i in 0..half {
            let angle = p as f64 * BASE.powf(-((2 * i) as f64) / (2 * half) as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Turns every head's vector of `x` (`[B, h, T, head_dim]`) by its position, `offset + t`.
pub fn rotate(x: Tensor<4>, offset: usize) -> Tensor<4> {
    let [_, _, t, head_dim] = x.dims();
    let half = head_dim / 2;
    let device: Device = x.device();
    let (cos, sin) = tables(offset, t, half);
    let table = |values: Vec<f32>| {
        Tensor::<2>::from_data(TensorData::new(values, [t, half]), &device).unsqueeze::<4>()
    };
    let (cos, sin) = (table(cos), table(sin));
    let first = x.clone().narrow(3, 0, half);
    let second = x.narrow(3, half, half);
    let turned_first = first.clone() * cos.clone() - second.clone() * sin.clone();
    let turned_second = first * sin + second * cos;
    Tensor::cat(vec![turned_first, turned_second], 3)
}

/// [`rotate`] for one head's vector `x` at one position, in place; `cos` and `sin` are that
/// position's row of [`tables`].
pub fn rotate_row(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (first, second) = x.split_at_mut(half);
    for i in 0..half {
        let (a, b) = (first[i], second[i]);
        first[i] = a * cos[i] - b * sin[i];
        second[i] = a * sin[i] + b * cos[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn turned(x: &[f32], position: usize) -> Vec<f32> {
        let (cos, sin) = tables(position, 1, x.len() / 2);
        let mut x = x.to_vec();
        rotate_row(&mut x, &cos, &sin);
        x
    }

    /// A query–key product sees only the distance between the two positions: moving both by
    /// the same amount leaves it, moving one changes it (the test can fail).
    #[test]
    fn a_query_key_product_depends_only_on_the_distance() {
        let q: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7).sin()).collect();
        let k: Vec<f32> = (0..8).map(|i| (i as f32 * 1.3).cos()).collect();
        let at = |m: usize, n: usize| dot(&turned(&q, m), &turned(&k, n));
        for shift in [1, 5, 40] {
            assert!((at(7, 3) - at(7 + shift, 3 + shift)).abs() < 1e-5);
        }
        assert!((at(7, 3) - at(8, 3)).abs() > 1e-3);
        // Position 0 turns nothing.
        assert_eq!(turned(&q, 0), q);
    }

    /// The tensor path and the row path give the same vectors.
    #[test]
    fn tensor_and_row_rotations_agree() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<1>::from_data(TensorData::new(values.clone(), [48]), &device)
            .reshape([1, 2, 3, 8]);
        let got = test_support::values(rotate(x, 4));
        for (v, chunk) in values.chunks(8).enumerate() {
            let position = 4 + v % 3;
            assert_eq!(&got[v * 8..][..8], &turned(chunk, position)[..]);
        }
    }
}
