use crate::backend::{Backend, Device};
use crate::error::{check, Error, Result};
use crate::tensor::{AsDLTensor, Tensor, Writable};
use crate::dtype::DType;
use dsk_sys as sys;
use std::cell::Cell;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Checks that the loaded libdsk speaks the ABI these bindings were written for.
pub fn check_abi() -> Result<()> {
    let loaded = unsafe { sys::dsk_abi_version() };
    if loaded != sys::DSK_ABI_VERSION {
        return Err(Error::new(sys::DSK_ERR_VERSION_MISMATCH, format!(
            "libdsk has ABI version {loaded}, these bindings need {}", sys::DSK_ABI_VERSION)));
    }
    Ok(())
}

/// Options for [`Context`]; `Context::builder().backend(Backend::Cpu).build()`.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    backend: Backend,
    device_id: i32,
    stream: *mut c_void,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        ContextBuilder { backend: Backend::Auto, device_id: 0, stream: std::ptr::null_mut() }
    }
}

impl ContextBuilder {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn device_id(mut self, device_id: i32) -> Self {
        self.device_id = device_id;
        self
    }

    /// Orders the context's CUDA work on `stream` (a cudaStream_t; null = default stream).
    ///
    /// # Safety
    /// The stream must belong to the context's device and outlive the context's use of it.
    pub unsafe fn stream(mut self, stream: *mut c_void) -> Self {
        self.stream = stream;
        self
    }

    pub fn build(self) -> Result<Context> {
        check_abi()?;
        let mut options = unsafe { std::mem::zeroed::<sys::dsk_context_options>() };
        check(unsafe { sys::dsk_context_options_init(&mut options) })?;
        options.backend = self.backend.raw();
        options.device_id = self.device_id;
        options.stream = self.stream;
        // The allocator hook is not wrapped: it would need callbacks that may run after the
        // context is gone, on any thread. Use dsk-sys for it.
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_context_create(&options, &mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| Error::new(sys::DSK_ERR_INTERNAL, "dsk_context_create returned NULL"))?;
        Ok(Context { raw, _not_sync: PhantomData })
    }
}

/// An execution context: one backend, one device, one stream. Destroyed (after its queued work
/// finishes) on drop; tensors made with it stay valid.
///
/// `Send` but not `Sync`: libdsk allows a context to move between threads but not to be used by
/// two at once.
pub struct Context {
    raw: NonNull<sys::dsk_context>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: dsk_context.h: "a context may move between threads but must not be used by two threads
// at once"; the missing Sync (Cell) forbids the latter.
unsafe impl Send for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { sys::dsk_context_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("backend", &self.backend().ok())
            .field("device", &self.device().ok()).finish()
    }
}

impl Context {
    /// A context on the default backend (`Backend::Auto`), device 0.
    pub fn new() -> Result<Context> {
        ContextBuilder::default().build()
    }

    /// A CPU context.
    pub fn cpu() -> Result<Context> {
        ContextBuilder::default().backend(Backend::Cpu).build()
    }

    /// A CUDA context on `device_id` (fails with `BackendUnavailable` without a usable GPU).
    pub fn cuda(device_id: i32) -> Result<Context> {
        ContextBuilder::default().backend(Backend::Cuda).device_id(device_id).build()
    }

    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    pub fn as_ptr(&self) -> *mut sys::dsk_context {
        self.raw.as_ptr()
    }

    /// The concrete backend (never `Auto`).
    pub fn backend(&self) -> Result<Backend> {
        let mut raw = 0;
        check(unsafe { sys::dsk_context_get_backend(self.raw.as_ptr(), &mut raw) })?;
        Backend::from_raw(raw)
    }

    pub fn device(&self) -> Result<Device> {
        let mut raw = Device::CPU.raw();
        check(unsafe { sys::dsk_context_get_device(self.raw.as_ptr(), &mut raw) })?;
        Ok(Device::from_raw(raw))
    }

    /// Replaces the CUDA stream (null = default stream). CPU contexts accept only null.
    ///
    /// # Safety
    /// As for [`ContextBuilder::stream`].
    pub unsafe fn set_stream(&mut self, stream: *mut c_void) -> Result<()> {
        check(sys::dsk_context_set_stream(self.raw.as_ptr(), stream))
    }

    pub fn stream(&self) -> Result<*mut c_void> {
        let mut stream = std::ptr::null_mut();
        check(unsafe { sys::dsk_context_get_stream(self.raw.as_ptr(), &mut stream) })?;
        Ok(stream)
    }

    /// Waits for all queued work; reports asynchronous device errors.
    pub fn synchronize(&mut self) -> Result<()> {
        check(unsafe { sys::dsk_context_synchronize(self.raw.as_ptr()) })
    }

    /// Hands dsk caller-owned workspace memory (null/0 returns to an owned workspace).
    ///
    /// # Safety
    /// `ptr` must address `bytes` bytes on the context's device, 256-byte aligned, valid and
    /// otherwise unused while the context may use it.
    pub unsafe fn set_workspace(&mut self, ptr: *mut c_void, bytes: usize) -> Result<()> {
        check(sys::dsk_context_set_workspace(self.raw.as_ptr(), ptr, bytes))
    }

    /// Goes back to a dsk-owned workspace (safe: nothing borrowed remains).
    pub fn reset_workspace(&mut self) -> Result<()> {
        unsafe { self.set_workspace(std::ptr::null_mut(), 0) }
    }

    /// Grows the owned workspace to at least `bytes` now.
    pub fn reserve_workspace(&mut self, bytes: usize) -> Result<()> {
        check(unsafe { sys::dsk_context_reserve_workspace(self.raw.as_ptr(), bytes) })
    }

    pub fn workspace_size(&self) -> Result<usize> {
        let mut bytes = 0;
        check(unsafe { sys::dsk_context_get_workspace_size(self.raw.as_ptr(), &mut bytes) })?;
        Ok(bytes)
    }

    /// A contiguous row-major tensor on the context's device. Its contents are arbitrary
    /// (libdsk does not initialize them): fill or copy before reading.
    pub fn empty(&self, shape: &[i64], dtype: DType) -> Result<Tensor> {
        let ndim = i32::try_from(shape.len()).map_err(|_| Error::invalid("too many dimensions"))?;
        let mut raw = std::ptr::null_mut();
        check(unsafe {
            sys::dsk_tensor_create(self.raw.as_ptr(), ndim, shape.as_ptr(), dtype.raw(), &mut raw)
        })?;
        // SAFETY: a successful create returns a tensor with one reference, now ours.
        Ok(unsafe { Tensor::from_raw(raw) })
    }

    /// [`empty`](Self::empty) filled with `value`.
    pub fn full(&self, shape: &[i64], dtype: DType, value: f64) -> Result<Tensor> {
        let t = self.empty(shape, dtype)?;
        self.fill(&t, value)?;
        Ok(t)
    }

    pub fn zeros(&self, shape: &[i64], dtype: DType) -> Result<Tensor> {
        self.full(shape, dtype, 0.0)
    }

    /// Copies `src` into `dst` element by element, converting dtypes (dsk_dtype.h rules).
    pub fn copy(&self, src: &impl AsDLTensor, dst: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_copy(self.raw.as_ptr(), src.dltensor(), dst.dltensor()) })
    }

    /// A new contiguous tensor on this context's device holding `src` converted to `dtype`.
    pub fn clone_tensor(&self, src: &impl AsDLTensor, dtype: DType) -> Result<Tensor> {
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_tensor_clone(self.raw.as_ptr(), src.dltensor(), dtype.raw(), &mut raw) })?;
        Ok(unsafe { Tensor::from_raw(raw) })
    }

    /// Sets every element of `dst` to `value` (converted to its dtype).
    pub fn fill(&self, dst: &impl Writable, value: f64) -> Result<()> {
        check(unsafe { sys::dsk_fill(self.raw.as_ptr(), dst.dltensor(), value) })
    }

    /// Seeded random fill, bit-identical on every backend (see dsk_fill_random).
    pub fn fill_random(&self, dst: &impl Writable, params: &RandomParams) -> Result<()> {
        let raw = params.raw()?;
        check(unsafe { sys::dsk_fill_random(self.raw.as_ptr(), dst.dltensor(), &raw) })
    }
}

/// Distribution of [`Context::fill_random`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// low + (high - low) * u, u on the 2^-24 grid of [0, 1).
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
}

/// Parameters of [`Context::fill_random`]: fills with the same seed and offset draw the same
/// numbers; another offset draws fresh ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomParams {
    pub distribution: Distribution,
    pub seed: u64,
    pub offset: u64,
}

impl RandomParams {
    pub fn uniform(seed: u64, low: f64, high: f64) -> Self {
        RandomParams { distribution: Distribution::Uniform { low, high }, seed, offset: 0 }
    }

    pub fn normal(seed: u64, mean: f64, std: f64) -> Self {
        RandomParams { distribution: Distribution::Normal { mean, std }, seed, offset: 0 }
    }

    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    fn raw(&self) -> Result<sys::dsk_random_params> {
        let mut p = unsafe { std::mem::zeroed::<sys::dsk_random_params>() };
        check(unsafe { sys::dsk_random_params_init(&mut p) })?;
        let (distribution, a, b) = match self.distribution {
            Distribution::Uniform { low, high } => (sys::DSK_RANDOM_UNIFORM, low, high),
            Distribution::Normal { mean, std } => (sys::DSK_RANDOM_NORMAL, mean, std),
        };
        p.distribution = distribution;
        p.a = a;
        p.b = b;
        p.seed = self.seed;
        p.offset = self.offset;
        Ok(p)
    }
}
