// moe_experts.h - the SwiGLU expert FFN over rows in expert order, built from the backend's
// moe_grouped_gemm (or gemm), linear_fp8 and swiglu entries; shared by dsk_moe_experts and the
// layer (lib/ops/moe_layer.cpp), which runs the shared experts as one more group.
#ifndef DSK_LIB_OPS_MOE_EXPERTS_H_
#define DSK_LIB_OPS_MOE_EXPERTS_H_

#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "dsk/dsk_moe.h"
#include "ops/moe_scratch.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {

// One weight tensor as [E, rows, cols] (a 2-D shared-expert weight gets E = 1).
struct Mat3 {
  char* data = nullptr;
  DLDevice device{};
  int32_t dtype_id = 0;
  size_t elem_size = 0;
  int64_t shape[3] = {};
  int64_t strides[3] = {};
};

// A 2-D activation matrix [rows, cols] (x, its scales, y, intermediates).
struct Rows {
  char* data = nullptr;
  DLDevice device{};
  int32_t dtype_id = 0;
  size_t elem_size = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride0 = 0;  // elements
  int64_t stride1 = 1;
};

// The stride of a dim of size `size` as the gemm entry's callers pass it: 0 for a size-1 dim
// (lib/ops/gemm.cpp).
int64_t gemm_stride(int64_t size, int64_t stride);

Rows rows_of_arg(const Arg& a);  // a is 2-D
// A row-major [rows, cols] matrix at data.
Rows contiguous_rows(char* data, DLDevice device, int32_t dtype_id, int64_t rows, int64_t cols);
Mat3 mat3_of_arg(const Arg& a);  // a is 3-D, or 2-D (then E = 1)

// Validated expert weights: w1/w3 [E, I, D], w2 [E, D, I], scales for fp8.
struct Experts {
  Arg args[6];  // w1, w3, w2, w1_scales, w3_scales, w2_scales (scales absent for float weights)
  Mat3 w1, w3, w2, s1, s3, s2;
  int64_t num = 0;     // E
  int64_t inter = 0;   // I
  int64_t hidden = 0;  // D
  int32_t dtype_id = 0;
  bool fp8 = false;
};

// Checks `w` (routed: 3-D with E experts; shared: 2-D) and names its fields "<prefix>->w1" etc.
// prefix is "weights", "experts" or "shared".
Experts check_experts(const dsk_moe_expert_weights& w, bool routed, const char* prefix);

// Scratch run_experts takes for R rows of output dtype y_dtype.
size_t experts_scratch_bytes(const Experts& e, int64_t rows, int32_t y_dtype);

// y rows [offsets[g], offsets[g + 1]) = expert g applied to the same rows of x, for x [R, D]
// (float, or fp8 with x_scales [R, ceil(D / 128)]), y [R, D]; offsets on the host (E + 1 values,
// validated). Intermediates come from `scratch` (experts_scratch_bytes).
// x_scales.data NULL for a float x.
void run_experts(const Target& t, Scratch& scratch, const Experts& e, const Rows& x,
                 const Rows& x_scales, const std::vector<int64_t>& offsets, const Rows& y);

// offsets [E + 1] int32 (host memory, or the device of `t`, read back with one synchronization),
// checked: non-decreasing in [0, rows]. Device offsets take align_up(4 * (E + 1)) bytes of scratch.
std::vector<int64_t> read_offsets(const Target& t, Scratch& scratch, const Arg& offsets,
                                  int64_t rows);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_MOE_EXPERTS_H_
