// detmath_arrays.h - the AVX-512 det_exp kernels of detmath_avx512.h over arrays, so that tests can
// hold them against the scalar det_exp (lib/common/detmath.h) bit for bit.
#ifndef DSK_LIB_CPU_DETMATH_ARRAYS_H_
#define DSK_LIB_CPU_DETMATH_ARRAYS_H_

#include <stdint.h>

namespace dsk {
namespace cpu {

// Whether this CPU has AVX-512F (else the functions below compute nothing and return false).
bool detmath_have_avx512();
// out[i] = avx512::det_exp(x[i]), or avx512::det_exp_in_range(x[i]) with in_range (only for
// -87 <= x <= 88).
bool det_exp_avx512_array(const float* x, int64_t n, bool in_range, float* out);

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_DETMATH_ARRAYS_H_
