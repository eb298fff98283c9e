// MLA absorb ops with an fp8 wkv_b (dsk_mla.h): the CPU multiplies by the fp8 weight in place
// (dequantizing each value as the GEMM reads it), and that must give exactly the bits of the same
// op with the dequantized f32 weight (dsk_dequant_fp8_weight): for heads that straddle 128-row
// scale blocks, every token count (register row tiles up to 4 tokens, a dequantized column block
// beyond), f32 and bf16 activations and outputs, and wkv_b views with a row stride wider than Dc
// or with unit stride along the rows (a transposed buffer).
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::Host;
using mla_test::View;

struct Shape {
  int64_t heads, dn, dv, dc;
};

// How the fp8 wkv_b lies in memory: row-major, rows `pad` columns wider than Dc, or the transpose
// of a [Dc, R] buffer (unit stride along the rows).
struct WeightLayout {
  int64_t pad = 0;
  bool transposed = false;
};

// The fp8 wkv_b, its scales and the f32 weight dsk_dequant_fp8_weight gives.
struct Fp8Weight {
  Host wide;   // [R, Dc + pad], or [Dc, R] when transposed, fp8
  Host scale;  // [ceil(R / 128), ceil(Dc / 128)]
  Host f32;    // [R, Dc]
  int64_t rows = 0, dc = 0;
  WeightLayout layout;
  View view() {
    if (layout.transposed) return wide.view({rows, dc}, {1, rows});
    return wide.view({rows, dc}, {dc + layout.pad, 1});
  }
};

Fp8Weight make_weight(dsk_context* ctx, const Shape& s, WeightLayout layout, uint64_t seed) {
  Fp8Weight w;
  w.rows = s.heads * (s.dn + s.dv);
  w.dc = s.dc;
  w.layout = layout;
  const int64_t pad = layout.pad;
  Host f({w.rows, s.dc}, DSK_DTYPE_F32);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  // Each 128 x 128 block its own magnitude, so a wrong block scale shows.
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < s.dc; ++c) {
      f.set(r * s.dc + c, std::ldexp(dist(rng), static_cast<int>((r / 128 * 3 + c / 128) % 7) - 3));
    }
  }
  Host q({w.rows, s.dc}, DSK_DTYPE_FP8_E4M3FN);
  w.scale = Host({(w.rows + 127) / 128, (s.dc + 127) / 128}, DSK_DTYPE_F32);
  REQUIRE(dsk_quant_fp8_weight(ctx, f.dl(), q.dl(), w.scale.dl(), 0) == DSK_OK);
  w.f32 = Host({w.rows, s.dc}, DSK_DTYPE_F32);
  REQUIRE(dsk_dequant_fp8_weight(ctx, q.dl(), w.scale.dl(), w.f32.dl()) == DSK_OK);
  const auto* src = static_cast<const uint8_t*>(q.data());
  if (layout.transposed) {
    w.wide = Host({s.dc, w.rows}, DSK_DTYPE_FP8_E4M3FN);
    auto* dst = static_cast<uint8_t*>(w.wide.data());
    for (int64_t r = 0; r < w.rows; ++r) {
      for (int64_t c = 0; c < s.dc; ++c) dst[c * w.rows + r] = src[r * s.dc + c];
    }
    return w;
  }
  w.wide = Host({w.rows, s.dc + pad}, DSK_DTYPE_FP8_E4M3FN);
  w.wide.fill_bytes(0x7F);  // NaN codes in the padding: reading them would show
  auto* dst = static_cast<uint8_t*>(w.wide.data());
  for (int64_t r = 0; r < w.rows; ++r) {
    std::memcpy(dst + r * (s.dc + pad), src + r * s.dc, static_cast<size_t>(s.dc));
  }
  return w;
}

// Runs `op(weight, scale, out)` with the fp8 weight and with its f32 dequantization and requires
// the same output bytes.
template <typename Op>
void same_bits(Fp8Weight& w, std::vector<int64_t> out_shape, int32_t out_dtype, Op op,
               const std::string& what) {
  INFO(what);
  Host got(out_shape, out_dtype);
  Host want(out_shape, out_dtype);
  View wv = w.view();
  REQUIRE(op(wv.get(), w.scale.dl(), got.dl()) == DSK_OK);
  REQUIRE(op(w.f32.dl(), nullptr, want.dl()) == DSK_OK);
  CHECK(got.raw() == want.raw());
}

}  // namespace

TEST_CASE("mla absorb ops with an fp8 wkv_b give the bits of its f32 dequantization") {
  CpuContext ctx;
  // 48 + 40 rows per head: heads straddle the 128-row scale blocks and start at every phase;
  // Dc 160 ends in a partial block. Then DeepSeek's per-head sizes.
  const Shape shapes[] = {{3, 48, 40, 160}, {4, 128, 128, 512}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    for (const WeightLayout layout :
         {WeightLayout{0, false}, WeightLayout{16, false}, WeightLayout{0, true}}) {
      Fp8Weight w = make_weight(ctx, s, layout, ++seed);
      const std::string form =
          layout.transposed ? "transposed" : "row stride Dc + " + std::to_string(layout.pad);
      for (int64_t tokens : {1, 3, 4, 5, 9, 70}) {
        for (int32_t act : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          for (int32_t out : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
            const std::string what =
                "heads " + std::to_string(s.heads) + ", dn " + std::to_string(s.dn) + ", " + form +
                ", tokens " + std::to_string(tokens) + ", activations " +
                mla_test::dtype_label(act) + ", outputs " + mla_test::dtype_label(out);
            Host q_nope({tokens, s.heads, s.dn}, act);
            q_nope.fill_random(++seed);
            same_bits(
                w, {tokens, s.heads, s.dc}, out,
                [&](const DLTensor* wkv_b, const DLTensor* scale, const DLTensor* y) {
                  return dsk_mla_absorb_q(ctx, q_nope.dl(), wkv_b, scale, y);
                },
                "absorb_q, " + what);
            Host o_lat({tokens, s.heads, s.dc}, act);
            o_lat.fill_random(++seed);
            same_bits(
                w, {tokens, s.heads, s.dv}, out,
                [&](const DLTensor* wkv_b, const DLTensor* scale, const DLTensor* y) {
                  return dsk_mla_absorb_out(ctx, o_lat.dl(), wkv_b, scale, y);
                },
                "absorb_out, " + what);
            Host c_kv({tokens, s.dc}, act);
            c_kv.fill_random(++seed);
            Host v_got({tokens, s.heads, s.dv}, out);
            Host v_want({tokens, s.heads, s.dv}, out);
            same_bits(
                w, {tokens, s.heads, s.dn}, out,
                [&](const DLTensor* wkv_b, const DLTensor* scale, const DLTensor* k) {
                  Host& v = scale != nullptr ? v_got : v_want;
                  return dsk_mla_decompress_kv(ctx, c_kv.dl(), nullptr, wkv_b, scale, k, v.dl());
                },
                "decompress_kv k, " + what);
            INFO("decompress_kv v, " << what);
            CHECK(v_got.raw() == v_want.raw());
          }
        }
      }
    }
  }
}
