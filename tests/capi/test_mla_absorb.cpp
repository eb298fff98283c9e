// MLA weight absorption on the CPU (dsk_mla.h): dsk_mla_absorb_q, dsk_mla_absorb_out and
// dsk_mla_decompress_kv against per-head matmuls in double for f32, bf16, f16 and fp8 (128 x 128
// block scales, made with dsk_quant_fp8_weight) weights and contiguous, sliced, head-major and
// interleaved activations; and the identity that ties MLA together: absorbed decode over the
// latent cache (cache_append -> absorb_q into the decode q -> decode -> absorb_out) equals MHA
// over keys and values decompressed through wkv_b (decompress_kv -> prefill), for s_q 1..4,
// causal and not; every bad argument.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::Act;
using mla_test::check_within;
using mla_test::expect_invalid;
using mla_test::Form;
using mla_test::Host;
using mla_test::ints;

const double kInf = std::numeric_limits<double>::infinity();

// wkv_b [H * (dn + dv), Dc] in some dtype, plus the weight values the op must use (for fp8 the
// f32 product code * scale of its block, as dsk_dequant_fp8_weight defines).
struct Weights {
  int64_t heads = 0, dn = 0, dv = 0, dc = 0;
  Host w;
  Host scale;  // fp8 only
  bool fp8 = false;
  std::vector<double> value;  // [R, Dc]
  double uk(int64_t h, int64_t i, int64_t c) const {
    return value[static_cast<size_t>((h * (dn + dv) + i) * dc + c)];
  }
  double uv(int64_t h, int64_t j, int64_t c) const {
    return value[static_cast<size_t>((h * (dn + dv) + dn + j) * dc + c)];
  }
  const DLTensor* w_dl() { return w.dl(); }
  const DLTensor* scale_dl() { return fp8 ? scale.dl() : nullptr; }
};

// Uniform values in +-1/sqrt(Dc); with `blocky`, each 128 x 128 block is scaled by its own power
// of two (1/4 .. 4) so that a wrong block scale shows.
Weights make_weights(dsk_context* ctx, int64_t heads, int64_t dn, int64_t dv, int64_t dc,
                     int32_t dtype, uint64_t seed, bool blocky) {
  Weights w;
  w.heads = heads;
  w.dn = dn;
  w.dv = dv;
  w.dc = dc;
  const int64_t rows = heads * (dn + dv);
  Host f({rows, dc}, DSK_DTYPE_F32);
  std::mt19937_64 rng(seed);
  const double range = 1.0 / std::sqrt(static_cast<double>(dc));
  std::uniform_real_distribution<double> dist(-range, range);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < dc; ++c) {
      const int64_t block = (r / 128) * 3 + c / 128;
      const double factor = blocky ? std::ldexp(1.0, static_cast<int>(block % 5) - 2) : 1.0;
      f.set(r * dc + c, dist(rng) * factor);
    }
  }
  w.value.resize(static_cast<size_t>(rows * dc));
  if (dtype == DSK_DTYPE_FP8_E4M3FN) {
    w.fp8 = true;
    w.w = Host({rows, dc}, DSK_DTYPE_FP8_E4M3FN);
    w.scale = Host({(rows + 127) / 128, (dc + 127) / 128}, DSK_DTYPE_F32);
    MLA_REQUIRE_OK(dsk_quant_fp8_weight(ctx, f.dl(), w.w.dl(), w.scale.dl(), 0));
    const int64_t scale_cols = (dc + 127) / 128;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < dc; ++c) {
        const double s = w.scale.get((r / 128) * scale_cols + c / 128);
        w.value[static_cast<size_t>(r * dc + c)] =
            static_cast<float>(w.w.get(r * dc + c) * s);  // the f32 product
      }
    }
  } else {
    w.w = Host({rows, dc}, dtype);
    for (int64_t i = 0; i < rows * dc; ++i) w.w.set(i, f.get(i));
    for (int64_t i = 0; i < rows * dc; ++i) w.value[static_cast<size_t>(i)] = w.w.get(i);
  }
  return w;
}

// Relative rounding allowance of an output dtype (a full ulp: 2x the rounding error).
double unit(int32_t dtype) {
  switch (dtype) {
    case DSK_DTYPE_BF16:
      return std::ldexp(1.0, -8);
    case DSK_DTYPE_F16:
      return std::ldexp(1.0, -10);
    default:
      return std::ldexp(1.0, -23);
  }
}

// A dot product of K terms computed in f32 in any order (inputs exact in f32) is within
// (K + 2) * 2^-24 * sum |terms| of the exact value; the output then rounds once to its dtype.
struct Expect {
  std::vector<double> value, abs_sum;
  size_t k = 0;
  double tol(size_t i, int32_t dtype) const {
    return unit(dtype) * std::fabs(value[i]) +
           static_cast<double>(k + 2) * std::ldexp(1.0, -24) * abs_sum[i] + 1e-300;
  }
};

void check_expect(const std::vector<double>& got, const Expect& e, int32_t dtype,
                  const std::string& what) {
  check_within(
      got, e.value, [&](size_t i) { return e.tol(i, dtype); }, what);
}

// q_latent[t, h, c] = sum_i q_nope[t, h, i] * W_UK[h][i][c].
Expect ref_absorb_q(const std::vector<double>& q, int64_t T, const Weights& w) {
  Expect e;
  e.k = static_cast<size_t>(w.dn);
  e.value.assign(static_cast<size_t>(T * w.heads * w.dc), 0.0);
  e.abs_sum = e.value;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < w.heads; ++h) {
      for (int64_t c = 0; c < w.dc; ++c) {
        double acc = 0, abs = 0;
        for (int64_t i = 0; i < w.dn; ++i) {
          const double term = q[static_cast<size_t>((t * w.heads + h) * w.dn + i)] * w.uk(h, i, c);
          acc += term;
          abs += std::fabs(term);
        }
        e.value[static_cast<size_t>((t * w.heads + h) * w.dc + c)] = acc;
        e.abs_sum[static_cast<size_t>((t * w.heads + h) * w.dc + c)] = abs;
      }
    }
  }
  return e;
}

// o[t, h, j] = sum_c o_latent[t, h, c] * W_UV[h][j][c].
Expect ref_absorb_out(const std::vector<double>& ol, int64_t T, const Weights& w) {
  Expect e;
  e.k = static_cast<size_t>(w.dc);
  e.value.assign(static_cast<size_t>(T * w.heads * w.dv), 0.0);
  e.abs_sum = e.value;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < w.heads; ++h) {
      for (int64_t j = 0; j < w.dv; ++j) {
        double acc = 0, abs = 0;
        for (int64_t c = 0; c < w.dc; ++c) {
          const double term = ol[static_cast<size_t>((t * w.heads + h) * w.dc + c)] * w.uv(h, j, c);
          acc += term;
          abs += std::fabs(term);
        }
        e.value[static_cast<size_t>((t * w.heads + h) * w.dv + j)] = acc;
        e.abs_sum[static_cast<size_t>((t * w.heads + h) * w.dv + j)] = abs;
      }
    }
  }
  return e;
}

// k[t, h, :dn] = c_kv[t] @ W_UK[h]^T, k[t, h, dn:] = k_pe[t] (when dr > 0), v[t, h] = c_kv[t] @
// W_UV[h]^T.
void ref_decompress(const std::vector<double>& c_kv, const std::vector<double>& k_pe, int64_t T,
                    int64_t dr, const Weights& w, Expect& k, Expect& v) {
  const int64_t H = w.heads, dk = w.dn + dr;
  k.k = v.k = static_cast<size_t>(w.dc);
  k.value.assign(static_cast<size_t>(T * H * dk), 0.0);
  k.abs_sum = k.value;
  v.value.assign(static_cast<size_t>(T * H * w.dv), 0.0);
  v.abs_sum = v.value;
  for (int64_t t = 0; t < T; ++t) {
    const double* c = &c_kv[static_cast<size_t>(t * w.dc)];
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < w.dn + w.dv; ++i) {
        double acc = 0, abs = 0;
        for (int64_t x = 0; x < w.dc; ++x) {
          const double term = c[x] * (i < w.dn ? w.uk(h, i, x) : w.uv(h, i - w.dn, x));
          acc += term;
          abs += std::fabs(term);
        }
        if (i < w.dn) {
          k.value[static_cast<size_t>((t * H + h) * dk + i)] = acc;
          k.abs_sum[static_cast<size_t>((t * H + h) * dk + i)] = abs;
        } else {
          v.value[static_cast<size_t>((t * H + h) * w.dv + i - w.dn)] = acc;
          v.abs_sum[static_cast<size_t>((t * H + h) * w.dv + i - w.dn)] = abs;
        }
      }
      for (int64_t r = 0; r < dr; ++r) {
        const double x = k_pe[static_cast<size_t>(t * dr + r)];
        k.value[static_cast<size_t>((t * H + h) * dk + w.dn + r)] = x;
        k.abs_sum[static_cast<size_t>((t * H + h) * dk + w.dn + r)] = std::fabs(x);
      }
    }
  }
}

struct OpsCase {
  int64_t heads, dn, dv, dc, dr, tokens;
};

// The three ops once, for weights `w`, activations of `in_dtype`, outputs of `out_dtype`, every
// tensor in `form`.
void run_ops(dsk_context* ctx, Weights& w, const OpsCase& c, int32_t in_dtype, int32_t out_dtype,
             Form form, uint64_t seed) {
  const int64_t T = c.tokens, H = c.heads;
  // absorb_q
  {
    Act q_nope({T, H, c.dn}, in_dtype, form);
    q_nope.fill_random(seed);
    Act q_lat({T, H, c.dc}, out_dtype, form);
    MLA_REQUIRE_OK(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), w.scale_dl(), q_lat.dl()));
    check_expect(q_lat.values(), ref_absorb_q(q_nope.values(), T, w), out_dtype, "q_latent");
    CHECK(q_lat.padding_written() == 0);
  }
  // absorb_out
  {
    Act o_lat({T, H, c.dc}, in_dtype, form);
    o_lat.fill_random(seed + 1);
    Act o({T, H, c.dv}, out_dtype, form);
    MLA_REQUIRE_OK(dsk_mla_absorb_out(ctx, o_lat.dl(), w.w_dl(), w.scale_dl(), o.dl()));
    check_expect(o.values(), ref_absorb_out(o_lat.values(), T, w), out_dtype, "o");
    CHECK(o.padding_written() == 0);
  }
  // decompress_kv, with and without k_pe
  for (bool with_pe : {true, false}) {
    const std::string pe = with_pe ? "with k_pe" : "without k_pe";
    INFO(pe);
    const int64_t dr = with_pe ? c.dr : 0;
    Act c_kv({T, c.dc}, in_dtype, form);
    c_kv.fill_random(seed + 2);
    Act k_pe({T, c.dr}, in_dtype, form);
    k_pe.fill_random(seed + 3);
    Act k({T, H, c.dn + dr}, out_dtype, form);
    Act v({T, H, c.dv}, out_dtype, form);
    MLA_REQUIRE_OK(dsk_mla_decompress_kv(ctx, c_kv.dl(), with_pe ? k_pe.dl() : nullptr, w.w_dl(),
                                         w.scale_dl(), k.dl(), v.dl()));
    Expect ek, ev;
    ref_decompress(c_kv.values(), k_pe.values(), T, dr, w, ek, ev);
    check_expect(k.values(), ek, out_dtype, "k");
    check_expect(v.values(), ev, out_dtype, "v");
    CHECK(k.padding_written() == 0);
    CHECK(v.padding_written() == 0);
  }
}

}  // namespace

namespace {

// 3 heads of 48 + 40 rows: 264 rows = 3 row blocks of 128 (the last partial), and Dc 160 = 2
// column blocks; heads straddle block boundaries.
const OpsCase kSmall{3, 48, 40, 160, 16, 5};
// DeepSeek's sizes (2 of the 128 heads).
const OpsCase kDeepSeek{2, 128, 128, 512, 64, 3};

const Form kForms[] = {Form::kContiguous, Form::kSliced, Form::kHeadMajor, Form::kInterleaved};

// run_ops for each form with activations of `in_dtype` and outputs rotating over f32, bf16, f16.
void run_forms(dsk_context* ctx, Weights& w, const OpsCase& c, int32_t in_dtype, uint64_t& seed,
               size_t forms = 4) {
  const int32_t outs[] = {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16, DSK_DTYPE_F32};
  for (size_t i = 0; i < forms; ++i) {
    const std::string what = std::string("wkv_b ") + mla_test::dtype_label(w.w.dtype()) +
                             ", activations " + mla_test::dtype_label(in_dtype) + ", outputs " +
                             mla_test::dtype_label(outs[i]) + ", " +
                             mla_test::form_label(kForms[i]);
    INFO(what);
    run_ops(ctx, w, c, in_dtype, outs[i], kForms[i], ++seed);
  }
}

}  // namespace

TEST_CASE("mla absorb ops with wkv_b in the activations' dtype match per-head matmuls") {
  CpuContext ctx;
  uint64_t seed = 10;
  for (int32_t dtype : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    Weights w =
        make_weights(ctx, kSmall.heads, kSmall.dn, kSmall.dv, kSmall.dc, dtype, ++seed, true);
    run_forms(ctx, w, kSmall, dtype, seed);
  }
  Weights w = make_weights(ctx, kDeepSeek.heads, kDeepSeek.dn, kDeepSeek.dv, kDeepSeek.dc,
                           DSK_DTYPE_BF16, 7, true);
  run_forms(ctx, w, kDeepSeek, DSK_DTYPE_BF16, seed, 2);
}

// The header: "dequantized on the fly: w = q * scale" and "GEMMs in f32, output rounded once":
// the products use the f32 values q * scale whatever the activations' dtype.
TEST_CASE("mla absorb ops with an fp8 wkv_b and f32 activations use w = q * scale") {
  CpuContext ctx;
  uint64_t seed = 20;
  Weights w = make_weights(ctx, kSmall.heads, kSmall.dn, kSmall.dv, kSmall.dc, DSK_DTYPE_FP8_E4M3FN,
                           21, true);
  run_forms(ctx, w, kSmall, DSK_DTYPE_F32, seed);
  Weights wd = make_weights(ctx, kDeepSeek.heads, kDeepSeek.dn, kDeepSeek.dv, kDeepSeek.dc,
                            DSK_DTYPE_FP8_E4M3FN, 22, true);
  run_forms(ctx, wd, kDeepSeek, DSK_DTYPE_F32, seed, 2);
}

TEST_CASE("mla absorb ops with an fp8 wkv_b and bf16 or f16 activations use w = q * scale in f32") {
  CpuContext ctx;
  uint64_t seed = 30;
  Weights w = make_weights(ctx, kSmall.heads, kSmall.dn, kSmall.dv, kSmall.dc, DSK_DTYPE_FP8_E4M3FN,
                           31, true);
  run_forms(ctx, w, kSmall, DSK_DTYPE_BF16, seed);
  run_forms(ctx, w, kSmall, DSK_DTYPE_F16, seed, 2);
  // DeepSeek-V3's own combination: fp8 wkv_b, bf16 activations.
  Weights wd = make_weights(ctx, kDeepSeek.heads, kDeepSeek.dn, kDeepSeek.dv, kDeepSeek.dc,
                            DSK_DTYPE_FP8_E4M3FN, 32, true);
  run_forms(ctx, wd, kDeepSeek, DSK_DTYPE_BF16, seed, 2);
}

// Activations of one float dtype with a wkv_b of another: the products of the stored values in
// f32, so an f32 or f16 weight is not rounded to bf16 activations' precision first.
TEST_CASE("mla absorb ops with wkv_b in another float dtype than the activations compute in f32") {
  CpuContext ctx;
  uint64_t seed = 40;
  const int32_t pairs[][2] = {{DSK_DTYPE_BF16, DSK_DTYPE_F32},  // wkv_b, activations
                              {DSK_DTYPE_F16, DSK_DTYPE_F32},
                              {DSK_DTYPE_F32, DSK_DTYPE_BF16},
                              {DSK_DTYPE_F16, DSK_DTYPE_BF16},
                              {DSK_DTYPE_BF16, DSK_DTYPE_F16}};
  for (const auto& p : pairs) {
    Weights w =
        make_weights(ctx, kSmall.heads, kSmall.dn, kSmall.dv, kSmall.dc, p[0], ++seed, true);
    run_forms(ctx, w, kSmall, p[1], seed, 2);
  }
}

// ---- the identity ----

namespace {

struct Dims {
  int64_t heads, dc, dn, dv, dr, page;
  float scale;
};

// Absorbed decode (latent cache) and MHA prefill over decompressed keys and values against the
// exact formula in double over the f32 inputs, and against each other.
void identity_case(dsk_context* ctx, const Dims& d, Weights& w, int32_t cache_dtype, int64_t s_q,
                   int32_t causal, const std::vector<int64_t>& lens, uint64_t seed) {
  const int64_t H = d.heads, B = static_cast<int64_t>(lens.size()), D = d.dc + d.dr;
  const int64_t Tq = B * s_q;
  int64_t T = 0;
  for (int64_t n : lens) T += n;
  std::ostringstream label;
  label << "H " << H << " Dc " << d.dc << " dn " << d.dn << " dv " << d.dv << " Dr " << d.dr
        << " s_q " << s_q << " causal " << causal << " cache " << mla_test::dtype_label(cache_dtype)
        << " wkv_b " << mla_test::dtype_label(w.w.dtype());
  const std::string what = label.str();
  INFO(what);

  // Inputs in f32: latents c_kv [T, Dc] and k_pe [T, Dr] of both requests packed, queries.
  Host c_kv({T, d.dc}, DSK_DTYPE_F32), k_pe({T, d.dr}, DSK_DTYPE_F32);
  c_kv.fill_random(seed);
  k_pe.fill_random(seed + 1);
  Host q_nope({Tq, H, d.dn}, DSK_DTYPE_F32), q_pe({Tq, H, d.dr}, DSK_DTYPE_F32);
  q_nope.fill_random(seed + 2);
  q_pe.fill_random(seed + 3);

  // ---- absorbed: cache_append -> absorb_q (into the decode q) -> decode -> absorb_out ----
  int64_t needed = 0, most = 1;
  for (int64_t n : lens) {
    needed += (n + d.page - 1) / d.page;
    most = std::max(most, (n + d.page - 1) / d.page);
  }
  const int64_t num_pages = needed + 2, max_pages = most + 1;
  const std::vector<int64_t> perm = mla_test::permutation(num_pages, seed + 4);
  std::vector<int64_t> table(static_cast<size_t>(B * max_pages), -1), slots;
  size_t next = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lens[static_cast<size_t>(b)];
    for (int64_t i = 0; i < (n + d.page - 1) / d.page; ++i) {
      table[static_cast<size_t>(b * max_pages + i)] = perm[next++];
    }
    for (int64_t t = 0; t < n; ++t) {
      slots.push_back(table[static_cast<size_t>(b * max_pages + t / d.page)] * d.page + t % d.page);
    }
  }
  Host cache({num_pages, d.page, 1, D}, cache_dtype);
  cache.fill_nan();
  Host slot_mapping = ints({T}, DSK_DTYPE_INT64, slots);
  MLA_REQUIRE_OK(dsk_mla_cache_append(ctx, c_kv.dl(), k_pe.dl(), slot_mapping.dl(), cache.dl()));
  Host q({B, s_q, H, D}, cache_dtype);
  q.fill_nan();
  mla_test::View q_latent = q.view({Tq, H, d.dc}, {H * D, D, 1});
  MLA_REQUIRE_OK(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), w.scale_dl(), q_latent.get()));
  for (int64_t t = 0; t < Tq; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t r = 0; r < d.dr; ++r) {
        q.set((t * H + h) * D + d.dc + r, q_pe.get((t * H + h) * d.dr + r));
      }
    }
  }
  Host block_table = ints({B, max_pages}, DSK_DTYPE_INT32, table);
  Host seqlens = ints({B}, DSK_DTYPE_INT32, lens);
  Host out_latent({B, s_q, H, d.dc}, cache_dtype);
  Host lse_decode({B, H, s_q}, DSK_DTYPE_F32);
  MLA_REQUIRE_OK(dsk_mla_decode(ctx, q.dl(), cache.dl(), block_table.dl(), seqlens.dl(), d.scale,
                                causal, out_latent.dl(), lse_decode.dl()));
  mla_test::View o_latent = out_latent.reshaped({Tq, H, d.dc});
  Host o_absorbed({Tq, H, d.dv}, DSK_DTYPE_F32);
  MLA_REQUIRE_OK(dsk_mla_absorb_out(ctx, o_latent.get(), w.w_dl(), w.scale_dl(), o_absorbed.dl()));

  // ---- naive: decompress_kv -> prefill over [q_nope | q_pe] ----
  Host k({T, H, d.dn + d.dr}, cache_dtype), v({T, H, d.dv}, cache_dtype);
  MLA_REQUIRE_OK(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), w.scale_dl(), k.dl(), v.dl()));
  Host q_full({Tq, H, d.dn + d.dr}, cache_dtype);
  for (int64_t t = 0; t < Tq; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < d.dn; ++i) {
        q_full.set((t * H + h) * (d.dn + d.dr) + i, q_nope.get((t * H + h) * d.dn + i));
      }
      for (int64_t r = 0; r < d.dr; ++r) {
        q_full.set((t * H + h) * (d.dn + d.dr) + d.dn + r, q_pe.get((t * H + h) * d.dr + r));
      }
    }
  }
  std::vector<int64_t> cu_q_v(1, 0), cu_k_v(1, 0);
  for (int64_t n : lens) {
    cu_q_v.push_back(cu_q_v.back() + s_q);
    cu_k_v.push_back(cu_k_v.back() + n);
  }
  Host cu_q = ints({B + 1}, DSK_DTYPE_INT32, cu_q_v), cu_k = ints({B + 1}, DSK_DTYPE_INT32, cu_k_v);
  Host o_naive({Tq, H, d.dv}, cache_dtype);
  Host lse_naive({H, Tq}, DSK_DTYPE_F32);
  MLA_REQUIRE_OK(dsk_mla_prefill(ctx, q_full.dl(), k.dl(), v.dl(), cu_q.dl(), cu_k.dl(), d.scale,
                                 causal, o_naive.dl(), lse_naive.dl()));

  // ---- exact, in double over the f32 inputs ----
  std::vector<double> kn(static_cast<size_t>(T * H * d.dn)), vv(static_cast<size_t>(T * H * d.dv));
  double max_v = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < d.dn + d.dv; ++i) {
        double acc = 0;
        for (int64_t c = 0; c < d.dc; ++c) {
          acc += c_kv.get(t * d.dc + c) * (i < d.dn ? w.uk(h, i, c) : w.uv(h, i - d.dn, c));
        }
        if (i < d.dn) {
          kn[static_cast<size_t>((t * H + h) * d.dn + i)] = acc;
        } else {
          vv[static_cast<size_t>((t * H + h) * d.dv + i - d.dn)] = acc;
          max_v = std::max(max_v, std::fabs(acc));
        }
      }
    }
  }
  std::vector<double> o_exact(static_cast<size_t>(Tq * H * d.dv), 0.0);
  std::vector<double> lse_exact(static_cast<size_t>(H * Tq), -kInf);  // [H, Tq]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lens[static_cast<size_t>(b)], t0 = cu_k_v[static_cast<size_t>(b)];
    for (int64_t j = 0; j < s_q; ++j) {
      const int64_t tq = b * s_q + j;
      const int64_t limit = causal ? n - s_q + j + 1 : n;
      if (limit <= 0) continue;
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> s(static_cast<size_t>(limit));
        double m = -kInf;
        for (int64_t t = 0; t < limit; ++t) {
          double acc = 0;
          for (int64_t i = 0; i < d.dn; ++i) {
            acc += q_nope.get((tq * H + h) * d.dn + i) *
                   kn[static_cast<size_t>(((t0 + t) * H + h) * d.dn + i)];
          }
          for (int64_t r = 0; r < d.dr; ++r) {
            acc += q_pe.get((tq * H + h) * d.dr + r) * k_pe.get((t0 + t) * d.dr + r);
          }
          s[static_cast<size_t>(t)] = acc * static_cast<double>(d.scale);
          m = std::max(m, s[static_cast<size_t>(t)]);
        }
        double sum = 0;
        double* o = &o_exact[static_cast<size_t>((tq * H + h) * d.dv)];
        for (int64_t t = 0; t < limit; ++t) {
          const double p = std::exp(s[static_cast<size_t>(t)] - m);
          sum += p;
          for (int64_t x = 0; x < d.dv; ++x) {
            o[x] += p * vv[static_cast<size_t>(((t0 + t) * H + h) * d.dv + x)];
          }
        }
        for (int64_t x = 0; x < d.dv; ++x) o[x] /= sum;
        lse_exact[static_cast<size_t>(h * Tq + tq)] = m + std::log(sum);
      }
    }
  }

  // Tolerances. Each path rounds a few quantities to the cache dtype (bf16: relative 2^-9 each):
  // absorbed: the cached latent and k_pe, q_latent, q_pe and the decode output latent; naive:
  // k, v, q and the output. A score then moves by about scale * 2^-9 * sqrt(sum of squared
  // terms) (random roundings; ~1e-3 here) and an output by that times the spread of v plus a few
  // 2^-9 of |v|; both paths stay well inside 2^-8 * (max |v| + |o|) and lse inside 2^-7, while
  // a structural error (wrong head, row block, causal limit, transposed weight) moves outputs by
  // a sizable fraction of max |v|.
  const double u = std::ldexp(1.0, -8);
  auto tol_o = [&](size_t i) { return u * (max_v + std::fabs(o_exact[i])); };
  auto tol_lse = [&](size_t) { return 2 * u; };
  // Decode lse is [B, H, s_q]; as [H, Tq]:
  std::vector<double> lse_abs(static_cast<size_t>(H * Tq));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < s_q; ++j) {
        lse_abs[static_cast<size_t>(h * Tq + b * s_q + j)] = lse_decode.get((b * H + h) * s_q + j);
      }
    }
  }
  const std::vector<double> oa = o_absorbed.values(), on = o_naive.values();
  const std::vector<double> ln = lse_naive.values();
  check_within(oa, o_exact, tol_o, "absorbed out vs exact");
  check_within(on, o_exact, tol_o, "naive out vs exact");
  check_within(lse_abs, lse_exact, tol_lse, "absorbed lse vs exact");
  check_within(ln, lse_exact, tol_lse, "naive lse vs exact");
  check_within(
      oa, on, [&](size_t i) { return 2 * tol_o(i); }, "absorbed vs naive out");
  check_within(
      lse_abs, ln, [&](size_t) { return 4 * u; }, "absorbed vs naive lse");
  // How much of the tolerance each path uses (1 = at the limit).
  double used_a = 0, used_n = 0;
  for (size_t i = 0; i < oa.size(); ++i) {
    used_a = std::max(used_a, std::fabs(oa[i] - o_exact[i]) / tol_o(i));
    used_n = std::max(used_n, std::fabs(on[i] - o_exact[i]) / tol_o(i));
  }
  MESSAGE(what, ": out error / tolerance: absorbed ", used_a, ", naive ", used_n);
}

}  // namespace

TEST_CASE("mla identity absorbed decode equals naive MHA over decompressed keys, small dims") {
  CpuContext ctx;
  const Dims d{4, 64, 32, 32, 16, 16, 0.5f};
  Weights w = make_weights(ctx, d.heads, d.dn, d.dv, d.dc, DSK_DTYPE_F32, 1, false);
  uint64_t seed = 1000;
  for (int64_t s_q = 1; s_q <= 4; ++s_q) {
    for (int32_t causal : {0, 1}) {
      // Request 1 has 3 tokens: with s_q 4 and causal its first query attends to nothing.
      identity_case(ctx, d, w, DSK_DTYPE_BF16, s_q, causal, {19, 3}, seed += 10);
    }
  }
  identity_case(ctx, d, w, DSK_DTYPE_F16, 3, 1, {40, 5, 17}, seed += 10);
}

TEST_CASE("mla identity at DeepSeek's sizes with bf16 and fp8 wkv_b") {
  CpuContext ctx;
  const Dims d{2, 512, 128, 128, 64, 64, 0.25f};
  Weights w = make_weights(ctx, d.heads, d.dn, d.dv, d.dc, DSK_DTYPE_BF16, 2, false);
  uint64_t seed = 2000;
  for (int64_t s_q = 1; s_q <= 4; ++s_q) {
    for (int32_t causal : {0, 1}) {
      identity_case(ctx, d, w, DSK_DTYPE_BF16, s_q, causal, {70, 3}, seed += 10);
    }
  }
  Weights w8 = make_weights(ctx, d.heads, d.dn, d.dv, d.dc, DSK_DTYPE_FP8_E4M3FN, 3, false);
  identity_case(ctx, d, w8, DSK_DTYPE_BF16, 2, 1, {70, 3}, seed += 10);
}

// ---- bad input ----

TEST_CASE("mla absorb ops reject bad arguments") {
  CpuContext ctx;
  const int64_t T = 2, H = 2, dn = 16, dv = 8, dc = 32, dr = 8;
  Weights w = make_weights(ctx, H, dn, dv, dc, DSK_DTYPE_F32, 5, false);
  Weights w8 = make_weights(ctx, H, dn, dv, dc, DSK_DTYPE_FP8_E4M3FN, 5, false);
  Host q_nope({T, H, dn}, DSK_DTYPE_F32), q_lat({T, H, dc}, DSK_DTYPE_F32);
  Host o_lat({T, H, dc}, DSK_DTYPE_F32), o({T, H, dv}, DSK_DTYPE_F32);
  Host c_kv({T, dc}, DSK_DTYPE_F32), k_pe({T, dr}, DSK_DTYPE_F32);
  Host k({T, H, dn + dr}, DSK_DTYPE_F32), v({T, H, dv}, DSK_DTYPE_F32);
  q_nope.fill(0.5);
  o_lat.fill(0.5);
  c_kv.fill(0.5);
  k_pe.fill(0.5);
  // The valid calls.
  MLA_REQUIRE_OK(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), nullptr, q_lat.dl()));
  MLA_REQUIRE_OK(dsk_mla_absorb_out(ctx, o_lat.dl(), w.w_dl(), nullptr, o.dl()));
  MLA_REQUIRE_OK(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), v.dl()));
  MLA_REQUIRE_OK(dsk_mla_absorb_q(ctx, q_nope.dl(), w8.w_dl(), w8.scale_dl(), q_lat.dl()));

  // wkv_b rows not a multiple of H (49 rows, 2 heads).
  Host w49({49, dc}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w49.dl(), nullptr, q_lat.dl()), {"wkv_b"});
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat.dl(), w49.dl(), nullptr, o.dl()), {"wkv_b"});
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w49.dl(), nullptr, k.dl(), v.dl()),
      {"wkv_b"});
  // fp8 without scales; scales with a float wkv_b; scales of the wrong shape or dtype.
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w8.w_dl(), nullptr, q_lat.dl()),
                 {"wkv_b_scale|wkv_b"});
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat.dl(), w8.w_dl(), nullptr, o.dl()),
                 {"wkv_b_scale|wkv_b"});
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w8.w_dl(), nullptr, k.dl(), v.dl()),
      {"wkv_b_scale|wkv_b"});
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), w8.scale_dl(), q_lat.dl()),
                 {"wkv_b_scale"});
  Host s_bad({2, 1}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w8.w_dl(), s_bad.dl(), q_lat.dl()),
                 {"wkv_b_scale"});
  Host s_bf16({1, 1}, DSK_DTYPE_BF16);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w8.w_dl(), s_bf16.dl(), q_lat.dl()),
                 {"wkv_b_scale"});
  // Non-float tensors.
  Host w_int({H * (dn + dv), dc}, DSK_DTYPE_INT32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w_int.dl(), nullptr, q_lat.dl()), {"wkv_b"});
  Host q_int({T, H, dn}, DSK_DTYPE_INT32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_int.dl(), w.w_dl(), nullptr, q_lat.dl()), {"q_nope"});
  Host w_1d({H * (dn + dv) * dc}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w_1d.dl(), nullptr, q_lat.dl()), {"wkv_b"});
  // Shapes that do not fit.
  Host q_lat_dc({T, H, dc + 1}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), nullptr, q_lat_dc.dl()),
                 {"q_latent|wkv_b"});
  Host q_lat_t({T + 1, H, dc}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), nullptr, q_lat_t.dl()),
                 {"q_latent|q_nope"});
  Host q_nope_wide({T, H, dn + dv + 1}, DSK_DTYPE_F32);  // dn > rows per head
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope_wide.dl(), w.w_dl(), nullptr, q_lat.dl()),
                 {"q_nope|wkv_b"});
  Host q_nope_2d({T, dn}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope_2d.dl(), w.w_dl(), nullptr, q_lat.dl()), {"q_nope"});
  Host o_lat_dc({T, H, dc - 1}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat_dc.dl(), w.w_dl(), nullptr, o.dl()),
                 {"o_latent|wkv_b"});
  Host o_wide({T, H, dn + dv + 1}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat.dl(), w.w_dl(), nullptr, o_wide.dl()), {"o|wkv_b"});
  Host o_h({T, H + 1, dv}, DSK_DTYPE_F32);
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat.dl(), w.w_dl(), nullptr, o_h.dl()), {"o|o_latent"});
  Host c_kv_dc({T, dc + 1}, DSK_DTYPE_F32);
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv_dc.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), v.dl()),
      {"c_kv|wkv_b"});
  Host k_pe_t({T + 1, dr}, DSK_DTYPE_F32);
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe_t.dl(), w.w_dl(), nullptr, k.dl(), v.dl()),
      {"k_pe|c_kv"});
  Host k_short({T, H, dn}, DSK_DTYPE_F32);  // k_pe given: k must hold dn + dr
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k_short.dl(), v.dl()),
      {"k|k_pe"});
  expect_invalid(dsk_mla_decompress_kv(ctx, c_kv.dl(), nullptr, w.w_dl(), nullptr, k.dl(), v.dl()),
                 {"k"});
  Host v_h({T, H + 1, dv}, DSK_DTYPE_F32);
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), v_h.dl()),
      {"v|k"});
  Host v_t({T + 1, H, dv}, DSK_DTYPE_F32);
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), v_t.dl()),
      {"v|c_kv"});
  // Outputs overlapping inputs: q_latent over q_nope's memory.
  Host shared({T, H, dc + dn}, DSK_DTYPE_F32);
  mla_test::View nope_in = shared.view({T, H, dn}, {H * (dc + dn), dc + dn, 1}, 0);
  mla_test::View lat_out = shared.view({T, H, dc}, {H * (dc + dn), dc + dn, 1}, 0);
  expect_invalid(dsk_mla_absorb_q(ctx, nope_in.get(), w.w_dl(), nullptr, lat_out.get()),
                 {"q_latent|q_nope"});
  // NULLs.
  expect_invalid(dsk_mla_absorb_q(nullptr, q_nope.dl(), w.w_dl(), nullptr, q_lat.dl()), {"ctx"});
  expect_invalid(dsk_mla_absorb_q(ctx, nullptr, w.w_dl(), nullptr, q_lat.dl()), {"q_nope"});
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), nullptr, nullptr, q_lat.dl()), {"wkv_b"});
  expect_invalid(dsk_mla_absorb_q(ctx, q_nope.dl(), w.w_dl(), nullptr, nullptr), {"q_latent"});
  expect_invalid(dsk_mla_absorb_out(nullptr, o_lat.dl(), w.w_dl(), nullptr, o.dl()), {"ctx"});
  expect_invalid(dsk_mla_absorb_out(ctx, nullptr, w.w_dl(), nullptr, o.dl()), {"o_latent"});
  expect_invalid(dsk_mla_absorb_out(ctx, o_lat.dl(), w.w_dl(), nullptr, nullptr), {"o"});
  expect_invalid(
      dsk_mla_decompress_kv(nullptr, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), v.dl()),
      {"ctx"});
  expect_invalid(dsk_mla_decompress_kv(ctx, nullptr, k_pe.dl(), w.w_dl(), nullptr, k.dl(), v.dl()),
                 {"c_kv"});
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, nullptr, v.dl()), {"k"});
  expect_invalid(
      dsk_mla_decompress_kv(ctx, c_kv.dl(), k_pe.dl(), w.w_dl(), nullptr, k.dl(), nullptr), {"v"});
}
