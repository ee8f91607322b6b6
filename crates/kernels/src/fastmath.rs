//! Branch-free `erf` and `exp` for f32, so that loops over them vectorise.
//!
//! libm's scalar `erff` and `expf` have branches and stop the compiler from using SIMD; these
//! are within a few ulp of them on the ranges the fused GELU and softmax kernels use.
//! `simd_kernel!` (in `simd.rs`) compiles a loop over them for the widest vector
//! unit the CPU has.

/// erf as an odd rational function on [-4, 4] (outside it erf is ±1 in f32): Eigen's
/// `generic_fast_erf_float`. Branch-free, so a loop over it vectorises.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-08;
    p = x2 * p + -2.101_024_020_825_08e-06;
    p = x2 * p + -5.692_506_394_623_46e-05;
    p = x2 * p + -7.349_906_303_268_55e-04;
    p = x2 * p + -2.954_599_808_540_25e-03;
    p = x2 * p + -1.609_603_332_624_15e-02;
    let p = x * p;
    let mut q = x2 * -1.456_607_184_649_96e-05 + -2.133_740_552_789_05e-04;
    q = x2 * q + -1.682_826_974_382_03e-03;
    q = x2 * q + -7.373_329_167_204_68e-03;
    q = x2 * q + -1.426_473_905_141_89e-02;
    p / q
}

/// e^x on [-87, 88] (GELU's derivative and softmax need x ≤ 0): 2^n · e^r with |r| ≤ ln2/2 and
/// a degree-6 polynomial for e^r. Branch-free, so a loop over it vectorises.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round x / ln2 to the nearest integer by the 1.5 · 2^23 trick (no libm call).
    const ROUNDER: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUNDER) - ROUNDER;
    let r = x - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187e-06;
    let mut e = 1.0 / 720.0;
    e = e * r + 1.0 / 120.0;
    e = e * r + 1.0 / 24.0;
    e = e * r + 1.0 / 6.0;
    e = e * r + 0.5;
    e = e * r + 1.0;
    e = e * r + 1.0;
    // 2^n from its exponent bits: n + 127 is a whole number in [1, 254], so added to 2^23 it
    // is that float's mantissa. (`n as i32` gives the same bits, but its saturating
    // conversion kept a loop of exp_f32 from vectorising: 3-4x slower.)
    let biased = ((n + 127.0) + 8_388_608.0)
        .to_bits()
        .wrapping_sub(0x4b00_0000);
    let scale = f32::from_bits(biased << 23);
    e * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm_within_a_few_ulp() {
        let mut worst = 0.0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf_f32(x) - libm::erff(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf - erff| = {worst}");
    }

    #[test]
    fn exp_matches_std_to_float_precision() {
        let mut worst = 0.0f32;
        // Below -87 e^x leaves the normal floats; there x · φ(x) is far below anything GELU's
        // derivative can show, and the clamp gives e^-87.
        for i in 0..87_000 {
            let x = -(i as f32) * 1e-3;
            let want = x.exp();
            worst = worst.max((exp_f32(x) - want).abs() / want);
        }
        assert!(worst < 1e-6, "max relative error {worst}");
    }

    #[test]
    fn exp_gives_the_bits_it_gave_with_an_integer_exponent() {
        // The form before 2^n was built from float bits: checkpoints made with it stay
        // reproducible only if every input still gives the same bits.
        #[allow(clippy::excessive_precision)]
        fn with_integer_exponent(x: f32) -> f32 {
            let x = x.clamp(-87.0, 88.0);
            const ROUNDER: f32 = 12_582_912.0;
            let n = (x * std::f32::consts::LOG2_E + ROUNDER) - ROUNDER;
            let r = x - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187e-06;
            let mut e = 1.0 / 720.0;
            for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
                e = e * r + c;
            }
            e * f32::from_bits(((n as i32 + 127) << 23) as u32)
        }
        // Every 257th bit pattern: all signs, exponents, NaNs and infinities.
        for bits in (0..=u32::MAX).step_by(257) {
            let x = f32::from_bits(bits);
            let (ours, theirs) = (exp_f32(x), with_integer_exponent(x));
            assert!(
                ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                "exp({x:e}) = {ours:e}, was {theirs:e}"
            );
        }
    }
}
