// The AVX-512 FP8 quantizer (lib/cpu/fp8_quant_avx512.cpp) against the scalar
// fp8::e4m3fn_from_non_nan(v / scale) of lib/common/fp8_block.h, bit for bit: dsk_quant_fp8, the
// fp8 linear's activation tiles and the fp8 permute run it, and the CUDA kernels give the scalar
// code's bytes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ios>
#include <limits>
#include <random>
#include <vector>

#include "common/fp8_block.h"
#include "common/hd.h"
#include "cpu/fp8_quant.h"

namespace {

// Runs the kernel on v with `scale` and counts the codes that differ from the scalar ones (the
// first few are reported).
int64_t compare(const std::vector<float>& v, float scale) {
  std::vector<uint8_t> q(v.size() + 1, 0xAA);
  REQUIRE(dsk::cpu::fp8_quantize_avx512(v.data(), static_cast<int64_t>(v.size()), scale, q.data()));
  int64_t bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const uint8_t want = dsk::fp8::e4m3fn_from_non_nan(v[i] / scale);
    if (q[i] != want && bad++ < 5) {
      FAIL_CHECK("v = " << v[i] << " (0x" << std::hex << dsk::f32_bits(v[i]) << "), scale " << scale
                        << ": scalar 0x" << int{want} << ", avx512 0x" << int{q[i]});
    }
  }
  CHECK(q[v.size()] == 0xAA);  // nothing written past n
  return bad;
}

// The finite bit patterns first, first + step, ... <= last (NaN and inf skipped: the callers
// reject tiles holding them before quantizing), in chunks, with scale 1: then v / scale is v, so
// this covers the code conversion on every input it can meet.
int64_t compare_patterns(uint64_t first, uint64_t last, uint64_t step) {
  constexpr size_t kChunk = size_t{1} << 16;
  std::vector<float> v;
  v.reserve(kChunk);
  int64_t bad = 0;
  for (uint64_t p = first; p <= last; p += step) {
    const float x = dsk::f32_from_bits(static_cast<uint32_t>(p));
    if (std::isfinite(x)) v.push_back(x);
    if (v.size() == kChunk) {
      bad += compare(v, 1.0f);
      v.clear();
    }
  }
  if (!v.empty()) bad += compare(v, 1.0f);
  return bad;
}

}  // namespace

TEST_CASE("fp8 quant avx512: e4m3fn codes equal the scalar code's") {
  if (!dsk::cpu::fp8_have_avx512()) {
    MESSAGE("no AVX-512F/BW/VL on this CPU: the kernel does not run");
    return;
  }
  // Every 61st pattern (both signs), every 7th below 2^9 (|q| up to 448 and a little beyond,
  // subnormal codes, ties), and every pattern around the subnormal / normal boundary 2^-6 and
  // the saturation at 448 / 464.
  CHECK(compare_patterns(0, 0xFFFFFFFFu, 61) == 0);
  CHECK(compare_patterns(0, dsk::f32_bits(512.0f), 7) == 0);
  CHECK(compare_patterns(0x80000000u, dsk::f32_bits(-512.0f), 7) == 0);
  CHECK(compare_patterns(dsk::f32_bits(0x1p-7f), dsk::f32_bits(0x1p-5f), 1) == 0);
  CHECK(compare_patterns(dsk::f32_bits(-0x1p-7f), dsk::f32_bits(-0x1p-5f), 1) == 0);
  CHECK(compare_patterns(dsk::f32_bits(440.0f), dsk::f32_bits(470.0f), 1) == 0);
}

TEST_CASE("fp8 quant avx512: tile scales, partial vectors and overflowing quotients") {
  if (!dsk::cpu::fp8_have_avx512()) return;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Lengths around the 16-lane vectors (masked tails) and a whole tile.
  for (int64_t n : {0, 1, 5, 15, 16, 17, 31, 33, 100, 127, 128}) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = normal(rng) * 3.0f;
    float amax = 0.0f;
    for (float x : v) amax = std::max(amax, std::fabs(x));
    for (bool pow2 : {false, true}) {
      const float scale = dsk::fp8::tile_scale(amax, pow2);
      if (scale == 0.0f) continue;
      CHECK(compare(v, scale) == 0);
    }
  }
  // Scales that are not a tile's: tiny (quotients overflow to inf and saturate), subnormal,
  // huge (quotients in the subnormal codes and below).
  std::vector<float> v(200);
  for (float& x : v) x = normal(rng) * 100.0f;
  v[0] = std::numeric_limits<float>::max();
  v[1] = -std::numeric_limits<float>::max();
  v[2] = std::numeric_limits<float>::denorm_min();
  v[3] = -0.0f;
  v[4] = 0.0f;
  for (float scale : {1e-30f, 0x1p-140f, 3.0f / 448.0f, 0.5f, 1e3f, 1e30f}) {
    CHECK(compare(v, scale) == 0);
  }
  // Powers of two multiply by the reciprocal (exponent fields 1 .. 253) or divide (the rest):
  // every exponent, both signs, on values whose quotients cover the codes and saturate (for the
  // largest scales some values overflow to +-inf, which the kernel saturates as the scalar code
  // does; the callers never pass inf).
  for (int e = -149; e <= 127; ++e) {
    const float scale = std::ldexp(1.0f, e);
    std::vector<float> w(64);
    for (size_t i = 0; i < w.size(); ++i) w[i] = scale * (normal(rng) * 200.0f);
    w[0] = std::numeric_limits<float>::max();
    CHECK(compare(w, scale) == 0);
    CHECK(compare(w, -scale) == 0);
  }
  // A non-power-of-two scale on every 61st pattern (the division path; scale 1 above takes the
  // multiplication).
  std::vector<float> p;
  for (uint64_t b = 0; b <= 0xFFFFFFFFu; b += 61) {
    const float x = dsk::f32_from_bits(static_cast<uint32_t>(b));
    if (std::isfinite(x)) p.push_back(x);
  }
  CHECK(compare(p, 3.0f) == 0);
}

TEST_CASE("fp8 quant: the segment step takes the kernel or the scalar loop, same codes") {
  std::vector<float> v(130);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-500.0f, 500.0f);
  for (float& x : v) x = uni(rng);
  const float scale = dsk::fp8::tile_scale(500.0f, false);
  std::vector<char> q(v.size());
  dsk::cpu::fp8_quantize_segment(v.data(), static_cast<int64_t>(v.size()), scale, q.data(), 1);
  std::vector<char> strided(2 * v.size());
  dsk::cpu::fp8_quantize_segment(v.data(), static_cast<int64_t>(v.size()), scale, strided.data(),
                                 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint8_t want = dsk::fp8::e4m3fn_from_non_nan(v[i] / scale);
    CHECK(static_cast<uint8_t>(q[i]) == want);
    CHECK(static_cast<uint8_t>(strided[2 * i]) == want);
  }
  dsk::cpu::fp8_quantize_segment(v.data(), 7, 0.0f, q.data(), 1);  // an all-zero tile
  for (int i = 0; i < 7; ++i) CHECK(q[static_cast<size_t>(i)] == 0);
}

// Developer test (a minute or two): every finite f32 as a quotient.
TEST_CASE("fp8 quant avx512: all finite floats" * doctest::skip()) {
  if (!dsk::cpu::fp8_have_avx512()) return;
  CHECK(compare_patterns(0, 0xFFFFFFFFu, 1) == 0);
}
