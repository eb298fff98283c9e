// Host launcher of the strided copy with dtype conversion (dsk_backend_iface::copy).
// Built with -fmad=false: the conversions must give the CPU reference's bits.
#include <cuda_runtime_api.h>

#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/ops/launch.h"
#include "cuda/ops/strided.h"

namespace dsk {
namespace cuda {
namespace {

template <bool NARROW>
void launch_copy_same(unsigned blocks, cudaStream_t stream, const StridedIndex& index,
                      const TensorInfo& src, const TensorInfo& dst) {
  const int64_t n = dst.numel;
  switch (dst.elem_size) {
    case 1:
      copy_same_kernel<uint8_t, NARROW><<<blocks, kElementwiseBlock, 0, stream>>>(
          index, reinterpret_cast<const uint8_t*>(src.data), reinterpret_cast<uint8_t*>(dst.data),
          n);
      break;
    case 2:
      copy_same_kernel<uint16_t, NARROW><<<blocks, kElementwiseBlock, 0, stream>>>(
          index, reinterpret_cast<const uint16_t*>(src.data), reinterpret_cast<uint16_t*>(dst.data),
          n);
      break;
    case 4:
      copy_same_kernel<uint32_t, NARROW><<<blocks, kElementwiseBlock, 0, stream>>>(
          index, reinterpret_cast<const uint32_t*>(src.data), reinterpret_cast<uint32_t*>(dst.data),
          n);
      break;
    default:
      copy_same_kernel<uint64_t, NARROW><<<blocks, kElementwiseBlock, 0, stream>>>(
          index, reinterpret_cast<const uint64_t*>(src.data), reinterpret_cast<uint64_t*>(dst.data),
          n);
      break;
  }
}

template <bool NARROW, bool ALIGNED>
void launch_convert(unsigned blocks, cudaStream_t stream, const StridedIndex& index,
                    const TensorInfo& src, const TensorInfo& dst) {
  convert_kernel<NARROW, ALIGNED>
      <<<blocks, kElementwiseBlock, 0, stream>>>(index, src.data, src.dtype_id, src.elem_size,
                                                 dst.data, dst.dtype_id, dst.elem_size, dst.numel);
}

}  // namespace

dsk_status copy(int32_t device, const DLTensor* src_t, const DLTensor* dst_t,
                void* stream_ptr) noexcept {
  const TensorInfo src = tensor_info(src_t);
  const TensorInfo dst = tensor_info(dst_t);
  if (dst.numel == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t* strides[2] = {src.strides, dst.strides};
  const StridedIndex index = coalesce(dst.ndim, dst.shape, strides, 2);
  const bool same_dtype = src.dtype_id == dst.dtype_id;
  if (same_dtype && is_dense(index)) {
    DSK_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data, src.data,
                                             static_cast<size_t>(dst.numel) * dst.elem_size,
                                             cudaMemcpyDeviceToDevice, stream));
    return DSK_OK;
  }
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(dst.numel, &blocks));
  const bool narrow = narrow_indices(dst.numel);
  const bool aligned = is_aligned(src.data, static_cast<size_t>(src.elem_size)) &&
                       is_aligned(dst.data, static_cast<size_t>(dst.elem_size));
  if (same_dtype && aligned) {
    if (narrow) {
      launch_copy_same<true>(blocks, stream, index, src, dst);
    } else {
      launch_copy_same<false>(blocks, stream, index, src, dst);
    }
  } else if (aligned) {
    if (narrow) {
      launch_convert<true, true>(blocks, stream, index, src, dst);
    } else {
      launch_convert<false, true>(blocks, stream, index, src, dst);
    }
  } else if (narrow) {
    launch_convert<true, false>(blocks, stream, index, src, dst);
  } else {
    launch_convert<false, false>(blocks, stream, index, src, dst);
  }
  return check_launch("copy");
}

}  // namespace cuda
}  // namespace dsk
