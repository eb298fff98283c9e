#include "cuda/ops/strided.h"

#include "common/convert.h"

namespace dsk {
namespace cuda {

TensorInfo tensor_info(const DLTensor* t) noexcept {
  TensorInfo info{};
  info.data = static_cast<char*>(t->data) + t->byte_offset;
  info.dtype_id = dtype_id_of(t->dtype);
  info.elem_size = static_cast<int32_t>(dtype_id_size(info.dtype_id));
  info.ndim = t->ndim;
  info.numel = 1;
  int64_t step = 1;
  for (int32_t d = info.ndim - 1; d >= 0; --d) {
    info.shape[d] = t->shape[d];
    info.strides[d] = t->strides != nullptr ? t->strides[d] : step;
    step *= t->shape[d] > 0 ? t->shape[d] : 1;
    info.numel *= t->shape[d];
  }
  return info;
}

StridedIndex coalesce(int32_t ndim, const int64_t* shape, const int64_t* const* strides,
                      int32_t operands) noexcept {
  StridedIndex index{};
  index.operands = operands;
  for (int32_t d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    const int32_t last = index.ndim - 1;
    bool merge = last >= 0;
    for (int32_t k = 0; k < operands && merge; ++k) {
      // stride * (shape - 1) fits (libdsk validated the span); the full product may not.
      int64_t step = 0;
      merge =
          !__builtin_mul_overflow(strides[k][d], shape[d], &step) && index.strides[k][last] == step;
    }
    if (merge) {
      // The outer dim steps exactly over the inner one, so both are one dim of the product size
      // with the inner stride.
      index.shape[last] *= shape[d];
      for (int32_t k = 0; k < operands; ++k) index.strides[k][last] = strides[k][d];
    } else {
      index.shape[index.ndim] = shape[d];
      for (int32_t k = 0; k < operands; ++k) index.strides[k][index.ndim] = strides[k][d];
      ++index.ndim;
    }
  }
  if (index.ndim == 0) {  // a single element
    index.ndim = 1;
    index.shape[0] = 1;
    for (int32_t k = 0; k < operands; ++k) index.strides[k][0] = 1;
  }
  return index;
}

bool is_dense(const StridedIndex& index) noexcept {
  if (index.ndim != 1) return false;
  if (index.shape[0] == 1) return true;
  for (int32_t k = 0; k < index.operands; ++k) {
    if (index.strides[k][0] != 1) return false;
  }
  return true;
}

bool is_aligned(const void* p, size_t alignment) noexcept {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

}  // namespace cuda
}  // namespace dsk
