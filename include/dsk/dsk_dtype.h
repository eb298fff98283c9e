/* dsk_dtype.h - the element types dsk understands and host-side conversions between them.
 *
 * dsk describes element types with DLPack's DLDataType; there is no second type system. The
 * dsk_dtype_id constants below are only a compact way to name the nine supported types (for
 * bindings and switch statements); dsk_dtype_from_id() turns one into its DLDataType.
 *
 * Conversion rules (identical on every backend):
 *  - f32 -> f16/bf16: round to nearest, ties to even; overflow gives +-inf; NaN stays NaN.
 *  - f32 -> fp8 e4m3fn: round to nearest even, saturate to +-448 (the format has no inf); NaN ->
 * NaN.
 *  - f32 -> fp8 e5m2: round to nearest even, saturate to +-57344 (finite inputs never become inf);
 *    +-inf stays +-inf; NaN -> NaN.
 *  - f16/bf16/fp8 -> f32 is exact. Between two narrow float types dsk converts through f32 (exact
 *    first step, so there is exactly one rounding).
 *  - float -> integer: truncate toward zero and saturate to the target range; NaN gives 0.
 *  - integer -> integer saturates to the target range (e.g. -1 -> uint8 gives 0).
 *  - integer -> float rounds once, to nearest even, directly to the target type.
 *  - any -> bool is (x != 0), NaN counting as nonzero; bool reads as 0 or 1.
 */
#ifndef DSK_DTYPE_H_
#define DSK_DTYPE_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compact names of the supported element types. 0 is never a valid id. */
#define DSK_DTYPE_F32 1        /* {kDLFloat, 32, 1} */
#define DSK_DTYPE_F16 2        /* {kDLFloat, 16, 1} */
#define DSK_DTYPE_BF16 3       /* {kDLBfloat, 16, 1} */
#define DSK_DTYPE_FP8_E4M3FN 4 /* {kDLFloat8_e4m3fn, 8, 1} */
#define DSK_DTYPE_FP8_E5M2 5   /* {kDLFloat8_e5m2, 8, 1} */
#define DSK_DTYPE_INT32 6      /* {kDLInt, 32, 1} */
#define DSK_DTYPE_INT64 7      /* {kDLInt, 64, 1} */
#define DSK_DTYPE_UINT8 8      /* {kDLUInt, 8, 1} */
#define DSK_DTYPE_BOOL 9       /* {kDLBool, 8, 1} */
#define DSK_DTYPE_COUNT 10     /* one past the largest id */

/* Writes the DLDataType of a DSK_DTYPE_* id to *out.
 * Errors: DSK_ERR_INVALID_ARGUMENT for an unknown id or NULL out. */
DSK_API dsk_status dsk_dtype_from_id(int32_t id, DLDataType* out);

/* Writes the DSK_DTYPE_* id of a DLDataType to *out.
 * Errors: DSK_ERR_INVALID_ARGUMENT if dtype is not supported (message says which field is off). */
DSK_API dsk_status dsk_dtype_to_id(DLDataType dtype, int32_t* out);

/* Bytes per element of a supported dtype, 0 for an unsupported one. */
DSK_API size_t dsk_dtype_size(DLDataType dtype);

/* Static lower-case name ("f32", "bf16", "fp8_e4m3fn", ...) or "unsupported". Never NULL. */
DSK_API const char* dsk_dtype_name(DLDataType dtype);

/* Converts n host values of src_dtype at src into n host values of dst_dtype at dst, following the
 * rules above. src and dst must not overlap unless they are the same pointer with equal dtypes.
 * Errors: DSK_ERR_INVALID_ARGUMENT for NULL pointers (with n > 0) or unsupported dtypes. */
DSK_API dsk_status dsk_convert_host(DLDataType src_dtype, const void* src, DLDataType dst_dtype,
                                    void* dst, size_t n);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_DTYPE_H_ */
