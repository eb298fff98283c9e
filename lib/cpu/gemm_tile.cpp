// The CPU GEMM's register tiles (gemm_tile.h): the templates of gemm_tile_kernels.h compiled for
// the baseline (four xmm per 16 lanes with SSE2) and, under a target attribute, for AVX2 (two ymm);
// gemm_tile_avx512.cpp compiles them for AVX-512F (one zmm). Clones are only called after
// __builtin_cpu_supports; everything they call is always_inline with internal linkage, so no
// function built for a wider instruction set is shared with other code.
#include "cpu/gemm_tile.h"

#include "cpu/gemm_tile_kernels.h"

namespace dsk {
namespace cpu {

#if DSK_VEC_X86
// gemm_tile_avx512.cpp.
void gemm_tile_run_avx512(const GemmTile& t, int mr, int nr, int b_type);
void gemm_tile_row_avx512(const GemmRowTile& t, int b_type);
void gemm_tile_dequant_fp8_avx512(const uint8_t* q, int64_t n, const float* scale, int64_t step,
                                  int64_t phase, float* out);
void gemm_tile_row_panel_avx512(const GemmRowTile& t, int b_type, float* out);
#endif

namespace {

// Register budgets: 16 ymm (two per 16 lanes) 2 x 2; 16 xmm (four per 16 lanes) 1 x 2 (AVX-512:
// gemm_tile_avx512.cpp).
void run_base(const GemmTile& t, int mr, int nr, int b_type) {
  run_any<1, 2, kBf16Shift>(t, mr, nr, b_type);
}
void row_base(const GemmRowTile& t, int b_type) { row_any<kBf16Shift>(t, b_type); }
void dequant_fp8_base(const uint8_t* q, int64_t n, const float* scale, int64_t step, int64_t phase,
                      float* out) {
  dequant_fp8_any(q, n, scale, step, phase, out);
}
void row_panel_base(const GemmRowTile& t, int b_type, float* out) {
  row_panel_any<kBf16Shift>(t, b_type, out);
}

#if DSK_VEC_X86
__attribute__((target("avx2"))) void run_avx2(const GemmTile& t, int mr, int nr, int b_type) {
  run_any<2, 2, kBf16Shift>(t, mr, nr, b_type);
}
__attribute__((target("avx2"))) void row_avx2(const GemmRowTile& t, int b_type) {
  row_any<kBf16Shift>(t, b_type);
}
__attribute__((target("avx2"))) void dequant_fp8_avx2(const uint8_t* q, int64_t n,
                                                      const float* scale, int64_t step,
                                                      int64_t phase, float* out) {
  dequant_fp8_any(q, n, scale, step, phase, out);
}
__attribute__((target("avx2"))) void row_panel_avx2(const GemmRowTile& t, int b_type, float* out) {
  row_panel_any<kBf16Shift>(t, b_type, out);
}
#endif

const GemmTileKernel kBase{"base", 1, 2, run_base, row_base, dequant_fp8_base, row_panel_base};
#if DSK_VEC_X86
const GemmTileKernel kAvx2{"avx2", 2, 2, run_avx2, row_avx2, dequant_fp8_avx2, row_panel_avx2};
const GemmTileKernel kAvx512{"avx512",
                             4,
                             6,
                             gemm_tile_run_avx512,
                             gemm_tile_row_avx512,
                             gemm_tile_dequant_fp8_avx512,
                             gemm_tile_row_panel_avx512};
#endif

}  // namespace

int gemm_tile_kernels(const GemmTileKernel** out, int max) {
  int n = 0;
  auto add = [&](const GemmTileKernel& k) {
    if (n < max) out[n] = &k;
    ++n;
  };
#if DSK_VEC_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) add(kAvx512);
  if (__builtin_cpu_supports("avx2")) add(kAvx2);
#endif
  add(kBase);
  return n < max ? n : max;
}

const GemmTileKernel& gemm_tile_kernel() {
  static const GemmTileKernel* best = [] {
    const GemmTileKernel* k[1];
    gemm_tile_kernels(k, 1);
    return k[0];
  }();
  return *best;
}

}  // namespace cpu
}  // namespace dsk
