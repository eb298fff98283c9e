// Tests of lib/common/fp8_block.h (the FP8 block scale math shared by the CPU and CUDA paths)
// against references computed in double with ldexp/frexp, which share no code with it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ios>
#include <limits>
#include <random>

#include "common/fp8_block.h"

namespace {

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

bool is_pow2(double v) {
  int e = 0;
  return v > 0 && std::frexp(v, &e) == 0.5;
}

}  // namespace

TEST_CASE("fp8_block: tile counts") {
  CHECK(dsk::fp8::blocks(0) == 0);
  CHECK(dsk::fp8::blocks(1) == 1);
  CHECK(dsk::fp8::blocks(128) == 1);
  CHECK(dsk::fp8::blocks(129) == 2);
  CHECK(dsk::fp8::blocks(300) == 3);
  CHECK(dsk::fp8::blocks(7168) == 56);
}

TEST_CASE("fp8_block: amax is |x| by the sign bit and NaN wins in any order") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(dsk::fp8::abs_bits(-3.5f) == 3.5f);
  CHECK(bits(dsk::fp8::abs_bits(-0.0f)) == 0u);
  CHECK(dsk::fp8::amax_step(2.0f, -5.0f) == 5.0f);
  CHECK(dsk::fp8::amax_step(5.0f, 2.0f) == 5.0f);
  CHECK(dsk::fp8::amax_step(0.0f, -inf) == inf);
  CHECK(std::isnan(dsk::fp8::amax_step(1.0f, nan)));
  CHECK(std::isnan(dsk::fp8::amax_step(nan, 1.0f)));
  CHECK(std::isnan(dsk::fp8::amax_step(dsk::fp8::amax_step(0.0f, -nan), inf)));
  CHECK(std::isnan(dsk::fp8::nan_max(inf, nan)));
  CHECK(dsk::fp8::is_finite(3.0e38f));
  CHECK(dsk::fp8::is_finite(from_bits(1)));
  CHECK_FALSE(dsk::fp8::is_finite(inf));
  CHECK_FALSE(dsk::fp8::is_finite(-inf));
  CHECK_FALSE(dsk::fp8::is_finite(nan));
}

TEST_CASE("fp8_block: worked scales") {
  // amax / 448 in f32.
  CHECK(dsk::fp8::tile_scale(448.0f, false) == 1.0f);
  CHECK(dsk::fp8::tile_scale(896.0f, false) == 2.0f);
  CHECK(dsk::fp8::tile_scale(1.0f, false) == 1.0f / 448.0f);
  CHECK(dsk::fp8::tile_scale(3.5f, false) == 0.0078125f);  // 3.5 / 448 = 2^-7 exactly
  CHECK(bits(dsk::fp8::tile_scale(0.0f, false)) == 0u);
  CHECK(bits(dsk::fp8::tile_scale(0.0f, true)) == 0u);
  // Power-of-two rounding goes up: 300/448 = 0.67 -> 1, 224/448 = 0.5 stays, 1/448 -> 2^-8.
  CHECK(dsk::fp8::tile_scale(300.0f, true) == 1.0f);
  CHECK(dsk::fp8::tile_scale(224.0f, true) == 0.5f);
  CHECK(dsk::fp8::tile_scale(1.0f, true) == 0.00390625f);
  CHECK(dsk::fp8::tile_scale(448.0f, true) == 1.0f);
  CHECK(dsk::fp8::tile_scale(449.0f, true) == 2.0f);
}

TEST_CASE("fp8_block: round_up_pow2 is exact, including subnormals and the top") {
  CHECK(dsk::fp8::round_up_pow2(1.0f) == 1.0f);
  CHECK(dsk::fp8::round_up_pow2(1.5f) == 2.0f);
  CHECK(dsk::fp8::round_up_pow2(0.75f) == 1.0f);
  CHECK(dsk::fp8::round_up_pow2(std::nextafter(1.0f, 2.0f)) == 2.0f);
  CHECK(dsk::fp8::round_up_pow2(std::nextafter(1.0f, 0.0f)) == 1.0f);
  CHECK(bits(dsk::fp8::round_up_pow2(0.0f)) == 0u);
  // Subnormals: b * 2^-149 -> the next single-bit pattern, up to the smallest normal.
  CHECK(bits(dsk::fp8::round_up_pow2(from_bits(1))) == 1u);
  CHECK(bits(dsk::fp8::round_up_pow2(from_bits(3))) == 4u);
  CHECK(bits(dsk::fp8::round_up_pow2(from_bits(0x400000u))) == 0x400000u);
  CHECK(bits(dsk::fp8::round_up_pow2(from_bits(0x400001u))) == 0x800000u);
  CHECK(bits(dsk::fp8::round_up_pow2(from_bits(0x7FFFFFu))) == 0x800000u);
  // Past 2^127 there is no finite power of two.
  CHECK(dsk::fp8::round_up_pow2(std::ldexp(1.5f, 127)) == std::numeric_limits<float>::infinity());
  CHECK(dsk::fp8::round_up_pow2(std::ldexp(1.0f, 127)) == std::ldexp(1.0f, 127));
  CHECK(std::isinf(dsk::fp8::round_up_pow2(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(dsk::fp8::round_up_pow2(std::numeric_limits<float>::quiet_NaN())));

  // Random finite positives (normal and subnormal): a power of two p with s <= p < 2 s.
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const auto b = static_cast<uint32_t>(rng() % 0x7F000000u + 1u);  // (0, 2^127)
    const float s = from_bits(b);
    const double p = dsk::fp8::round_up_pow2(s);
    REQUIRE(is_pow2(p));
    REQUIRE(p >= static_cast<double>(s));
    REQUIRE(p < 2.0 * static_cast<double>(s));
  }
}

TEST_CASE("fp8_block: quantize and dequantize") {
  // Zero tiles: scale 0 gives +0, never NaN.
  CHECK(dsk::fp8::quantize(0.0f, 0.0f) == 0u);
  CHECK(dsk::fp8::quantize(-0.0f, 0.0f) == 0u);
  CHECK(dsk::fp8::dequantize(0u, 0.0f) == 0.0f);
  // The tile maximum maps to 448 (0x7E), with its sign.
  CHECK(dsk::fp8::quantize(448.0f, 1.0f) == 0x7Eu);
  CHECK(dsk::fp8::quantize(-448.0f, 1.0f) == 0xFEu);
  CHECK(dsk::fp8::quantize(-3.5f, dsk::fp8::tile_scale(3.5f, false)) == 0xFEu);
  // Saturation rather than NaN past 448 (a pow2-free subnormal scale can overshoot).
  CHECK(dsk::fp8::quantize(1.0e6f, 1.0f) == 0x7Eu);
  // Representable values round-trip: 1.0 = 0x38, 0.5 = 0x30, smallest subnormal 2^-9 = 0x01.
  CHECK(dsk::fp8::quantize(1.0f, 1.0f) == 0x38u);
  CHECK(dsk::fp8::quantize(0.5f, 1.0f) == 0x30u);
  CHECK(dsk::fp8::quantize(std::ldexp(1.0f, -9), 1.0f) == 0x01u);
  CHECK(dsk::fp8::dequantize(0x7Eu, 2.0f) == 896.0f);
  CHECK(dsk::fp8::dequantize(0xB8u, 0.25f) == -0.25f);
  // Every finite code times a power-of-two scale comes back exactly.
  for (uint32_t c = 0; c < 256; ++c) {
    if ((c & 0x7Fu) == 0x7Fu) continue;  // NaN codes
    const auto code = static_cast<uint8_t>(c);
    const float v = dsk::fp8::dequantize(code, 0.125f);
    if (v == 0.0f) continue;  // -0 quantizes to 0x80, +0 to 0x00: both zero
    CHECK(dsk::fp8::quantize(v, 0.125f) == code);
  }
}

TEST_CASE("fp8_block: the branch-free e4m3 rounding equals f32_to_e4m3fn for every non-NaN input") {
  // Every f32 pattern below 512 (everything above saturates to 448 in both), both signs, then
  // a sample of the rest, and the infinities.
  for (uint32_t b = 0; b < 0x44000000u; ++b) {
    const float v = from_bits(b);
    if (dsk::fp8::e4m3fn_from_non_nan(v) != dsk::f32_to_e4m3fn(v) ||
        dsk::fp8::e4m3fn_from_non_nan(-v) != dsk::f32_to_e4m3fn(-v)) {
      FAIL("differs at bits 0x" << std::hex << b);
    }
  }
  for (uint32_t b = 0x44000000u; b <= 0x7F800000u; b += 4099u) {
    const float v = from_bits(b);
    REQUIRE(dsk::fp8::e4m3fn_from_non_nan(v) == dsk::f32_to_e4m3fn(v));
    REQUIRE(dsk::fp8::e4m3fn_from_non_nan(-v) == dsk::f32_to_e4m3fn(-v));
  }
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(dsk::fp8::e4m3fn_from_non_nan(inf) == 0x7Eu);
  CHECK(dsk::fp8::e4m3fn_from_non_nan(-inf) == 0xFEu);
}
