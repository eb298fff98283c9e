// Host launcher of the constant fill (dsk_backend_iface::fill).
#include <cuda_runtime_api.h>
#include <string.h>

#include "common/convert.h"
#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/ops/launch.h"
#include "cuda/ops/strided.h"

namespace dsk {
namespace cuda {
namespace {

template <typename T, bool NARROW>
void launch_fill_typed(unsigned blocks, cudaStream_t stream, const StridedIndex& index,
                       const TensorInfo& dst, const unsigned char* pattern) {
  T value;
  memcpy(&value, pattern, sizeof(T));
  fill_kernel<T, NARROW><<<blocks, kElementwiseBlock, 0, stream>>>(
      index, reinterpret_cast<T*>(dst.data), value, dst.numel);
}

template <bool NARROW>
void launch_fill(unsigned blocks, cudaStream_t stream, const StridedIndex& index,
                 const TensorInfo& dst, const unsigned char* pattern) {
  if (!is_aligned(dst.data, static_cast<size_t>(dst.elem_size))) {
    uint64_t word = 0;
    memcpy(&word, pattern, static_cast<size_t>(dst.elem_size));
    fill_bytes_kernel<NARROW>
        <<<blocks, kElementwiseBlock, 0, stream>>>(index, dst.data, dst.elem_size, word, dst.numel);
    return;
  }
  switch (dst.elem_size) {
    case 1:
      launch_fill_typed<uint8_t, NARROW>(blocks, stream, index, dst, pattern);
      break;
    case 2:
      launch_fill_typed<uint16_t, NARROW>(blocks, stream, index, dst, pattern);
      break;
    case 4:
      launch_fill_typed<uint32_t, NARROW>(blocks, stream, index, dst, pattern);
      break;
    default:
      launch_fill_typed<uint64_t, NARROW>(blocks, stream, index, dst, pattern);
      break;
  }
}

bool all_bytes_equal(const unsigned char* pattern, int32_t size) {
  for (int32_t b = 1; b < size; ++b) {
    if (pattern[b] != pattern[0]) return false;
  }
  return true;
}

}  // namespace

dsk_status fill(int32_t device, const DLTensor* dst_t, double value, void* stream_ptr) noexcept {
  const TensorInfo dst = tensor_info(dst_t);
  if (dst.numel == 0) return DSK_OK;
  // Converted once on the host by the CPU reference's own function: every element gets these
  // exact bytes, so device arithmetic never enters.
  unsigned char pattern[8] = {};
  store_from_f64(dst.dtype_id, value, pattern);
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t* strides[1] = {dst.strides};
  const StridedIndex index = coalesce(dst.ndim, dst.shape, strides, 1);
  // Zeros (and any byte-sized value) are a memset, which runs at full bandwidth.
  if (is_dense(index) && all_bytes_equal(pattern, dst.elem_size)) {
    DSK_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        dst.data, pattern[0], static_cast<size_t>(dst.numel) * dst.elem_size, stream));
    return DSK_OK;
  }
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(dst.numel, &blocks));
  if (narrow_indices(dst.numel)) {
    launch_fill<true>(blocks, stream, index, dst, pattern);
  } else {
    launch_fill<false>(blocks, stream, index, dst, pattern);
  }
  return check_launch("fill");
}

}  // namespace cuda
}  // namespace dsk
