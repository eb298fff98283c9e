// The portable kernel set of the CPU MLA decode (see mla_decode_kernels.h): loops over 8-float
// vectors (GCC/Clang vector extensions, which the whole library already requires), separate
// multiplies and adds (lib/ is built with -ffp-contract=off), Cephes' expf. Q.K and P.V are also
// compiled for AVX2 on x86-64 GCC (DSK_NORM_CLONES, chosen at load time); both clones give the same
// bits. Also the run-time choice between the kernel sets.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/convert.h"
#include "cpu/mla_decode_kernels.h"
#include "cpu/norm_io.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {
namespace {

void pack_q(const char* const* qrows, int64_t nr, int64_t d, int32_t dtype, float* qt,
            int64_t ldr) {
  for (int64_t i = 0; i < nr; ++i) {
    for (int64_t c = 0; c < d; ++c) {
      uint16_t bits;
      std::memcpy(&bits, qrows[i] + 2 * c, 2);
      qt[c * ldr + i] = dtype == DSK_DTYPE_BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
    }
  }
  for (int64_t c = 0; c < d; ++c) std::fill(qt + c * ldr + nr, qt + (c + 1) * ldr, 0.0f);
}

void load_tile(const char* const* rows, int64_t n, int64_t n_fill, int32_t dtype, int64_t d,
               float* kf, int64_t ldk) {
  for (int64_t j = 0; j < n; ++j) {
    float* dst = kf + j * ldk;
    const char* src = rows[j];
    if (dtype == DSK_DTYPE_BF16) {
      for (int64_t i = 0; i < d; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        dst[i] = bf16_to_f32(b);
      }
    } else {
      for (int64_t i = 0; i < d; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
    }
    std::fill(dst + d, dst + ldk, 0.0f);
  }
  std::fill(kf + n * ldk, kf + n_fill * ldk, 0.0f);
}

// Eight floats as one value: GCC and Clang keep these accumulators in registers (one AVX
// register, two SSE/NEON registers, or scalars) where plain arrays would round-trip through
// memory. Every operation is a lane-wise multiply or add, so each lane's order of operations is
// that of the scalar loops below, whatever the vector width.
typedef float V8 __attribute__((vector_size(32)));

// Blocks of 16 rows x 4 keys.
DSK_NORM_CLONES void qk(const float* qt, int64_t ldr, const float* kf, int64_t ldk, int64_t d,
                        int64_t nk, float scale, float* st) {
  constexpr int64_t kKeys = 4;
  for (int64_t r0 = 0; r0 < ldr; r0 += 16) {
    for (int64_t j0 = 0; j0 < nk; j0 += kKeys) {
      V8 acc[kKeys][2] = {};
      for (int64_t i = 0; i < d; ++i) {
        V8 q0;
        V8 q1;
        std::memcpy(&q0, qt + i * ldr + r0, sizeof(V8));
        std::memcpy(&q1, qt + i * ldr + r0 + 8, sizeof(V8));
        for (int64_t j = 0; j < kKeys; ++j) {
          const float k = kf[(j0 + j) * ldk + i];
          acc[j][0] += q0 * k;
          acc[j][1] += q1 * k;
        }
      }
      for (int64_t j = 0; j < kKeys; ++j) {
        const V8 a0 = acc[j][0] * scale;
        const V8 a1 = acc[j][1] * scale;
        std::memcpy(st + (j0 + j) * ldr + r0, &a0, sizeof(V8));
        std::memcpy(st + (j0 + j) * ldr + r0 + 8, &a1, sizeof(V8));
      }
    }
  }
}

typedef int32_t I8 __attribute__((vector_size(32)));

// exp(x) for x <= 0 (Cephes' expf polynomial, separate multiplies and adds); 0 below -87 (the
// f32 normal range ends near -87.3), which includes -inf.
// (In place through a pointer: passing V8 by value would change the ABI without AVX.)
DSK_NORM_INLINE void exp_nonpositive(V8* xp) {
  V8 x = *xp;
  const I8 tiny = x < -87.0f;
  x = tiny ? V8{} - 87.0f : x;
  // Round x * log2(e) to an integer n with the 1.5 * 2^23 trick (exact for |n| < 2^22).
  const V8 t = x * 1.44269504088896341f + 12582912.0f;
  const V8 n = t - 12582912.0f;
  I8 ti;
  std::memcpy(&ti, &t, sizeof(ti));
  const I8 ni = ti - 0x4B400000;  // the bits of 1.5 * 2^23
  V8 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V8 y = p * (r * r) + r + 1.0f;
  // 2^n for n in [-126, 0]: an exact power of two built from its exponent bits.
  const I8 sbits = (ni + 127) << 23;
  V8 scale;
  std::memcpy(&scale, &sbits, sizeof(scale));
  const V8 e = y * scale;
  *xp = tiny ? V8{} : e;
}

// Lanes over 8 rows at a time, the AVX-512 set's algorithm in portable form.
DSK_NORM_CLONES void softmax(float* st, int64_t ldr, int64_t nk, int64_t key0, const int32_t* lim,
                             bool masked, float* m, float* l, float* alpha) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < ldr; r += 8) {
    V8 m_old;
    I8 limv;
    std::memcpy(&m_old, m + r, sizeof(V8));
    std::memcpy(&limv, lim + r, sizeof(I8));
    V8 mx = m_old;
    for (int64_t j = 0; j < nk; ++j) {
      V8 sv;
      std::memcpy(&sv, st + j * ldr + r, sizeof(V8));
      if (masked) {
        const I8 live = limv > static_cast<int32_t>(key0 + j);
        sv = live ? sv : V8{} - inf;
        std::memcpy(st + j * ldr + r, &sv, sizeof(V8));
      }
      mx = mx < sv ? sv : mx;
    }
    // Rows that still saw no key subtract 0: exp(-inf - 0) = 0 gives p = 0 and alpha = 0.
    const V8 m_use = mx == -inf ? V8{} : mx;
    V8 a = m_old - m_use;
    exp_nonpositive(&a);
    V8 sum = V8{};
    for (int64_t j = 0; j < nk; ++j) {
      V8 sv;
      std::memcpy(&sv, st + j * ldr + r, sizeof(V8));
      V8 e = sv - m_use;
      exp_nonpositive(&e);
      std::memcpy(st + j * ldr + r, &e, sizeof(V8));
      sum += e;
    }
    V8 lv;
    std::memcpy(&lv, l + r, sizeof(V8));
    lv = lv * a + sum;
    std::memcpy(l + r, &lv, sizeof(V8));
    std::memcpy(m + r, &mx, sizeof(V8));
    std::memcpy(alpha + r, &a, sizeof(V8));
  }
}

// Blocks of 4 rows x 16 columns (2 rows at the end), then single rows.
DSK_NORM_CLONES void pv(float* o, int64_t ldo, int64_t rows, const float* alpha, const float* st,
                        int64_t ldr, const float* kf, int64_t ldk, int64_t nk, int64_t dvp) {
  int64_t r0 = 0;
  constexpr int64_t kRows = 4;
  for (; r0 + kRows <= rows; r0 += kRows) {
    for (int64_t c0 = 0; c0 < dvp; c0 += 16) {
      V8 acc[kRows][2];
      for (int64_t i = 0; i < kRows; ++i) {
        std::memcpy(&acc[i][0], o + (r0 + i) * ldo + c0, sizeof(V8));
        std::memcpy(&acc[i][1], o + (r0 + i) * ldo + c0 + 8, sizeof(V8));
        acc[i][0] *= alpha[r0 + i];
        acc[i][1] *= alpha[r0 + i];
      }
      for (int64_t j = 0; j < nk; ++j) {
        V8 v0;
        V8 v1;
        std::memcpy(&v0, kf + j * ldk + c0, sizeof(V8));
        std::memcpy(&v1, kf + j * ldk + c0 + 8, sizeof(V8));
        for (int64_t i = 0; i < kRows; ++i) {
          const float p = st[j * ldr + r0 + i];
          acc[i][0] += v0 * p;
          acc[i][1] += v1 * p;
        }
      }
      for (int64_t i = 0; i < kRows; ++i) {
        std::memcpy(o + (r0 + i) * ldo + c0, &acc[i][0], sizeof(V8));
        std::memcpy(o + (r0 + i) * ldo + c0 + 8, &acc[i][1], sizeof(V8));
      }
    }
  }
  for (int64_t r = r0; r < rows; ++r) {
    float* orow = o + r * ldo;
    const float a = alpha[r];
    for (int64_t c = 0; c < dvp; ++c) orow[c] *= a;
    for (int64_t j = 0; j < nk; ++j) {
      const float p = st[j * ldr + r];
      const float* v = kf + j * ldk;
      for (int64_t c = 0; c < dvp; ++c) orow[c] += p * v[c];
    }
  }
}

std::atomic<int> g_forced{static_cast<int>(MlaIsa::kAuto)};

}  // namespace

const MlaKernels& mla_kernels_generic() {
  static const MlaKernels k = {"generic", pack_q, load_tile, qk, softmax, pv};
  return k;
}

void mla_decode_force_isa(MlaIsa isa) { g_forced.store(static_cast<int>(isa)); }

const MlaKernels& mla_kernels() {
  const auto forced = static_cast<MlaIsa>(g_forced.load());
  if (forced == MlaIsa::kGeneric) return mla_kernels_generic();
  if (const MlaKernels* k = mla_kernels_avx512()) return *k;
  return mla_kernels_generic();
}

}  // namespace cpu
}  // namespace dsk
