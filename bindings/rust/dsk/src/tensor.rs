use crate::backend::Device;
use crate::dtype::{DType, Element};
use crate::error::{check, Error, Result};
use dsk_sys as sys;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Anything that can be passed to an op as a borrowed `const DLTensor*`.
///
/// # Safety
/// `dltensor` must return a pointer to a DLTensor that, with the memory it describes, stays
/// valid while `self` is borrowed.
pub unsafe trait AsDLTensor {
    fn dltensor(&self) -> *const sys::DLTensor;
}

/// An [`AsDLTensor`] whose memory ops may write (output arguments).
///
/// # Safety
/// Writing the described elements through the pointer must not violate Rust's aliasing rules:
/// implementors either own the memory in a foreign allocation ([`Tensor`]) or hold a unique
/// borrow of it ([`TensorMut`]).
pub unsafe trait Writable: AsDLTensor {}

/// A reference-counted handle to (a view of) a dsk storage buffer.
///
/// `Clone` adds a reference to the same storage (no copy; use [`Context::clone_tensor`] for
/// that) and `Drop` removes one. Handles are `Send + Sync` because libdsk's reference counting is
/// atomic and the metadata is immutable; the *elements* however are shared mutable memory, like
/// in C: ops write through any handle, and keeping two threads (or a borrowed slice and an op)
/// from touching the same elements at once is the caller's job.
///
/// [`Context::clone_tensor`]: crate::Context::clone_tensor
pub struct Tensor {
    raw: NonNull<sys::dsk_tensor>,
}

// SAFETY: see the type's documentation; retain/release are thread-safe and the DLTensor of a
// dsk_tensor never changes after creation.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        unsafe { sys::dsk_tensor_retain(self.raw.as_ptr()) };
        Tensor { raw: self.raw }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        unsafe { sys::dsk_tensor_release(self.raw.as_ptr()) }
    }
}

unsafe impl AsDLTensor for Tensor {
    fn dltensor(&self) -> *const sys::DLTensor {
        unsafe { sys::dsk_tensor_dltensor(self.raw.as_ptr()) }
    }
}
unsafe impl Writable for Tensor {}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor").field("shape", &self.shape()).field("strides", &self.strides())
            .field("dtype", &self.dtype()).field("device", &self.device()).finish()
    }
}

fn check_ndim(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::invalid(format!("ndim {n} does not fit int32")))
}

impl Tensor {
    /// Takes ownership of one reference.
    ///
    /// # Safety
    /// `raw` must be a live dsk_tensor whose reference the caller gives up.
    pub unsafe fn from_raw(raw: *mut sys::dsk_tensor) -> Tensor {
        Tensor { raw: NonNull::new(raw).expect("dsk returned a NULL tensor with DSK_OK") }
    }

    /// Gives up ownership without releasing; pair with [`Tensor::from_raw`].
    pub fn into_raw(self) -> *mut sys::dsk_tensor {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    pub fn as_ptr(&self) -> *mut sys::dsk_tensor {
        self.raw.as_ptr()
    }

    fn dl(&self) -> &sys::DLTensor {
        // Valid while we hold our reference, i.e. for the borrow of self.
        unsafe { &*self.dltensor() }
    }

    pub fn ndim(&self) -> usize {
        self.dl().ndim as usize
    }

    pub fn shape(&self) -> &[i64] {
        let dl = self.dl();
        if dl.ndim == 0 { &[] } else { unsafe { std::slice::from_raw_parts(dl.shape, dl.ndim as usize) } }
    }

    /// Element strides (always filled in by dsk).
    pub fn strides(&self) -> &[i64] {
        let dl = self.dl();
        if dl.ndim == 0 { &[] } else { unsafe { std::slice::from_raw_parts(dl.strides, dl.ndim as usize) } }
    }

    pub fn dtype(&self) -> DType {
        DType::from_raw(self.dl().dtype)
    }

    pub fn device(&self) -> Device {
        Device::from_raw(self.dl().device)
    }

    /// Address of the first element (dsk folds view offsets into it).
    pub fn data_ptr(&self) -> *mut std::ffi::c_void {
        self.dl().data
    }

    pub fn numel(&self) -> i64 {
        unsafe { sys::dsk_tensor_numel(self.raw.as_ptr()) }
    }

    pub fn nbytes(&self) -> i64 {
        unsafe { sys::dsk_tensor_nbytes(self.raw.as_ptr()) }
    }

    pub fn is_contiguous(&self) -> bool {
        unsafe { sys::dsk_tensor_is_contiguous(self.raw.as_ptr()) != 0 }
    }

    /// Imported from a producer that marked it read-only (dsk does not enforce it for ops).
    pub fn is_read_only(&self) -> bool {
        unsafe { sys::dsk_tensor_is_read_only(self.raw.as_ptr()) != 0 }
    }

    /// A view of the same storage with another shape and element strides (`None` = row-major),
    /// starting `offset` elements after this tensor's first element.
    pub fn view(&self, shape: &[i64], strides: Option<&[i64]>, offset: i64) -> Result<Tensor> {
        if let Some(s) = strides {
            if s.len() != shape.len() {
                return Err(Error::invalid(format!(
                    "view: {} strides for {} dimensions", s.len(), shape.len())));
            }
        }
        let mut raw = std::ptr::null_mut();
        check(unsafe {
            sys::dsk_tensor_view(self.raw.as_ptr(), check_ndim(shape.len())?, shape.as_ptr(),
                                 strides.map_or(std::ptr::null(), |s| s.as_ptr()), offset, &mut raw)
        })?;
        Ok(unsafe { Tensor::from_raw(raw) })
    }

    /// A view with dimensions `a` and `b` swapped.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let n = self.ndim();
        if a >= n || b >= n {
            return Err(Error::invalid(format!("transpose({a}, {b}) of a {n}-d tensor")));
        }
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        shape.swap(a, b);
        strides.swap(a, b);
        self.view(&shape, Some(&strides), 0)
    }

    fn check_host_slice<T: Element>(&self) -> Result<usize> {
        if !self.device().is_host() {
            return Err(Error::invalid(format!("tensor is on {:?}, not in host memory", self.device())));
        }
        if !self.is_contiguous() {
            return Err(Error::invalid("tensor is not contiguous: clone it first"));
        }
        if self.dtype() != T::DTYPE {
            return Err(Error::invalid(format!(
                "tensor has dtype {}, asked for {}", self.dtype(), T::DTYPE)));
        }
        Ok(self.numel() as usize)
    }

    /// The elements of a contiguous host tensor, borrowed.
    ///
    /// # Safety
    /// No op or other handle may write these elements while the slice lives (clones share the
    /// storage, so the borrow checker cannot see such writes).
    pub unsafe fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let n = self.check_host_slice::<T>()?;
        if n == 0 {
            return Ok(&[]);
        }
        Ok(std::slice::from_raw_parts(self.data_ptr() as *const T, n))
    }

    /// The elements of a contiguous host tensor, mutably borrowed.
    ///
    /// # Safety
    /// Nothing else may read or write these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice<T: Element>(&self) -> Result<&mut [T]> {
        let n = self.check_host_slice::<T>()?;
        if n == 0 {
            return Ok(&mut []);
        }
        Ok(std::slice::from_raw_parts_mut(self.data_ptr() as *mut T, n))
    }

    /// A copy of the elements of a contiguous host tensor of dtype `T`. Safe as long as no other
    /// thread writes the tensor at the same time (see the type's documentation).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(unsafe { self.as_slice::<T>() }?.to_vec())
    }

    /// Exports as a versioned DLPack managed tensor holding a reference to the storage.
    pub fn to_dlpack(&self) -> Result<ManagedTensor> {
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_tensor_to_dlpack_versioned(self.raw.as_ptr(), &mut raw) })?;
        Ok(ManagedTensor { raw: NonNull::new(raw).expect("NULL managed tensor with DSK_OK") })
    }

    /// Exports as a legacy (pre-1.0) DLPack managed tensor; refused for read-only tensors.
    pub fn to_dlpack_legacy(&self) -> Result<ManagedTensorLegacy> {
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_tensor_to_dlpack(self.raw.as_ptr(), &mut raw) })?;
        Ok(ManagedTensorLegacy { raw: NonNull::new(raw).expect("NULL managed tensor with DSK_OK") })
    }

    /// Imports a versioned DLPack tensor without copying. On success the tensor owns `managed`;
    /// on failure nothing was taken and the caller still owns (and must delete) it.
    ///
    /// # Safety
    /// `managed` must be a valid DLManagedTensorVersioned the caller owns, whose memory stays
    /// valid until its deleter is called.
    pub unsafe fn from_dlpack(managed: *mut sys::DLManagedTensorVersioned) -> Result<Tensor> {
        let mut raw = std::ptr::null_mut();
        check(sys::dsk_tensor_from_dlpack_versioned(managed, &mut raw))?;
        Ok(Tensor::from_raw(raw))
    }

    /// Legacy counterpart of [`Tensor::from_dlpack`].
    ///
    /// # Safety
    /// As for [`Tensor::from_dlpack`].
    pub unsafe fn from_dlpack_legacy(managed: *mut sys::DLManagedTensor) -> Result<Tensor> {
        let mut raw = std::ptr::null_mut();
        check(sys::dsk_tensor_from_dlpack(managed, &mut raw))?;
        Ok(Tensor::from_raw(raw))
    }

    /// Imports an owned managed tensor; when dsk refuses it, it is deleted here.
    pub fn from_managed(managed: ManagedTensor) -> Result<Tensor> {
        let raw = managed.raw.as_ptr();
        // SAFETY: ManagedTensor owns a valid managed tensor. On success ownership moves to the new
        // tensor, so `managed` must not run its deleter; on failure it still must.
        match unsafe { Tensor::from_dlpack(raw) } {
            Ok(t) => {
                std::mem::forget(managed);
                Ok(t)
            }
            Err(e) => Err(e),
        }
    }
}

/// An owned `DLManagedTensorVersioned` (from [`Tensor::to_dlpack`]); dropping it calls the
/// deleter once. Hand it to another framework with [`into_raw`](Self::into_raw).
pub struct ManagedTensor {
    raw: NonNull<sys::DLManagedTensorVersioned>,
}

// SAFETY: DLPack lets the deleter run on any thread, and dsk's exports hold only a reference.
unsafe impl Send for ManagedTensor {}

impl ManagedTensor {
    /// Takes ownership of a managed tensor (its deleter will run on drop).
    ///
    /// # Safety
    /// `raw` must be a valid managed tensor owned by the caller.
    pub unsafe fn from_raw(raw: *mut sys::DLManagedTensorVersioned) -> Option<ManagedTensor> {
        NonNull::new(raw).map(|raw| ManagedTensor { raw })
    }

    pub fn into_raw(self) -> *mut sys::DLManagedTensorVersioned {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    pub fn as_ptr(&self) -> *mut sys::DLManagedTensorVersioned {
        self.raw.as_ptr()
    }

    pub fn version(&self) -> (u32, u32) {
        let v = unsafe { self.raw.as_ref() }.version;
        (v.major, v.minor)
    }

    pub fn flags(&self) -> u64 {
        unsafe { self.raw.as_ref() }.flags
    }

    pub fn dl_tensor(&self) -> &sys::DLTensor {
        &unsafe { self.raw.as_ref() }.dl_tensor
    }
}

unsafe impl AsDLTensor for ManagedTensor {
    fn dltensor(&self) -> *const sys::DLTensor {
        self.dl_tensor()
    }
}

impl Drop for ManagedTensor {
    fn drop(&mut self) {
        unsafe {
            if let Some(deleter) = self.raw.as_ref().deleter {
                deleter(self.raw.as_ptr());
            }
        }
    }
}

/// An owned legacy `DLManagedTensor`; dropping it calls the deleter once.
pub struct ManagedTensorLegacy {
    raw: NonNull<sys::DLManagedTensor>,
}

unsafe impl Send for ManagedTensorLegacy {}

impl ManagedTensorLegacy {
    pub fn into_raw(self) -> *mut sys::DLManagedTensor {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    pub fn dl_tensor(&self) -> &sys::DLTensor {
        &unsafe { self.raw.as_ref() }.dl_tensor
    }

    /// Imports it back into a dsk tensor; deleted here when dsk refuses it.
    pub fn into_tensor(self) -> Result<Tensor> {
        let raw = self.raw.as_ptr();
        match unsafe { Tensor::from_dlpack_legacy(raw) } {
            Ok(t) => {
                std::mem::forget(self);
                Ok(t)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for ManagedTensorLegacy {
    fn drop(&mut self) {
        unsafe {
            if let Some(deleter) = self.raw.as_ref().deleter {
                deleter(self.raw.as_ptr());
            }
        }
    }
}

/// Shape and strides on the heap, so that the DLTensor pointing at them survives moves.
struct Layout {
    shape: Box<[i64]>,
    strides: Box<[i64]>,
}

fn host_layout(len: usize, shape: &[i64], strides: Option<&[i64]>) -> Result<Layout> {
    if shape.len() > sys::DSK_MAX_NDIM as usize {
        return Err(Error::invalid(format!("ndim {} exceeds {}", shape.len(), sys::DSK_MAX_NDIM)));
    }
    if shape.iter().any(|&d| d < 0) {
        return Err(Error::invalid(format!("negative size in shape {shape:?}")));
    }
    let strides: Vec<i64> = match strides {
        Some(s) if s.len() != shape.len() => {
            return Err(Error::invalid(format!("{} strides for {} dimensions", s.len(), shape.len())))
        }
        Some(s) => s.to_vec(),
        None => {
            let mut s = vec![1i64; shape.len()];
            for i in (0..shape.len().saturating_sub(1)).rev() {
                s[i] = s[i + 1].saturating_mul(shape[i + 1]);
            }
            s
        }
    };
    // The slice must cover the largest addressed element; dsk cannot check caller memory.
    let empty = shape.iter().any(|&d| d == 0);
    if !empty {
        let mut last: i128 = 0;
        for (&d, &s) in shape.iter().zip(&strides) {
            if s < 0 {
                return Err(Error::invalid(format!("negative stride in {strides:?}")));
            }
            last += (d as i128 - 1) * s as i128;
        }
        if last >= len as i128 {
            return Err(Error::invalid(format!(
                "shape {shape:?} with strides {strides:?} needs {} elements, slice has {len}", last + 1)));
        }
    }
    Ok(Layout { shape: shape.into(), strides: strides.into() })
}

fn host_dltensor(data: *mut std::ffi::c_void, dtype: DType, layout: &mut Layout) -> sys::DLTensor {
    sys::DLTensor {
        data,
        device: Device::CPU.raw(),
        ndim: layout.shape.len() as i32,
        dtype: dtype.raw(),
        shape: layout.shape.as_mut_ptr(),
        strides: layout.strides.as_mut_ptr(),
        byte_offset: 0,
    }
}

/// A read-only DLTensor borrowing caller memory (a Rust slice), for op inputs. It cannot outlive
/// the slice, and ops cannot take it as an output.
pub struct TensorRef<'a> {
    dl: sys::DLTensor,
    _layout: Layout,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> TensorRef<'a> {
    /// Row-major `shape` over `data` (whose length must cover it).
    pub fn new<T: Element>(data: &'a [T], shape: &[i64]) -> Result<Self> {
        Self::with_strides(data, shape, None)
    }

    /// Arbitrary element strides (non-negative, inside `data`).
    pub fn with_strides<T: Element>(data: &'a [T], shape: &[i64], strides: Option<&[i64]>) -> Result<Self> {
        let mut layout = host_layout(data.len(), shape, strides)?;
        let dl = host_dltensor(data.as_ptr() as *mut _, T::DTYPE, &mut layout);
        Ok(TensorRef { dl, _layout: layout, _borrow: PhantomData })
    }

    /// Describes arbitrary memory, e.g. a CUDA allocation made elsewhere.
    ///
    /// # Safety
    /// `data`, `device`, `dtype`, `shape` and `strides` must describe memory that is valid for
    /// reads for `'a`.
    pub unsafe fn from_raw_parts(data: *const std::ffi::c_void, device: Device, dtype: DType,
                                 shape: &[i64], strides: Option<&[i64]>) -> Result<Self> {
        let mut layout = host_layout(usize::MAX, shape, strides)?;
        let mut dl = host_dltensor(data as *mut _, dtype, &mut layout);
        dl.device = device.raw();
        Ok(TensorRef { dl, _layout: layout, _borrow: PhantomData })
    }
}

unsafe impl AsDLTensor for TensorRef<'_> {
    fn dltensor(&self) -> *const sys::DLTensor {
        &self.dl
    }
}

/// A writable DLTensor over a uniquely borrowed Rust slice, for op outputs.
pub struct TensorMut<'a> {
    dl: sys::DLTensor,
    _layout: Layout,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> TensorMut<'a> {
    pub fn new<T: Element>(data: &'a mut [T], shape: &[i64]) -> Result<Self> {
        Self::with_strides(data, shape, None)
    }

    /// Strides must not make two indices address one element (dsk checks outputs for that).
    pub fn with_strides<T: Element>(data: &'a mut [T], shape: &[i64], strides: Option<&[i64]>) -> Result<Self> {
        let mut layout = host_layout(data.len(), shape, strides)?;
        let dl = host_dltensor(data.as_mut_ptr().cast(), T::DTYPE, &mut layout);
        Ok(TensorMut { dl, _layout: layout, _borrow: PhantomData })
    }
}

unsafe impl AsDLTensor for TensorMut<'_> {
    fn dltensor(&self) -> *const sys::DLTensor {
        &self.dl
    }
}
// SAFETY: built from a unique borrow, so no one else sees the elements while it lives.
unsafe impl Writable for TensorMut<'_> {}

/// Checks that `tensor` is one dsk accepts; `name` appears in the message.
pub fn validate(tensor: &impl AsDLTensor, name: &str) -> Result<()> {
    let name = CString::new(name).map_err(|_| Error::invalid("validate: name contains NUL"))?;
    check(unsafe { sys::dsk_dltensor_validate(tensor.dltensor(), name.as_ptr()) })
}
