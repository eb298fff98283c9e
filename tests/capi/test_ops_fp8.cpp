// FP8 block quantization and the FP8 block-scaled linear layer (dsk_ops.h) on the CPU reference,
// against an independent reference written here: amax and scales in double (double rounding of a
// quotient or a product of f32 values is harmless, so (float)(double a / double b) is the f32
// division), e4m3fn rounding by searching a table of every finite value decoded from the format
// definition, and the linear layer summed in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::expect_error;
using ops_test::kFloats;
using ops_test::numel;

namespace {

// ---- independent e4m3fn reference ----

// Value of a non-negative e4m3fn magnitude code (0..126), from the format definition.
double e4m3_value(uint32_t mag) {
  const uint32_t e = mag >> 3;
  const uint32_t m = mag & 7u;
  if (e == 0) return std::ldexp(static_cast<double>(m), -9);
  return std::ldexp(1.0 + m / 8.0, static_cast<int>(e) - 7);
}

double code_value(uint8_t code) {
  const double v = e4m3_value(code & 0x7Fu);
  return (code & 0x80u) ? -v : v;
}

// Round to nearest e4m3fn, ties to the even code, saturating at 448; the sign is kept.
uint8_t ref_e4m3(double v) {
  const bool neg = std::signbit(v);
  const double a = std::fabs(v);
  uint32_t best = 0x7E;
  if (a < 448.0) {
    // The largest code whose value is <= a, then compare with the next one.
    uint32_t lo = 0;
    while (lo + 1 <= 0x7E && e4m3_value(lo + 1) <= a) ++lo;
    best = lo;
    if (lo < 0x7E) {
      const double dlo = a - e4m3_value(lo);
      const double dhi = e4m3_value(lo + 1) - a;
      if (dhi < dlo || (dhi == dlo && (lo & 1u) != 0)) best = lo + 1;
    }
  }
  return static_cast<uint8_t>((neg ? 0x80u : 0u) | best);
}

float ref_scale(double amax, bool pow2) {
  if (amax == 0.0) return 0.0f;
  const auto s = static_cast<float>(amax / 448.0);
  if (!pow2) return s;
  int e = 0;
  const double m = std::frexp(static_cast<double>(s), &e);
  return m == 0.5 ? s : static_cast<float>(std::ldexp(1.0, e));
}

uint8_t ref_quant(float x, float scale) {
  if (scale == 0.0f) return 0;
  return ref_e4m3(static_cast<float>(static_cast<double>(x) / scale));
}

// The f32 product q * scale.
float ref_dequant(uint8_t code, float scale) {
  return static_cast<float>(code_value(code) * static_cast<double>(scale));
}

// ---- host tensors over std::vector storage ----

struct Host {
  int32_t id = DSK_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // empty = row-major
  std::vector<uint8_t> bytes;
  Borrowed view() { return Borrowed(bytes.data(), shape, id, strides); }
};

size_t elem_size(int32_t id) { return dsk_dtype_size(dsk_test::dtype(id)); }

// A row-major host tensor.
Host host(std::vector<int64_t> shape, int32_t id) {
  Host h;
  h.id = id;
  h.shape = std::move(shape);
  h.bytes.assign(static_cast<size_t>(numel(h.shape)) * elem_size(id), 0);
  return h;
}

// A 2-D host tensor with explicit strides over enough storage.
Host strided(std::vector<int64_t> shape, std::vector<int64_t> strides, int32_t id) {
  Host h;
  h.id = id;
  int64_t span = 1;
  for (size_t d = 0; d < shape.size(); ++d) span += (shape[d] - 1) * strides[d];
  h.shape = std::move(shape);
  h.strides = std::move(strides);
  h.bytes.assign(static_cast<size_t>(span) * elem_size(id), 0);
  return h;
}

// Converts f32 values into a row-major host tensor of `id` (dsk_copy's rounding).
Host from_f32(dsk_context* ctx, const std::vector<float>& values, std::vector<int64_t> shape,
              int32_t id) {
  Host h = host(std::move(shape), id);
  std::vector<float> src = values;
  Borrowed s(src.data(), h.shape, DSK_DTYPE_F32);
  Borrowed d = h.view();
  REQUIRE(dsk_copy(ctx, &s, &d) == DSK_OK);
  return h;
}

// Element values of any host tensor as f32, in row-major index order.
std::vector<float> to_f32(dsk_context* ctx, Host& h) {
  const Borrowed s = h.view();
  return ops_test::to_f32(ctx, &s);
}

// Element (r, c) of a 2-D host tensor of 1-byte or f32 elements.
uint8_t byte_at(const Host& h, int64_t r, int64_t c) {
  const int64_t s0 = h.strides.empty() ? h.shape[1] : h.strides[0];
  const int64_t s1 = h.strides.empty() ? 1 : h.strides[1];
  return h.bytes[static_cast<size_t>(r * s0 + c * s1)];
}

float f32_at(const Host& h, int64_t r, int64_t c) {
  const int64_t s0 = h.strides.empty() ? h.shape[1] : h.strides[0];
  const int64_t s1 = h.strides.empty() ? 1 : h.strides[1];
  float v;
  std::memcpy(&v, h.bytes.data() + (r * s0 + c * s1) * 4, 4);
  return v;
}

// Random values whose magnitude changes per 128-column tile (and row band), with zeros mixed in.
std::vector<float> tile_values(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> mag(-12, 12);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  std::vector<int> m(static_cast<size_t>((cols + 127) / 128 + 1));
  for (int64_t r = 0; r < rows; ++r) {
    if (r % 64 == 0) {
      for (int& x : m) x = mag(rng);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const float x = u(rng);
      v[static_cast<size_t>(r * cols + c)] =
          (rng() % 17 == 0) ? 0.0f : std::ldexp(x, m[static_cast<size_t>(c / 128)]);
    }
  }
  return v;
}

// Reference quantization of rows x cols values with tiles of `tile_rows` x 128.
struct RefQuant {
  std::vector<float> scales;  // [ceil(rows / tile_rows), ceil(cols / 128)] row-major
  std::vector<uint8_t> q;     // [rows, cols]
  int64_t scale_cols = 0;
};

RefQuant ref_quantize(const std::vector<float>& x, int64_t rows, int64_t cols, int64_t tile_rows,
                      bool pow2) {
  RefQuant r;
  const int64_t tr_n = (rows + tile_rows - 1) / tile_rows;
  r.scale_cols = (cols + 127) / 128;
  r.scales.assign(static_cast<size_t>(tr_n * r.scale_cols), 0.0f);
  r.q.assign(x.size(), 0);
  for (int64_t tr = 0; tr < tr_n; ++tr) {
    for (int64_t tc = 0; tc < r.scale_cols; ++tc) {
      const int64_t r1 = std::min(rows, (tr + 1) * tile_rows);
      const int64_t c1 = std::min(cols, (tc + 1) * 128);
      double amax = 0.0;
      for (int64_t i = tr * tile_rows; i < r1; ++i) {
        for (int64_t j = tc * 128; j < c1; ++j) {
          amax =
              std::max(amax, std::fabs(static_cast<double>(x[static_cast<size_t>(i * cols + j)])));
        }
      }
      const float s = ref_scale(amax, pow2);
      r.scales[static_cast<size_t>(tr * r.scale_cols + tc)] = s;
      for (int64_t i = tr * tile_rows; i < r1; ++i) {
        for (int64_t j = tc * 128; j < c1; ++j) {
          const auto k = static_cast<size_t>(i * cols + j);
          r.q[k] = ref_quant(x[k], s);
        }
      }
    }
  }
  return r;
}

// Half an e4m3 step at the magnitude of v (in units of the quantized value).
double half_step(double v) {
  const double a = std::fabs(v);
  if (a < std::ldexp(1.0, -6)) return std::ldexp(1.0, -10);  // subnormal quantum 2^-9
  int e = 0;
  std::frexp(a, &e);  // a in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - 3 - 1);
}

// Checks q/scales (dsk's output) against the reference and the error bound.
void check_quant(const Host& q, const Host& scales, const RefQuant& ref,
                 const std::vector<float>& x, int64_t rows, int64_t cols, int64_t tile_rows,
                 bool pow2) {
  for (int64_t tr = 0; tr < (rows + tile_rows - 1) / tile_rows; ++tr) {
    for (int64_t tc = 0; tc < ref.scale_cols; ++tc) {
      const float want = ref.scales[static_cast<size_t>(tr * ref.scale_cols + tc)];
      const float got = f32_at(scales, tr, tc);
      CAPTURE(tr);
      CAPTURE(tc);
      REQUIRE(got == want);
      if (pow2 && got != 0.0f) {
        int e = 0;
        CHECK(std::frexp(static_cast<double>(got), &e) == 0.5);
      }
    }
  }
  int64_t mismatches = 0;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const auto k = static_cast<size_t>(i * cols + j);
      const uint8_t got = byte_at(q, i, j);
      if (got != ref.q[k]) ++mismatches;
      const double s = ref.scales[static_cast<size_t>((i / tile_rows) * ref.scale_cols + j / 128)];
      if (s == 0.0) {
        CHECK(got == 0);
        continue;
      }
      // |q * s - x| <= half an e4m3 step at |x / s|, times s (plus the f32 division's rounding).
      const double xs = static_cast<double>(x[k]) / s;
      const double err = std::fabs(code_value(got) - xs);
      if (err > half_step(xs) * (1.0 + 1e-6) + 1e-12) {
        FAIL_CHECK("element (" << i << ", " << j << "): x = " << x[k] << ", scale = " << s
                               << ", q = " << code_value(got) << ", error " << err << " > "
                               << half_step(xs));
      }
    }
  }
  CHECK(mismatches == 0);
}

Host quant_act(dsk_context* ctx, Host& x, Host& q, Host& scales, uint32_t flags) {
  Borrowed xv = x.view();
  Borrowed qv = q.view();
  Borrowed sv = scales.view();
  REQUIRE_MESSAGE(dsk_quant_fp8_act(ctx, &xv, &qv, &sv, flags) == DSK_OK, dsk_last_error_message());
  return q;
}

}  // namespace

TEST_CASE("quant_fp8_act worked numbers") {
  CpuContext ctx;
  // Row 0: tile 0 has amax 448 (scale 1) and representable values; tile 1 has amax 3.5 (scale
  // 2^-7 exactly). Row 1: tile 0 is all zeros (scale 0), tile 1 has amax 1 (scale 1/448).
  std::vector<float> v(2 * 256, 0.0f);
  const float exact[] = {448.0f, 1.0f, -2.0f, 0.5f, 0.015625f, 0.001953125f, -240.0f, 13.0f};
  for (int i = 0; i < 8; ++i) v[static_cast<size_t>(i)] = exact[i];
  for (int i = 0; i < 128; ++i)
    v[static_cast<size_t>(128 + i)] = 3.5f * static_cast<float>((i % 7) - 3) / 3.0f;
  v[256 + 128] = -1.0f;
  v[256 + 129] = 0.25f;
  Host x = from_f32(ctx, v, {2, 256}, DSK_DTYPE_F32);
  Host q = host({2, 256}, DSK_DTYPE_FP8_E4M3FN);
  Host s = host({2, 2}, DSK_DTYPE_F32);
  quant_act(ctx, x, q, s, 0);
  CHECK(f32_at(s, 0, 0) == 1.0f);
  CHECK(f32_at(s, 0, 1) == 0.0078125f);
  CHECK(f32_at(s, 1, 0) == 0.0f);
  CHECK(f32_at(s, 1, 1) == 1.0f / 448.0f);
  // Representable values with scale 1 come back exactly.
  const uint8_t codes[] = {0x7E, 0x38, 0xC0, 0x30, 0x08, 0x01, 0xF7, 0x55};
  for (int i = 0; i < 8; ++i) CHECK(byte_at(q, 0, i) == codes[i]);
  CHECK(byte_at(q, 0, 128) == 0xFE);  // -3.5 / 2^-7 = -448
  for (int i = 0; i < 128; ++i) CHECK(byte_at(q, 1, i) == 0);
  CHECK(byte_at(q, 1, 128) == 0xFE);  // -1 / (1/448) = -448
  // Dequantized row 0 tile 0 is exact.
  Host back = host({2, 256}, DSK_DTYPE_F32);
  Borrowed qv = q.view();
  Borrowed sv = s.view();
  Borrowed bv = back.view();
  REQUIRE(dsk_dequant_fp8_act(ctx, &qv, &sv, &bv) == DSK_OK);
  for (int i = 0; i < 8; ++i) CHECK(f32_at(back, 0, i) == exact[i]);
  CHECK(f32_at(back, 1, 5) == 0.0f);

  // DSK_QUANT_SCALE_POW2: 448 -> 1, 3.5/448 = 2^-7 stays, 1/448 -> 2^-8; zero stays 0.
  quant_act(ctx, x, q, s, DSK_QUANT_SCALE_POW2);
  CHECK(f32_at(s, 0, 0) == 1.0f);
  CHECK(f32_at(s, 0, 1) == 0.0078125f);
  CHECK(f32_at(s, 1, 0) == 0.0f);
  CHECK(f32_at(s, 1, 1) == 0.00390625f);
  CHECK(byte_at(q, 1, 128) == ref_e4m3(-256.0));

  // amax 300: scale 300/448, or 1 with POW2.
  std::vector<float> w(128, 1.0f);
  w[3] = -300.0f;
  Host x2 = from_f32(ctx, w, {128}, DSK_DTYPE_F32);
  Host q2 = host({128}, DSK_DTYPE_FP8_E4M3FN);
  Host s2 = host({1}, DSK_DTYPE_F32);
  Borrowed x2v = x2.view();
  Borrowed q2v = q2.view();
  Borrowed s2v = s2.view();
  REQUIRE(dsk_quant_fp8_act(ctx, &x2v, &q2v, &s2v, 0) == DSK_OK);
  float got;
  std::memcpy(&got, s2.bytes.data(), 4);
  CHECK(got == 300.0f / 448.0f);
  REQUIRE(dsk_quant_fp8_act(ctx, &x2v, &q2v, &s2v, DSK_QUANT_SCALE_POW2) == DSK_OK);
  std::memcpy(&got, s2.bytes.data(), 4);
  CHECK(got == 1.0f);
  CHECK(q2.bytes[3] == 0xF9);  // -300 rounds to -288 = -1.125 * 2^8
  CHECK(ref_e4m3(-300.0) == 0xF9);
}

TEST_CASE("quant_fp8_act matches the reference for every dtype, ragged K and leading dims") {
  CpuContext ctx;
  const int64_t b = 3, t = 5, k = 300;
  const std::vector<float> base = tile_values(b * t, k, 11);
  for (int32_t id : kFloats) {
    for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
      CAPTURE(id);
      CAPTURE(flags);
      Host x = from_f32(ctx, base, {b, t, k}, id);
      const std::vector<float> xv = to_f32(ctx, x);  // the values after rounding to id
      Host q = host({b, t, k}, DSK_DTYPE_FP8_E4M3FN);
      Host s = host({b, t, 3}, DSK_DTYPE_F32);
      quant_act(ctx, x, q, s, flags);
      const RefQuant ref = ref_quantize(xv, b * t, k, 1, flags != 0);
      // Check through 2-D views of the same bytes.
      Host q2 = q;
      q2.shape = {b * t, k};
      Host s2 = s;
      s2.shape = {b * t, 3};
      check_quant(q2, s2, ref, xv, b * t, k, 1, flags != 0);
    }
  }
}

TEST_CASE("quant_fp8_weight matches the reference with ragged N and K and zero blocks") {
  CpuContext ctx;
  const int64_t n = 200, k = 300;
  std::vector<float> base = tile_values(n, k, 5);
  // Block (1, 2) (rows 128..199, columns 256..299) is all zeros.
  for (int64_t r = 128; r < n; ++r) {
    for (int64_t c = 256; c < k; ++c) base[static_cast<size_t>(r * k + c)] = 0.0f;
  }
  for (int32_t id : kFloats) {
    for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
      CAPTURE(id);
      CAPTURE(flags);
      Host w = from_f32(ctx, base, {n, k}, id);
      const std::vector<float> wv = to_f32(ctx, w);
      Host q = host({n, k}, DSK_DTYPE_FP8_E4M3FN);
      Host s = host({2, 3}, DSK_DTYPE_F32);
      Borrowed wd = w.view();
      Borrowed qd = q.view();
      Borrowed sd = s.view();
      REQUIRE_MESSAGE(dsk_quant_fp8_weight(ctx, &wd, &qd, &sd, flags) == DSK_OK,
                      dsk_last_error_message());
      const RefQuant ref = ref_quantize(wv, n, k, 128, flags != 0);
      check_quant(q, s, ref, wv, n, k, 128, flags != 0);
      CHECK(f32_at(s, 1, 2) == 0.0f);
      CHECK(byte_at(q, 199, 299) == 0);
    }
  }
}

TEST_CASE("fp8 quantization writes strided outputs and column-major scales") {
  CpuContext ctx;
  const int64_t m = 37, k = 300;
  const std::vector<float> v = tile_values(m, k, 3);
  Host xc = from_f32(ctx, v, {m, k}, DSK_DTYPE_BF16);
  const std::vector<float> xv = to_f32(ctx, xc);
  // A strided x (rows padded to 320, a view that slices columns), a padded q and column-major
  // scales [m, 3] with strides (1, m), as DeepGEMM lays them out.
  Host x = strided({m, k}, {320, 1}, DSK_DTYPE_BF16);
  {
    Borrowed src = xc.view();
    Borrowed dst = x.view();
    REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
  }
  Host q = strided({m, k}, {304, 1}, DSK_DTYPE_FP8_E4M3FN);
  Host s = strided({m, 3}, {1, m}, DSK_DTYPE_F32);
  quant_act(ctx, x, q, s, 0);
  const RefQuant ref = ref_quantize(xv, m, k, 1, false);
  check_quant(q, s, ref, xv, m, k, 1, false);

  // Dequantize from those views into a transposed-strided output (column-major x).
  Host back = strided({m, k}, {1, m}, DSK_DTYPE_F32);
  Borrowed qv = q.view();
  Borrowed sv = s.view();
  Borrowed bv = back.view();
  REQUIRE(dsk_dequant_fp8_act(ctx, &qv, &sv, &bv) == DSK_OK);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const float want = ref_dequant(ref.q[static_cast<size_t>(i * k + j)],
                                     ref.scales[static_cast<size_t>(i * 3 + j / 128)]);
      REQUIRE(f32_at(back, i, j) == want);
    }
  }

  // Weight scales column-major too, and a transposed weight view ([N, K] with strides (1, N)).
  const int64_t n = 130;
  const std::vector<float> wvals = tile_values(n, k, 4);
  Host wc = from_f32(ctx, wvals, {n, k}, DSK_DTYPE_F32);
  Host wt = strided({n, k}, {1, n}, DSK_DTYPE_F32);
  {
    Borrowed src = wc.view();
    Borrowed dst = wt.view();
    REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
  }
  Host wq = host({n, k}, DSK_DTYPE_FP8_E4M3FN);
  Host ws = strided({2, 3}, {1, 2}, DSK_DTYPE_F32);
  Borrowed wtv = wt.view();
  Borrowed wqv = wq.view();
  Borrowed wsv = ws.view();
  REQUIRE(dsk_quant_fp8_weight(ctx, &wtv, &wqv, &wsv, DSK_QUANT_SCALE_POW2) == DSK_OK);
  check_quant(wq, ws, ref_quantize(wvals, n, k, 128, true), wvals, n, k, 128, true);
}

TEST_CASE("dequant_fp8 computes q * scale in f32, rounded once to each dtype") {
  CpuContext ctx;
  std::mt19937 rng(9);
  const int64_t m = 130, k = 200;
  Host q = host({m, k}, DSK_DTYPE_FP8_E4M3FN);
  for (auto& byte : q.bytes) {
    do {
      byte = static_cast<uint8_t>(rng());
    } while ((byte & 0x7F) == 0x7F);  // no NaN codes
  }
  std::uniform_real_distribution<float> u(-6.0f, 6.0f);
  std::vector<float> act_scales(static_cast<size_t>(m * 2));
  for (float& s : act_scales) s = std::exp2(u(rng)) * 0.37f;
  act_scales[5] = 0.0f;
  std::vector<float> w_scales = {0.001f, 3.0f, 1.5e-5f, 0.0f};
  Host sa = from_f32(ctx, act_scales, {m, 2}, DSK_DTYPE_F32);
  Host sw = from_f32(ctx, w_scales, {2, 2}, DSK_DTYPE_F32);
  for (int32_t id : kFloats) {
    for (bool weight : {false, true}) {
      CAPTURE(id);
      CAPTURE(weight);
      // The reference: f32 products, rounded to id by dsk_copy (the library's conversion).
      std::vector<float> want(static_cast<size_t>(m * k));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < k; ++j) {
          const float s = weight ? w_scales[static_cast<size_t>((i / 128) * 2 + j / 128)]
                                 : act_scales[static_cast<size_t>(i * 2 + j / 128)];
          want[static_cast<size_t>(i * k + j)] =
              ref_dequant(q.bytes[static_cast<size_t>(i * k + j)], s);
        }
      }
      Host want_id = from_f32(ctx, want, {m, k}, id);
      Host out = host({m, k}, id);
      Borrowed qv = q.view();
      Borrowed sv = weight ? sw.view() : sa.view();
      Borrowed ov = out.view();
      REQUIRE(((weight ? dsk_dequant_fp8_weight(ctx, &qv, &sv, &ov)
                       : dsk_dequant_fp8_act(ctx, &qv, &sv, &ov)) == DSK_OK));
      CHECK(out.bytes == want_id.bytes);
    }
  }
}

TEST_CASE("fp8 quantization rejects NaN and Inf") {
  CpuContext ctx;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float bad : {nan, inf, -inf}) {
    std::vector<float> v(2 * 200, 1.0f);
    v[200 + 150] = bad;
    Host x = from_f32(ctx, v, {2, 200}, DSK_DTYPE_BF16);
    Host q = host({2, 200}, DSK_DTYPE_FP8_E4M3FN);
    Host s = host({2, 2}, DSK_DTYPE_F32);
    Borrowed xv = x.view();
    Borrowed qv = q.view();
    Borrowed sv = s.view();
    expect_error(dsk_quant_fp8_act(ctx, &xv, &qv, &sv, 0), DSK_ERR_INVALID_ARGUMENT,
                 {"dsk_quant_fp8_act", "x[1, 150]", "expected finite"});
    Host ws = host({1, 2}, DSK_DTYPE_F32);
    Borrowed wsv = ws.view();
    expect_error(dsk_quant_fp8_weight(ctx, &xv, &qv, &wsv, 0), DSK_ERR_INVALID_ARGUMENT,
                 {"dsk_quant_fp8_weight", "w[1, 150]", "expected finite"});
    // The on-the-fly quantization of dsk_linear_fp8 rejects them too.
    Host wq = host({8, 200}, DSK_DTYPE_FP8_E4M3FN);
    Host wsc = host({1, 2}, DSK_DTYPE_F32);
    Host y = host({2, 8}, DSK_DTYPE_F32);
    Borrowed wqv = wq.view();
    Borrowed wscv = wsc.view();
    Borrowed yv = y.view();
    expect_error(dsk_linear_fp8(ctx, &xv, nullptr, &wqv, &wscv, &yv, 0), DSK_ERR_INVALID_ARGUMENT,
                 {"dsk_linear_fp8", "x[1, 150]"});
  }
}

namespace {

// Reference y[m][n] = sum_k deq(x)[m][k] * deq(w)[n][k] in double (dequantized values are the f32
// products q * scale), and the sum of |terms| for the tolerance.
struct RefLinear {
  std::vector<double> y;
  std::vector<double> abs_sum;
};

RefLinear ref_linear(const RefQuant& xq, int64_t m, const RefQuant& wq, int64_t n, int64_t k) {
  std::vector<float> xd(static_cast<size_t>(m * k));
  std::vector<float> wd(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      xd[static_cast<size_t>(i * k + j)] =
          ref_dequant(xq.q[static_cast<size_t>(i * k + j)],
                      xq.scales[static_cast<size_t>(i * xq.scale_cols + j / 128)]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      wd[static_cast<size_t>(i * k + j)] =
          ref_dequant(wq.q[static_cast<size_t>(i * k + j)],
                      wq.scales[static_cast<size_t>((i / 128) * wq.scale_cols + j / 128)]);
    }
  }
  RefLinear r;
  r.y.assign(static_cast<size_t>(m * n), 0.0);
  r.abs_sum.assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      double abs = 0.0;
      for (int64_t l = 0; l < k; ++l) {
        const double t = static_cast<double>(xd[static_cast<size_t>(i * k + l)]) *
                         wd[static_cast<size_t>(j * k + l)];
        acc += t;
        abs += std::fabs(t);
      }
      r.y[static_cast<size_t>(i * n + j)] = acc;
      r.abs_sum[static_cast<size_t>(i * n + j)] = abs;
    }
  }
  return r;
}

// Tolerance of y against the double reference: f32 accumulation over K terms (K * 2^-24 of the
// sum of |terms|) plus half an ulp of y's dtype.
double tolerance(const RefLinear& r, size_t idx, int64_t k, int32_t y_id) {
  const double out = y_id == DSK_DTYPE_BF16  ? std::ldexp(1.0, -8)
                     : y_id == DSK_DTYPE_F16 ? std::ldexp(1.0, -11)
                                             : std::ldexp(1.0, -24);
  return static_cast<double>(k) * std::ldexp(1.0, -24) * r.abs_sum[idx] +
         out * std::fabs(r.y[idx]) + 1e-30;
}

}  // namespace

TEST_CASE("linear_fp8 equals dequantize-then-GEMM, for float x quantized here and fp8 x") {
  CpuContext ctx;
  const int64_t b = 2, t = 3, m = b * t, k = 300, n = 200;
  const std::vector<float> wvals = tile_values(n, k, 21);
  const std::vector<float> xvals = tile_values(m, k, 22);
  // The weight, quantized by dsk (checked against the reference above).
  Host w = from_f32(ctx, wvals, {n, k}, DSK_DTYPE_F32);
  Host wq = host({n, k}, DSK_DTYPE_FP8_E4M3FN);
  Host ws = host({2, 3}, DSK_DTYPE_F32);
  {
    Borrowed a = w.view();
    Borrowed q = wq.view();
    Borrowed s = ws.view();
    REQUIRE(dsk_quant_fp8_weight(ctx, &a, &q, &s, 0) == DSK_OK);
  }
  const RefQuant wref = ref_quantize(wvals, n, k, 128, false);
  REQUIRE(wq.bytes == wref.q);
  for (int32_t x_id : kFloats) {
    for (int32_t y_id : kFloats) {
      for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
        CAPTURE(x_id);
        CAPTURE(y_id);
        CAPTURE(flags);
        Host x = from_f32(ctx, xvals, {b, t, k}, x_id);
        const std::vector<float> xv = to_f32(ctx, x);
        const RefLinear ref = ref_linear(ref_quantize(xv, m, k, 1, flags != 0), m, wref, n, k);
        // y with padded rows: [b, t, n] strides (t * 210, 210, 1).
        Host y = host({b * t * 210}, y_id);
        y.shape = {b, t, n};
        y.strides = {t * 210, 210, 1};
        Borrowed xd = x.view();
        Borrowed wd = wq.view();
        Borrowed sd = ws.view();
        Borrowed yd = y.view();
        REQUIRE_MESSAGE(dsk_linear_fp8(ctx, &xd, nullptr, &wd, &sd, &yd, flags) == DSK_OK,
                        dsk_last_error_message());
        Host y_dense = host({m, n}, y_id);
        {
          Borrowed yv(y.bytes.data(), {m, n}, y_id, {210, 1});
          Borrowed dv = y_dense.view();
          REQUIRE(dsk_copy(ctx, &yv, &dv) == DSK_OK);
        }
        const std::vector<float> got = to_f32(ctx, y_dense);
        int64_t bad = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          if (std::fabs(got[i] - ref.y[i]) > tolerance(ref, i, k, y_id)) ++bad;
        }
        CHECK(bad == 0);

        // The same x quantized first (column-major x_scales) gives exactly the same y.
        Host xq = host({b, t, k}, DSK_DTYPE_FP8_E4M3FN);
        Host xs = strided({b, t, 3}, {t, 1, m}, DSK_DTYPE_F32);
        Borrowed xqv = xq.view();
        Borrowed xsv = xs.view();
        REQUIRE(dsk_quant_fp8_act(ctx, &xd, &xqv, &xsv, flags) == DSK_OK);
        Host y2 = host({b, t, n}, y_id);
        Borrowed y2v = y2.view();
        REQUIRE_MESSAGE(dsk_linear_fp8(ctx, &xqv, &xsv, &wd, &sd, &y2v, 0) == DSK_OK,
                        dsk_last_error_message());
        CHECK(y2.bytes == y_dense.bytes);
      }
    }
  }
}

TEST_CASE("linear_fp8 gives the bits of dequantizing both operands, then dsk_linear") {
  // The CPU GEMM dequantizes the fp8 weight in registers; the values and the order of operations
  // are those of dsk_dequant_fp8_weight followed by the f32 GEMM, so the bits agree.
  CpuContext ctx;
  for (int64_t m : {1, 3, 70}) {
    for (int64_t k : {1, 100, 300}) {
      CAPTURE(m);
      CAPTURE(k);
      const int64_t n = 200;
      const int64_t kt = (k + 127) / 128;
      Host w = from_f32(ctx, tile_values(n, k, 31), {n, k}, DSK_DTYPE_F32);
      Host wq = host({n, k}, DSK_DTYPE_FP8_E4M3FN);
      Host ws = host({2, kt}, DSK_DTYPE_F32);
      Host wd = host({n, k}, DSK_DTYPE_F32);
      Host x = from_f32(ctx, tile_values(m, k, 32), {m, k}, DSK_DTYPE_F32);
      Host xq = host({m, k}, DSK_DTYPE_FP8_E4M3FN);
      Host xs = host({m, kt}, DSK_DTYPE_F32);
      Host xd = host({m, k}, DSK_DTYPE_F32);
      Borrowed wv = w.view(), wqv = wq.view(), wsv = ws.view(), wdv = wd.view();
      Borrowed xv = x.view(), xqv = xq.view(), xsv = xs.view(), xdv = xd.view();
      REQUIRE(dsk_quant_fp8_weight(ctx, &wv, &wqv, &wsv, 0) == DSK_OK);
      REQUIRE(dsk_dequant_fp8_weight(ctx, &wqv, &wsv, &wdv) == DSK_OK);
      REQUIRE(dsk_quant_fp8_act(ctx, &xv, &xqv, &xsv, 0) == DSK_OK);
      REQUIRE(dsk_dequant_fp8_act(ctx, &xqv, &xsv, &xdv) == DSK_OK);
      for (int32_t y_id : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        CAPTURE(y_id);
        Host y1 = host({m, n}, y_id);
        Host y2 = host({m, n}, y_id);
        Borrowed y1v = y1.view(), y2v = y2.view();
        REQUIRE_MESSAGE(dsk_linear_fp8(ctx, &xqv, &xsv, &wqv, &wsv, &y1v, 0) == DSK_OK,
                        dsk_last_error_message());
        REQUIRE(dsk_linear(ctx, &xdv, &wdv, nullptr, &y2v) == DSK_OK);
        CHECK(y1.bytes == y2.bytes);
      }
    }
  }
}

TEST_CASE("linear_fp8 with K = 0 writes zeros and empty shapes do nothing") {
  CpuContext ctx;
  std::vector<uint8_t> none(1);
  Borrowed x(none.data(), {4, 0}, DSK_DTYPE_BF16);
  Borrowed w(none.data(), {3, 0}, DSK_DTYPE_FP8_E4M3FN);
  Borrowed ws(none.data(), {1, 0}, DSK_DTYPE_F32);
  std::vector<float> yv(12, std::numeric_limits<float>::quiet_NaN());
  Borrowed y(yv.data(), {4, 3}, DSK_DTYPE_F32);
  REQUIRE_MESSAGE(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y, 0) == DSK_OK,
                  dsk_last_error_message());
  for (float v : yv) CHECK(v == 0.0f);
  Borrowed x0(none.data(), {0, 5}, DSK_DTYPE_BF16);
  Borrowed q0(none.data(), {0, 5}, DSK_DTYPE_FP8_E4M3FN);
  Borrowed s0(none.data(), {0, 1}, DSK_DTYPE_F32);
  CHECK(dsk_quant_fp8_act(ctx, &x0, &q0, &s0, 0) == DSK_OK);
}

TEST_CASE("fp8 ops reject bad arguments with messages naming them") {
  CpuContext ctx;
  std::vector<uint8_t> mem(1 << 16);
  std::vector<uint8_t> mem2(1 << 16);
  std::vector<uint8_t> mem3(1 << 16);
  std::vector<uint8_t> mem4(1 << 16);
  std::vector<uint8_t> mem5(1 << 16);
  Borrowed x(mem.data(), {4, 200}, DSK_DTYPE_BF16);
  Borrowed q(mem2.data(), {4, 200}, DSK_DTYPE_FP8_E4M3FN);
  Borrowed s(mem3.data(), {4, 2}, DSK_DTYPE_F32);
  const dsk_status bad = DSK_ERR_INVALID_ARGUMENT;

  // quant_fp8_act
  expect_error(dsk_quant_fp8_act(nullptr, &x, &q, &s, 0), bad, {"ctx"});
  expect_error(dsk_quant_fp8_act(ctx, nullptr, &q, &s, 0), bad, {"x"});
  expect_error(dsk_quant_fp8_act(ctx, &x, nullptr, &s, 0), bad, {"q"});
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, nullptr, 0), bad, {"scales"});
  Borrowed x_int(mem.data(), {4, 200}, DSK_DTYPE_INT32);
  expect_error(dsk_quant_fp8_act(ctx, &x_int, &q, &s, 0), bad, {"x.dtype", "int32"});
  Borrowed q_bf16(mem2.data(), {4, 200}, DSK_DTYPE_BF16);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q_bf16, &s, 0), bad, {"q.dtype", "fp8_e4m3fn"});
  Borrowed q_e5m2(mem2.data(), {4, 200}, DSK_DTYPE_FP8_E5M2);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q_e5m2, &s, 0), bad, {"q.dtype"});
  Borrowed s_f16(mem3.data(), {4, 2}, DSK_DTYPE_F16);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, &s_f16, 0), bad, {"scales.dtype", "f32"});
  Borrowed s_wrong(mem3.data(), {4, 3}, DSK_DTYPE_F32);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, &s_wrong, 0), bad,
               {"scales has shape [4, 3]", "expected [4, 2]"});
  Borrowed q_wrong(mem2.data(), {4, 199}, DSK_DTYPE_FP8_E4M3FN);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q_wrong, &s, 0), bad, {"q has shape"});
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, &s, 2u), bad, {"flags = 0x2"});
  Borrowed x_scalar(mem.data(), {}, DSK_DTYPE_BF16);
  Borrowed q_scalar(mem2.data(), {}, DSK_DTYPE_FP8_E4M3FN);
  expect_error(dsk_quant_fp8_act(ctx, &x_scalar, &q_scalar, &s, 0), bad, {"x is a scalar"});
  // q overlapping x.
  Borrowed q_alias(mem.data() + 16, {4, 200}, DSK_DTYPE_FP8_E4M3FN);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q_alias, &s, 0), bad, {"q overlaps x"});
  Borrowed s_alias(mem2.data(), {4, 2}, DSK_DTYPE_F32);
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, &s_alias, 0), bad, {"scales overlaps q"});
  // Mixed devices: a CUDA tensor among host ones.
  Borrowed s_cuda(mem3.data(), {4, 2}, DSK_DTYPE_F32);
  s_cuda.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_quant_fp8_act(ctx, &x, &q, &s_cuda, 0), bad, {"scales is on cuda:0"});

  // quant_fp8_weight / dequant
  Borrowed w3(mem.data(), {1, 4, 200}, DSK_DTYPE_BF16);
  Borrowed q3(mem2.data(), {1, 4, 200}, DSK_DTYPE_FP8_E4M3FN);
  expect_error(dsk_quant_fp8_weight(ctx, &w3, &q3, &s, 0), bad, {"w has 3 dimensions"});
  expect_error(dsk_quant_fp8_weight(ctx, &x, &q, &s, 0), bad,
               {"scales has shape [4, 2]", "expected [1, 2]", "ceil(N / 128)"});
  expect_error(dsk_dequant_fp8_act(ctx, &x, &s, &q), bad, {"q.dtype"});
  expect_error(dsk_dequant_fp8_act(ctx, &q, &s, &x_int), bad, {"x.dtype"});
  expect_error(dsk_dequant_fp8_weight(ctx, &q, &s, &x), bad, {"scales has shape"});
  expect_error(dsk_dequant_fp8_weight(ctx, &q, nullptr, &x), bad, {"scales"});
  Borrowed x_alias(mem2.data() + 16, {4, 200}, DSK_DTYPE_BF16);
  expect_error(dsk_dequant_fp8_act(ctx, &q, &s, &x_alias), bad, {"x overlaps q"});

  // linear_fp8: x [4, 200] bf16, w [8, 200] fp8, w_scales [1, 2], y [4, 8].
  Borrowed w(mem4.data(), {8, 200}, DSK_DTYPE_FP8_E4M3FN);
  Borrowed ws(mem5.data(), {1, 2}, DSK_DTYPE_F32);
  Borrowed y(mem5.data() + 1024, {4, 8}, DSK_DTYPE_F32);
  REQUIRE_MESSAGE(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y, 0) == DSK_OK,
                  dsk_last_error_message());
  expect_error(dsk_linear_fp8(nullptr, &x, nullptr, &w, &ws, &y, 0), bad, {"ctx"});
  expect_error(dsk_linear_fp8(ctx, nullptr, nullptr, &w, &ws, &y, 0), bad, {"x"});
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, nullptr, &ws, &y, 0), bad, {"w"});
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, nullptr, &y, 0), bad, {"w_scales"});
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, nullptr, 0), bad, {"y"});
  // x_scales with a float x; flags with x_scales; an fp8 x without x_scales.
  expect_error(dsk_linear_fp8(ctx, &x, &s, &w, &ws, &y, 0), bad,
               {"x.dtype is bf16 while x_scales is given", "fp8_e4m3fn"});
  expect_error(dsk_linear_fp8(ctx, &q, &s, &w, &ws, &y, DSK_QUANT_SCALE_POW2), bad,
               {"flags = 0x1 while x_scales is given", "expected 0"});
  expect_error(dsk_linear_fp8(ctx, &q, nullptr, &w, &ws, &y, 0), bad,
               {"x.dtype is fp8_e4m3fn and x_scales is NULL"});
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y, 4u), bad, {"flags = 0x4"});
  expect_error(dsk_linear_fp8(ctx, &q, &s_wrong, &w, &ws, &y, 0), bad,
               {"x_scales has shape [4, 3]", "expected [4, 2]"});
  expect_error(dsk_linear_fp8(ctx, &q, &s_f16, &w, &ws, &y, 0), bad, {"x_scales.dtype"});
  Borrowed w_bf16(mem4.data(), {8, 200}, DSK_DTYPE_BF16);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w_bf16, &ws, &y, 0), bad,
               {"w.dtype is bf16", "fp8_e4m3fn"});
  Borrowed ws_wrong(mem5.data(), {2, 2}, DSK_DTYPE_F32);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws_wrong, &y, 0), bad,
               {"w_scales has shape [2, 2]", "expected [1, 2]"});
  Borrowed x_k(mem.data(), {4, 100}, DSK_DTYPE_BF16);
  expect_error(dsk_linear_fp8(ctx, &x_k, nullptr, &w, &ws, &y, 0), bad,
               {"x has shape [4, 100]", "K = 200"});
  Borrowed y_n(mem5.data() + 1024, {4, 9}, DSK_DTYPE_F32);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y_n, 0), bad,
               {"y has shape [4, 9]", "N = 8"});
  Borrowed y_m(mem5.data() + 1024, {5, 8}, DSK_DTYPE_F32);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y_m, 0), bad, {"y has shape [5, 8]"});
  Borrowed y_int(mem5.data() + 1024, {4, 8}, DSK_DTYPE_INT32);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y_int, 0), bad, {"y.dtype"});
  Borrowed y_fp8(mem5.data() + 1024, {4, 8}, DSK_DTYPE_FP8_E4M3FN);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y_fp8, 0), bad, {"y.dtype"});
  Borrowed y_alias(mem4.data(), {4, 8}, DSK_DTYPE_F32);
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w, &ws, &y_alias, 0), bad, {"y overlaps w"});
  Borrowed w_cuda(mem4.data(), {8, 200}, DSK_DTYPE_FP8_E4M3FN);
  w_cuda.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_linear_fp8(ctx, &x, nullptr, &w_cuda, &ws, &y, 0), bad, {"w is on cuda:0"});

  // linear_fp8_kernel
  int32_t kernel = 0;
  REQUIRE(dsk_linear_fp8_kernel(ctx, &kernel) == DSK_OK);
  CHECK(kernel == DSK_FP8_KERNEL_CPU_REFERENCE);
  expect_error(dsk_linear_fp8_kernel(nullptr, &kernel), bad, {"ctx"});
  expect_error(dsk_linear_fp8_kernel(ctx, nullptr), bad, {"kernel is NULL"});
}
