// tensor.h - the definition behind the opaque dsk_tensor handle.
#ifndef DSK_LIB_CORE_TENSOR_H_
#define DSK_LIB_CORE_TENSOR_H_

#include <atomic>

#include "core/storage.h"
#include "dsk/dsk_tensor.h"

struct dsk_tensor {
  std::atomic<int32_t> refs{1};
  dsk::StoragePtr storage;
  DLTensor dl{};  // data is the first element; shape/strides point into the arrays below
  int64_t shape[DSK_MAX_NDIM] = {};
  int64_t strides[DSK_MAX_NDIM] = {};
  bool read_only = false;
};

namespace dsk {

// A tensor with one reference viewing `storage` at `data` with the given layout (strides in
// elements; NULL = row-major). The layout must already be validated.
dsk_tensor* make_tensor(StoragePtr storage, void* data, int32_t ndim, const int64_t* shape,
                        const int64_t* strides, DLDataType dtype, bool read_only);

}  // namespace dsk

#endif  // DSK_LIB_CORE_TENSOR_H_
