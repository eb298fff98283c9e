//! Safe Rust bindings to dsk, DeepSeek-style inference primitives behind a stable C ABI.
//!
//! Everything goes through libdsk's C functions (declared in the `dsk-sys` crate); a failed call
//! comes back as an [`Error`] carrying the status, its [`ErrorKind`] and libdsk's message.
//!
//! ```
//! use dsk::{Context, DType, RandomParams};
//!
//! let ctx = Context::cpu()?;
//! let x = ctx.empty(&[2, 3], DType::F32)?;
//! ctx.fill_random(&x, &RandomParams::uniform(42, -1.0, 1.0))?;
//! let narrow = ctx.clone_tensor(&x, DType::BF16)?;    // f32 -> bf16, round to nearest even
//! let back = ctx.clone_tensor(&narrow, DType::F32)?;  // bf16 -> f32 is exact
//! let (a, b) = (x.to_vec::<f32>()?, back.to_vec::<f32>()?);
//! assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= a.abs() / 128.0));
//! assert_eq!(back.transpose(0, 1)?.shape(), &[3, 2]);
//! # Ok::<(), dsk::Error>(())
//! ```
//!
//! Ops take their tensor arguments as `&impl AsDLTensor` (inputs) or `&impl Writable` (outputs):
//! a [`Tensor`] owned by dsk, a [`TensorRef`] / [`TensorMut`] borrowing a Rust slice, or a
//! [`ManagedTensor`] from any DLPack producer.
//!
//! The core ops of `dsk_ops.h` (GEMM, FP8 quantization and the FP8 linear layer, RMSNorm, SwiGLU,
//! RoPE, softmax, top-k, embedding) are [`Context`] methods:
//!
//! ```
//! use dsk::{Context, GemmOptions, TensorMut, TensorRef};
//!
//! let ctx = Context::cpu()?;
//! let a = [1.0f32, 2.0, 3.0, 4.0];                   // [[1, 2], [3, 4]]
//! let b = [1.0f32, 0.0, 0.0, 1.0];                   // identity
//! let mut d = [0f32; 4];
//! ctx.gemm(&TensorRef::new(&a, &[2, 2])?, &TensorRef::new(&b, &[2, 2])?, None,
//!          &TensorMut::new(&mut d, &[2, 2])?, &GemmOptions::default().trans_a(true))?;
//! assert_eq!(d, [1.0, 3.0, 2.0, 4.0]);                // a^T
//! let mut p = [0f32; 4];
//! ctx.softmax(&TensorRef::new(&d, &[2, 2])?, &TensorMut::new(&mut p, &[2, 2])?, 1.0)?;
//! assert!((p[0] + p[1] - 1.0).abs() < 1e-6);
//! # Ok::<(), dsk::Error>(())
//! ```
//!
//! MLA attention (`dsk_mla.h`): [`MlaDecodePlan`] (made by [`Context::mla_decode_plan`], released
//! on drop) and the `Context::mla_*` methods (decode with or without a plan, cache append, weight
//! absorption, latent decompression, prefill), plus [`mla_softmax_scale`].
//!
//! Mixture of Experts (`dsk_moe.h`): [`MoeGateConfig`] (`Default` = DeepSeek-V3's gate),
//! [`MoeExpertWeights`], the layer plan [`MoePlan`] (made by [`Context::moe_plan`], released on
//! drop), [`moe_dispatch_capacity`] and the `Context::moe_*` methods (gate, router gate, dispatch,
//! permute, combine, experts, the whole layer, load statistics, bias update, EP layout).
//!
//! Token sampling (`dsk_sampling.h`): [`SamplingParams`] (`Default` = plain sampling at
//! temperature 1; scalars or per-row tensors, [`TokenLists`] for the penalties, [`LogitBias`], the
//! allowed mask), [`SamplingOutputs`], [`VerifyParams`] and the `Context` methods
//! [`sample`](Context::sample), [`sample_ids`](Context::sample_ids),
//! [`sampling_logits`](Context::sampling_logits), [`sampling_probs`](Context::sampling_probs) and
//! [`speculative_verify`](Context::speculative_verify).
//!
//! Checkpoints (`dsk_safetensors.h`): [`SafeTensors`] opens a `.safetensors` file, a sharded index
//! or a directory without copying; [`SafeTensorView`]s borrow it and are op inputs as they are,
//! [`SafeTensors::tensor`] gives a read-only [`Tensor`] that outlives it.

mod backend;
mod context;
mod dtype;
mod error;
mod mla;
mod moe;
mod ops;
mod safetensors;
mod sampling;
mod tensor;

pub use backend::{backend_info, backends, device_props, devices, Backend, BackendInfo, Device, DeviceProps};
pub use context::{check_abi, Context, ContextBuilder, Distribution, RandomParams};
pub use dtype::{convert_host, Bf16, DType, Element, Fp8E4M3, Fp8E5M2, F16};
pub use error::{status_string, Error, ErrorKind, Result};
pub use mla::{mla_softmax_scale, MlaDecodePlan};
pub use moe::{moe_dispatch_capacity, MoeExpertWeights, MoeGateConfig, MoeGroupRule, MoePlan, MoeScoreFunc,
              MOE_ROW_NO_FINITE, MOE_ROW_SHORT};
pub use ops::{fp8_blocks, Fp8Kernel, GemmOptions, RopeConfig, RopeLayout};
pub use safetensors::{SafeTensorInfo, SafeTensorView, SafeTensors};
pub use sampling::{LogitBias, LogprobsSource, SamplingOutputs, SamplingParams, TokenLists, VerifyMode, VerifyParams,
                   SAMPLE_ALL_MASKED, SAMPLE_INVALID, SAMPLE_MAX_TOP_LOGPROBS, SAMPLE_NONFINITE, SAMPLE_OK};
pub use tensor::{validate, AsDLTensor, ManagedTensor, ManagedTensorLegacy, Tensor, TensorMut, TensorRef, Writable};

/// The raw layer, for what this crate does not wrap.
pub use dsk_sys as sys;

use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;

/// The loaded library's version number (MAJOR * 10000 + MINOR * 100 + PATCH).
pub fn version_number() -> u32 {
    unsafe { sys::dsk_version_number() }
}

/// The loaded library's version, e.g. "0.1.0".
pub fn version_string() -> &'static str {
    unsafe { CStr::from_ptr(sys::dsk_version_string()) }.to_str().unwrap_or("")
}

/// The loaded library's ABI version (see [`check_abi`]).
pub fn abi_version() -> u32 {
    unsafe { sys::dsk_abi_version() }
}

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl LogLevel {
    fn from_raw(raw: i32) -> LogLevel {
        match raw {
            sys::DSK_LOG_ERROR => LogLevel::Error,
            sys::DSK_LOG_WARN => LogLevel::Warn,
            sys::DSK_LOG_INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }
}

type LogCallback = Box<dyn Fn(LogLevel, &str) + Send + Sync>;

// The installed callback, double-boxed so that libdsk's `user` pointer is a thin pointer. Kept
// here until it is replaced, and only dropped after libdsk has let go of it.
static LOG_CALLBACK: Mutex<Option<Box<LogCallback>>> = Mutex::new(None);

unsafe extern "C" fn log_trampoline(level: i32, message: *const c_char, user: *mut c_void) {
    let callback = &*(user as *const LogCallback);
    let message = CStr::from_ptr(message).to_string_lossy();
    // A panic must not unwind into C; a logging failure is not worth aborting for.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(LogLevel::from_raw(level), &message)));
}

/// Installs (`Some`) or removes (`None`) the process-wide log callback; messages less severe
/// than `max_level` are not delivered. The callback may run on any thread calling into dsk and
/// must not call dsk itself.
pub fn set_log_callback(callback: Option<LogCallback>, max_level: LogLevel) {
    let mut slot = LOG_CALLBACK.lock().unwrap_or_else(|e| e.into_inner());
    match callback {
        Some(cb) => {
            let boxed: Box<LogCallback> = Box::new(cb);
            let user = &*boxed as *const LogCallback as *mut c_void;
            unsafe { sys::dsk_log_set(Some(log_trampoline), user, max_level as i32) };
            // libdsk serializes callbacks with dsk_log_set, so the old one is no longer running.
            *slot = Some(boxed);
        }
        None => {
            unsafe { sys::dsk_log_set(None, std::ptr::null_mut(), max_level as i32) };
            *slot = None;
        }
    }
}
