//! Safetensors checkpoints (`dsk_safetensors.h`): [`SafeTensors`] maps one `.safetensors` file, a
//! sharded index (`model.safetensors.index.json`) or a directory read-only and validates every
//! header field when it opens; tensors are then borrowed without copying.
//!
//! ```
//! use dsk::{DType, SafeTensors};
//!
//! // A file with one f32 tensor "w" of shape [2], written by hand: length, header (padded with
//! // spaces so that the data starts 8-byte aligned, as the reference writer does), data.
//! let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  "#;
//! let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
//! bytes.extend_from_slice(header);
//! bytes.extend(1.5f32.to_le_bytes().iter().chain(&(-2.0f32).to_le_bytes()));
//! let path = std::env::temp_dir().join(format!("dsk_doc_{}.safetensors", std::process::id()));
//! std::fs::write(&path, &bytes).unwrap();
//!
//! let st = SafeTensors::open(&path)?;
//! assert_eq!(st.names()?, ["w"]);
//! let w = st.view("w")?;                // borrows st; an op input as it is
//! assert_eq!((w.shape(), w.dtype()), (&[2i64][..], DType::F32));
//! assert_eq!(w.to_vec::<f32>()?, [1.5, -2.0]);
//! let owned = st.tensor("w")?;          // a read-only dsk Tensor that outlives st
//! drop(st);
//! assert_eq!(owned.to_vec::<f32>()?, [1.5, -2.0]);
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), dsk::Error>(())
//! ```

use crate::dtype::{DType, Element};
use crate::error::{check, Error, Result};
use crate::tensor::{AsDLTensor, ManagedTensor, Tensor};
use dsk_sys as sys;
use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;

/// An open checkpoint (`dsk_safetensors`), closed on drop. Tensor names are sorted byte by byte.
///
/// The handle is immutable once opened (`Send + Sync`). Views, names and infos borrow it; a
/// [`Tensor`] or [`ManagedTensor`] made from it keeps its file mapped by itself.
pub struct SafeTensors {
    raw: NonNull<sys::dsk_safetensors>,
}

// SAFETY: dsk_safetensors.h: every function but close may run on any number of threads at once.
unsafe impl Send for SafeTensors {}
unsafe impl Sync for SafeTensors {}

impl Drop for SafeTensors {
    fn drop(&mut self) {
        unsafe { sys::dsk_safetensors_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensors").field("len", &self.len()).finish()
    }
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(format!("{what} {s:?} contains a NUL byte")))
}

/// A string the handle owns, borrowed for the handle's lifetime.
fn handle_str<'a>(p: *const c_char) -> Result<&'a str> {
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::invalid("a name is not UTF-8"))
}

impl SafeTensors {
    /// Opens a `.safetensors` file, a sharded index (a `.json` file) or a directory, as
    /// `dsk_safetensors_open` describes. Malformed content is [`ErrorKind::InvalidArgument`],
    /// an unreadable path [`ErrorKind::Io`].
    ///
    /// [`ErrorKind::InvalidArgument`]: crate::ErrorKind::InvalidArgument
    /// [`ErrorKind::Io`]: crate::ErrorKind::Io
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors> {
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(path.as_ref().as_os_str().as_bytes())
            .map_err(|_| Error::invalid("the path contains a NUL byte"))?;
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_safetensors_open(path.as_ptr(), &mut raw) })?;
        Ok(SafeTensors { raw: NonNull::new(raw).expect("dsk_safetensors_open returned NULL with DSK_OK") })
    }

    pub fn as_ptr(&self) -> *const sys::dsk_safetensors {
        self.raw.as_ptr()
    }

    pub fn len(&self) -> usize {
        let mut n = 0i64;
        // Cannot fail for a live handle and a valid pointer.
        unsafe { sys::dsk_safetensors_count(self.raw.as_ptr(), &mut n) };
        n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name number `index` in sorted order.
    pub fn name(&self, index: usize) -> Result<&str> {
        let mut p = std::ptr::null();
        check(unsafe { sys::dsk_safetensors_name(self.raw.as_ptr(), index as i64, &mut p) })?;
        handle_str(p)
    }

    pub fn names(&self) -> Result<Vec<&str>> {
        (0..self.len()).map(|i| self.name(i)).collect()
    }

    /// The index of `name`, `None` when the checkpoint has no such tensor.
    pub fn find(&self, name: &str) -> Result<Option<usize>> {
        let c = c_string("tensor name", name)?;
        let mut index = -1i64;
        match unsafe { sys::dsk_safetensors_find(self.raw.as_ptr(), c.as_ptr(), &mut index) } {
            sys::DSK_ERR_NOT_FOUND => Ok(None),
            s => check(s).map(|()| Some(index as usize)),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        matches!(self.find(name), Ok(Some(_)))
    }

    /// A borrowed, read-only CPU view of tensor `name` (`dsk_safetensors_tensor`).
    pub fn view(&self, name: &str) -> Result<SafeTensorView<'_>> {
        let c = c_string("tensor name", name)?;
        let mut dl: sys::DLTensor = unsafe { std::mem::zeroed() };
        check(unsafe { sys::dsk_safetensors_tensor(self.raw.as_ptr(), c.as_ptr(), &mut dl) })?;
        Ok(SafeTensorView { dl, _st: PhantomData })
    }

    /// Where and how tensor `name` is stored; works for every dtype (F4 and F6 included).
    pub fn info(&self, name: &str) -> Result<SafeTensorInfo<'_>> {
        let c = c_string("tensor name", name)?;
        let mut raw: sys::dsk_safetensors_info = unsafe { std::mem::zeroed() };
        check(unsafe { sys::dsk_safetensors_info_init(&mut raw) })?;
        check(unsafe { sys::dsk_safetensors_tensor_info(self.raw.as_ptr(), c.as_ptr(), &mut raw) })?;
        let shape = if raw.ndim == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(raw.shape, raw.ndim as usize) }
        };
        Ok(SafeTensorInfo {
            name: handle_str(raw.name)?,
            dtype: handle_str(raw.dtype)?,
            shape,
            file: handle_str(raw.file)?,
            file_offset: raw.file_offset,
            nbytes: raw.nbytes,
            dsk_dtype: if raw.dtype_id == 0 { None } else { Some(DType::from_id(raw.dtype_id)?) },
        })
    }

    /// An owning, read-only DLPack export of tensor `name` that keeps its file mapped
    /// (`dsk_safetensors_to_dlpack`), for any consumer of DLPack.
    pub fn to_dlpack(&self, name: &str) -> Result<ManagedTensor> {
        let c = c_string("tensor name", name)?;
        let mut raw = std::ptr::null_mut();
        check(unsafe { sys::dsk_safetensors_to_dlpack(self.raw.as_ptr(), c.as_ptr(), &mut raw) })?;
        Ok(unsafe { ManagedTensor::from_raw(raw) }.expect("NULL export with DSK_OK"))
    }

    /// Tensor `name` as a read-only dsk [`Tensor`] sharing the mapping (no copy), for dsk's
    /// dtypes and up to 8 dimensions. It outlives `self`.
    ///
    /// [`Tensor`]'s slices assume aligned elements, and the format does not align tensors: a
    /// tensor whose data is misaligned for its dtype is refused ([`ErrorKind::InvalidArgument`]);
    /// copy it from [`view`](Self::view) instead ([`SafeTensorView::to_vec`],
    /// [`Context::clone_tensor`]).
    ///
    /// [`ErrorKind::InvalidArgument`]: crate::ErrorKind::InvalidArgument
    /// [`Context::clone_tensor`]: crate::Context::clone_tensor
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let managed = self.to_dlpack(name)?;
        let dl = managed.dl_tensor();
        let size = (dl.dtype.bits as usize / 8).max(1);
        if dl.data as usize % size != 0 {
            return Err(Error::invalid(format!(
                "tensor '{name}' is not aligned to its {size}-byte elements in the file; copy it from view()")));
        }
        Tensor::from_managed(managed)
    }

    /// The `__metadata__` value of `key` (the first file holding it, for several files).
    pub fn metadata(&self, key: &str) -> Result<Option<&str>> {
        let c = c_string("metadata key", key)?;
        let mut p = std::ptr::null();
        match unsafe { sys::dsk_safetensors_metadata(self.raw.as_ptr(), c.as_ptr(), &mut p) } {
            sys::DSK_ERR_NOT_FOUND => Ok(None),
            s => check(s).and_then(|()| handle_str(p).map(Some)),
        }
    }

    /// Every metadata key, sorted.
    pub fn metadata_keys(&self) -> Result<Vec<&str>> {
        let mut n = 0i64;
        check(unsafe { sys::dsk_safetensors_metadata_count(self.raw.as_ptr(), &mut n) })?;
        (0..n)
            .map(|i| {
                let mut p = std::ptr::null();
                check(unsafe { sys::dsk_safetensors_metadata_key(self.raw.as_ptr(), i, &mut p) })?;
                handle_str(p)
            })
            .collect()
    }
}

/// What [`SafeTensors::info`] reports (`dsk_safetensors_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeTensorInfo<'a> {
    pub name: &'a str,
    /// The safetensors dtype string: "BF16", "F8_E4M3", ...
    pub dtype: &'a str,
    pub shape: &'a [i64],
    /// The file holding the tensor (a shard, for a sharded checkpoint).
    pub file: &'a str,
    /// Offset of the tensor's first byte in `file`.
    pub file_offset: u64,
    pub nbytes: u64,
    /// The dsk type, `None` for types dsk lacks (F64, I16, ...).
    pub dsk_dtype: Option<DType>,
}

/// A borrowed, read-only view into a checkpoint's mapping: an op input ([`AsDLTensor`], never
/// [`Writable`](crate::Writable)). The data may be misaligned for its dtype (the format does not
/// align tensors): [`to_vec`](Self::to_vec) copies at any alignment.
pub struct SafeTensorView<'a> {
    dl: sys::DLTensor,
    _st: PhantomData<&'a SafeTensors>,
}

// SAFETY: the memory is a read-only mapping that lives as long as the borrowed SafeTensors.
unsafe impl Send for SafeTensorView<'_> {}
unsafe impl Sync for SafeTensorView<'_> {}

unsafe impl AsDLTensor for SafeTensorView<'_> {
    fn dltensor(&self) -> *const sys::DLTensor {
        &self.dl
    }
}

impl std::fmt::Debug for SafeTensorView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensorView").field("shape", &self.shape()).field("dtype", &self.dtype()).finish()
    }
}

impl<'a> SafeTensorView<'a> {
    pub fn shape(&self) -> &'a [i64] {
        if self.dl.ndim == 0 {
            &[]
        } else {
            // Owned by the checkpoint, which outlives 'a.
            unsafe { std::slice::from_raw_parts(self.dl.shape, self.dl.ndim as usize) }
        }
    }

    pub fn dtype(&self) -> DType {
        DType::from_raw(self.dl.dtype)
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product::<i64>() as usize
    }

    /// The tensor's bytes, in the file's (little-endian, row-major) layout.
    pub fn bytes(&self) -> &'a [u8] {
        let n = self.numel() * (self.dl.dtype.bits as usize / 8);
        if n == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.dl.data as *const u8, n) }
    }

    /// A copy of the elements as `T`, which must be the view's dtype; any alignment is fine.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(Error::invalid(format!("view has dtype {}, asked for {}", self.dtype(), T::DTYPE)));
        }
        let src = self.bytes().as_ptr() as *const T;
        // read_unaligned: safetensors does not align tensor data.
        Ok((0..self.numel()).map(|i| unsafe { src.add(i).read_unaligned() }).collect())
    }
}
