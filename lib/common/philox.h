// philox.h - the Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11), identical on host and device.
//
// Counter-based means draw i is a pure function of (key, counter): each thread of a kernel and each
// element of the CPU loop computes its own numbers, so the fill order never changes the values.
#ifndef DSK_LIB_COMMON_PHILOX_H_
#define DSK_LIB_COMMON_PHILOX_H_

#include <stdint.h>

#include "common/hd.h"

namespace dsk {

struct Philox4 {
  uint32_t v[4];
};

// High word of the 64-bit product a * b. Integer products are exact, so the device intrinsic and
// the portable form agree bit for bit; the intrinsic spares the device a 64-bit multiply.
DSK_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

// Philox4x32 with 10 rounds: counter (c0, c1, c2, c3), key (k0, k1). Returns four 32-bit words.
DSK_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                             uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u;
  constexpr uint32_t kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    const uint32_t hi0 = mulhi32(kMul0, c0);
    const uint32_t hi1 = mulhi32(kMul1, c2);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c1 = kMul1 * c2;
    c3 = kMul0 * c0;
    c0 = n0;
    c2 = n2;
  }
  Philox4 out;
  out.v[0] = c0;
  out.v[1] = c1;
  out.v[2] = c2;
  out.v[3] = c3;
  return out;
}

}  // namespace dsk

#endif  // DSK_LIB_COMMON_PHILOX_H_
