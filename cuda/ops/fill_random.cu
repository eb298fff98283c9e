// Host launcher of the seeded random fill (dsk_backend_iface::fill_random).
// Built with -fmad=false: the values must be the CPU reference's bits (random_value.h).
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

template <bool NARROW, bool ALIGNED>
void launch_fill_random(unsigned blocks, cudaStream_t stream, const StridedIndex& index,
                        const TensorInfo& dst, const dsk_random_params& params, float a, float b) {
  fill_random_kernel<NARROW, ALIGNED><<<blocks, kElementwiseBlock, 0, stream>>>(
      index, dst.data, dst.dtype_id, dst.elem_size, params.distribution, params.seed, params.offset,
      a, b, dst.numel);
}

}  // namespace

dsk_status fill_random(int32_t device, const DLTensor* dst_t, const dsk_random_params* params,
                       void* stream_ptr) noexcept {
  const TensorInfo dst = tensor_info(dst_t);
  if (dst.numel == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  // Rounded to f32 on the host exactly as the CPU reference does before calling random_value.
  const auto a = static_cast<float>(params->a);
  const auto b = static_cast<float>(params->b);
  const int64_t* strides[1] = {dst.strides};
  const StridedIndex index = coalesce(dst.ndim, dst.shape, strides, 1);
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(dst.numel, &blocks));
  const bool narrow = narrow_indices(dst.numel);
  const bool aligned = is_aligned(dst.data, static_cast<size_t>(dst.elem_size));
  if (narrow && aligned) {
    launch_fill_random<true, true>(blocks, stream, index, dst, *params, a, b);
  } else if (narrow) {
    launch_fill_random<true, false>(blocks, stream, index, dst, *params, a, b);
  } else if (aligned) {
    launch_fill_random<false, true>(blocks, stream, index, dst, *params, a, b);
  } else {
    launch_fill_random<false, false>(blocks, stream, index, dst, *params, a, b);
  }
  return check_launch("fill_random");
}

}  // namespace cuda
}  // namespace dsk
