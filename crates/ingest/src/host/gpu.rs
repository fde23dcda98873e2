//! NVIDIA GPUs through NVML, reported under DCGM-exporter's names and labels (`gpu`, `UUID`,
//! `device`, `modelName`, `pci_bus_id`) so its dashboards work: utilisation, framebuffer
//! memory (MiB, as DCGM), temperature, power, clocks and energy.
//!
//! NVML is `dlopen`ed from `libnvidia-ml.so.1` (the name the driver installs; the unversioned
//! `.so` only comes with development packages) when [`GpuCollector::load`] runs, through the
//! `nvml-wrapper` crate, which keeps the FFI and its `unsafe` out of hubmon. Nothing links
//! against NVIDIA software, so the binary builds and runs without it, and a host without the
//! library, the driver or a GPU simply has no GPU collector.

use std::ffi::OsStr;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use tracing::debug;

use hubmon_model::SeriesSamples;

use super::Batch;

/// The library the NVIDIA driver installs.
const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

const MIB: f64 = 1024.0 * 1024.0;

/// The GPUs NVML saw when loaded. Keep one and call [`GpuCollector::collect`] on every tick.
pub struct GpuCollector {
    nvml: Nvml,
    gpus: Vec<Gpu>,
}

/// What does not change while the driver stays loaded: the labels.
struct Gpu {
    index: u32,
    gpu: String,
    uuid: String,
    device: String,
    model_name: String,
    pci_bus_id: String,
}

impl GpuCollector {
    /// Loads NVML and lists the GPUs. `None`, logged at debug level only, when the library is
    /// missing, the driver is not loaded, or there is no GPU: all normal on most hosts.
    pub fn load() -> Option<Self> {
        Self::load_from(OsStr::new(NVML_LIBRARY))
    }

    fn load_from(library: &OsStr) -> Option<Self> {
        let nvml = match Nvml::builder().lib_path(library).init() {
            Ok(nvml) => nvml,
            Err(error) => {
                debug!(library = ?library, %error, "NVML not available, no GPU metrics");
                return None;
            }
        };
        let count = match nvml.device_count() {
            Ok(count) => count,
            Err(error) => {
                debug!(%error, "NVML cannot count GPUs, no GPU metrics");
                return None;
            }
        };
        let gpus: Vec<Gpu> = (0..count).filter_map(|index| describe(&nvml, index)).collect();
        if gpus.is_empty() {
            debug!(count, "NVML loaded but no usable GPU, no GPU metrics");
            return None;
        }
        Some(Self { nvml, gpus })
    }

    /// How many GPUs are reported.
    pub fn gpu_count(&self) -> usize {
        self.gpus.len()
    }

    /// One sample per GPU and metric, all at `timestamp_ms`. A value a GPU does not support
    /// (power on some boards) or cannot give now is left out; the rest is still reported.
    pub fn collect(&mut self, timestamp_ms: i64) -> Vec<SeriesSamples> {
        let mut batch = Batch::new(timestamp_ms);
        for gpu in &self.gpus {
            let device = match self.nvml.device_by_index(gpu.index) {
                Ok(device) => device,
                Err(error) => {
                    debug!(gpu = gpu.index, %error, "GPU unreachable, skipped");
                    continue;
                }
            };
            let labels = [
                ("gpu", gpu.gpu.as_str()),
                ("UUID", &gpu.uuid),
                ("device", &gpu.device),
                ("modelName", &gpu.model_name),
                ("pci_bus_id", &gpu.pci_bus_id),
            ];
            let mut push = |name: &str, value: Result<f64, NvmlError>| match value {
                Ok(value) => batch.push(name, &labels, value),
                Err(error) => debug!(gpu = gpu.index, metric = name, %error, "GPU value unavailable"),
            };
            match device.utilization_rates() {
                Ok(utilization) => {
                    push("DCGM_FI_DEV_GPU_UTIL", Ok(f64::from(utilization.gpu)));
                    push("DCGM_FI_DEV_MEM_COPY_UTIL", Ok(f64::from(utilization.memory)));
                }
                Err(error) => push("DCGM_FI_DEV_GPU_UTIL", Err(error)),
            }
            match device.memory_info() {
                // DCGM reports whole MiB.
                Ok(memory) => {
                    push("DCGM_FI_DEV_FB_USED", Ok((memory.used as f64 / MIB).floor()));
                    push("DCGM_FI_DEV_FB_FREE", Ok((memory.free as f64 / MIB).floor()));
                }
                Err(error) => push("DCGM_FI_DEV_FB_USED", Err(error)),
            }
            push("DCGM_FI_DEV_GPU_TEMP", device.temperature(TemperatureSensor::Gpu).map(f64::from));
            // NVML gives milliwatts, DCGM watts.
            push("DCGM_FI_DEV_POWER_USAGE", device.power_usage().map(|milliwatts| f64::from(milliwatts) / 1000.0));
            push("DCGM_FI_DEV_SM_CLOCK", device.clock_info(Clock::SM).map(f64::from));
            push("DCGM_FI_DEV_MEM_CLOCK", device.clock_info(Clock::Memory).map(f64::from));
            // Millijoules since the driver loaded, as DCGM.
            push("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", device.total_energy_consumption().map(|mj| mj as f64));
        }
        batch.series
    }
}

/// The labels of GPU `index`; `None` when NVML cannot reach it (lost, or not permitted).
fn describe(nvml: &Nvml, index: u32) -> Option<Gpu> {
    let device = match nvml.device_by_index(index) {
        Ok(device) => device,
        Err(error) => {
            debug!(gpu = index, %error, "GPU unreachable, skipped");
            return None;
        }
    };
    Some(Gpu {
        index,
        gpu: index.to_string(),
        uuid: device.uuid().unwrap_or_default(),
        // DCGM-exporter's `device` is the /dev node's name.
        device: device.minor_number().map(|minor| format!("nvidia{minor}")).unwrap_or_default(),
        model_name: device.name().unwrap_or_default(),
        pci_bus_id: device.pci_info().map(|pci| pci.bus_id).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_gives_none() {
        assert!(GpuCollector::load_from(OsStr::new("libhubmon-no-such-nvml.so.1")).is_none());
    }

    #[test]
    fn collector_can_move_to_a_collection_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<GpuCollector>();
    }
}
