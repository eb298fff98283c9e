// layout.h - validation of borrowed DLTensors and the facts ops need about their layout.
#ifndef DSK_LIB_CORE_LAYOUT_H_
#define DSK_LIB_CORE_LAYOUT_H_

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_tensor.h"

namespace dsk {

// Which backend kind (DSK_BACKEND_CPU / DSK_BACKEND_CUDA) can touch memory of this device type;
// 0 for device types dsk does not handle.
int32_t backend_of_device_type(int32_t device_type) noexcept;

// Human-readable "cpu", "cuda:1", "cuda_host", ... for messages.
std::string device_string(DLDevice device);

struct Layout {
  int32_t ndim = 0;
  int64_t shape[DSK_MAX_NDIM] = {};
  int64_t strides[DSK_MAX_NDIM] = {};  // in elements, always filled
  int32_t dtype_id = 0;                // DSK_DTYPE_*
  size_t elem_size = 0;
  int64_t numel = 0;
  int64_t span = 0;  // elements from the first to one past the last addressed element
  bool contiguous = false;
  char* data = nullptr;  // first element (data + byte_offset)
  DLDevice device{};
  int32_t backend = 0;  // DSK_BACKEND_CPU or DSK_BACKEND_CUDA
};

enum class Access { kRead, kWrite };

// Validates `t` (see the limits in dsk_tensor.h) and returns its layout; throws dsk::Error naming
// `name` otherwise. kWrite additionally rejects layouts in which two indices share an element.
Layout check_tensor(const DLTensor* t, const char* name, Access access);

// Row-major strides for `shape`; the product must already be known not to overflow.
void row_major_strides(int32_t ndim, const int64_t* shape, int64_t* strides) noexcept;

// True when `strides` are row-major compact for `shape` (size-1 dims may carry any stride).
bool is_row_major(int32_t ndim, const int64_t* shape, const int64_t* strides) noexcept;

// True when some two distinct indices of the layout address the same element.
bool self_overlaps(int32_t ndim, const int64_t* shape, const int64_t* strides) noexcept;

// Validates a shape (ndim in [0, 8], sizes >= 0, numel * elem_size fits int64); returns numel.
int64_t check_shape(int32_t ndim, const int64_t* shape, size_t elem_size, const char* name);

// True when the byte ranges [a, a + a_bytes) and [b, b + b_bytes) intersect.
bool ranges_intersect(const void* a, size_t a_bytes, const void* b, size_t b_bytes) noexcept;

}  // namespace dsk

#endif  // DSK_LIB_CORE_LAYOUT_H_
