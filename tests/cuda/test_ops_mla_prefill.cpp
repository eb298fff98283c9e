// MLA prefill and latent cache append: CUDA against the CPU reference on the same inputs, through
// the public dsk_mla_prefill / dsk_mla_cache_append.
//
// Prefill tolerances (FlashMLA's, include/dsk/dsk_mla.h):
//  - out: |cuda - cpu| <= max(8e-4, 2/128 * |cpu|). The kernels round the probabilities P to the
//    input dtype before P V (as FlashAttention/FlashMLA do) and both sides round out once; with
//    v ~ N(0, 0.1^2) the P rounding moves out by about 2^-9 * 0.1 * sqrt(sum p^2) <= 2e-4 (8e-4 is
//    several standard deviations away), and 2/128 relative covers a one-ulp bf16 flip of the final
//    rounding for |out| >= 0.05.
//  - lse: |cuda - cpu| <= max(1e-5, 8/65536 * |cpu|). Scores differ only by the f32 summation order
//    of Dqk products (tensor cores vs the CPU loop, ~1e-6 here) and exp/log implementations
//    (a few ulp), both far below 1e-5 absolute.
//  - -inf (no visible key) must match exactly, out 0 there.
// Inputs: q, k ~ N(0, 1) (scores ~ N(0, 1) after the 1/sqrt(Dqk) scale, so the softmax is peaked
// enough to exercise the running maximum), v ~ N(0, 0.1^2).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::create;
using dsk_test::download;
using dsk_test::Env;
using dsk_test::Pair;
using dsk_test::read_f32;
using dsk_test::Tensor;

// A CPU tensor and its CUDA copy.
Pair upload(const Env& env, Tensor cpu) {
  const DLTensor* dl = cpu.dl();
  Pair p;
  p.gpu = create(env.gpu.get(), std::vector<int64_t>(dl->shape, dl->shape + dl->ndim),
                 dsk_test::dtype_id_of(dl->dtype));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), dl, p.gpu.dl()));
  p.cpu = std::move(cpu);
  return p;
}

// N(mean, std^2) values of dtype_id on both sides (dsk_fill_random, the same bits everywhere).
Pair normal_pair(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id, double std,
                 uint64_t seed) {
  Tensor t = create(env.cpu.get(), shape, dtype_id);
  dsk_random_params p;
  DSK_REQUIRE_OK(dsk_random_params_init(&p));
  p.distribution = DSK_RANDOM_NORMAL;
  p.a = 0.0;
  p.b = std;
  p.seed = seed;
  DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), t.dl(), &p));
  return upload(env, std::move(t));
}

// Outputs pre-filled with different sentinels on the two sides, so unwritten elements differ.
Pair output_pair(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id) {
  Tensor cpu = create(env.cpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), cpu.dl(), 7.0));
  Pair p = upload(env, std::move(cpu));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), p.gpu.dl(), -3.0));
  return p;
}

template <typename T>
Pair int_pair(const Env& env, const std::vector<T>& values, int32_t dtype_id) {
  Tensor t = create(env.cpu.get(), {static_cast<int64_t>(values.size())}, dtype_id);
  if (!values.empty()) std::memcpy(t.host_bytes(), values.data(), values.size() * sizeof(T));
  return upload(env, std::move(t));
}

std::vector<int32_t> cumulative(const std::vector<int32_t>& lengths) {
  std::vector<int32_t> cu(1, 0);
  for (int32_t n : lengths) cu.push_back(cu.back() + n);
  return cu;
}

// out: max(8e-4, 2/128 |cpu|); lse: max(1e-5, 8/65536 |cpu|); infinities and NaN must match.
void check_close(const Env& env, const Pair& p, double abs_tol, double rel_tol,
                 const std::string& what) {
  const std::vector<float> want = read_f32(env, p.cpu.dl());
  const std::vector<float> got = read_f32(env, p.gpu.dl());
  REQUIRE(got.size() == want.size());
  int64_t bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i];
    const double w = want[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      const double diff = std::fabs(g - w);
      worst = std::max(worst, diff);
      ok = diff <= std::max(abs_tol, rel_tol * std::fabs(w));
    }
    if (!ok && bad++ < 5) FAIL_CHECK(what << " element " << i << ": cuda " << g << ", cpu " << w);
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << got.size()
                               << " elements out of tolerance (largest finite difference " << worst
                               << ")");
}

struct PrefillShape {
  std::vector<int32_t> lq;  // queries per request
  std::vector<int32_t> lk;  // keys per request; empty: cu_seqlens_k is the cu_seqlens_q tensor
  int64_t h, hk, dqk, dv;
  int32_t causal;
  int32_t dtype;
};

// One prefill on both backends with contiguous tensors; compares out and lse.
void run_prefill(const Env& env, const PrefillShape& s, uint64_t seed) {
  const std::vector<int32_t> cq = cumulative(s.lq);
  const std::vector<int32_t> ck = cumulative(s.lk.empty() ? s.lq : s.lk);
  const int64_t tq = cq.back();
  const int64_t tk = ck.back();
  Pair q = normal_pair(env, {tq, s.h, s.dqk}, s.dtype, 1.0, seed);
  Pair k = normal_pair(env, {tk, s.hk, s.dqk}, s.dtype, 1.0, seed + 1);
  Pair v = normal_pair(env, {tk, s.hk, s.dv}, s.dtype, 0.1, seed + 2);
  Pair cu_q = int_pair(env, cq, DSK_DTYPE_INT32);
  Pair cu_k = int_pair(env, ck, DSK_DTYPE_INT32);
  Pair out = output_pair(env, {tq, s.h, s.dv}, s.dtype);
  Pair lse = output_pair(env, {s.h, tq}, DSK_DTYPE_F32);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dqk));
  const bool same_cu = s.lk.empty();
  DSK_REQUIRE_OK(dsk_mla_prefill(env.cpu.get(), q.cpu.dl(), k.cpu.dl(), v.cpu.dl(), cu_q.cpu.dl(),
                                 same_cu ? nullptr : cu_k.cpu.dl(), scale, s.causal, out.cpu.dl(),
                                 lse.cpu.dl()));
  DSK_REQUIRE_OK(dsk_mla_prefill(env.gpu.get(), q.gpu.dl(), k.gpu.dl(), v.gpu.dl(), cu_q.gpu.dl(),
                                 same_cu ? nullptr : cu_k.gpu.dl(), scale, s.causal, out.gpu.dl(),
                                 lse.gpu.dl()));
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  check_close(env, out, 8e-4, 2.0 / 128, "out");
  check_close(env, lse, 1e-5, 8.0 / 65536, "lse");
}

std::string describe(const std::vector<int32_t>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "}";
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.mla_prefill matches the CPU reference") {
    Env env;
    // B = 1 and B = 3 over the lengths 1, 17, 64, 65, 300 (tile edges and several tiles).
    const std::vector<std::vector<int32_t>> q_sets = {{1},   {17},         {64},        {65},
                                                      {300}, {1, 65, 300}, {17, 64, 65}};
    // Keys: the same rows as the queries (cu_seqlens_k NULL), or a cached prefix before them.
    const std::vector<int32_t> prefixes = {37, 128, 5};
    struct Dims {
      int64_t dqk, dv;
    };
    const Dims dims[] = {{192, 128}, {64, 64}};
    uint64_t seed = 100;
    int index = 0;
    for (const Dims& d : dims) {
      for (const auto& lq : q_sets) {
        for (bool prefix : {false, true}) {
          for (int32_t causal : {1, 0}) {
            for (int64_t hk : {16, 1}) {
              PrefillShape s;
              s.lq = lq;
              if (prefix) {
                for (size_t b = 0; b < lq.size(); ++b) {
                  s.lk.push_back(lq[b] + prefixes[b % prefixes.size()]);
                }
              }
              s.h = 16;
              s.hk = hk;
              s.dqk = d.dqk;
              s.dv = d.dv;
              s.causal = causal;
              // Both dtypes, alternating over the cases.
              s.dtype = (index++ % 2) == 0 ? DSK_DTYPE_BF16 : DSK_DTYPE_F16;
              CAPTURE(d.dqk);
              CAPTURE(d.dv);
              CAPTURE(describe(lq));
              CAPTURE(prefix);
              CAPTURE(causal);
              CAPTURE(hk);
              CAPTURE(s.dtype);
              run_prefill(env, s, seed);
              seed += 3;
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda.mla_prefill other head dims, empty requests and queries without keys") {
    Env env;
    const PrefillShape shapes[] = {
        // Dqk not a multiple of 16 (zero-padded k steps), generic Dv bucket 256.
        {{33, 70}, {40, 70}, 4, 2, 72, 200, 1, DSK_DTYPE_BF16},
        {{33, 70}, {}, 4, 4, 256, 256, 0, DSK_DTYPE_F16},
        {{5, 80}, {5, 90}, 8, 1, 8, 8, 1, DSK_DTYPE_BF16},
        // Empty requests (queries and/or keys), fewer keys than queries (causal: the first
        // n_q - n_k queries see nothing: out 0, lse -inf).
        {{0, 65, 0, 7}, {3, 30, 0, 0}, 16, 16, 192, 128, 1, DSK_DTYPE_BF16},
        {{0, 65, 0, 7}, {3, 30, 0, 0}, 16, 16, 192, 128, 0, DSK_DTYPE_F16},
    };
    uint64_t seed = 900;
    for (const PrefillShape& s : shapes) {
      CAPTURE(describe(s.lq));
      CAPTURE(describe(s.lk));
      CAPTURE(s.dqk);
      CAPTURE(s.dv);
      CAPTURE(s.causal);
      run_prefill(env, s, seed);
      seed += 3;
    }
  }

  TEST_CASE("cuda.mla_prefill strided views") {
    Env env;
    const std::vector<int32_t> lq = {70, 130};
    const std::vector<int32_t> lk = {100, 130};
    const std::vector<int32_t> cq = cumulative(lq);
    const std::vector<int32_t> ck = cumulative(lk);
    const int64_t tq = cq.back(), tk = ck.back(), h = 4, hk = 2, dqk = 192, dv = 128;
    for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
      CAPTURE(dtype);
      // q: the first 192 of 200 columns (16-byte rows: vectorized path); k: the first 192 of 196
      // columns (head stride 196, not a multiple of 8: element path); v: every other element of
      // a [tk, hk, 2 * dv] buffer; out: [tq, h, dv] inside [tq, h, dv + 4]; lse [H, Tq] as the
      // transpose of a [Tq, H] buffer.
      Pair qb = normal_pair(env, {tq * h * 200}, dtype, 1.0, 11);
      Pair kb = normal_pair(env, {tk * hk * 196}, dtype, 1.0, 12);
      Pair vb = normal_pair(env, {tk * hk * 2 * dv}, dtype, 0.1, 13);
      const dsk_test::Layout ql{{tq, h, dqk}, {h * 200, 200, 1}, 0};
      const dsk_test::Layout kl{{tk, hk, dqk}, {hk * 196, 196, 1}, 0};
      const dsk_test::Layout vl{{tk, hk, dv}, {hk * 2 * dv, 2 * dv, 2}, 1};
      const dsk_test::Layout ol{{tq, h, dv}, {h * (dv + 4), dv + 4, 1}, 0};
      const dsk_test::Layout ll{{h, tq}, {1, h}, 0};
      Pair ob = output_pair(env, {tq * h * (dv + 4)}, dtype);
      Pair lb = output_pair(env, {tq * h}, DSK_DTYPE_F32);
      Pair cu_q = int_pair(env, cq, DSK_DTYPE_INT32);
      Pair cu_k = int_pair(env, ck, DSK_DTYPE_INT32);
      for (int32_t causal : {1, 0}) {
        CAPTURE(causal);
        const Tensor* bases[2][5] = {{&qb.cpu, &kb.cpu, &vb.cpu, &ob.cpu, &lb.cpu},
                                     {&qb.gpu, &kb.gpu, &vb.gpu, &ob.gpu, &lb.gpu}};
        for (int side = 0; side < 2; ++side) {
          Tensor q = dsk_test::view(*bases[side][0], ql);
          Tensor k = dsk_test::view(*bases[side][1], kl);
          Tensor v = dsk_test::view(*bases[side][2], vl);
          Tensor o = dsk_test::view(*bases[side][3], ol);
          Tensor l = dsk_test::view(*bases[side][4], ll);
          dsk_context* ctx = side == 0 ? env.cpu.get() : env.gpu.get();
          DSK_REQUIRE_OK(dsk_mla_prefill(
              ctx, q.dl(), k.dl(), v.dl(), side == 0 ? cu_q.cpu.dl() : cu_q.gpu.dl(),
              side == 0 ? cu_k.cpu.dl() : cu_k.gpu.dl(), 0.08f, causal, o.dl(), l.dl()));
        }
        DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
        // The whole output buffers: padding columns keep their (different) sentinels on both
        // sides, so compare the views only.
        Tensor oc = dsk_test::view(ob.cpu, ol);
        Tensor og = dsk_test::view(ob.gpu, ol);
        Pair ov{std::move(oc), std::move(og)};
        check_close(env, ov, 8e-4, 2.0 / 128, "out");
        check_close(env, lb, 1e-5, 8.0 / 65536, "lse");
      }
    }
  }

  TEST_CASE("cuda.mla_prefill reports bad cu_seqlens at synchronize") {
    Env env;
    const int64_t tq = 100, tk = 120, h = 2, dqk = 64, dv = 64;
    Pair q = normal_pair(env, {tq, h, dqk}, DSK_DTYPE_BF16, 1.0, 1);
    Pair k = normal_pair(env, {tk, h, dqk}, DSK_DTYPE_BF16, 1.0, 2);
    Pair v = normal_pair(env, {tk, h, dv}, DSK_DTYPE_BF16, 0.1, 3);
    Pair out = output_pair(env, {tq, h, dv}, DSK_DTYPE_BF16);
    struct Bad {
      std::vector<int32_t> q, k;
      const char* names;  // what the CUDA message must contain
    };
    const Bad bads[] = {
        {{0, 60, 40, 100}, {0, 10, 20, 120}, "cu_seqlens_q[2] = 40"},    // decreasing
        {{3, 60, 70, 100}, {0, 10, 20, 120}, "cu_seqlens_q[0] = 3"},     // not starting at 0
        {{0, 60, 70, 99}, {0, 10, 20, 120}, "cu_seqlens_q[3] = 99"},     // not ending at Tq
        {{0, 60, 70, 100}, {0, 10, 500, 120}, "cu_seqlens_k[2] = 500"},  // past Tk
        {{0, 60, 70, 100}, {0, 10, 20, 2000000}, "cu_seqlens_k[3] = 2000000"},
        {{0, 60, 70, 100}, {-5, 10, 20, 120}, "cu_seqlens_k[0] = -5"},
    };
    for (const Bad& b : bads) {
      const std::string expected = b.names;
      CAPTURE(expected);
      Pair cu_q = int_pair(env, b.q, DSK_DTYPE_INT32);
      Pair cu_k = int_pair(env, b.k, DSK_DTYPE_INT32);
      // The CPU checks before writing.
      CHECK(dsk_mla_prefill(env.cpu.get(), q.cpu.dl(), k.cpu.dl(), v.cpu.dl(), cu_q.cpu.dl(),
                            cu_k.cpu.dl(), 0.1f, 1, out.cpu.dl(),
                            nullptr) == DSK_ERR_INVALID_ARGUMENT);
      // CUDA queues the work, skips what it cannot read and reports at synchronize.
      DSK_REQUIRE_OK(dsk_mla_prefill(env.gpu.get(), q.gpu.dl(), k.gpu.dl(), v.gpu.dl(),
                                     cu_q.gpu.dl(), cu_k.gpu.dl(), 0.1f, 1, out.gpu.dl(), nullptr));
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
      const std::string message = dsk_last_error_message();
      CHECK_MESSAGE(message.find(b.names) != std::string::npos, message);
      // The record is cleared: the next synchronize is clean.
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
    }
  }

  TEST_CASE("cuda.mla_cache_append matches the CPU reference bit for bit") {
    Env env;
    struct Case {
      int32_t cache_dtype, c_dtype, p_dtype;
      int64_t h_kv, dv, d;
      bool two_d;    // c_kv [T, Dv], k_pe [T, D - Dv]
      bool strided;  // c_kv a column slice of a wider buffer
    };
    const Case cases[] = {
        {DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1, 512, 576, false, false},
        {DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1, 512, 576, true, false},
        {DSK_DTYPE_BF16, DSK_DTYPE_F32, DSK_DTYPE_F32, 1, 512, 576, false, false},
        {DSK_DTYPE_F16, DSK_DTYPE_F32, DSK_DTYPE_BF16, 2, 512, 576, false, true},
        {DSK_DTYPE_F16, DSK_DTYPE_F16, DSK_DTYPE_F16, 2, 40, 56, false, false},
    };
    const int64_t pages = 10, page = 64, tokens = 37;
    uint64_t seed = 500;
    for (const Case& c : cases) {
      CAPTURE(c.cache_dtype);
      CAPTURE(c.c_dtype);
      CAPTURE(c.p_dtype);
      CAPTURE(c.h_kv);
      CAPTURE(c.two_d);
      CAPTURE(c.strided);
      // Distinct random slots, every fourth token padding (-1).
      std::vector<int64_t> all(static_cast<size_t>(pages * page));
      std::iota(all.begin(), all.end(), int64_t{0});
      std::mt19937_64 rng(seed);
      std::shuffle(all.begin(), all.end(), rng);
      std::vector<int64_t> slots(all.begin(), all.begin() + tokens);
      for (int64_t t = 0; t < tokens; t += 4) slots[static_cast<size_t>(t)] = -1;
      Pair slot_t = int_pair(env, slots, DSK_DTYPE_INT64);
      // The cache starts with the same random bits on both sides (skipped slots must keep them).
      dsk_test::Twin cache =
          dsk_test::make_twin(env, c.cache_dtype, pages * page * c.h_kv * c.d, seed + 1);
      const dsk_test::Layout cache_l = dsk_test::row_major({pages, page, c.h_kv, c.d});
      const int64_t dr = c.d - c.dv;
      const int64_t cw = c.strided ? c.dv + 24 : c.dv;  // row width of the c_kv buffer
      Pair cb = normal_pair(env, {tokens * c.h_kv * cw}, c.c_dtype, 1.0, seed + 2);
      Pair pb = normal_pair(env, {tokens * c.h_kv * dr}, c.p_dtype, 1.0, seed + 3);
      const dsk_test::Layout cl =
          c.two_d
              ? dsk_test::Layout{{tokens, c.dv}, {cw, 1}, 0}
              : dsk_test::Layout{{tokens, c.h_kv, c.dv}, {c.h_kv * cw, cw, 1}, c.strided ? 8 : 0};
      const dsk_test::Layout pl =
          c.two_d ? dsk_test::row_major({tokens, dr}) : dsk_test::row_major({tokens, c.h_kv, dr});
      for (int side = 0; side < 2; ++side) {
        dsk_context* ctx = side == 0 ? env.cpu.get() : env.gpu.get();
        Tensor cv = dsk_test::view(side == 0 ? cb.cpu : cb.gpu, cl);
        Tensor pv = dsk_test::view(side == 0 ? pb.cpu : pb.gpu, pl);
        Tensor kv = dsk_test::view(side == 0 ? cache.cpu : cache.gpu, cache_l);
        DSK_REQUIRE_OK(dsk_mla_cache_append(
            ctx, cv.dl(), pv.dl(), side == 0 ? slot_t.cpu.dl() : slot_t.gpu.dl(), kv.dl()));
      }
      DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
      dsk_test::check_twin(env, cache);
      seed += 10;
    }
  }

  TEST_CASE("cuda.mla_cache_append reports a bad slot at synchronize and writes the others") {
    Env env;
    const int64_t pages = 10, page = 64, d = 576, dv = 512, tokens = 8;
    dsk_test::Twin cache = dsk_test::make_twin(env, DSK_DTYPE_BF16, pages * page * d, 77);
    const dsk_test::Layout cache_l = dsk_test::row_major({pages, page, 1, d});
    Pair c_kv = normal_pair(env, {tokens, 1, dv}, DSK_DTYPE_BF16, 1.0, 78);
    Pair k_pe = normal_pair(env, {tokens, 1, d - dv}, DSK_DTYPE_BF16, 1.0, 79);
    std::vector<int64_t> slots = {3, 100, -1, 639, 0, 999, 64, 65};
    // CPU: an error before anything is written.
    Pair bad = int_pair(env, slots, DSK_DTYPE_INT64);
    {
      Tensor kv = dsk_test::view(cache.cpu, cache_l);
      CHECK(dsk_mla_cache_append(env.cpu.get(), c_kv.cpu.dl(), k_pe.cpu.dl(), bad.cpu.dl(),
                                 kv.dl()) == DSK_ERR_INVALID_ARGUMENT);
      const std::string message = dsk_last_error_message();
      CHECK_MESSAGE(message.find("slot_mapping[5] = 999, expected -1 or a slot in [0, 640) "
                                 "(num_pages * page_size)") != std::string::npos,
                    message);
    }
    // CUDA: queued, the bad token skipped, reported at synchronize.
    {
      Tensor kv = dsk_test::view(cache.gpu, cache_l);
      DSK_REQUIRE_OK(
          dsk_mla_cache_append(env.gpu.get(), c_kv.gpu.dl(), k_pe.gpu.dl(), bad.gpu.dl(), kv.dl()));
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
      const std::string message = dsk_last_error_message();
      CHECK_MESSAGE(message.find("slot_mapping[5] = 999") != std::string::npos, message);
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
    }
    // The other tokens were written: the same as the CPU with that token skipped.
    slots[5] = -1;
    Pair good = int_pair(env, slots, DSK_DTYPE_INT64);
    Tensor kv = dsk_test::view(cache.cpu, cache_l);
    DSK_REQUIRE_OK(
        dsk_mla_cache_append(env.cpu.get(), c_kv.cpu.dl(), k_pe.cpu.dl(), good.cpu.dl(), kv.dl()));
    dsk_test::check_twin(env, cache);
  }
}
