use crate::error::{check, Error, Result};
use dsk_sys as sys;
use std::ffi::CStr;

/// An element type: DLPack's DLDataType (dsk has no second type system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

impl DType {
    pub const F32: DType = DType::new(sys::kDLFloat, 32);
    pub const F16: DType = DType::new(sys::kDLFloat, 16);
    pub const BF16: DType = DType::new(sys::kDLBfloat, 16);
    pub const FP8_E4M3FN: DType = DType::new(sys::kDLFloat8_e4m3fn, 8);
    pub const FP8_E5M2: DType = DType::new(sys::kDLFloat8_e5m2, 8);
    pub const I32: DType = DType::new(sys::kDLInt, 32);
    pub const I64: DType = DType::new(sys::kDLInt, 64);
    pub const U8: DType = DType::new(sys::kDLUInt, 8);
    pub const BOOL: DType = DType::new(sys::kDLBool, 8);

    pub const fn new(code: u8, bits: u8) -> DType {
        DType { code, bits, lanes: 1 }
    }

    /// The type of a `DSK_DTYPE_*` id.
    pub fn from_id(id: i32) -> Result<DType> {
        let mut raw = DType::F32.raw();
        check(unsafe { sys::dsk_dtype_from_id(id, &mut raw) })?;
        Ok(DType::from_raw(raw))
    }

    /// The `DSK_DTYPE_*` id; fails for types dsk does not support.
    pub fn id(self) -> Result<i32> {
        let mut id = 0;
        check(unsafe { sys::dsk_dtype_to_id(self.raw(), &mut id) })?;
        Ok(id)
    }

    /// Bytes per element; 0 for an unsupported type.
    pub fn size(self) -> usize {
        unsafe { sys::dsk_dtype_size(self.raw()) }
    }

    /// "f32", "bf16", "fp8_e4m3fn", ... or "unsupported".
    pub fn name(self) -> &'static str {
        // Static text inside libdsk.
        unsafe { CStr::from_ptr(sys::dsk_dtype_name(self.raw())) }.to_str().unwrap_or("unsupported")
    }

    pub fn is_supported(self) -> bool {
        self.size() != 0
    }

    /// The nine types dsk supports, in id order.
    pub fn all() -> Vec<DType> {
        (1..sys::DSK_DTYPE_COUNT).filter_map(|id| DType::from_id(id).ok()).collect()
    }

    pub const fn raw(self) -> sys::DLDataType {
        sys::DLDataType { code: self.code, bits: self.bits, lanes: self.lanes }
    }

    pub const fn from_raw(raw: sys::DLDataType) -> DType {
        DType { code: raw.code, bits: raw.bits, lanes: raw.lanes }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type whose values are the bytes of one dsk element type.
///
/// # Safety
/// `Self` must have the size of `DTYPE` and accept every bit pattern of it (which is why `bool`
/// is not an Element: use `u8` views of bool tensors).
pub unsafe trait Element: Copy + 'static {
    const DTYPE: DType;
}

// Narrow floats have no Rust type; these carry their bits so that bytes can move in and out of
// tensors, with dsk doing the conversion (convert_host, clone, copy).
/// IEEE half, as bits.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct F16(pub u16);
/// bfloat16, as bits.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bf16(pub u16);
/// fp8 e4m3fn, as bits.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fp8E4M3(pub u8);
/// fp8 e5m2, as bits.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fp8E5M2(pub u8);

unsafe impl Element for f32 { const DTYPE: DType = DType::F32; }
unsafe impl Element for i32 { const DTYPE: DType = DType::I32; }
unsafe impl Element for i64 { const DTYPE: DType = DType::I64; }
unsafe impl Element for u8 { const DTYPE: DType = DType::U8; }
unsafe impl Element for F16 { const DTYPE: DType = DType::F16; }
unsafe impl Element for Bf16 { const DTYPE: DType = DType::BF16; }
unsafe impl Element for Fp8E4M3 { const DTYPE: DType = DType::FP8_E4M3FN; }
unsafe impl Element for Fp8E5M2 { const DTYPE: DType = DType::FP8_E5M2; }

/// Converts `src` into `dst` on the host with dsk's rules (round to nearest even, saturation;
/// see dsk_dtype.h). The slices must have equal lengths.
pub fn convert_host<S: Element, D: Element>(src: &[S], dst: &mut [D]) -> Result<()> {
    if src.len() != dst.len() {
        return Err(Error::invalid(format!(
            "convert_host: src has {} elements, dst {}", src.len(), dst.len())));
    }
    // Distinct borrows, so src and dst cannot overlap, which dsk requires.
    check(unsafe {
        sys::dsk_convert_host(S::DTYPE.raw(), src.as_ptr().cast(), D::DTYPE.raw(),
                              dst.as_mut_ptr().cast(), src.len())
    })
}
