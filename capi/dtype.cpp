// dtype ids, sizes, names and host conversions.
#include "capi/guard.h"
#include "common/convert.h"
#include "core/dtype_info.h"
#include "core/layout.h"
#include "dsk/dsk_dtype.h"

extern "C" {

DSK_API dsk_status dsk_dtype_from_id(int32_t id, DLDataType* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected a DLDataType to write");
    dsk::check_arg(id > 0 && id < DSK_DTYPE_COUNT, "id = {}, expected 1 <= id < {}", id,
                   DSK_DTYPE_COUNT);
    *out = dsk::dtype_of_id(id);
  });
}

DSK_API dsk_status dsk_dtype_to_id(DLDataType dtype, int32_t* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected an int32_t to write");
    *out = dsk::checked_dtype_id(dtype, "dtype");
  });
}

DSK_API size_t dsk_dtype_size(DLDataType dtype) {
  return dtype.lanes == 1 ? dsk::dtype_id_size(dsk::dtype_id_of(dtype)) : 0;
}

DSK_API const char* dsk_dtype_name(DLDataType dtype) {
  return dsk::dtype_id_name(dtype.lanes == 1 ? dsk::dtype_id_of(dtype) : 0);
}

DSK_API dsk_status dsk_convert_host(DLDataType src_dtype, const void* src, DLDataType dst_dtype,
                                    void* dst, size_t n) {
  return dsk::capi_call(__func__, [&] {
    int32_t s = dsk::checked_dtype_id(src_dtype, "src_dtype");
    int32_t d = dsk::checked_dtype_id(dst_dtype, "dst_dtype");
    if (n == 0) return;
    dsk::check_arg(src != nullptr, "src is NULL, expected {} values", n);
    dsk::check_arg(dst != nullptr, "dst is NULL, expected room for {} values", n);
    const size_t ss = dsk::dtype_id_size(s);
    const size_t ds = dsk::dtype_id_size(d);
    dsk::check_arg(n <= SIZE_MAX / (ss > ds ? ss : ds), "n = {} overflows the byte size", n);
    // Converting in place element by element would read values already overwritten.
    dsk::check_arg((src == dst && s == d) || !dsk::ranges_intersect(src, n * ss, dst, n * ds),
                   "src and dst overlap, expected separate buffers (or the same pointer with "
                   "equal dtypes)");
    const auto* in = static_cast<const char*>(src);
    auto* out = static_cast<char*>(dst);
    for (size_t i = 0; i < n; ++i) dsk::convert_element(s, in + i * ss, d, out + i * ds);
  });
}

}  // extern "C"
