// strided.h - the shape/stride description elementwise kernels receive, and how the host builds
// it from validated DLTensors.
//
// Plain C++ (no CUDA): ops/*.cu build it on the host and pass it to kernels by value, so it lives
// in the kernel's parameter space and costs no device memory or extra copy.
#ifndef DSK_CUDA_OPS_STRIDED_H_
#define DSK_CUDA_OPS_STRIDED_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace cuda {

constexpr int32_t kMaxDims = 8;
constexpr int32_t kMaxOperands = 2;

// An index space walked in row-major order by up to two tensors of one shape (e.g. copy's src and
// dst), with each tensor's element strides. Built by coalesce(): size-1 dims are dropped and
// neighbouring dims that every operand steps through contiguously are merged, which keeps the
// row-major element order (so element i is still the i-th in row-major order of the original
// shape) while making the per-element index decoding cheaper. ndim >= 1 once built.
struct StridedIndex {
  int32_t ndim;
  int32_t operands;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxOperands][kMaxDims];
};

// What the host needs of one validated DLTensor.
struct TensorInfo {
  char* data;  // first element (data + byte_offset)
  int32_t dtype_id;
  int32_t elem_size;
  int32_t ndim;
  int64_t numel;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];  // elements; row-major when the DLTensor has none
};

// Reads a DLTensor that libdsk has validated (supported dtype, ndim <= 8, no overflow).
TensorInfo tensor_info(const DLTensor* t) noexcept;

// Coalesces `shape` (ndim dims, numel > 0) shared by `operands` tensors whose strides are
// strides[0..operands).
StridedIndex coalesce(int32_t ndim, const int64_t* shape, const int64_t* const* strides,
                      int32_t operands) noexcept;

// True when every operand of `index` is compact row-major (one block of memory in order).
bool is_dense(const StridedIndex& index) noexcept;

// True when `p` is a multiple of `alignment` bytes.
bool is_aligned(const void* p, size_t alignment) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_STRIDED_H_
