// ops.h - the CUDA implementations behind the op entries of the backend table
// (lib/core/backend_iface.h states each entry's contract). One file per op family in cuda/ops/.
#ifndef DSK_CUDA_OPS_OPS_H_
#define DSK_CUDA_OPS_OPS_H_

#include "core/backend_op_decls.h"

namespace dsk {
namespace cuda {

DSK_BACKEND_OP_DECLS

// DSK_FP8_KERNEL_* that linear_fp8 runs on `device`.
int32_t linear_fp8_kernel(int32_t device) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_OPS_H_
