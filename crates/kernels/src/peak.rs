//! The arithmetic ceiling of one core: how many f32 multiply-adds a second it retires from
//! registers alone at a given vector width. `xtask bench --products` measures the matrix
//! products against it, so that "% of peak" is read off the machine at hand (whose clock a VM
//! does not report) instead of a spec sheet.

use std::time::Instant;

use crate::simd::SimdLevel;

/// GFLOP/s (a multiply-add counts two) of one thread running independent FMA chains at `level`
/// (capped at what the CPU supports). On the baseline level it is a scalar multiply and add.
pub fn fma_peak_gflops(level: SimdLevel) -> f64 {
    let level = level.min(SimdLevel::supported());
    let iterations = 10_000_000;
    // The best of a few runs of some 40 ms: the first ones warm the core up (clock, power
    // state), and a shared machine may stall any one of them.
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let (lanes, checksum) = run(level, iterations);
            let seconds = start.elapsed().as_secs_f64();
            std::hint::black_box(checksum);
            (iterations * CHAINS * lanes * 2) as f64 / seconds / 1e9
        })
        .fold(0.0, f64::max)
}

/// Independent accumulators: more than the FMA latency (4 cycles) times the FMA units (2), so
/// the loop is bound by throughput.
const CHAINS: usize = 12;

/// Runs the chains at `level`; returns the lanes per FMA and a value that depends on them all.
fn run(level: SimdLevel, iterations: usize) -> (usize, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `level` is capped at what `supported()` found on this CPU.
        match level {
            SimdLevel::Avx512 => return (16, unsafe { x86::avx512(iterations) }),
            SimdLevel::Avx2 => return (8, unsafe { x86::avx2(iterations) }),
            SimdLevel::Baseline => {}
        }
    }
    let mut acc = [0.0f32; CHAINS];
    let (a, b) = std::hint::black_box((1.000_000_1f32, 0.999_999_9f32));
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = *x * a + b;
        }
    }
    (1, acc.iter().sum())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iterations: usize) -> f32 {
        let (a, b) = std::hint::black_box((1.000_000_1f32, 0.999_999_9f32));
        let (a, b) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iterations: usize) -> f32 {
        let (a, b) = std::hint::black_box((1.000_000_1f32, 0.999_999_9f32));
        let (a, b) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        _mm512_reduce_add_ps(
            acc.iter()
                .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_runs_every_chain_in_every_lane() {
        let iterations = 1000;
        for level in SimdLevel::ALL
            .into_iter()
            .filter(|&level| level <= SimdLevel::supported())
        {
            let (lanes, checksum) = run(level, iterations);
            let mut x = 0.0f32;
            for _ in 0..iterations {
                x = if level == SimdLevel::Baseline {
                    x * 1.000_000_1 + 0.999_999_9
                } else {
                    x.mul_add(1.000_000_1, 0.999_999_9)
                };
            }
            let expected = x * (CHAINS * lanes) as f32;
            assert!(
                ((checksum - expected) / expected).abs() < 1e-5,
                "{}: {checksum} against {expected}",
                level.name()
            );
            assert!(fma_peak_gflops(level) > 0.0);
        }
    }
}
