// dtype_info.h - names and DLDataTypes of the DSK_DTYPE_* ids (sizes and conversions live in
// lib/common/convert.h, shared with device code).
#ifndef DSK_LIB_CORE_DTYPE_INFO_H_
#define DSK_LIB_CORE_DTYPE_INFO_H_

#include "dsk/dsk_dtype.h"

namespace dsk {

// "f32", "bf16", ...; "unsupported" for an unknown id.
const char* dtype_id_name(int32_t id) noexcept;

// The DLDataType of a valid id ({0, 0, 0} otherwise).
DLDataType dtype_of_id(int32_t id) noexcept;

// The id of `dtype`, or throws DSK_ERR_INVALID_ARGUMENT naming `name` and the supported types.
int32_t checked_dtype_id(DLDataType dtype, const char* name);

}  // namespace dsk

#endif  // DSK_LIB_CORE_DTYPE_INFO_H_
