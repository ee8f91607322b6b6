//! How a fused CPU kernel picks its vector unit: its loop is compiled for AVX-512, for AVX2 +
//! FMA and for the baseline target, and the widest one allowed runs.
//!
//! "Allowed" is the widest the CPU has, capped twice: by the build (the `avx512` cargo feature,
//! on by default, also gives gemm its AVX-512 kernels) and by the environment variable
//! [`SIMD_VAR`] (`GPT_MINI_SIMD=avx2`), so that the AVX2 path can be measured and tested on a
//! machine with AVX-512. gemm picks its own kernels and knows nothing of the variable: to hold it
//! to AVX2 as well, build without the feature (`--no-default-features`); [`gemm_level`] says what
//! it runs.

use std::sync::OnceLock;

/// The environment variable that caps the fused kernels' vector unit: `avx512`, `avx2` or
/// `baseline`.
pub const SIMD_VAR: &str = "GPT_MINI_SIMD";

/// A vector unit the fused kernels are compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The release build's target, x86-64 baseline (SSE2), or any other architecture.
    Baseline,
    /// AVX2 + FMA (x86-64-v3): 8 lanes of f32.
    Avx2,
    /// AVX-512 F/VL/DQ (x86-64-v4): 16 lanes of f32.
    Avx512,
}

impl SimdLevel {
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Baseline => "baseline",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|level| level.name() == text.trim())
    }

    /// The widest level this CPU has and this build compiled. Asked once per process: every
    /// kernel call checks it, dozens of times per decoded token.
    pub fn supported() -> Self {
        static SUPPORTED: OnceLock<SimdLevel> = OnceLock::new();
        *SUPPORTED.get_or_init(Self::detect)
    }

    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if cfg!(feature = "avx512")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                return SimdLevel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Baseline
    }

    /// The level the fused kernels run at: [`supported`](Self::supported), capped by
    /// [`SIMD_VAR`]. Read once per process; an unreadable value is ignored with a warning.
    pub fn active() -> Self {
        static ACTIVE: OnceLock<SimdLevel> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let supported = Self::supported();
            match std::env::var(SIMD_VAR) {
                Err(_) => supported,
                Ok(text) => match Self::parse(&text) {
                    Some(cap) => cap.min(supported),
                    None => {
                        eprintln!(
                            "warning: {SIMD_VAR}={text} is not one of avx512, avx2, baseline; \
                             ignored"
                        );
                        supported
                    }
                },
            }
        })
    }
}

/// The kernels gemm (every matrix product) runs: AVX-512 where the build has the `avx512`
/// feature and the CPU has AVX-512F, else AVX2 + FMA where the CPU has them (gemm's own rule).
pub fn gemm_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f") {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2 + FMA and for
/// the baseline target, and runs at [`SimdLevel::active`]. The release build targets baseline
/// x86-64, whose 4-wide SSE2 would otherwise be all the fused kernels get. A module of the same
/// name holds `at(level, …)`, which runs one given level (capped at what the CPU supports), so
/// that tests compare the levels with each other.
macro_rules! simd_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            $name::at($crate::simd::SimdLevel::active(), $($arg),*)
        }

        #[allow(dead_code)]
        $vis mod $name {
            use super::*;

            #[inline(always)]
            fn body($($arg: $ty),*) $body

            /// Runs the kernel compiled for `level`, or for the widest level below it that the
            /// CPU supports.
            pub fn at(level: $crate::simd::SimdLevel, $($arg: $ty),*) {
                let level = level.min($crate::simd::SimdLevel::supported());
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
                    unsafe fn avx512($($arg: $ty),*) {
                        body($($arg),*)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($arg: $ty),*) {
                        body($($arg),*)
                    }
                    match level {
                        // SAFETY: `supported()` checked that the CPU has every feature the
                        // function was compiled for.
                        $crate::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                        $crate::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                        $crate::simd::SimdLevel::Baseline => {}
                    }
                }
                body($($arg),*)
            }
        }
    };
}

pub(crate) use simd_kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_name_and_order_narrow_to_wide() {
        for level in SimdLevel::ALL {
            assert_eq!(SimdLevel::parse(level.name()), Some(level));
        }
        assert_eq!(SimdLevel::parse("sse9"), None);
        assert!(SimdLevel::Baseline < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
        assert!(SimdLevel::active() <= SimdLevel::supported());
    }
}
