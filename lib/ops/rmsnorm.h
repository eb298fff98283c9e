// rmsnorm.h - libdsk side of dsk_rmsnorm and dsk_add_rmsnorm: validation, normalization to rows,
// dispatch to the backend's rmsnorm entry.
#ifndef DSK_LIB_OPS_RMSNORM_H_
#define DSK_LIB_OPS_RMSNORM_H_

#include "core/context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

void rmsnorm(const dsk_context& ctx, const DLTensor* x, const DLTensor* weight, const DLTensor* y,
             float eps);
void add_rmsnorm(const dsk_context& ctx, const DLTensor* x, const DLTensor* residual,
                 const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                 float eps);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_RMSNORM_H_
