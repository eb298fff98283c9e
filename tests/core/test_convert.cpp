// Tests of lib/common/convert.h against references that share no code with it: codes are decoded
// with ldexp from the format definitions, and rounding is checked by searching a sorted table of
// every finite value of the format.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ios>
#include <limits>
#include <random>
#include <vector>

#include "common/convert.h"

namespace {

struct Format {
  const char* name;
  int bits;
  int exp_bits;
  int mant_bits;
  int bias;
  bool finite_only;  // e4m3fn: no inf, only the all-ones code is NaN
  bool saturates;    // fp8: finite values past the largest saturate instead of becoming inf
  uint32_t (*encode)(float);
  float (*decode)(uint32_t);
};

const Format kF16 = {"f16",
                     16,
                     5,
                     10,
                     15,
                     false,
                     false,
                     [](float x) -> uint32_t { return dsk::f32_to_f16(x); },
                     [](uint32_t c) { return dsk::f16_to_f32(static_cast<uint16_t>(c)); }};
const Format kBf16 = {"bf16",
                      16,
                      8,
                      7,
                      127,
                      false,
                      false,
                      [](float x) -> uint32_t { return dsk::f32_to_bf16(x); },
                      [](uint32_t c) { return dsk::bf16_to_f32(static_cast<uint16_t>(c)); }};
const Format kE4m3 = {"e4m3fn",
                      8,
                      4,
                      3,
                      7,
                      true,
                      true,
                      [](float x) -> uint32_t { return dsk::f32_to_e4m3fn(x); },
                      [](uint32_t c) { return dsk::e4m3fn_to_f32(static_cast<uint8_t>(c)); }};
const Format kE5m2 = {"e5m2",
                      8,
                      5,
                      2,
                      15,
                      false,
                      true,
                      [](float x) -> uint32_t { return dsk::f32_to_e5m2(x); },
                      [](uint32_t c) { return dsk::e5m2_to_f32(static_cast<uint8_t>(c)); }};
const Format* const kFormats[] = {&kF16, &kBf16, &kE4m3, &kE5m2};

uint32_t sign_bit(const Format& f) { return 1u << (f.bits - 1); }

bool ref_is_nan(const Format& f, uint32_t code) {
  const uint32_t mag = code & (sign_bit(f) - 1);
  const uint32_t exp_all = (1u << f.exp_bits) - 1;
  const uint32_t e = mag >> f.mant_bits;
  const uint32_t m = mag & ((1u << f.mant_bits) - 1);
  if (f.finite_only) return e == exp_all && m == (1u << f.mant_bits) - 1;
  return e == exp_all && m != 0;
}

// The value of a code from the format definition alone.
double ref_decode(const Format& f, uint32_t code) {
  const bool neg = (code & sign_bit(f)) != 0;
  const uint32_t mag = code & (sign_bit(f) - 1);
  const int e = static_cast<int>(mag >> f.mant_bits);
  const int m = static_cast<int>(mag & ((1u << f.mant_bits) - 1));
  double v;
  if (ref_is_nan(f, code)) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (!f.finite_only && e == (1 << f.exp_bits) - 1) {
    v = std::numeric_limits<double>::infinity();
  } else if (e == 0) {
    v = std::ldexp(m, 1 - f.bias - f.mant_bits);
  } else {
    v = std::ldexp((1 << f.mant_bits) + m, e - f.bias - f.mant_bits);
  }
  return neg ? -v : v;
}

struct Entry {
  double value;
  uint32_t code;
};

// Every non-negative finite value of the format, ascending. For formats that overflow to inf,
// one extra entry 2^(emax+1) with the inf code stands for "the next value": rounding treats the
// overflow threshold as the midpoint to it, with inf as the even side.
std::vector<Entry> positive_table(const Format& f) {
  std::vector<Entry> t;
  for (uint32_t code = 0; code < sign_bit(f); ++code) {
    const double v = ref_decode(f, code);
    if (std::isfinite(v)) t.push_back({v, code});
  }
  std::sort(t.begin(), t.end(), [](const Entry& a, const Entry& b) { return a.value < b.value; });
  if (!f.saturates) {
    const uint32_t inf_code = ((1u << f.exp_bits) - 1) << f.mant_bits;
    const int emax = (1 << f.exp_bits) - 2 - f.bias;
    t.push_back({std::ldexp(1.0, emax + 1), inf_code});
  }
  return t;
}

// Nearest-even encoding of a non-NaN x by table search (long double holds every f32 and int64).
uint32_t ref_encode(const Format& f, const std::vector<Entry>& table, long double x) {
  const uint32_t sign = std::signbit(x) ? sign_bit(f) : 0u;
  const long double a = std::fabs(x);
  const auto it = std::lower_bound(table.begin(), table.end(), a,
                                   [](const Entry& e, long double v) { return e.value < v; });
  if (it == table.end()) {
    // Past the last entry: inf for overflowing formats (inf input included), else saturation,
    // except that e5m2 keeps an infinite input infinite.
    if (!f.saturates || (std::isinf(x) && !f.finite_only)) {
      return sign | ((((1u << f.exp_bits) - 1) << f.mant_bits));
    }
    return sign | table.back().code;
  }
  if (it->value == a || it == table.begin()) return sign | it->code;
  const Entry& up = *it;
  const Entry& down = *(it - 1);
  const long double twice = 2 * a;
  const long double sum = static_cast<long double>(down.value) + up.value;
  if (twice < sum) return sign | down.code;
  if (twice > sum) return sign | up.code;
  return sign | ((down.code & 1u) == 0 ? down.code : up.code);
}

float bits_to_f32(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

uint32_t f32_to_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

}  // namespace

TEST_CASE("convert: every narrow code decodes to its defined value and re-encodes to itself") {
  for (const Format* fp : kFormats) {
    const Format& f = *fp;
    CAPTURE(f.name);
    int decode_errors = 0;
    int roundtrip_errors = 0;
    uint32_t first_decode = 0;
    uint32_t first_roundtrip = 0;
    for (uint32_t code = 0; code < 2 * sign_bit(f); ++code) {
      const double want = ref_decode(f, code);
      const float got = f.decode(code);
      const bool neg = (code & sign_bit(f)) != 0;
      const bool ok = std::isnan(want) ? (std::isnan(got) && std::signbit(got) == neg)
                                       : (static_cast<double>(got) == want &&
                                          std::signbit(got) == std::signbit(want));
      if (!ok && decode_errors++ == 0) first_decode = code;
      const uint32_t back = f.encode(got);
      const bool back_ok = ref_is_nan(f, code)
                               ? (ref_is_nan(f, back) && ((back & sign_bit(f)) != 0) == neg)
                               : back == code;
      if (!back_ok && roundtrip_errors++ == 0) first_roundtrip = code;
    }
    CHECK_MESSAGE(decode_errors == 0, "first bad code 0x" << std::hex << first_decode);
    CHECK_MESSAGE(roundtrip_errors == 0, "first bad code 0x" << std::hex << first_roundtrip);
  }
}

TEST_CASE("convert: values around every midpoint of adjacent codes round to nearest even") {
  for (const Format* fp : kFormats) {
    const Format& f = *fp;
    CAPTURE(f.name);
    const std::vector<Entry> table = positive_table(f);
    int errors = 0;
    double first_mid = 0;
    for (size_t i = 0; i + 1 < table.size(); ++i) {
      const Entry& lo = table[i];
      const Entry& hi = table[i + 1];
      const double mid_d = (lo.value + hi.value) / 2;
      const float mid = static_cast<float>(mid_d);
      REQUIRE(static_cast<double>(mid) == mid_d);  // narrow midpoints are exact in f32
      const float below = std::nextafter(mid, 0.0f);
      const float above = std::nextafter(mid, HUGE_VALF);
      const uint32_t even = (lo.code & 1u) == 0 ? lo.code : hi.code;
      for (const uint32_t sign : {0u, sign_bit(f)}) {
        const float s = sign != 0 ? -1.0f : 1.0f;
        const bool ok = f.encode(s * below) == (sign | lo.code) &&
                        f.encode(s * above) == (sign | hi.code) &&
                        f.encode(s * mid) == (sign | even);
        if (!ok && errors++ == 0) first_mid = mid_d;
      }
    }
    CHECK_MESSAGE(errors == 0, "first bad midpoint " << first_mid);
  }
}

TEST_CASE("convert: f32 sweep matches a table-search reference") {
  // Every upper half-word (all exponents and signs, NaN/inf patterns included) with the lower
  // half-words that sit on bf16 midpoints plus random ones: about 2.4 million inputs.
  std::mt19937 rng(12345);
  std::vector<std::vector<Entry>> tables;
  for (const Format* fp : kFormats) tables.push_back(positive_table(*fp));
  int errors[4] = {0, 0, 0, 0};
  uint32_t first[4] = {0, 0, 0, 0};
  for (uint32_t hi = 0; hi < 0x10000u; ++hi) {
    uint32_t lows[36] = {0x0000u, 0x7FFFu, 0x8000u, 0x8001u};
    for (int r = 4; r < 36; ++r) lows[r] = rng() & 0xFFFFu;
    for (const uint32_t low : lows) {
      const uint32_t bits = (hi << 16) | low;
      const float x = bits_to_f32(bits);
      for (int k = 0; k < 4; ++k) {
        const Format& f = *kFormats[k];
        const uint32_t got = f.encode(x);
        bool ok;
        if (std::isnan(x)) {
          ok = ref_is_nan(f, got) && ((got & sign_bit(f)) != 0) == std::signbit(x);
        } else {
          ok = got == ref_encode(f, tables[k], x);
        }
        if (!ok && errors[k]++ == 0) first[k] = bits;
      }
    }
  }
  for (int k = 0; k < 4; ++k) {
    CAPTURE(kFormats[k]->name);
    CHECK_MESSAGE(errors[k] == 0, "first bad f32 0x" << std::hex << first[k]);
  }
}

TEST_CASE("convert: saturation, overflow, NaN and signed zero") {
  const float inf = HUGE_VALF;
  // e4m3fn: no inf; everything past 448 saturates, 0x7F is NaN.
  CHECK(dsk::f32_to_e4m3fn(448.0f) == 0x7E);
  CHECK(dsk::f32_to_e4m3fn(464.0f) == 0x7E);
  CHECK(dsk::f32_to_e4m3fn(1e30f) == 0x7E);
  CHECK(dsk::f32_to_e4m3fn(inf) == 0x7E);
  CHECK(dsk::f32_to_e4m3fn(-inf) == 0xFE);
  CHECK(dsk::f32_to_e4m3fn(-500.0f) == 0xFE);
  CHECK(dsk::e4m3fn_to_f32(0x7E) == 448.0f);
  CHECK(std::isnan(dsk::e4m3fn_to_f32(0x7F)));
  CHECK(std::isnan(dsk::e4m3fn_to_f32(0xFF)));
  CHECK(std::signbit(dsk::e4m3fn_to_f32(0xFF)));
  // e5m2: finite values saturate to 57344, inf stays inf.
  CHECK(dsk::f32_to_e5m2(57344.0f) == 0x7B);
  CHECK(dsk::f32_to_e5m2(60000.0f) == 0x7B);
  CHECK(dsk::f32_to_e5m2(FLT_MAX) == 0x7B);
  CHECK(dsk::f32_to_e5m2(-1e30f) == 0xFB);
  CHECK(dsk::f32_to_e5m2(inf) == 0x7C);
  CHECK(dsk::f32_to_e5m2(-inf) == 0xFC);
  CHECK(dsk::e5m2_to_f32(0x7C) == inf);
  // f16 and bf16 overflow to inf at the midpoint past the largest value.
  CHECK(dsk::f32_to_f16(65504.0f) == 0x7BFF);
  CHECK(dsk::f32_to_f16(65519.0f) == 0x7BFF);
  CHECK(dsk::f32_to_f16(65520.0f) == 0x7C00);
  CHECK(dsk::f32_to_f16(-65520.0f) == 0xFC00);
  CHECK(dsk::f32_to_f16(1e10f) == 0x7C00);
  CHECK(dsk::f32_to_bf16(FLT_MAX) == 0x7F80);
  CHECK(dsk::f32_to_bf16(bits_to_f32(0x7F7F7FFFu)) == 0x7F7F);
  // NaN stays NaN with its sign, even when the payload is only in bits a truncation drops.
  const float snan_low = bits_to_f32(0x7F800001u);
  const float neg_nan = bits_to_f32(0xFFC00000u);
  CHECK(dsk::f32_to_f16(snan_low) == 0x7E00);
  CHECK(dsk::f32_to_bf16(snan_low) == 0x7FC0);
  CHECK(dsk::f32_to_f16(neg_nan) == 0xFE00);
  CHECK(dsk::f32_to_bf16(neg_nan) == 0xFFC0);
  CHECK(dsk::f32_to_e4m3fn(snan_low) == 0x7F);
  CHECK(dsk::f32_to_e4m3fn(neg_nan) == 0xFF);
  CHECK(dsk::f32_to_e5m2(snan_low) == 0x7E);
  CHECK(dsk::f32_to_e5m2(neg_nan) == 0xFE);
  CHECK(std::isnan(dsk::f16_to_f32(0x7C01)));
  CHECK(std::isnan(dsk::bf16_to_f32(0xFF81)));
  CHECK(std::isnan(dsk::e5m2_to_f32(0xFD)));
  // Signed zeros, and tiny values flushing to a zero of their sign.
  CHECK(dsk::f32_to_f16(-0.0f) == 0x8000);
  CHECK(dsk::f32_to_bf16(-0.0f) == 0x8000);
  CHECK(dsk::f32_to_e4m3fn(-0.0f) == 0x80);
  CHECK(dsk::f32_to_e5m2(-0.0f) == 0x80);
  CHECK(dsk::f32_to_f16(-1e-30f) == 0x8000);
  CHECK(dsk::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // half the smallest subnormal: even
  CHECK(dsk::f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(dsk::f32_to_e4m3fn(std::ldexp(1.0f, -10)) == 0x00);  // half of 2^-9
  CHECK(dsk::f32_to_e4m3fn(std::ldexp(3.0f, -10)) == 0x02);  // 1.5 * 2^-9: tie to even code 2
  CHECK(dsk::f32_to_bf16(FLT_TRUE_MIN) == 0x0000);
  CHECK(dsk::f32_to_bf16(bits_to_f32(0x00008000u)) == 0x0000);  // tie, even
  CHECK(dsk::f32_to_bf16(bits_to_f32(0x00018000u)) == 0x0002);  // tie, even
  CHECK(dsk::f32_to_bf16(bits_to_f32(0x007FFFFFu)) == 0x0080);  // up into the smallest normal
  CHECK(std::signbit(dsk::f16_to_f32(0x8000)));
  CHECK(std::signbit(dsk::e5m2_to_f32(0x80)));
}

namespace {

// convert_element with typed arguments.
template <typename Src, typename Dst>
Dst convert(int32_t src_id, Src v, int32_t dst_id) {
  Dst out;
  std::memset(&out, 0xAB, sizeof(out));
  dsk::convert_element(src_id, &v, dst_id, &out);
  return out;
}

template <typename Dst>
Dst from_f64(int32_t dst_id, double v) {
  Dst out;
  std::memset(&out, 0xAB, sizeof(out));
  dsk::store_from_f64(dst_id, v, &out);
  return out;
}

}  // namespace

TEST_CASE("convert: float to integer and bool truncate, saturate, map NaN to 0") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = HUGE_VALF;
  auto to_i32 = [](float v) { return convert<float, int32_t>(DSK_DTYPE_F32, v, DSK_DTYPE_INT32); };
  auto to_i64 = [](float v) { return convert<float, int64_t>(DSK_DTYPE_F32, v, DSK_DTYPE_INT64); };
  auto to_u8 = [](float v) { return convert<float, uint8_t>(DSK_DTYPE_F32, v, DSK_DTYPE_UINT8); };
  auto to_bool = [](float v) { return convert<float, uint8_t>(DSK_DTYPE_F32, v, DSK_DTYPE_BOOL); };
  CHECK(to_i32(3.7f) == 3);
  CHECK(to_i32(-3.7f) == -3);
  CHECK(to_i32(2147483520.0f) == 2147483520);
  CHECK(to_i32(2147483648.0f) == INT32_MAX);
  CHECK(to_i32(-2147483648.0f) == INT32_MIN);
  CHECK(to_i32(-3e9f) == INT32_MIN);
  CHECK(to_i32(inf) == INT32_MAX);
  CHECK(to_i32(-inf) == INT32_MIN);
  CHECK(to_i32(nan) == 0);
  CHECK(to_i64(1e19f) == INT64_MAX);
  CHECK(to_i64(-1e19f) == INT64_MIN);
  CHECK(to_i64(-9223372036854775808.0f) == INT64_MIN);
  CHECK(to_i64(9223371487098961920.0f) == 9223371487098961920LL);
  CHECK(to_i64(-123456.9f) == -123456);
  CHECK(to_i64(nan) == 0);
  CHECK(to_u8(-0.5f) == 0);
  CHECK(to_u8(-3.0f) == 0);
  CHECK(to_u8(12.9f) == 12);
  CHECK(to_u8(255.9f) == 255);
  CHECK(to_u8(300.0f) == 255);
  CHECK(to_u8(-inf) == 0);
  CHECK(to_u8(nan) == 0);
  CHECK(to_bool(0.0f) == 0);
  CHECK(to_bool(-0.0f) == 0);
  CHECK(to_bool(1e-45f) == 1);
  CHECK(to_bool(-2.0f) == 1);
  CHECK(to_bool(nan) == 1);
  // Narrow sources go through their exact f32 value.
  CHECK(convert<uint16_t, int32_t>(DSK_DTYPE_BF16, 0xC2F7, DSK_DTYPE_INT32) == -123);  // -123.5
  CHECK(convert<uint8_t, int32_t>(DSK_DTYPE_FP8_E4M3FN, 0x7E, DSK_DTYPE_INT32) == 448);
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_FP8_E4M3FN, 0x7F, DSK_DTYPE_UINT8) == 0);  // NaN
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_FP8_E4M3FN, 0x7F, DSK_DTYPE_BOOL) == 1);   // NaN
  CHECK(convert<uint16_t, int64_t>(DSK_DTYPE_F16, 0xFC00, DSK_DTYPE_INT64) == INT64_MIN);
}

TEST_CASE("convert: integer and bool sources") {
  CHECK(convert<int64_t, int32_t>(DSK_DTYPE_INT64, 5000000000LL, DSK_DTYPE_INT32) == INT32_MAX);
  CHECK(convert<int64_t, int32_t>(DSK_DTYPE_INT64, -5000000000LL, DSK_DTYPE_INT32) == INT32_MIN);
  CHECK(convert<int64_t, int32_t>(DSK_DTYPE_INT64, -7, DSK_DTYPE_INT32) == -7);
  CHECK(convert<int32_t, uint8_t>(DSK_DTYPE_INT32, -5, DSK_DTYPE_UINT8) == 0);
  CHECK(convert<int32_t, uint8_t>(DSK_DTYPE_INT32, 300, DSK_DTYPE_UINT8) == 255);
  CHECK(convert<int64_t, uint8_t>(DSK_DTYPE_INT64, INT64_MIN, DSK_DTYPE_UINT8) == 0);
  CHECK(convert<uint8_t, int32_t>(DSK_DTYPE_UINT8, 200, DSK_DTYPE_INT32) == 200);
  CHECK(convert<int32_t, int64_t>(DSK_DTYPE_INT32, INT32_MIN, DSK_DTYPE_INT64) == INT32_MIN);
  CHECK(convert<int32_t, uint8_t>(DSK_DTYPE_INT32, -1, DSK_DTYPE_BOOL) == 1);
  CHECK(convert<int64_t, uint8_t>(DSK_DTYPE_INT64, 0, DSK_DTYPE_BOOL) == 0);
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_UINT8, 0, DSK_DTYPE_BOOL) == 0);
  // A bool byte reads as 0 or 1, whatever nonzero value it holds.
  CHECK(convert<uint8_t, int32_t>(DSK_DTYPE_BOOL, 2, DSK_DTYPE_INT32) == 1);
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_BOOL, 7, DSK_DTYPE_UINT8) == 1);
  CHECK(convert<uint8_t, float>(DSK_DTYPE_BOOL, 9, DSK_DTYPE_F32) == 1.0f);
  CHECK(convert<uint8_t, uint16_t>(DSK_DTYPE_BOOL, 1, DSK_DTYPE_BF16) == 0x3F80);
  CHECK(convert<uint8_t, uint16_t>(DSK_DTYPE_BOOL, 0, DSK_DTYPE_F16) == 0x0000);
  // Integer -> f32 rounds to nearest even.
  CHECK(convert<int64_t, float>(DSK_DTYPE_INT64, (1LL << 24) + 1, DSK_DTYPE_F32) == 16777216.0f);
  CHECK(convert<int64_t, float>(DSK_DTYPE_INT64, (1LL << 24) + 3, DSK_DTYPE_F32) == 16777220.0f);
  CHECK(convert<int32_t, float>(DSK_DTYPE_INT32, INT32_MAX, DSK_DTYPE_F32) == 2147483648.0f);
  CHECK(convert<int64_t, float>(DSK_DTYPE_INT64, INT64_MIN, DSK_DTYPE_F32) ==
        -9223372036854775808.0f);
  // Integer -> narrow float is one rounding: 2^24 + 2^16 + 1 is above the bf16 midpoint, though
  // rounding it to f32 first would land exactly on the midpoint and then tie down to 2^24.
  CHECK(convert<int64_t, uint16_t>(DSK_DTYPE_INT64, (1LL << 24) + (1LL << 16) + 1,
                                   DSK_DTYPE_BF16) == 0x4B81);
  CHECK(convert<int32_t, uint16_t>(DSK_DTYPE_INT32, 65519, DSK_DTYPE_F16) == 0x7BFF);
  CHECK(convert<int32_t, uint16_t>(DSK_DTYPE_INT32, 65520, DSK_DTYPE_F16) == 0x7C00);
  CHECK(convert<int64_t, uint16_t>(DSK_DTYPE_INT64, INT64_MIN, DSK_DTYPE_F16) == 0xFC00);
  CHECK(convert<int32_t, uint8_t>(DSK_DTYPE_INT32, 1000, DSK_DTYPE_FP8_E4M3FN) == 0x7E);
  CHECK(convert<int32_t, uint8_t>(DSK_DTYPE_INT32, -1000, DSK_DTYPE_FP8_E4M3FN) == 0xFE);
  CHECK(convert<int64_t, uint8_t>(DSK_DTYPE_INT64, INT64_MAX, DSK_DTYPE_FP8_E5M2) == 0x7B);
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_UINT8, 17, DSK_DTYPE_FP8_E4M3FN) == 0x58);  // 16
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_UINT8, 19, DSK_DTYPE_FP8_E4M3FN) == 0x5A);  // 20

  // Random integers of every magnitude against the table reference.
  std::mt19937_64 rng(7);
  int errors = 0;
  int64_t first = 0;
  for (const Format* fp : kFormats) {
    const Format& f = *fp;
    const std::vector<Entry> table = positive_table(f);
    const int32_t id = fp == &kF16    ? DSK_DTYPE_F16
                       : fp == &kBf16 ? DSK_DTYPE_BF16
                       : fp == &kE4m3 ? DSK_DTYPE_FP8_E4M3FN
                                      : DSK_DTYPE_FP8_E5M2;
    for (int i = 0; i < 40000; ++i) {
      // Odd draws sit one away from a short pattern shifted up, i.e. on or next to midpoints.
      const int64_t v = i % 2 == 0 ? static_cast<int64_t>(rng()) >> (rng() % 64)
                                   : static_cast<int64_t>((rng() % 4096) << (rng() % 51)) +
                                         static_cast<int64_t>(rng() % 3) - 1;
      uint16_t wide = 0;
      uint8_t narrow = 0;
      dsk::store_from_i64(id, v, f.bits == 16 ? static_cast<void*>(&wide) : &narrow);
      const uint32_t got = f.bits == 16 ? wide : narrow;
      if (got != ref_encode(f, table, static_cast<long double>(v)) && errors++ == 0) first = v;
    }
  }
  CHECK_MESSAGE(errors == 0, "first bad integer " << first);
}

TEST_CASE("convert: equal dtypes copy bits; narrow to narrow rounds once through f32") {
  const float payload_nan = bits_to_f32(0x7FA12345u);
  CHECK(f32_to_bits(convert<float, float>(DSK_DTYPE_F32, payload_nan, DSK_DTYPE_F32)) ==
        0x7FA12345u);
  CHECK(convert<uint16_t, uint16_t>(DSK_DTYPE_F16, 0x7D01, DSK_DTYPE_F16) == 0x7D01);
  CHECK(convert<uint8_t, uint8_t>(DSK_DTYPE_BOOL, 2, DSK_DTYPE_BOOL) == 2);
  CHECK(convert<int64_t, int64_t>(DSK_DTYPE_INT64, INT64_MIN, DSK_DTYPE_INT64) == INT64_MIN);
  // bf16 1.0078125 (0x3F81) is exactly 1 + 2^-7: representable in f16, rounds to 1.0 in e4m3.
  CHECK(convert<uint16_t, uint16_t>(DSK_DTYPE_BF16, 0x3F81, DSK_DTYPE_F16) == 0x3C08);
  CHECK(convert<uint16_t, uint8_t>(DSK_DTYPE_BF16, 0x3F81, DSK_DTYPE_FP8_E4M3FN) == 0x38);
  CHECK(convert<uint16_t, uint16_t>(DSK_DTYPE_F16, 0x7BFF, DSK_DTYPE_BF16) == 0x4780);  // 65536
  CHECK(convert<uint16_t, uint8_t>(DSK_DTYPE_F16, 0x7C00, DSK_DTYPE_FP8_E4M3FN) == 0x7E);
  CHECK(convert<uint16_t, uint8_t>(DSK_DTYPE_F16, 0xFC00, DSK_DTYPE_FP8_E5M2) == 0xFC);
  CHECK(convert<uint8_t, uint16_t>(DSK_DTYPE_FP8_E4M3FN, 0xFF, DSK_DTYPE_F16) == 0xFE00);
  CHECK(convert<uint16_t, float>(DSK_DTYPE_BF16, 0x0001, DSK_DTYPE_F32) == FLT_TRUE_MIN * 65536);

  // store_from_f32 is convert_element from an f32 source, for every destination.
  std::mt19937 rng(3);
  int mismatches = 0;
  for (int i = 0; i < 100000; ++i) {
    const float x = bits_to_f32(static_cast<uint32_t>(rng()));
    for (int32_t id = 1; id < DSK_DTYPE_COUNT; ++id) {
      uint64_t a = 0;
      uint64_t b = 0;
      dsk::store_from_f32(id, x, &a);
      dsk::convert_element(DSK_DTYPE_F32, &x, id, &b);
      if (a != b) ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("convert: store_from_f64") {
  CHECK(from_f64<float>(DSK_DTYPE_F32, 0.1) == 0.1f);
  CHECK(from_f64<float>(DSK_DTYPE_F32, 1e300) == HUGE_VALF);
  CHECK(from_f64<float>(DSK_DTYPE_F32, -1e-300) == 0.0f);
  CHECK(std::signbit(from_f64<float>(DSK_DTYPE_F32, -1e-300)));
  CHECK(from_f64<uint16_t>(DSK_DTYPE_F16, 1e300) == 0x7C00);
  CHECK(from_f64<uint16_t>(DSK_DTYPE_BF16, -1.0) == 0xBF80);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_FP8_E4M3FN, 1e300) == 0x7E);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_FP8_E5M2, -HUGE_VAL) == 0xFC);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(f32_to_bits(from_f64<float>(DSK_DTYPE_F32, nan)) == 0x7FC00000u);
  CHECK(f32_to_bits(from_f64<float>(DSK_DTYPE_F32, -nan)) == 0xFFC00000u);
  CHECK(from_f64<uint16_t>(DSK_DTYPE_F16, -nan) == 0xFE00);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_FP8_E4M3FN, nan) == 0x7F);
  // Integer targets truncate the double itself: (float)3.9999999999 would be 4.
  CHECK(from_f64<int32_t>(DSK_DTYPE_INT32, 3.9999999999) == 3);
  CHECK(from_f64<int32_t>(DSK_DTYPE_INT32, -2147483648.9) == INT32_MIN);
  CHECK(from_f64<int32_t>(DSK_DTYPE_INT32, 2147483647.9) == INT32_MAX);
  CHECK(from_f64<int32_t>(DSK_DTYPE_INT32, 1e20) == INT32_MAX);
  CHECK(from_f64<int64_t>(DSK_DTYPE_INT64, 9007199254740993.0) == 9007199254740992LL);
  CHECK(from_f64<int64_t>(DSK_DTYPE_INT64, -1e30) == INT64_MIN);
  CHECK(from_f64<int64_t>(DSK_DTYPE_INT64, nan) == 0);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_UINT8, 254.99) == 254);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_UINT8, -0.99) == 0);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_UINT8, nan) == 0);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_BOOL, nan) == 1);
  CHECK(from_f64<uint8_t>(DSK_DTYPE_BOOL, 1e-300) == 1);  // nonzero as a double
  CHECK(from_f64<uint8_t>(DSK_DTYPE_BOOL, -0.0) == 0);
}

TEST_CASE("convert: dtype ids") {
  struct Case {
    DLDataType type;
    int32_t id;
    size_t size;
  };
  const Case cases[] = {
      {{kDLFloat, 32, 1}, DSK_DTYPE_F32, 4},
      {{kDLFloat, 16, 1}, DSK_DTYPE_F16, 2},
      {{kDLBfloat, 16, 1}, DSK_DTYPE_BF16, 2},
      {{kDLFloat8_e4m3fn, 8, 1}, DSK_DTYPE_FP8_E4M3FN, 1},
      {{kDLFloat8_e5m2, 8, 1}, DSK_DTYPE_FP8_E5M2, 1},
      {{kDLInt, 32, 1}, DSK_DTYPE_INT32, 4},
      {{kDLInt, 64, 1}, DSK_DTYPE_INT64, 8},
      {{kDLUInt, 8, 1}, DSK_DTYPE_UINT8, 1},
      {{kDLBool, 8, 1}, DSK_DTYPE_BOOL, 1},
  };
  for (const Case& c : cases) {
    CAPTURE(c.id);
    CHECK(dsk::dtype_id_of(c.type) == c.id);
    CHECK(dsk::dtype_id_size(c.id) == c.size);
    CHECK(dsk::dtype_id_is_float(c.id) == (c.id <= DSK_DTYPE_FP8_E5M2));
  }
  CHECK(dsk::dtype_id_of({kDLFloat, 32, 2}) == 0);
  CHECK(dsk::dtype_id_of({kDLFloat, 64, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLInt, 16, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLInt, 8, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLUInt, 32, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLBool, 1, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLFloat8_e4m3fnuz, 8, 1}) == 0);
  CHECK(dsk::dtype_id_of({kDLFloat8_e5m2, 8, 0}) == 0);
  CHECK(dsk::dtype_id_size(0) == 0);
  CHECK(dsk::dtype_id_size(DSK_DTYPE_COUNT) == 0);
  CHECK_FALSE(dsk::dtype_id_is_float(0));
  CHECK_FALSE(dsk::dtype_id_is_float(DSK_DTYPE_INT32));
}
