// Accuracy tests of lib/common/detmath.h against libm in double precision. (Bitwise CPU == CUDA
// agreement is tested where the CUDA kernels are; these pin the approximation quality.)
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "common/detmath.h"

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// Size of one f32 ulp at the magnitude of y (an exact value in double).
double f32_ulp(double y) {
  const double a = std::fabs(y);
  if (a < std::ldexp(1.0, -126)) return std::ldexp(1.0, -149);
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

struct WorstLog {
  double ulps = 0;
  float at = 0;
  void add(float x) {
    const double err = std::fabs(static_cast<double>(dsk::det_log(x)) - std::log(double{x})) /
                       f32_ulp(std::log(double{x}));
    if (err > ulps) {
      ulps = err;
      at = x;
    }
  }
};

}  // namespace

TEST_CASE("detmath: det_log is within 2 ulp from subnormals to FLT_MAX") {
  WorstLog worst;
  // A stride through every binade (about 17 million inputs, subnormals included)...
  for (uint32_t bits = 1; bits < 0x7F800000u; bits += 127) worst.add(from_bits(bits));
  // ...every float within 2^17 ulps of 1, where the result is tiny and cancellation would show...
  for (uint32_t bits = 0x3F800000u - (1u << 17); bits < 0x3F800000u + (1u << 17); ++bits) {
    worst.add(from_bits(bits));
  }
  // ...and the ends and powers of two.
  worst.add(FLT_TRUE_MIN);
  worst.add(FLT_MIN);
  worst.add(FLT_MAX);
  for (int e = -149; e < 128; ++e) worst.add(std::ldexp(1.0f, e));
  MESSAGE("det_log worst error " << worst.ulps << " ulp at " << worst.at);
  CHECK(worst.ulps <= 2.0);
}

TEST_CASE("detmath: det_log special values") {
  CHECK(dsk::det_log(1.0f) == 0.0f);
  CHECK_FALSE(std::signbit(dsk::det_log(1.0f)));
  CHECK(dsk::det_log(0.0f) == -HUGE_VALF);
  CHECK(dsk::det_log(-0.0f) == -HUGE_VALF);
  CHECK(dsk::det_log(HUGE_VALF) == HUGE_VALF);
  CHECK(std::isnan(dsk::det_log(-1.0f)));
  CHECK(std::isnan(dsk::det_log(std::nanf(""))));
  CHECK(dsk::det_log(2.0f) == 0x1.62e43p-1f);  // ln 2 correctly rounded
}

TEST_CASE("detmath: det_cos_2pi is within 3e-7 of cos(2 pi u) over the unit interval") {
  double worst = 0;
  float worst_u = 0;
  auto add = [&](float u) {
    const double err = std::fabs(static_cast<double>(dsk::det_cos_2pi(u)) -
                                 std::cos(kTwoPi * static_cast<double>(u)));
    if (err > worst) {
      worst = err;
      worst_u = u;
    }
  };
  // Every point of the 2^-24 grid random_value draws from, then arbitrary floats in [0, 1).
  for (uint32_t k = 0; k < (1u << 24); ++k) add(static_cast<float>(k) * 0x1p-24f);
  std::mt19937 rng(99);
  for (int i = 0; i < 1000000; ++i) add(from_bits(static_cast<uint32_t>(rng() % 0x3F800000u)));
  MESSAGE("det_cos_2pi worst error " << worst << " at u = " << worst_u);
  CHECK(worst <= 3e-7);
  CHECK(dsk::det_cos_2pi(0.0f) == 1.0f);
  CHECK(dsk::det_cos_2pi(0.5f) == -1.0f);
  CHECK(dsk::det_cos_2pi(0.25f) == 0.0f);
  CHECK(dsk::det_cos_2pi(0.75f) == 0.0f);
  CHECK(std::fabs(dsk::det_cos_2pi(0.125f) - 0x1.6a09e6p-1f) <= 1e-7f);  // sqrt(2)/2
}

TEST_CASE("detmath: det_exp is within 1 ulp, det_sigmoid within 2.5 ulp") {
  double worst_exp = 0;
  float worst_exp_at = 0;
  double worst_sub = 0;  // results below 2^-126, in units of the subnormal spacing
  double worst_sig = 0;
  float worst_sig_at = 0;
  auto add = [&](float x) {
    const double want = std::exp(double{x});
    const float got = dsk::det_exp(x);
    if (want > static_cast<double>(FLT_MAX) * (1.0 + 0x1p-25)) {
      CHECK(got == HUGE_VALF);
    } else {
      const double err = std::fabs(static_cast<double>(got) - want) / f32_ulp(want);
      if (want < std::ldexp(1.0, -126)) {
        if (err > worst_sub) worst_sub = err;
      } else if (err > worst_exp) {
        worst_exp = err;
        worst_exp_at = x;
      }
    }
    const double sig = 1.0 / (1.0 + std::exp(-double{x}));
    if (sig >= std::ldexp(1.0, -126)) {
      const double err = std::fabs(static_cast<double>(dsk::det_sigmoid(x)) - sig) / f32_ulp(sig);
      if (err > worst_sig) {
        worst_sig = err;
        worst_sig_at = x;
      }
    }
  };
  // A stride through every binade of both signs up to the overflow threshold...
  for (uint32_t bits = 0; bits < 0x42B40000u; bits += 61) {
    add(from_bits(bits));
    add(from_bits(bits | 0x80000000u));
  }
  // ...and every float in [-1, 1] near the reduction boundaries k = 0, +-1 (|x| ~ ln2 / 2).
  for (uint32_t bits = 0x3EB17218u - 4096; bits < 0x3EB17218u + 4096; ++bits) {
    add(from_bits(bits));
    add(from_bits(bits | 0x80000000u));
  }
  MESSAGE("det_exp worst error " << worst_exp << " ulp at " << worst_exp_at << ", subnormal "
                                 << worst_sub << "; det_sigmoid " << worst_sig << " ulp at "
                                 << worst_sig_at);
  CHECK(worst_exp <= 1.0);
  CHECK(worst_sub <= 1.0);
  CHECK(worst_sig <= 2.5);
}

TEST_CASE("detmath: det_exp and det_sigmoid special values") {
  CHECK(dsk::det_exp(0.0f) == 1.0f);
  CHECK(dsk::det_exp(-0.0f) == 1.0f);
  CHECK(dsk::det_exp(1.0f) == 0x1.5bf0a8p+1f);  // e correctly rounded
  CHECK(dsk::det_exp(HUGE_VALF) == HUGE_VALF);
  CHECK(dsk::det_exp(-HUGE_VALF) == 0.0f);
  CHECK(dsk::det_exp(89.0f) == HUGE_VALF);
  CHECK(dsk::det_exp(88.72284f) == HUGE_VALF);  // just above ln(FLT_MAX)
  CHECK(dsk::det_exp(88.72283f) < HUGE_VALF);   // just below
  CHECK(dsk::det_exp(-103.0f) > 0.0f);          // subnormal
  CHECK(dsk::det_exp(-104.5f) == 0.0f);
  CHECK(std::isnan(dsk::det_exp(std::nanf(""))));
  CHECK(dsk::det_sigmoid(0.0f) == 0.5f);
  CHECK(dsk::det_sigmoid(HUGE_VALF) == 1.0f);
  CHECK(dsk::det_sigmoid(-HUGE_VALF) == 0.0f);
  CHECK(dsk::det_sigmoid(100.0f) == 1.0f);
  CHECK(dsk::det_sigmoid(-100.0f) == 0.0f);
  CHECK(std::isnan(dsk::det_sigmoid(std::nanf(""))));
}
