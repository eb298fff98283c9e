// CUDA entry of RoPE: x/y [T, H, D], positions [T], cos/sin [P, D/2] from libdsk; the kernel and
// the position check (which synchronizes the stream) are in rope_kernels.cu.
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_kernels.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status rope(const dsk_exec* ex, const DLTensor* x, const DLTensor* positions,
                const DLTensor* cos, const DLTensor* sin, const DLTensor* y,
                int32_t layout) noexcept {
  RopeArgs a{};
  a.x = norm_operand(x);
  a.positions = norm_operand(positions);
  a.cos = norm_operand(cos);
  a.sin = norm_operand(sin);
  a.y = norm_operand(y);
  a.tokens = x->shape[0];
  a.heads = x->shape[1];
  a.half = x->shape[2] / 2;
  a.n_positions = cos->shape[0];
  a.layout = layout;
  if (a.tokens == 0 || a.heads == 0 || a.half == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_rope(a, ex->stream);
}

}  // namespace cuda
}  // namespace dsk
