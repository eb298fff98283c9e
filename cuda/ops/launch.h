// launch.h - launch shapes for the grid-stride elementwise kernels.
#ifndef DSK_CUDA_OPS_LAUNCH_H_
#define DSK_CUDA_OPS_LAUNCH_H_

#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

constexpr unsigned kElementwiseBlock = 256;

// Blocks for a grid-stride loop over n >= 1 elements on the current device: enough to fill every
// SM, never more than the elements need, and far below the grid limit for any n (each thread then
// loops over the rest).
dsk_status elementwise_grid(int64_t n, unsigned* blocks) noexcept;

// Whether every row-major index below n fits in 32 bits (the kernels' NARROW variant).
inline bool narrow_indices(int64_t n) { return n <= static_cast<int64_t>(UINT32_MAX); }

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_LAUNCH_H_
