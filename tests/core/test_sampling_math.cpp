// Unit tests of lib/common/sampling_math.h: the exact top-p target, the Gumbel bounds, the order
// keys, the weight shift, penalties on hand-worked values and the Philox layout.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "common/philox.h"
#include "common/sampling_math.h"

namespace {

using dsk::f32_bits;
using dsk::f32_from_bits;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

__extension__ typedef unsigned __int128 u128;

// ceil(p * total) with 128-bit integers: p = mp 2^-sh.
uint64_t top_p_target_wide(float p, uint64_t total) {
  const uint32_t bits = f32_bits(p);
  const uint32_t e = (bits >> 23) & 0xFFu;
  const u128 mp = e == 0 ? (bits & 0x7FFFFFu) : ((bits & 0x7FFFFFu) | 0x800000u);
  const int sh = e == 0 ? 149 : 150 - static_cast<int>(e);
  const u128 prod = mp * total;
  if (sh >= 128) return prod != 0 ? 1 : 0;
  const u128 q = prod >> sh;
  const u128 mask = (static_cast<u128>(1) << sh) - 1;
  return static_cast<uint64_t>(q) + ((prod & mask) != 0 ? 1u : 0u);
}

}  // namespace

TEST_CASE("sampling_math: top_p_target is ceil(p * total) exactly") {
  std::mt19937_64 rng(1);
  const float special_p[] = {1e-45f, 1e-38f, 1.17549435e-38f, 0.5f,          0.95f, 0.99999994f,
                             1e-10f, 0.1f,   0.3333333f,      1.0f / 1024.0f};
  const uint64_t special_t[] = {0u,
                                1u,
                                2u,
                                3u,
                                (uint64_t{1} << 46),
                                (uint64_t{1} << 63) - 1u,
                                0xFFFFFFFFu,
                                0x100000000u,
                                123456789012345ull};
  for (float p : special_p)
    for (uint64_t t : special_t) CHECK(dsk::sample_top_p_target(p, t) == top_p_target_wide(p, t));
  for (int i = 0; i < 200000; ++i) {
    float p;
    do {
      p = f32_from_bits(static_cast<uint32_t>(rng()) & 0x3F7FFFFFu);
    } while (!(p > 0.0f && p < 1.0f));
    const uint64_t t = rng() >> (1 + rng() % 63);
    REQUIRE(dsk::sample_top_p_target(p, t) == top_p_target_wide(p, t));
  }
  CHECK(dsk::sample_top_p_target(0.5f, 3) == 2);
  CHECK(dsk::sample_top_p_target(0.5f, 4) == 2);
  CHECK(dsk::sample_top_p_target(1e-45f, 1) == 1);
}

TEST_CASE("sampling_math: Gumbel noise lies within [kGumbelLower, kGumbelUpper] for every word") {
  // Every distinct u ((word >> 9) takes 2^23 values).
  float lo = kInf, hi = -kInf;
  for (uint32_t h = 0; h < (1u << 23); ++h) {
    const float g = dsk::sample_gumbel(h << 9);
    lo = std::fmin(lo, g);
    hi = std::fmax(hi, g);
  }
  CHECK(lo >= dsk::kGumbelLower);
  CHECK(hi <= dsk::kGumbelUpper);
  // The extremes are at the extreme words.
  CHECK(dsk::sample_gumbel(0u) == lo);
  CHECK(dsk::sample_gumbel(0xFFFFFFFFu) == hi);
  CHECK(dsk::sample_gumbel(0u) == doctest::Approx(-std::log(-std::log(std::ldexp(1.0, -24)))));
  CHECK(dsk::sample_gumbel(0xFFFFFFFFu) ==
        doctest::Approx(-std::log(-std::log(1.0 - std::ldexp(1.0, -24)))).epsilon(1e-5));
  // The low 9 bits do not matter.
  CHECK(dsk::sample_gumbel(0x12345600u) == dsk::sample_gumbel(0x123457FFu));
  // Monotone near both ends.
  for (uint32_t h = 1; h < 4096; ++h) {
    CHECK(dsk::sample_gumbel(h << 9) >= dsk::sample_gumbel((h - 1) << 9));
    const uint32_t top = (1u << 23) - h;
    CHECK(dsk::sample_gumbel(top << 9) >= dsk::sample_gumbel((top - 1) << 9));
  }
}

TEST_CASE("sampling_math: order keys are monotone, -0 and +0 tie") {
  const float vals[] = {-kInf,  -3.4e38f, -1.0f, -1e-45f, -0.0f,   0.0f,
                        1e-45f, 1e-38f,   1.0f,  2.0f,    3.4e38f, kInf};
  for (float a : vals) {
    for (float b : vals) {
      const uint32_t ka = dsk::sample_key(a);
      const uint32_t kb = dsk::sample_key(b);
      if (a < b) CHECK(ka < kb);
      if (a == b) CHECK(ka == kb);
      if (a > b) CHECK(ka > kb);
    }
    const float back = dsk::sample_key_value(dsk::sample_key(a));
    CHECK(back == a);
  }
  CHECK(dsk::sample_key(-0.0f) == dsk::sample_key(0.0f));
  CHECK(f32_bits(dsk::sample_key_value(dsk::sample_key(-0.0f))) == 0u);
  std::mt19937 rng(2);
  for (int i = 0; i < 100000; ++i) {
    const float a = f32_from_bits(static_cast<uint32_t>(rng()));
    const float b = f32_from_bits(static_cast<uint32_t>(rng()));
    if (a != a || b != b) continue;
    CHECK((a < b) == (dsk::sample_key(a) < dsk::sample_key(b)));
  }
  // (z desc, id asc).
  CHECK(dsk::sample_before(2.0f, 5, 1.0f, 0));
  CHECK(dsk::sample_before(1.0f, 0, 1.0f, 5));
  CHECK(!dsk::sample_before(1.0f, 5, 1.0f, 0));
  CHECK(dsk::sample_before(-0.0f, 1, 0.0f, 2));
  CHECK(!dsk::sample_before(0.0f, 2, -0.0f, 1));
  CHECK(dsk::sample_before(-1e30f, 9, -kInf, 0));
}

TEST_CASE("sampling_math: weight shift and weights") {
  CHECK(dsk::sample_weight_shift(1) == 62);
  CHECK(dsk::sample_weight_shift(2) == 61);
  CHECK(dsk::sample_weight_shift(3) == 61);
  CHECK(dsk::sample_weight_shift(129280) == 46);
  CHECK(dsk::sample_weight_shift(131071) == 46);
  CHECK(dsk::sample_weight_shift(131072) == 45);
  CHECK(dsk::sample_weight_shift(2147483647) == 32);
  for (int64_t v : {int64_t{1}, int64_t{7}, int64_t{129280}, int64_t{2147483647}}) {
    const int32_t s = dsk::sample_weight_shift(v);
    // V full weights still fit in 63 bits.
    const bool fits = (static_cast<u128>(v) << s) < (static_cast<u128>(1) << 63);
    CHECK(fits);
    CHECK(dsk::sample_weight_of(1.0f, s) == uint64_t{1} << s);
    CHECK(dsk::sample_weight_of(0.0f, s) == 0u);
    CHECK(dsk::sample_normalizer(uint64_t{1} << s, s) == 1.0f);
    CHECK(dsk::sample_log_normalizer(uint64_t{1} << s, s) == 0.0f);
  }
  CHECK(dsk::sample_weight_of(0.75f, 46) == (uint64_t{3} << 44));
  CHECK(dsk::sample_weight_of(0x1p-47f, 46) == 0u);  // truncated
  CHECK(dsk::sample_weight_of(0x1.8p-46f, 46) == 1u);
  CHECK(dsk::sample_rel_exp(3.0f, 3.0f) == 1.0f);
  CHECK(dsk::sample_rel_exp(-kInf, 3.0f) == 0.0f);
  // The prune bound used by the CPU: below -(s ln2 + 1) every weight is 0.
  for (int32_t s : {32, 46, 62}) {
    const float thr = -(static_cast<float>(s) * 0.6931472f + 1.0f);
    CHECK(dsk::sample_weight_of(dsk::det_exp(thr), s) == 0u);
    CHECK(dsk::sample_weight_of(dsk::det_exp(std::nextafter(thr, 0.0f)), s) == 0u);
  }
}

TEST_CASE("sampling_math: penalties, bias and temperature on hand-worked values") {
  // Repetition: positive divided, non-positive multiplied.
  CHECK(dsk::sample_penalize(2.0f, true, 0, 2.0f, 0.0f, 0.0f) == 1.0f);
  CHECK(dsk::sample_penalize(-2.0f, true, 0, 2.0f, 0.0f, 0.0f) == -4.0f);
  CHECK(dsk::sample_penalize(0.0f, true, 0, 2.0f, 0.0f, 0.0f) == 0.0f);
  CHECK(dsk::sample_penalize(2.0f, false, 0, 2.0f, 5.0f, 5.0f) == 2.0f);
  // Frequency and presence: x - f c - p (output occurrences only).
  CHECK(dsk::sample_penalize(1.0f, true, 3, 1.0f, 0.5f, 0.25f) == -0.75f);
  CHECK(dsk::sample_penalize(3.0f, true, 2, 1.5f, 0.5f, 1.0f) == 0.0f);  // 3/1.5 - 1 - 1
  CHECK(dsk::sample_penalize(-1.0f, true, 1, 3.0f, 1.0f, 1.0f) == -5.0f);
  // Neutral values give the same bits (also -0).
  CHECK(f32_bits(dsk::sample_penalize(-0.0f, true, 4, 1.0f, 0.0f, 0.0f)) == 0x80000000u);
  CHECK(dsk::sample_penalize(-kInf, true, 4, 2.0f, 1.0f, 1.0f) == -kInf);
  // 1/3 rounded once per step, no FMA: x - f*c with f*c rounded.
  const float f = 0.1f;
  const float want = (1.0f - static_cast<float>(f * 3.0f)) - 0.2f;
  CHECK(f32_bits(dsk::sample_penalize(1.0f, true, 3, 1.0f, f, 0.2f)) == f32_bits(want));
  CHECK(dsk::sample_add_bias(1.0f, 2.5f) == 3.5f);
  CHECK(dsk::sample_add_bias(-kInf, 5.0f) == -kInf);
  CHECK(dsk::sample_temper(3.0f, 0.0f) == 3.0f);
  CHECK(dsk::sample_temper(3.0f, 2.0f) == 1.5f);
  CHECK(dsk::sample_temper(1e38f, 0.1f) == kInf);
  CHECK(dsk::sample_bad_logit(kNaN));
  CHECK(dsk::sample_bad_logit(kInf));
  CHECK(!dsk::sample_bad_logit(-kInf));
  CHECK(!dsk::sample_bad_logit(3.4e38f));
  CHECK(dsk::sample_logprob(1.0f, 3.0f, 0.5f) == -2.5f);
  CHECK(dsk::sample_prob(0.5f, 2.0f) == 0.25f);
  CHECK(dsk::sample_min_p_keeps(0.05f, 0.05f));
  CHECK(!dsk::sample_min_p_keeps(0.0499f, 0.05f));
}

TEST_CASE("sampling_math: parameter ranges") {
  using dsk::sample_param_ok;
  CHECK(sample_param_ok(dsk::kSampleParamTemperature, 0.0f));
  CHECK(!sample_param_ok(dsk::kSampleParamTemperature, -1e-30f));
  CHECK(!sample_param_ok(dsk::kSampleParamTemperature, kInf));
  CHECK(!sample_param_ok(dsk::kSampleParamTemperature, kNaN));
  CHECK(sample_param_ok(dsk::kSampleParamTopP, 1.0f));
  CHECK(!sample_param_ok(dsk::kSampleParamTopP, 0.0f));
  CHECK(!sample_param_ok(dsk::kSampleParamTopP, 1.0000001f));
  CHECK(!sample_param_ok(dsk::kSampleParamTopP, kNaN));
  CHECK(sample_param_ok(dsk::kSampleParamMinP, 0.0f));
  CHECK(sample_param_ok(dsk::kSampleParamMinP, 1.0f));
  CHECK(!sample_param_ok(dsk::kSampleParamMinP, kNaN));
  CHECK(!sample_param_ok(dsk::kSampleParamRepetition, 0.0f));
  CHECK(sample_param_ok(dsk::kSampleParamRepetition, 1e-30f));
  CHECK(sample_param_ok(dsk::kSampleParamFrequency, -2.0f));
  CHECK(!sample_param_ok(dsk::kSampleParamPresence, -kInf));
  CHECK(dsk::sample_top_k_ok(0));
  CHECK(!dsk::sample_top_k_ok(-1));
}

TEST_CASE("sampling_math: Philox layout of the Gumbel and acceptance draws") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t seed = rng();
    const uint64_t offset = i % 3 == 0 ? rng() : rng() % 1000;
    const auto token = static_cast<uint32_t>(rng());
    const dsk::Philox4 ph = dsk::philox4x32_10(
        token / 4, 0u, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    CHECK(f32_bits(dsk::sample_gumbel_at(seed, offset, token)) ==
          f32_bits(dsk::sample_gumbel(ph.v[token % 4])));
    const dsk::Philox4 pa = dsk::philox4x32_10(
        token / 4, 1u, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    const float u = dsk::sample_accept_uniform(seed, offset, token);
    CHECK(u == static_cast<float>(pa.v[token % 4] >> 8) * 0x1p-24f);
    CHECK(u >= 0.0f);
    CHECK(u < 1.0f);
  }
  // The u of the Gumbel draw: (2 (word >> 9) + 1) 2^-24, exact.
  CHECK(dsk::sample_gumbel(0u) == -dsk::det_log(-dsk::det_log(0x1p-24f)));
  CHECK(dsk::sample_gumbel(0xFFFFFFFFu) == -dsk::det_log(-dsk::det_log(1.0f - 0x1p-24f)));
}
