use crate::error::{check, Error, Result};
use dsk_sys as sys;
use std::ffi::c_char;

/// A backend kind (`DSK_BACKEND_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when usable (and not overridden by $DSK_BACKEND), else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl Backend {
    pub fn raw(self) -> i32 {
        match self {
            Backend::Auto => sys::DSK_BACKEND_AUTO,
            Backend::Cpu => sys::DSK_BACKEND_CPU,
            Backend::Cuda => sys::DSK_BACKEND_CUDA,
        }
    }

    pub fn from_raw(raw: i32) -> Result<Backend> {
        match raw {
            sys::DSK_BACKEND_AUTO => Ok(Backend::Auto),
            sys::DSK_BACKEND_CPU => Ok(Backend::Cpu),
            sys::DSK_BACKEND_CUDA => Ok(Backend::Cuda),
            _ => Err(Error::invalid(format!("unknown backend kind {raw}"))),
        }
    }

    /// What `Auto` resolves to right now.
    pub fn default_backend() -> Backend {
        Backend::from_raw(unsafe { sys::dsk_backend_default() }).unwrap_or(Backend::Cpu)
    }

    /// Usable devices of this kind (0 when unavailable). Never fails.
    pub fn device_count(self) -> i32 {
        unsafe { sys::dsk_device_count(self.raw()) }
    }
}

/// A DLPack device: type (`kDLCPU`, `kDLCUDA`, ...) and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    pub device_type: i32,
    pub device_id: i32,
}

impl Device {
    pub const CPU: Device = Device { device_type: sys::kDLCPU, device_id: 0 };

    pub fn cuda(device_id: i32) -> Device {
        Device { device_type: sys::kDLCUDA, device_id }
    }

    /// Memory the host can read directly (CPU or pinned CUDA host memory).
    pub fn is_host(self) -> bool {
        self.device_type == sys::kDLCPU || self.device_type == sys::kDLCUDAHost
    }

    pub fn raw(self) -> sys::DLDevice {
        sys::DLDevice { device_type: self.device_type, device_id: self.device_id }
    }

    pub fn from_raw(raw: sys::DLDevice) -> Device {
        Device { device_type: raw.device_type, device_id: raw.device_id }
    }
}

/// One backend kind as libdsk sees it on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    pub backend: Backend,
    pub available: bool,
    pub score: i32,
    pub device_count: i32,
    pub name: String,
    /// Why it is unavailable ("" when available).
    pub reason: String,
}

/// Properties of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProps {
    pub backend: Backend,
    pub device_id: i32,
    pub compute_capability: (i32, i32),
    pub multiprocessor_count: i32,
    pub memory_bus_width_bits: i32,
    pub memory_clock_khz: i32,
    pub total_memory_bytes: u64,
    pub memory_bandwidth_gbps: f64,
    pub name: String,
}

fn c_array_string(chars: &[c_char]) -> String {
    // Bounded by the array even if libdsk ever forgot the terminator.
    let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Describes a backend kind (Cpu or Cuda); loads the CUDA module on first use.
pub fn backend_info(backend: Backend) -> Result<BackendInfo> {
    let mut info = unsafe { std::mem::zeroed::<sys::dsk_backend_info>() };
    check(unsafe { sys::dsk_backend_info_init(&mut info) })?;
    check(unsafe { sys::dsk_backend_get_info(backend.raw(), &mut info) })?;
    Ok(BackendInfo {
        backend: Backend::from_raw(info.backend)?,
        available: info.available != 0,
        score: info.score,
        device_count: info.device_count,
        name: c_array_string(&info.name),
        reason: c_array_string(&info.reason),
    })
}

/// Every concrete backend kind (CPU, CUDA), available or not.
pub fn backends() -> Result<Vec<BackendInfo>> {
    [Backend::Cpu, Backend::Cuda].into_iter().map(backend_info).collect()
}

/// Properties of device `device_id` of `backend`.
pub fn device_props(backend: Backend, device_id: i32) -> Result<DeviceProps> {
    let mut props = unsafe { std::mem::zeroed::<sys::dsk_device_props>() };
    check(unsafe { sys::dsk_device_props_init(&mut props) })?;
    check(unsafe { sys::dsk_device_get_props(backend.raw(), device_id, &mut props) })?;
    Ok(DeviceProps {
        backend: Backend::from_raw(props.backend)?,
        device_id: props.device_id,
        compute_capability: (props.compute_capability_major, props.compute_capability_minor),
        multiprocessor_count: props.multiprocessor_count,
        memory_bus_width_bits: props.memory_bus_width_bits,
        memory_clock_khz: props.memory_clock_khz,
        total_memory_bytes: props.total_memory_bytes,
        memory_bandwidth_gbps: props.memory_bandwidth_gbps,
        name: c_array_string(&props.name),
    })
}

/// Every device of every available backend.
pub fn devices() -> Result<Vec<DeviceProps>> {
    let mut out = Vec::new();
    for backend in [Backend::Cpu, Backend::Cuda] {
        for id in 0..backend.device_count() {
            out.push(device_props(backend, id)?);
        }
    }
    Ok(out)
}

