#include "cpu/detmath_arrays.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wuninitialized"
#  endif
#  include <immintrin.h>

#  include "cpu/detmath_avx512.h"

namespace dsk {
namespace cpu {

bool detmath_have_avx512() {
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
}

namespace {

__attribute__((noinline, target("avx512f"))) void det_exp_lanes(const float* x, int64_t n,
                                                                bool in_range, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const auto m = static_cast<__mmask16>(n - i >= 16 ? 0xFFFFu : (1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(out + i, m, in_range ? avx512::det_exp_in_range(v) : avx512::det_exp(v));
  }
}

}  // namespace

// The CPU check in plain code: an AVX-512 function may use AVX before its first statement.
bool det_exp_avx512_array(const float* x, int64_t n, bool in_range, float* out) {
  if (!detmath_have_avx512()) return false;
  det_exp_lanes(x, n, in_range, out);
  return true;
}

}  // namespace cpu
}  // namespace dsk

#else

namespace dsk {
namespace cpu {

bool detmath_have_avx512() { return false; }
bool det_exp_avx512_array(const float*, int64_t, bool, float*) { return false; }

}  // namespace cpu
}  // namespace dsk

#endif
