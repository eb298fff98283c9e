// Tests of lib/common/random_value.h: the Philox word layout of dsk_fill_random, the distributions'
// statistics, and golden values that pin the exact bits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/random_value.h"

namespace {

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

constexpr uint64_t kSeed = 0x0123456789ABCDEFull;
constexpr uint64_t kOffset = 0x1122334455667788ull;

// The Philox block j of the fill with kSeed and kOffset, built from the documented layout.
dsk::Philox4 block(uint64_t j) {
  return dsk::philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32),
                            static_cast<uint32_t>(kOffset), static_cast<uint32_t>(kOffset >> 32),
                            static_cast<uint32_t>(kSeed), static_cast<uint32_t>(kSeed >> 32));
}

}  // namespace

TEST_CASE("random_value: uniform element 4j + l is word l of Philox block j") {
  for (const uint64_t j :
       {0ull, 1ull, 12345ull, 0xFFFFFFFFull, 0x100000000ull, 0x3FFFFFFFFFFFull}) {
    CAPTURE(j);
    const dsk::Philox4 w = block(j);
    for (uint64_t l = 0; l < 4; ++l) {
      // With a = 0, b = 1 the value is u itself, exactly.
      const float want = static_cast<float>(w.v[l] >> 8) / 16777216.0f;
      CHECK(bits_of(dsk::random_value(DSK_RANDOM_UNIFORM, kSeed, kOffset, 0.0f, 1.0f, 4 * j + l)) ==
            bits_of(want));
    }
  }
}

TEST_CASE("random_value: normal element 2j + h uses words 2h and 2h + 1 of Philox block j") {
  for (const uint64_t j : {0ull, 7ull, 0xFFFFFFFFull, 0x123456789ull}) {
    CAPTURE(j);
    const dsk::Philox4 w = block(j);
    for (uint64_t h = 0; h < 2; ++h) {
      const float u1 = static_cast<float>((w.v[2 * h] >> 8) + 1) / 16777216.0f;
      const float u2 = static_cast<float>(w.v[2 * h + 1] >> 8) / 16777216.0f;
      const float radius = std::sqrt(-2.0f * dsk::det_log(u1));
      const float want = 0.0f + 1.0f * (radius * dsk::det_cos_2pi(u2));
      CHECK(bits_of(dsk::random_value(DSK_RANDOM_NORMAL, kSeed, kOffset, 0.0f, 1.0f, 2 * j + h)) ==
            bits_of(want));
    }
  }
}

TEST_CASE(
    "random_value: seed and offset select other streams and an unknown distribution gives 0") {
  const float base = dsk::random_value(DSK_RANDOM_UNIFORM, 1, 0, 0.0f, 1.0f, 0);
  CHECK(base != dsk::random_value(DSK_RANDOM_UNIFORM, 2, 0, 0.0f, 1.0f, 0));
  CHECK(base != dsk::random_value(DSK_RANDOM_UNIFORM, 1ull | (1ull << 32), 0, 0.0f, 1.0f, 0));
  CHECK(base != dsk::random_value(DSK_RANDOM_UNIFORM, 1, 1, 0.0f, 1.0f, 0));
  CHECK(base != dsk::random_value(DSK_RANDOM_UNIFORM, 1, 1ull << 32, 0.0f, 1.0f, 0));
  CHECK(dsk::random_value(0, 1, 0, 5.0f, 6.0f, 0) == 0.0f);
  CHECK(dsk::random_value(3, 1, 0, 5.0f, 6.0f, 0) == 0.0f);
}

TEST_CASE("random_value: uniform draws lie between a and b with the right mean and variance") {
  // u < 1 always, but a + (b - a) * u is rounded to f32: when ulp(b) exceeds (b - a) * 2^-24 the
  // top draws round up to b itself (the third case hits it). So [a, b) holds only for ranges
  // such as [0, 1) and [-2, 3) where the rounding cannot reach b; [a, b] holds always.
  const int n = 1000000;
  const float lows[3] = {0.0f, -2.0f, 1000.0f};
  const float highs[3] = {1.0f, 3.0f, 1000.5f};
  const bool half_open[3] = {true, true, false};
  for (int c = 0; c < 3; ++c) {
    const float a = lows[c];
    const float b = highs[c];
    CAPTURE(a);
    CAPTURE(b);
    int outside = 0;
    int at_b = 0;
    double sum = 0;
    double sum_sq = 0;
    for (int i = 0; i < n; ++i) {
      const float v = dsk::random_value(DSK_RANDOM_UNIFORM, 42 + c, 0, a, b, i);
      if (!(v >= a && v <= b)) ++outside;
      if (v == b) ++at_b;
      const double t = (static_cast<double>(v) - a) / (static_cast<double>(b) - a);  // in [0, 1]
      sum += t;
      sum_sq += t * t;
    }
    CHECK(outside == 0);
    if (half_open[c]) CHECK(at_b == 0);
    const double mean = sum / n;
    const double var = sum_sq / n - mean * mean;
    // U(0,1): mean 1/2 with sd sqrt(1/12 / n); variance 1/12 with sd sqrt((1/80 - 1/144) / n).
    CHECK(std::fabs(mean - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    CHECK(std::fabs(var - 1.0 / 12) < 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  }
  // The largest u, 1 - 2^-24, stays below 1 for [0, 1).
  float largest = 0;
  for (int i = 0; i < n; ++i) {
    largest = std::max(largest, dsk::random_value(DSK_RANDOM_UNIFORM, 5, 0, 0.0f, 1.0f, i));
  }
  CHECK(largest < 1.0f);
}

TEST_CASE("random_value: normal draws pass moment and Kolmogorov-Smirnov checks") {
  const int n = 1000000;
  std::vector<double> v(n);
  double sum = 0;
  double sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    v[i] = dsk::random_value(DSK_RANDOM_NORMAL, 7, 3, 0.0f, 1.0f, i);
    sum += v[i];
    sum_sq += v[i] * v[i];
  }
  const double mean = sum / n;
  const double var = sum_sq / n - mean * mean;
  CHECK(std::fabs(mean) < 5 / std::sqrt(static_cast<double>(n)));
  CHECK(std::fabs(var - 1) < 5 * std::sqrt(2.0 / n));
  std::sort(v.begin(), v.end());
  double d = 0;
  for (int i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-v[i] / std::sqrt(2.0));
    d = std::max(d,
                 std::max(cdf - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - cdf));
  }
  MESSAGE("normal KS statistic " << d << " (0.001 critical value " << 1.95 / std::sqrt(n) << ")");
  CHECK(d < 1.95 / std::sqrt(static_cast<double>(n)));
  // a and b shift and scale.
  const float x = dsk::random_value(DSK_RANDOM_NORMAL, 7, 3, 0.0f, 1.0f, 5);
  CHECK(dsk::random_value(DSK_RANDOM_NORMAL, 7, 3, 10.0f, 2.0f, 5) == 10.0f + 2.0f * x);
}

// Golden bits. These values pin the cross-backend contract of dsk_fill_random: every backend must
// reproduce them exactly, and a change here is an incompatible change to the public RNG. They were
// generated once from this implementation after the Philox known-answer tests passed.
TEST_CASE("random_value: golden values for seed 42, offset 0") {
  const float uniform[8] = {0x1.39d5ep-1f,  0x1.dfd524p-2f, 0x1.2bf5p-4f,   0x1.5d0accp-2f,
                            0x1.f9b642p-1f, 0x1.4ee9bp-2f,  0x1.071eb4p-1f, 0x1.d13818p-2f};
  const float normal[8] = {-0x1.f0bcb4p-1f, -0x1.3c519ap+0f, -0x1.2bc02ap-4f, -0x1.1b4e64p+0f,
                           -0x1.590c9p-2f,  0x1.3043d4p-3f,  -0x1.84d9e2p-2f, -0x1.7fa11cp-1f};
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(bits_of(dsk::random_value(DSK_RANDOM_UNIFORM, 42, 0, 0.0f, 1.0f, i)) ==
          bits_of(uniform[i]));
    CHECK(bits_of(dsk::random_value(DSK_RANDOM_NORMAL, 42, 0, 0.0f, 1.0f, i)) ==
          bits_of(normal[i]));
  }
  // Non-trivial a, b, 64-bit seed, offset and index: exercises the evaluation order of both
  // formulas (an FMA anywhere changes these bits).
  const float uniform_ab[4] = {-0x1.a4259ep+0f, -0x1.7bd824p+0f, 0x1.72306p+1f, -0x1.af847p+0f};
  const float normal_ab[4] = {0x1.a72696p-1f, 0x1.b63c88p+0f, 0x1.2fff12p+1f, 0x1.7d173ap+0f};
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    const uint64_t index = 1000000007ull + i;
    CHECK(bits_of(dsk::random_value(DSK_RANDOM_UNIFORM, kSeed, kOffset, -2.5f, 3.1f, index)) ==
          bits_of(uniform_ab[i]));
    CHECK(bits_of(dsk::random_value(DSK_RANDOM_NORMAL, kSeed, kOffset, 1.5f, 0.3f, index)) ==
          bits_of(normal_ab[i]));
  }
}
