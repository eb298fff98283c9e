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
void gemm_tile_avx512_run(const GemmTile& t, int mr, int nr, int b_type);
void gemm_tile_avx512_row(const GemmRowTile& t, int b_type);
void gemm_tile_avx512_dequant_fp8(const uint8_t* q, int64_t n, const float* scale, int64_t step,
                                  int64_t phase, float* out);
void gemm_tile_avx512_row_panel(const GemmRowTile& t, int b_type, float* out);
#endif

namespace {

// Register budgets: 16 xmm (four per 16 lanes) hold 1 x 2 sums, 16 ymm (two per 16 lanes) 2 x 2
// (AVX-512: gemm_tile_avx512.cpp).
DSK_GT_DEFINE_CLONE(, base, 1, 2, kBf16Shift)
#if DSK_VEC_X86
DSK_GT_DEFINE_CLONE(__attribute__((target("avx2"))), avx2, 2, 2, kBf16Shift)
#endif

const GemmTileKernel kBase{"base", 1, 2, base_run, base_row, base_dequant_fp8, base_row_panel};
#if DSK_VEC_X86
const GemmTileKernel kAvx2{"avx2", 2, 2, avx2_run, avx2_row, avx2_dequant_fp8, avx2_row_panel};
const GemmTileKernel kAvx512{"avx512",
                             4,
                             6,
                             gemm_tile_avx512_run,
                             gemm_tile_avx512_row,
                             gemm_tile_avx512_dequant_fp8,
                             gemm_tile_avx512_row_panel};
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
