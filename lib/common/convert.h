// convert.h - element conversions between dsk's nine dtypes, shared by the CPU and CUDA backends.
//
// These functions define the conversion rules of include/dsk/dsk_dtype.h; every backend must call
// them (never a compiler cast or a CUDA intrinsic) so a copy gives the same bits everywhere. All
// rounding is done with integer operations, so no compiler flag can change a result.
//
// Choices the public header leaves open, fixed here:
//  - NaN -> f16/bf16 keeps the sign and the top payload bits and sets the quiet bit (a bare
//    truncation could leave an all-zero mantissa, i.e. inf). NaN -> fp8 gives the sign and
//    0x7F (e4m3fn) or 0x7E (e5m2). Narrow NaN -> f32 keeps sign and payload.
//  - Integer -> narrow float is rounded once (see int64_to_f32_round_odd), not twice through f32.
//  - A double NaN given to store_from_f64 becomes the canonical quiet NaN of its sign, because
//    host and device casts of a NaN double to float disagree on the payload.
// The only float operations are the (float) casts in store_from_f64 and store_from_i64 and the
// f32 -> f64 widening before integer truncation; they are exact or correctly rounded on both
// sides as long as device code is built with nvcc's default -ftz=false.
#ifndef DSK_LIB_COMMON_CONVERT_H_
#define DSK_LIB_COMMON_CONVERT_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/hd.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace internal {

// Rounds a finite, non-negative f32 (given as its bits) to nearest even in a binary format with
// `mant_bits` stored mantissa bits and exponent bias `bias` (smallest normal exponent 1 - bias),
// subnormals included. Returns the magnitude code; a value past the largest finite code carries
// into the exponent field and is returned as is, so callers decide between inf and saturation.
DSK_HD uint32_t round_to_narrow(uint32_t abs_bits, int32_t mant_bits, int32_t bias) {
  const uint32_t exp_field = abs_bits >> 23;
  // An f32 subnormal has the exponent of the smallest normal and no implicit bit.
  const int32_t e = exp_field == 0 ? -126 : static_cast<int32_t>(exp_field) - 127;
  const uint32_t mant = (abs_bits & 0x7FFFFFu) | (exp_field == 0 ? 0u : 0x800000u);
  // Below the target's normal range the quantum stays that of the smallest normal.
  const int32_t emin = 1 - bias;
  const int32_t te = e < emin ? emin : e;
  const int32_t shift = 23 - mant_bits + (te - e);
  // mant < 2^24, so a larger shift leaves less than half a quantum: rounds to zero.
  if (shift > 24) return 0;
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u) != 0)) ++q;
  // q holds the implicit bit for normals, so adding it to (biased exponent - 1) lands in the right
  // exponent field, and a rounding carry (q == 2^(mant_bits+1)) moves up one binade by itself.
  return (static_cast<uint32_t>(te + bias - 1) << mant_bits) + q;
}

// f32 bits of a finite magnitude code of a format whose normal and subnormal values are all f32
// normals (f16, fp8; not bf16). Exact.
DSK_HD uint32_t widen_magnitude(uint32_t mag, int32_t mant_bits, int32_t bias) {
  const uint32_t mant_mask = (1u << mant_bits) - 1u;
  uint32_t mant = mag & mant_mask;
  int32_t exp_field = static_cast<int32_t>(mag >> mant_bits);
  if (exp_field == 0) {
    if (mant == 0) return 0;
    // Normalize the subnormal so its leading one becomes the implicit bit.
    exp_field = 1;
    while ((mant & (1u << mant_bits)) == 0) {
      mant <<= 1;
      --exp_field;
    }
    mant &= mant_mask;
  }
  return (static_cast<uint32_t>(exp_field - bias + 127) << 23) | (mant << (23 - mant_bits));
}

}  // namespace internal

// ---- f32 <-> narrow floats (round to nearest even; decoding is exact) ----

DSK_HD uint16_t f32_to_f16(float x) {
  const uint32_t bits = f32_bits(x);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) {
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs_bits >> 13) & 0x3FFu));
  }
  if (abs_bits == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  uint32_t mag = internal::round_to_narrow(abs_bits, 10, 15);
  if (mag > 0x7C00u) mag = 0x7C00u;  // overflow is inf
  return static_cast<uint16_t>(sign | mag);
}

DSK_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t mag = h & 0x7FFFu;
  if (mag >= 0x7C00u) return f32_from_bits(sign | 0x7F800000u | ((mag & 0x3FFu) << 13));
  return f32_from_bits(sign | internal::widen_magnitude(mag, 10, 15));
}

DSK_HD uint16_t f32_to_bf16(float x) {
  const uint32_t bits = f32_bits(x);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  if (abs_bits == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7F80u);
  uint32_t mag = internal::round_to_narrow(abs_bits, 7, 127);
  if (mag > 0x7F80u) mag = 0x7F80u;
  return static_cast<uint16_t>(sign | mag);
}

// bf16 is the top half of an f32, subnormals and specials included.
DSK_HD float bf16_to_f32(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

DSK_HD uint8_t f32_to_e4m3fn(float x) {
  const uint32_t bits = f32_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  // No inf in e4m3fn: inf saturates like any other large value. 0x7F is NaN, so 0x7E is the top.
  uint32_t mag = abs_bits == 0x7F800000u ? 0x7Eu : internal::round_to_narrow(abs_bits, 3, 7);
  if (mag > 0x7Eu) mag = 0x7Eu;
  return static_cast<uint8_t>(sign | mag);
}

DSK_HD float e4m3fn_to_f32(uint8_t v) {
  const uint32_t sign = (static_cast<uint32_t>(v) & 0x80u) << 24;
  const uint32_t mag = v & 0x7Fu;
  if (mag == 0x7Fu) return f32_from_bits(sign | 0x7FC00000u);
  return f32_from_bits(sign | internal::widen_magnitude(mag, 3, 7));
}

DSK_HD uint8_t f32_to_e5m2(float x) {
  const uint32_t bits = f32_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Eu);
  if (abs_bits == 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Cu);
  // Finite inputs saturate to 57344 (0x7B) instead of overflowing to inf.
  uint32_t mag = internal::round_to_narrow(abs_bits, 2, 15);
  if (mag > 0x7Bu) mag = 0x7Bu;
  return static_cast<uint8_t>(sign | mag);
}

DSK_HD float e5m2_to_f32(uint8_t v) {
  const uint32_t sign = (static_cast<uint32_t>(v) & 0x80u) << 24;
  const uint32_t mag = v & 0x7Fu;
  if (mag >= 0x7Cu) return f32_from_bits(sign | 0x7F800000u | ((mag & 0x3u) << 21));
  return f32_from_bits(sign | internal::widen_magnitude(mag, 2, 15));
}

// ---- dtype ids ----

// DSK_DTYPE_* id of a DLDataType, 0 when dsk does not support it (lanes must be 1).
DSK_HD int32_t dtype_id_of(DLDataType t) {
  if (t.lanes != 1) return 0;
  switch (t.code) {
    case kDLFloat:
      return t.bits == 32 ? DSK_DTYPE_F32 : t.bits == 16 ? DSK_DTYPE_F16 : 0;
    case kDLBfloat:
      return t.bits == 16 ? DSK_DTYPE_BF16 : 0;
    case kDLFloat8_e4m3fn:
      return t.bits == 8 ? DSK_DTYPE_FP8_E4M3FN : 0;
    case kDLFloat8_e5m2:
      return t.bits == 8 ? DSK_DTYPE_FP8_E5M2 : 0;
    case kDLInt:
      return t.bits == 32 ? DSK_DTYPE_INT32 : t.bits == 64 ? DSK_DTYPE_INT64 : 0;
    case kDLUInt:
      return t.bits == 8 ? DSK_DTYPE_UINT8 : 0;
    case kDLBool:
      return t.bits == 8 ? DSK_DTYPE_BOOL : 0;
    default:
      return 0;
  }
}

// Bytes per element of a DSK_DTYPE_* id, 0 for an unknown id.
DSK_HD size_t dtype_id_size(int32_t id) {
  switch (id) {
    case DSK_DTYPE_F32:
    case DSK_DTYPE_INT32:
      return 4;
    case DSK_DTYPE_F16:
    case DSK_DTYPE_BF16:
      return 2;
    case DSK_DTYPE_FP8_E4M3FN:
    case DSK_DTYPE_FP8_E5M2:
    case DSK_DTYPE_UINT8:
    case DSK_DTYPE_BOOL:
      return 1;
    case DSK_DTYPE_INT64:
      return 8;
    default:
      return 0;
  }
}

// True for f32, f16, bf16 and both fp8 ids.
DSK_HD bool dtype_id_is_float(int32_t id) {
  return id >= DSK_DTYPE_F32 && id <= DSK_DTYPE_FP8_E5M2;
}

namespace internal {

// (float)v rounded to odd: any discarded nonzero bit sets the last kept bit. Rounding that again
// to a format with at most 22 mantissa bits equals one correct rounding of v, which a plain
// round-to-nearest (float)v followed by a second rounding does not (2^24 + 2^16 + 1 -> bf16).
DSK_HD float int64_to_f32_round_odd(int64_t v) {
  const uint64_t mag = v < 0 ? 0u - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  if (mag < (1u << 24)) return static_cast<float>(v);  // exact
  uint64_t t = mag;
  uint32_t shift = 0;
  uint64_t sticky = 0;
  while (t >= (1u << 24)) {
    sticky |= t & 1u;
    t >>= 1;
    ++shift;
  }
  t |= sticky;
  // t now has its leading one at bit 23: it is the significand, and the exponent is 23 + shift.
  const uint32_t sign = v < 0 ? 0x80000000u : 0u;
  return f32_from_bits(sign | ((shift + 23u + 127u) << 23) |
                       (static_cast<uint32_t>(t) & 0x7FFFFFu));
}

// Writes an integer-typed value (INT32, INT64, UINT8, BOOL) from a double: truncates toward zero,
// saturates, NaN gives 0; bool is v != 0 (NaN included).
DSK_HD void store_int_from_f64(int32_t dst_id, double v, void* dst) {
  switch (dst_id) {
    case DSK_DTYPE_INT32: {
      int32_t r = 0;
      if (v >= 2147483648.0) {
        r = INT32_MAX;
      } else if (v <= -2147483648.0) {
        r = INT32_MIN;
      } else if (v == v) {
        r = static_cast<int32_t>(v);
      }
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_INT64: {
      int64_t r = 0;
      if (v >= 9223372036854775808.0) {
        r = INT64_MAX;
      } else if (v <= -9223372036854775808.0) {
        r = INT64_MIN;
      } else if (v == v) {
        r = static_cast<int64_t>(v);
      }
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_UINT8: {
      // NaN fails both comparisons and (-1, 0) truncates to 0 anyway, so v > 0 guards the cast.
      uint8_t r = 0;
      if (v >= 255.0) {
        r = 255;
      } else if (v > 0.0) {
        r = static_cast<uint8_t>(static_cast<int32_t>(v));
      }
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_BOOL: {
      const uint8_t r = v != 0.0 ? 1 : 0;
      memcpy(dst, &r, sizeof(r));
      break;
    }
    default:
      break;
  }
}

DSK_HD void copy_bytes(void* dst, const void* src, size_t n) {
  // Fixed sizes let nvcc turn memcpy into single loads and stores.
  switch (n) {
    case 1:
      memcpy(dst, src, 1);
      break;
    case 2:
      memcpy(dst, src, 2);
      break;
    case 4:
      memcpy(dst, src, 4);
      break;
    case 8:
      memcpy(dst, src, 8);
      break;
    default:
      break;
  }
}

}  // namespace internal

// ---- whole elements ----
// dst/src point to one element of the named id (no alignment needed). Unknown ids leave dst as is.

// Writes f32 value v as dst_id: float ids round (as f32_to_*), integer ids truncate and saturate
// (NaN -> 0), bool is v != 0. Identical to convert_element from a DSK_DTYPE_F32 source.
DSK_HD void store_from_f32(int32_t dst_id, float v, void* dst) {
  switch (dst_id) {
    case DSK_DTYPE_F32:
      memcpy(dst, &v, sizeof(v));
      break;
    case DSK_DTYPE_F16: {
      const uint16_t r = f32_to_f16(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_BF16: {
      const uint16_t r = f32_to_bf16(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_FP8_E4M3FN: {
      const uint8_t r = f32_to_e4m3fn(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_FP8_E5M2: {
      const uint8_t r = f32_to_e5m2(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_BOOL: {
      // Tested on the bits so a device flush-to-zero mode cannot turn a subnormal into false.
      const uint8_t r = (f32_bits(v) & 0x7FFFFFFFu) != 0 ? 1 : 0;
      memcpy(dst, &r, sizeof(r));
      break;
    }
    default:
      // f32 -> f64 is exact, so truncating the double truncates the float.
      internal::store_int_from_f64(dst_id, static_cast<double>(v), dst);
      break;
  }
}

// Writes integer value v as dst_id: integer ids saturate, bool is v != 0, f32 rounds to nearest
// even and narrower float ids round once to nearest even (with their own overflow rules).
DSK_HD void store_from_i64(int32_t dst_id, int64_t v, void* dst) {
  switch (dst_id) {
    case DSK_DTYPE_F32: {
      const float r = static_cast<float>(v);  // round to nearest even on host and device
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_F16:
    case DSK_DTYPE_BF16:
    case DSK_DTYPE_FP8_E4M3FN:
    case DSK_DTYPE_FP8_E5M2:
      store_from_f32(dst_id, internal::int64_to_f32_round_odd(v), dst);
      break;
    case DSK_DTYPE_INT32: {
      const int32_t r = v > INT32_MAX   ? INT32_MAX
                        : v < INT32_MIN ? INT32_MIN
                                        : static_cast<int32_t>(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_INT64:
      memcpy(dst, &v, sizeof(v));
      break;
    case DSK_DTYPE_UINT8: {
      const uint8_t r = v > 255 ? 255 : v < 0 ? 0 : static_cast<uint8_t>(v);
      memcpy(dst, &r, sizeof(r));
      break;
    }
    case DSK_DTYPE_BOOL: {
      const uint8_t r = v != 0 ? 1 : 0;
      memcpy(dst, &r, sizeof(r));
      break;
    }
    default:
      break;
  }
}

// Writes double v as dst_id (the dsk_fill rule): float ids go through (float)v, then as
// store_from_f32; integer ids truncate and saturate from the double itself (NaN -> 0); bool is
// v != 0.
DSK_HD void store_from_f64(int32_t dst_id, double v, void* dst) {
  if (!dtype_id_is_float(dst_id)) {
    internal::store_int_from_f64(dst_id, v, dst);
    return;
  }
  float f;
  if (v == v) {
    f = static_cast<float>(v);  // round to nearest even; out of range gives inf
  } else {
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    f = f32_from_bits(static_cast<uint32_t>((bits >> 32) & 0x80000000u) | 0x7FC00000u);
  }
  store_from_f32(dst_id, f, dst);
}

// Value of a float-id element as f32 (exact). 0 for other ids.
DSK_HD float load_as_f32(int32_t src_id, const void* src) {
  switch (src_id) {
    case DSK_DTYPE_F32: {
      float r;
      memcpy(&r, src, sizeof(r));
      return r;
    }
    case DSK_DTYPE_F16:
    case DSK_DTYPE_BF16: {
      uint16_t r;
      memcpy(&r, src, sizeof(r));
      return src_id == DSK_DTYPE_F16 ? f16_to_f32(r) : bf16_to_f32(r);
    }
    case DSK_DTYPE_FP8_E4M3FN:
    case DSK_DTYPE_FP8_E5M2: {
      uint8_t r;
      memcpy(&r, src, sizeof(r));
      return src_id == DSK_DTYPE_FP8_E4M3FN ? e4m3fn_to_f32(r) : e5m2_to_f32(r);
    }
    default:
      return 0.0f;
  }
}

// Value of an integer-id element as int64; a bool byte reads as 0 or 1. 0 for other ids.
DSK_HD int64_t load_as_i64(int32_t src_id, const void* src) {
  switch (src_id) {
    case DSK_DTYPE_INT32: {
      int32_t r;
      memcpy(&r, src, sizeof(r));
      return r;
    }
    case DSK_DTYPE_INT64: {
      int64_t r;
      memcpy(&r, src, sizeof(r));
      return r;
    }
    case DSK_DTYPE_UINT8:
    case DSK_DTYPE_BOOL: {
      uint8_t r;
      memcpy(&r, src, sizeof(r));
      return src_id == DSK_DTYPE_BOOL ? (r != 0 ? 1 : 0) : r;
    }
    default:
      return 0;
  }
}

// Converts one element by the rules of dsk_dtype.h. Equal ids copy the bytes (NaN payloads and
// non-0/1 bool bytes kept); otherwise float sources go through store_from_f32 and integer/bool
// sources through store_from_i64.
DSK_HD void convert_element(int32_t src_id, const void* src, int32_t dst_id, void* dst) {
  if (src_id == dst_id) {
    internal::copy_bytes(dst, src, dtype_id_size(src_id));
  } else if (dtype_id_is_float(src_id)) {
    store_from_f32(dst_id, load_as_f32(src_id, src), dst);
  } else if (dtype_id_size(src_id) != 0) {
    store_from_i64(dst_id, load_as_i64(src_id, src), dst);
  }
}

}  // namespace dsk

#endif  // DSK_LIB_COMMON_CONVERT_H_
