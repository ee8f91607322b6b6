//! The one place a backend is chosen. Stages receive a `Device` and never pick one.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use kernels::KernelPath;

/// The number of data-parallel shards worth making on `device`: on the CPU (flex), one per
/// thread of rayon's pool (`RAYON_NUM_THREADS`); on a GPU, one, since a GPU wants the whole
/// batch at once. Float rounding depends on it, not values.
pub fn shard_count(device: &Device) -> usize {
    if KernelPath::of(device).is_cpu() {
        rayon::current_num_threads().max(1)
    } else {
        1
    }
}

/// [`shard_count`] for forward-only passes that share one model across threads (evaluation,
/// reference log-probs, greedy decoding): one on the autodiff device, where those threads would
/// build one graph together, which Burn's autodiff does not survive (`docs/perf.md`, change 4).
pub fn forward_shard_count(device: &Device) -> usize {
    if device.is_autodiff() {
        1
    } else {
        shard_count(device)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// Burn's pure-Rust CPU backend (rayon + SIMD): the default.
    #[default]
    Flex,
    /// GPU through wgpu (WGSL); needs the `wgpu` cargo feature.
    Wgpu,
}

impl DeviceChoice {
    pub fn device(self) -> Result<Device, String> {
        match self {
            DeviceChoice::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Wgpu => Err("--device wgpu needs a build with the `wgpu` feature: \
                 `cargo run -p xtask --release --features wgpu -- …`"
                .to_string()),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flex" => Ok(DeviceChoice::Flex),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            other => Err(format!("unknown device `{other}` (expected flex or wgpu)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Flex => "flex",
            DeviceChoice::Wgpu => "wgpu",
        })
    }
}
