// CUDA entry of SwiGLU: rows [R, I] from libdsk (the fused form arrives as two views of one
// tensor); the kernel is in swiglu_kernels.cu.
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_kernels.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status swiglu(const dsk_exec* ex, const DLTensor* gate, const DLTensor* up,
                  const DLTensor* y) noexcept {
  SwigluArgs a{};
  a.gate = norm_operand(gate);
  a.up = norm_operand(up);
  a.y = norm_operand(y);
  a.rows = y->shape[0];
  a.n = y->shape[1];
  if (a.rows == 0 || a.n == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_swiglu(a, ex->stream);
}

}  // namespace cuda
}  // namespace dsk
