// moe_bias.h - the auxiliary-loss-free bias update of dsk_moe_bias_update (dsk_moe.h), shared by
// the CPU reference and the CUDA kernel so that both give the same bits.
//
//   mean    = sum(load) / E                        (double)
//   bias[e] = f32(double(bias[e]) +- gamma)         (+ when mean > load[e], - when mean < load[e],
//                                                    bias unchanged at equality or with NaN)
//
// The sum has a fixed order (it matters for f32 loads; int64 loads below 2^53 are exact anyway):
// lane l of kBiasLanes adds load[l], load[l + kBiasLanes], ... in increasing index, starting from
// +0.0, then the lanes are folded pairwise, p[l] += p[l + s] for s = kBiasLanes / 2, ..., 1 (l <
// s); the sum is p[0]. One CUDA block of kBiasLanes threads runs it as written; the CPU loops. Only
// additions, one division and one conversion: every step is a correctly rounded IEEE operation on
// the host and the device alike.
#ifndef DSK_LIB_COMMON_MOE_BIAS_H_
#define DSK_LIB_COMMON_MOE_BIAS_H_

#include "common/hd.h"

namespace dsk {
namespace moe {

constexpr int kBiasLanes = 256;

// The updated bias of an expert with load `load` (as double), given the mean load.
DSK_HD float bias_step(float bias, float gamma, double mean, double load) {
  const double d = mean - load;
  const double b = static_cast<double>(bias);
  const double g = static_cast<double>(gamma);
  const double r = d > 0.0 ? b + g : (d < 0.0 ? b - g : b);
  return static_cast<float>(r);
}

}  // namespace moe
}  // namespace dsk

#endif  // DSK_LIB_COMMON_MOE_BIAS_H_
