// MLA weight absorption (dsk_mla_absorb_q, dsk_mla_absorb_out, dsk_mla_decompress_kv) on CUDA
// against the CPU reference, same inputs, with bf16, f32 and fp8 (128 x 128 block scales) wkv_b and
// bf16, f16 and f32 activations (an f32 wkv_b with f16 activations is dsk-run's f32 absorb_out).
//
// Tolerance per element: both sides multiply the weight's exact f32 value (fp8: q * scale) by the
// activations in f32 and accumulate in f32 in different orders (cuBLAS vs the CPU's fixed lane
// order), so each is within (K + 3) * 2^-24 * sum_k |x_k w_k| of the exact dot product and their
// difference within twice that, plus one ulp of the output dtype when it is bf16 (each side rounds
// its own f32 result once) or f16.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::create;
using dsk_test::Env;
using dsk_test::Pair;
using dsk_test::read_f32;
using dsk_test::Tensor;

struct Shape {
  int64_t heads, dn, dv, dc;
};

// Uniform [-1, 1] values of dtype_id on both sides.
Pair uniform_pair(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id,
                  uint64_t seed) {
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  dsk_random_params r;
  DSK_REQUIRE_OK(dsk_random_params_init(&r));
  r.distribution = DSK_RANDOM_UNIFORM;
  r.a = -1.0;
  r.b = 1.0;
  r.seed = seed;
  DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), p.cpu.dl(), &r));
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), p.cpu.dl(), p.gpu.dl()));
  return p;
}

// wkv_b [H (dn + dv), Dc] in bf16, f32 or fp8 (quantized on the CPU, scales copied), and the f32
// values the products use.
struct Weight {
  Pair w;
  Pair scale;  // fp8 only
  bool fp8 = false;
  std::vector<float> value;  // [R, Dc]
  const DLTensor* w_of(int side) const { return side == 0 ? w.cpu.dl() : w.gpu.dl(); }
  const DLTensor* scale_of(int side) const {
    if (!fp8) return nullptr;
    return side == 0 ? scale.cpu.dl() : scale.gpu.dl();
  }
};

Weight make_weight(const Env& env, const Shape& s, int32_t dtype_id, uint64_t seed) {
  Weight w;
  const bool fp8 = dtype_id == DSK_DTYPE_FP8_E4M3FN;
  w.fp8 = fp8;
  const int64_t rows = s.heads * (s.dn + s.dv);
  Pair f = uniform_pair(env, {rows, s.dc}, fp8 ? DSK_DTYPE_F32 : dtype_id, seed);
  if (!fp8) {
    w.value = read_f32(env, f.cpu.dl());
    w.w = std::move(f);
    return w;
  }
  const std::vector<int64_t> scale_shape = {(rows + 127) / 128, (s.dc + 127) / 128};
  w.w.cpu = create(env.cpu.get(), {rows, s.dc}, DSK_DTYPE_FP8_E4M3FN);
  w.scale.cpu = create(env.cpu.get(), scale_shape, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(
      dsk_quant_fp8_weight(env.cpu.get(), f.cpu.dl(), w.w.cpu.dl(), w.scale.cpu.dl(), 0));
  w.w.gpu = create(env.gpu.get(), {rows, s.dc}, DSK_DTYPE_FP8_E4M3FN);
  w.scale.gpu = create(env.gpu.get(), scale_shape, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), w.w.cpu.dl(), w.w.gpu.dl()));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), w.scale.cpu.dl(), w.scale.gpu.dl()));
  Tensor deq = create(env.cpu.get(), {rows, s.dc}, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_dequant_fp8_weight(env.cpu.get(), w.w.cpu.dl(), w.scale.cpu.dl(), deq.dl()));
  w.value = read_f32(env, deq.dl());
  return w;
}

// sum_k |x_k w_k| of every output [tokens, heads, n] of a dot product of length k: term(t, h, i, c)
// is |x| |w| of one product.
template <typename Term>
std::vector<double> magnitudes(int64_t tokens, int64_t heads, int64_t n, int64_t k, Term term) {
  std::vector<double> mag(static_cast<size_t>(tokens * heads * n), 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < k; ++c)
          mag[static_cast<size_t>((t * heads + h) * n + i)] += term(t, h, i, c);
  return mag;
}

// At least one unit in the last place of v in the output dtype (0 for f32, which the f32 bound
// covers).
double ulp(double v, int32_t dtype) {
  if (dtype == DSK_DTYPE_BF16) return std::ldexp(std::max(std::fabs(v), 1e-30), -7);
  if (dtype == DSK_DTYPE_F16) return std::max(std::ldexp(std::fabs(v), -10), std::ldexp(1.0, -24));
  return 0.0;
}

// Compares the two sides' outputs: mag[i] is sum_k |x_k w_k| of element i, k the dot length.
void check(const Env& env, const Pair& out, const std::vector<double>& mag, int64_t k,
           const std::string& what) {
  INFO(what);
  const std::vector<float> got = read_f32(env, out.gpu.dl());
  const std::vector<float> want = read_f32(env, out.cpu.dl());
  REQUIRE(got.size() == mag.size());
  const int32_t dtype = dsk_test::dtype_id_of(out.cpu.dl()->dtype);
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = 2.0 * static_cast<double>(k + 3) * std::ldexp(1.0, -24) * mag[i] +
                       ulp(want[i], dtype) + 1e-30;
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(diff <= tol) && failures++ < 5) {
      FAIL_CHECK("element " << i << ": cuda " << got[i] << ", cpu " << want[i] << ", tolerance "
                            << tol);
    }
  }
  CHECK(failures == 0);
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.mla absorb ops with bf16, f32 and fp8 wkv_b match the CPU reference") {
    Env env;
    // DeepSeek's per-head sizes (4 of the 128 heads), and heads of 48 + 40 rows that straddle the
    // 128-row scale blocks with Dc ending in a partial block.
    const Shape shapes[] = {{4, 128, 128, 512}, {3, 48, 40, 160}};
    uint64_t seed = 900;
    for (const Shape& s : shapes) {
      const int64_t ph = s.dn + s.dv;
      for (int32_t wdt : {DSK_DTYPE_BF16, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN}) {
        const Weight w = make_weight(env, s, wdt, ++seed);
        auto wv = [&](int64_t r, int64_t c) {
          return std::fabs(static_cast<double>(w.value[static_cast<size_t>(r * s.dc + c)]));
        };
        for (int64_t tokens : {1, 3, 16}) {
          for (int32_t act : {DSK_DTYPE_BF16, DSK_DTYPE_F16, DSK_DTYPE_F32}) {
            const int32_t out = act;
            const std::string what = std::string(dsk_test::dtype_name(wdt)) + " wkv_b, heads " +
                                     std::to_string(s.heads) + ", dn " + std::to_string(s.dn) +
                                     ", tokens " + std::to_string(tokens) + ", activations " +
                                     dsk_test::dtype_name(act);
            // absorb_q: q_latent[t, h, c] = sum_i q[t, h, i] W[h ph + i, c].
            Pair q = uniform_pair(env, {tokens, s.heads, s.dn}, act, ++seed);
            Pair ql = dsk_test::outputs(env, {tokens, s.heads, s.dc}, out);
            for (int side = 0; side < 2; ++side) {
              DSK_REQUIRE_OK(dsk_mla_absorb_q(
                  side == 0 ? env.cpu.get() : env.gpu.get(), side == 0 ? q.cpu.dl() : q.gpu.dl(),
                  w.w_of(side), w.scale_of(side), side == 0 ? ql.cpu.dl() : ql.gpu.dl()));
            }
            DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
            const std::vector<float> qv = read_f32(env, q.cpu.dl());
            check(env, ql,
                  magnitudes(tokens, s.heads, s.dc, s.dn,
                             [&](int64_t t, int64_t h, int64_t c, int64_t i) {
                               return std::fabs(
                                          qv[static_cast<size_t>((t * s.heads + h) * s.dn + i)]) *
                                      wv(h * ph + i, c);
                             }),
                  s.dn, "absorb_q, " + what);

            // absorb_out: o[t, h, j] = sum_c o_lat[t, h, c] W[h ph + dn + j, c].
            Pair ol = uniform_pair(env, {tokens, s.heads, s.dc}, act, ++seed);
            Pair o = dsk_test::outputs(env, {tokens, s.heads, s.dv}, out);
            for (int side = 0; side < 2; ++side) {
              DSK_REQUIRE_OK(dsk_mla_absorb_out(
                  side == 0 ? env.cpu.get() : env.gpu.get(), side == 0 ? ol.cpu.dl() : ol.gpu.dl(),
                  w.w_of(side), w.scale_of(side), side == 0 ? o.cpu.dl() : o.gpu.dl()));
            }
            DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
            const std::vector<float> olv = read_f32(env, ol.cpu.dl());
            check(env, o,
                  magnitudes(tokens, s.heads, s.dv, s.dc,
                             [&](int64_t t, int64_t h, int64_t j, int64_t c) {
                               return std::fabs(
                                          olv[static_cast<size_t>((t * s.heads + h) * s.dc + c)]) *
                                      wv(h * ph + s.dn + j, c);
                             }),
                  s.dc, "absorb_out, " + what);

            // decompress_kv (no k_pe): k[t, h, i] = sum_c c_kv[t, c] W[h ph + i, c], v likewise
            // from the rows after dn.
            Pair ckv = uniform_pair(env, {tokens, s.dc}, act, ++seed);
            Pair k = dsk_test::outputs(env, {tokens, s.heads, s.dn}, out);
            Pair v = dsk_test::outputs(env, {tokens, s.heads, s.dv}, out);
            for (int side = 0; side < 2; ++side) {
              DSK_REQUIRE_OK(dsk_mla_decompress_kv(
                  side == 0 ? env.cpu.get() : env.gpu.get(),
                  side == 0 ? ckv.cpu.dl() : ckv.gpu.dl(), nullptr, w.w_of(side), w.scale_of(side),
                  side == 0 ? k.cpu.dl() : k.gpu.dl(), side == 0 ? v.cpu.dl() : v.gpu.dl()));
            }
            DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
            const std::vector<float> cv = read_f32(env, ckv.cpu.dl());
            for (const bool is_v : {false, true}) {
              const int64_t n = is_v ? s.dv : s.dn;
              const std::vector<double> mag = magnitudes(
                  tokens, s.heads, n, s.dc, [&](int64_t t, int64_t h, int64_t i, int64_t c) {
                    return std::fabs(cv[static_cast<size_t>(t * s.dc + c)]) *
                           wv(h * ph + (is_v ? s.dn : 0) + i, c);
                  });
              check(env, is_v ? v : k, mag, s.dc,
                    (is_v ? "decompress v, " : "decompress k, ") + what);
            }
          }
        }
      }
    }
  }
}
