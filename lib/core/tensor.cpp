#include "core/tensor.h"

#include <utility>

#include "core/layout.h"

namespace dsk {

dsk_tensor* make_tensor(StoragePtr storage, void* data, int32_t ndim, const int64_t* shape,
                        const int64_t* strides, DLDataType dtype, bool read_only) {
  auto* t = new dsk_tensor();
  t->storage = std::move(storage);
  for (int32_t i = 0; i < ndim; ++i) t->shape[i] = shape[i];
  if (strides != nullptr) {
    for (int32_t i = 0; i < ndim; ++i) t->strides[i] = strides[i];
  } else {
    row_major_strides(ndim, t->shape, t->strides);
  }
  t->dl.data = data;
  t->dl.device = t->storage->device;
  t->dl.ndim = ndim;
  t->dl.dtype = dtype;
  t->dl.shape = t->shape;
  t->dl.strides = t->strides;
  t->dl.byte_offset = 0;
  t->read_only = read_only;
  return t;
}

}  // namespace dsk
