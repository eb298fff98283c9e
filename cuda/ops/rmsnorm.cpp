// CUDA entry of RMSNorm (plain and fused residual add): rows [R, D] from libdsk; the kernels are
// in rmsnorm_kernels.cu.
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_kernels.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status rmsnorm(const dsk_exec* ex, const DLTensor* x, const DLTensor* residual,
                   const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                   float eps) noexcept {
  RmsnormArgs a{};
  a.x = norm_operand(x);
  a.residual = norm_operand(residual);
  a.weight = norm_operand(weight);
  a.y = norm_operand(y);
  a.residual_out = norm_operand(residual_out);
  a.rows = x->shape[0];
  a.d = x->shape[1];
  a.eps = eps;
  if (a.rows == 0 || a.d == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_rmsnorm(a, ex->stream);
}

}  // namespace cuda
}  // namespace dsk
