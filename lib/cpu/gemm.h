// gemm.h - CPU GEMM entry points for other CPU ops (the backend table's gemm is in cpu/ops.h).
#ifndef DSK_LIB_CPU_GEMM_H_
#define DSK_LIB_CPU_GEMM_H_

#include <stdint.h>

#include <vector>

#include "core/backend_iface.h"

namespace dsk {
namespace cpu {

// y = x @ dequant(w)^T for an fp8 e4m3fn weight w [n, k] with unit stride along k and its 128 x 128
// block scales [ceil(n / 128), ceil(k / 128)]: each weight is dequantized in registers to the f32
// value dsk_dequant_fp8_weight gives (e4m3fn_to_f32(q) * scale), then the GEMM's fixed order of
// operations applies (cpu/gemm_tile.h), so y is the bits of dequantizing w first and calling the
// GEMM. Strides are in elements; y may be f32, f16 or bf16. Throws dsk::Error.
struct GemmFp8Weight {
  const float* x = nullptr;  // [m, k], row-major
  int64_t m = 0;
  int64_t k = 0;
  const uint8_t* w = nullptr;
  int64_t n = 0;
  int64_t w_s0 = 0;  // row stride of w
  const float* scale = nullptr;
  int64_t s_s0 = 0;
  int64_t s_s1 = 0;
  char* y = nullptr;  // [m, n]
  int32_t y_dtype = 0;
  int64_t y_s0 = 0;
  int64_t y_s1 = 0;
};

void gemm_fp8_weight(const GemmFp8Weight& g);

// f32 block scales [rows, cols] (element strides s0, s1) as the GEMM indexes them: the data itself
// when it is 4-byte aligned, else a compact row-major copy in buf (an f32 read through a misaligned
// pointer is undefined behaviour, and nothing in the C API asks callers to align elements).
struct ScaleView {
  const float* data = nullptr;
  int64_t s0 = 0;
  int64_t s1 = 0;
};
ScaleView aligned_scales(const char* data, int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                         std::vector<float>& buf);

// The backend table's gemm_fp8_weight entry (lib/core/backend_iface.h): batched D[b] = A[b] @ B[b]
// for an fp8 B viewed out of a block-scaled weight, dequantized in registers the same way.
dsk_status gemm_fp8_weight_view(const dsk_exec* ex, const DLTensor* a, const DLTensor* b,
                                const DLTensor* scales, int64_t row0, int64_t row_step,
                                int32_t k_is_row, const DLTensor* d) noexcept;

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_GEMM_H_
