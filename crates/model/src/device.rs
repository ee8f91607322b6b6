//! The one place a backend is chosen. Stages receive a `Device` and never pick one.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

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
