// The AVX-512 clone of the CPU GEMM's register tiles (gemm_tile_kernels.h): this whole unit is
// compiled for AVX-512F + BW, so the templates' helpers may use intrinsics (the fp8 codes are
// converted with them: GCC's vector-extension widening of bytes came out as a dozen shuffles per
// 16 codes) while the vector-extension arithmetic stays the same IEEE operations as in the other
// clones. Everything the unit defines has internal linkage except the four gemm_tile_avx512_*
// entries, which gemm_tile.cpp only calls after __builtin_cpu_supports; the system headers come
// before the target switch so that no inline function of theirs is compiled for AVX-512 here.
#include <stdint.h>
#include <string.h>

#include "cpu/gemm_tile.h"
#include "cpu/vector_ext.h"

#if DSK_VEC_X86
#  include <immintrin.h>

#  if defined(__clang__)
#    pragma clang attribute push(__attribute__((target("avx512f,avx512bw"))), apply_to = function)
#  else
#    pragma GCC push_options
#    pragma GCC target("avx512f,avx512bw")
// GCC's AVX-512 intrinsics start many results from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports once they are inlined.
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#  endif
#  define DSK_GT_AVX512_UNIT 1
#  include "cpu/gemm_tile_kernels.h"

namespace dsk {
namespace cpu {

// Register budget: 32 zmm hold 4 x 6 sums plus operands.
DSK_GT_DEFINE_CLONE(, gemm_tile_avx512, 4, 6, kBf16Interleave)

}  // namespace cpu
}  // namespace dsk

#  if defined(__clang__)
#    pragma clang attribute pop
#  else
#    pragma GCC pop_options
#  endif
#endif
