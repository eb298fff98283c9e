// The AVX-512 det_exp kernels (lib/cpu/detmath_avx512.h) against the scalar det_exp
// (lib/common/detmath.h), bit for bit: the MoE gate's softmax and the sampler's exact paths rest
// on this equality.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ios>
#include <vector>

#include "common/detmath.h"
#include "common/hd.h"
#include "cpu/detmath_arrays.h"

namespace {

// Compares both kernels with det_exp on the bit patterns first, first + step, ... <= last;
// returns the number of differing values (the first few are reported).
int64_t compare_patterns(uint64_t first, uint64_t last, uint64_t step) {
  constexpr int64_t kChunk = 1 << 14;
  std::vector<float> x(kChunk);
  std::vector<float> general(kChunk);
  std::vector<float> in_range(kChunk);
  int64_t bad = 0;
  uint64_t pattern = first;
  while (pattern <= last) {
    int64_t n = 0;
    for (; n < kChunk && pattern <= last; pattern += step) {
      x[static_cast<size_t>(n++)] = dsk::f32_from_bits(static_cast<uint32_t>(pattern));
    }
    REQUIRE(dsk::cpu::det_exp_avx512_array(x.data(), n, false, general.data()));
    REQUIRE(dsk::cpu::det_exp_avx512_array(x.data(), n, true, in_range.data()));
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[static_cast<size_t>(i)];
      const uint32_t want = dsk::f32_bits(dsk::det_exp(v));
      const bool ranged = v >= -87.0f && v <= 88.0f;
      const bool ok = dsk::f32_bits(general[static_cast<size_t>(i)]) == want &&
                      (!ranged || dsk::f32_bits(in_range[static_cast<size_t>(i)]) == want);
      if (!ok && bad++ < 5) {
        FAIL_CHECK("x = " << v << " (0x" << std::hex << dsk::f32_bits(v) << std::dec
                          << "): det_exp " << dsk::det_exp(v) << ", avx512 "
                          << general[static_cast<size_t>(i)] << " / "
                          << in_range[static_cast<size_t>(i)]);
      }
    }
  }
  return bad;
}

}  // namespace

TEST_CASE("detmath avx512: det_exp on 16 lanes equals the scalar det_exp bit for bit") {
  if (!dsk::cpu::detmath_have_avx512()) {
    MESSAGE("no AVX-512F on this CPU: the kernels do not run");
    return;
  }
  // Every 61st bit pattern (both signs, NaN and inf included; the skipped test below takes all
  // of them), every 256th of +-[1/4, 1], and every pattern near the ends of the ranges, where the
  // scaling changes.
  CHECK(compare_patterns(0, 0xFFFFFFFFu, 61) == 0);
  CHECK(compare_patterns(dsk::f32_bits(0.25f), dsk::f32_bits(1.0f), 1 << 8) == 0);
  CHECK(compare_patterns(dsk::f32_bits(-1.0f), dsk::f32_bits(-0.25f), 1 << 8) == 0);
  CHECK(compare_patterns(dsk::f32_bits(86.0f), dsk::f32_bits(89.0f), 1) == 0);
  CHECK(compare_patterns(dsk::f32_bits(-88.0f), dsk::f32_bits(-86.0f), 1) == 0);
  CHECK(compare_patterns(dsk::f32_bits(-105.0f), dsk::f32_bits(-102.0f), 1) == 0);
  // Halfway points of k: x near (j + 1/2) ln 2.
  std::vector<float> x;
  for (int j = -150; j <= 128; ++j) {
    float f = static_cast<float>((j + 0.5) * 0.69314718055994530942);
    for (int i = 0; i < 64; ++i) f = std::nextafter(f, -200.0f);
    for (int i = 0; i < 128; ++i, f = std::nextafter(f, 200.0f)) x.push_back(f);
  }
  std::vector<float> general(x.size());
  std::vector<float> in_range(x.size());
  REQUIRE(dsk::cpu::det_exp_avx512_array(x.data(), static_cast<int64_t>(x.size()), false,
                                         general.data()));
  REQUIRE(dsk::cpu::det_exp_avx512_array(x.data(), static_cast<int64_t>(x.size()), true,
                                         in_range.data()));
  int64_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t want = dsk::f32_bits(dsk::det_exp(x[i]));
    bad += dsk::f32_bits(general[i]) != want ? 1 : 0;
    if (x[i] >= -87.0f && x[i] <= 88.0f) bad += dsk::f32_bits(in_range[i]) != want ? 1 : 0;
  }
  CHECK(bad == 0);
}

// Developer test (about a minute): every one of the 2^32 bit patterns.
TEST_CASE("detmath avx512: det_exp on all 2^32 floats" * doctest::skip()) {
  if (!dsk::cpu::detmath_have_avx512()) return;
  CHECK(compare_patterns(0, 0xFFFFFFFFu, 1) == 0);
}
