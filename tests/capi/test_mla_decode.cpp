// Absorbed MLA decode over the paged latent cache on the CPU (dsk_mla.h): dsk_mla_softmax_scale
// against DeepSeek-V3's formula; dsk_mla_decode against an independent naive formula written here
// (double precision, a dense score matrix over a contiguous per-request copy of the keys) for
// s_q 1..4, causal and not, seqlens 0/1/63/64/65/odd/4096, h_q 1/16/128, h_kv 1/2, pages of 16
// and 64, bf16 and f16, D/Dv 576/512 and 72/64; randomly permuted pages with NaN in every unused
// position and page give the contiguous result bit for bit; plan reuse, workspace and split
// queries, lse NULL, hundreds of queries per request, thread-count independence; every bad
// argument (with outputs left untouched).
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::check_close;
using mla_test::expect_invalid;
using mla_test::Host;
using mla_test::ints;
using mla_test::kLseAtol;
using mla_test::out_atol;
using mla_test::out_rtol;
using mla_test::rounded;

const double kInf = std::numeric_limits<double>::infinity();
const float kV3Scale = 0.1352338f;  // dsk_mla_softmax_scale(192, 40, 1, 1)

struct Shape {
  int64_t s_q = 1;
  int64_t h_q = 1;
  int64_t h_kv = 1;
  int64_t d = 72;
  int64_t dv = 64;
  int64_t page = 16;
  int32_t dtype = DSK_DTYPE_BF16;
  int32_t causal = 0;
  float scale = 0.3f;
  std::vector<int64_t> seqlens;
  uint64_t seed = 1;

  int64_t batch() const { return static_cast<int64_t>(seqlens.size()); }
  std::string describe() const {
    std::ostringstream o;
    o << "B " << batch() << " s_q " << s_q << " h_q " << h_q << " h_kv " << h_kv << " D " << d
      << " Dv " << dv << " page " << page << " " << mla_test::dtype_label(dtype) << " causal "
      << causal << " seqlens {";
    for (int64_t n : seqlens) o << " " << n;
    o << " }";
    return o.str();
  }
};

// What the cache holds, independent of where: q, and per request its keys [n, h_kv, D] (values as
// stored in the dtype).
struct Logical {
  Host q;  // [B, S, Hq, D]
  std::vector<std::vector<double>> keys;
};

Logical make_logical(const Shape& s) {
  Logical l;
  l.q = Host({s.batch(), s.s_q, s.h_q, s.d}, s.dtype);
  l.q.fill_random(s.seed);
  std::mt19937_64 rng(s.seed * 7919 + 3);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t n : s.seqlens) {
    std::vector<double> k(static_cast<size_t>(n * s.h_kv * s.d));
    for (double& x : k) x = rounded(dist(rng), s.dtype);
    l.keys.push_back(std::move(k));
  }
  return l;
}

int64_t pages_for(int64_t n, int64_t page) { return (n + page - 1) / page; }

struct Paged {
  Host cache;        // [P, page, Hkv, D]
  Host block_table;  // [B, max_pages] int32
  Host seqlens;      // [B] int32
  int64_t max_pages = 0;
  int64_t num_pages = 0;
  std::vector<int64_t> table;
};

enum class Layout { kIdentity, kScattered };

// The logical keys placed in pages. Both layouts use max_pages = the most pages a request needs
// plus one, so that they share one plan shape. kIdentity: request b owns pages b * max_pages + i
// in order and every other position holds 0. kScattered (FlashMLA's test): the needed pages in a
// random order among `spare` unused pages, NaN in every position at or past a request's seqlen
// and in every unused page, and block table entries past a request's last page hold garbage
// (2147480000 as in FlashMLA's test, or -1) that must never be read.
Paged make_paged(const Shape& s, const Logical& l, Layout layout, uint64_t seed,
                 int64_t spare = 3) {
  Paged p;
  const int64_t B = s.batch();
  int64_t most = 1;
  for (int64_t n : s.seqlens) most = std::max(most, pages_for(n, s.page));
  p.max_pages = most + 1;
  const int64_t mp = p.max_pages;
  p.table.assign(static_cast<size_t>(B * mp), 0);
  if (layout == Layout::kIdentity) {
    p.num_pages = B * mp;
    for (int64_t i = 0; i < B * mp; ++i) p.table[static_cast<size_t>(i)] = i;
    p.cache = Host({p.num_pages, s.page, s.h_kv, s.d}, s.dtype);
    p.cache.fill(0.0);
  } else {
    int64_t needed = 0;
    for (int64_t n : s.seqlens) needed += pages_for(n, s.page);
    p.num_pages = needed + spare;
    const std::vector<int64_t> perm = mla_test::permutation(p.num_pages, seed);
    size_t next = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t used = pages_for(s.seqlens[static_cast<size_t>(b)], s.page);
      for (int64_t i = 0; i < mp; ++i) {
        p.table[static_cast<size_t>(b * mp + i)] =
            i < used ? perm[next++] : (i % 2 ? -1 : 2147480000);
      }
    }
    p.cache = Host({p.num_pages, s.page, s.h_kv, s.d}, s.dtype);
    p.cache.fill_nan();
  }
  const int64_t row = s.h_kv * s.d;
  for (int64_t b = 0; b < B; ++b) {
    const auto& keys = l.keys[static_cast<size_t>(b)];
    for (int64_t t = 0; t < s.seqlens[static_cast<size_t>(b)]; ++t) {
      const int64_t page = p.table[static_cast<size_t>(b * mp + t / s.page)];
      const int64_t base = (page * s.page + t % s.page) * row;
      for (int64_t e = 0; e < row; ++e)
        p.cache.set(base + e, keys[static_cast<size_t>(t * row + e)]);
    }
  }
  p.block_table = ints({B, mp}, DSK_DTYPE_INT32, p.table);
  p.seqlens = ints({B}, DSK_DTYPE_INT32, s.seqlens);
  return p;
}

struct Result {
  std::vector<double> out;  // [B, S, Hq, Dv]
  std::vector<double> lse;  // [B, Hq, S]
};

// The naive formula in double: per request a dense score matrix [S, Hq, n] over its contiguous
// keys, then a masked softmax per row and P @ V with V the first Dv values of each key.
Result reference(const Shape& s, const Logical& l) {
  const int64_t B = s.batch(), S = s.s_q, Hq = s.h_q, Hkv = s.h_kv, D = s.d, Dv = s.dv;
  const int64_t group = Hq / Hkv;
  const std::vector<double> q = l.q.values();
  const double scale = s.scale;
  Result r;
  r.out.assign(static_cast<size_t>(B * S * Hq * Dv), 0.0);
  r.lse.assign(static_cast<size_t>(B * Hq * S), -kInf);
  std::vector<double> scores;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = s.seqlens[static_cast<size_t>(b)];
    const auto& keys = l.keys[static_cast<size_t>(b)];
    scores.assign(static_cast<size_t>(S * Hq * n), 0.0);
    for (int64_t j = 0; j < S; ++j) {
      for (int64_t h = 0; h < Hq; ++h) {
        const double* qr = &q[static_cast<size_t>(((b * S + j) * Hq + h) * D)];
        for (int64_t t = 0; t < n; ++t) {
          const double* kr = &keys[static_cast<size_t>((t * Hkv + h / group) * D)];
          double acc = 0;
          for (int64_t c = 0; c < D; ++c) acc += qr[c] * kr[c];
          scores[static_cast<size_t>((j * Hq + h) * n + t)] = acc * scale;
        }
      }
    }
    for (int64_t j = 0; j < S; ++j) {
      const int64_t limit = s.causal ? n - S + j + 1 : n;
      if (limit <= 0) continue;
      for (int64_t h = 0; h < Hq; ++h) {
        const double* sr = &scores[static_cast<size_t>((j * Hq + h) * n)];
        double m = -kInf;
        for (int64_t t = 0; t < limit; ++t) m = std::max(m, sr[t]);
        double sum = 0;
        double* o = &r.out[static_cast<size_t>(((b * S + j) * Hq + h) * Dv)];
        for (int64_t t = 0; t < limit; ++t) {
          const double p = std::exp(sr[t] - m);
          sum += p;
          const double* kr = &keys[static_cast<size_t>((t * Hkv + h / group) * D)];
          for (int64_t c = 0; c < Dv; ++c) o[c] += p * kr[c];
        }
        for (int64_t c = 0; c < Dv; ++c) o[c] /= sum;
        r.lse[static_cast<size_t>((b * Hq + h) * S + j)] = m + std::log(sum);
      }
    }
  }
  return r;
}

struct Outputs {
  Host out;  // [B, S, Hq, Dv]
  Host lse;  // [B, Hq, S] f32
  explicit Outputs(const Shape& s)
      : out({s.batch(), s.s_q, s.h_q, s.dv}, s.dtype),
        lse({s.batch(), s.h_q, s.s_q}, DSK_DTYPE_F32) {
    // NaN everywhere: every element must be written (zeros included).
    out.fill_nan();
    lse.fill_nan();
  }
};

dsk_status decode(dsk_context* ctx, const Shape& s, Logical& l, Paged& p, Outputs& o,
                  bool with_lse = true) {
  return dsk_mla_decode(ctx, l.q.dl(), p.cache.dl(), p.block_table.dl(), p.seqlens.dl(), s.scale,
                        s.causal, o.out.dl(), with_lse ? o.lse.dl() : nullptr);
}

void check_against(const Shape& s, const Outputs& o, const Result& r) {
  const std::vector<double> out = o.out.values();
  check_close(out, r.out, out_atol(s.dtype), out_rtol(s.dtype), "out");
  check_close(o.lse.values(), r.lse, kLseAtol, 0.0, "lse");
  // A query that attends to nothing: out exactly 0 (and lse -inf, checked above).
  size_t bad = 0;
  for (int64_t b = 0; b < s.batch(); ++b) {
    for (int64_t h = 0; h < s.h_q; ++h) {
      for (int64_t j = 0; j < s.s_q; ++j) {
        if (!std::isinf(r.lse[static_cast<size_t>((b * s.h_q + h) * s.s_q + j)])) continue;
        for (int64_t c = 0; c < s.dv; ++c) {
          if (out[static_cast<size_t>(((b * s.s_q + j) * s.h_q + h) * s.dv + c)] != 0.0) ++bad;
        }
      }
    }
  }
  CHECK_MESSAGE(bad == 0, bad, " outputs of queries without keys are not 0");
}

// Scattered layout, dsk_mla_decode, compared with the naive formula.
void run_case(dsk_context* ctx, const Shape& s) {
  const std::string what = s.describe();
  INFO(what);
  Logical l = make_logical(s);
  Paged p = make_paged(s, l, Layout::kScattered, s.seed + 11);
  Outputs o(s);
  MLA_REQUIRE_OK(decode(ctx, s, l, p, o));
  check_against(s, o, reference(s, l));
}

}  // namespace

// ---- softmax scale ----

TEST_CASE("mla softmax_scale gives DeepSeek's values") {
  float v = 0;
  // qk_head_dim^-0.5 * m^2, m = 0.1 * mscale * ln(factor) + 1, in double, rounded once.
  auto formula = [](double dim, double factor, double mscale, bool yarn) {
    const double m = yarn && factor > 1 ? 0.1 * mscale * std::log(factor) + 1.0 : 1.0;
    return static_cast<float>(m * m / std::sqrt(dim));
  };
  auto one_ulp = [](float a, float b) { return a == b || std::nextafter(a, b) == b; };
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, 40.0, 1.0, 1, &v));
  CHECK(std::fabs(v - 0.1352338) <= 1e-6 * 0.1352338);
  CHECK(one_ulp(v, formula(192, 40, 1, true)));
  // V2-Lite: mscale 0.707.
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, 40.0, 0.707, 1, &v));
  CHECK(std::fabs(v - 0.1147214) <= 1e-6 * 0.1147214);
  CHECK(one_ulp(v, formula(192, 40, 0.707, true)));
  // Without YaRN: 192^-0.5.
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, 40.0, 1.0, 0, &v));
  CHECK(one_ulp(v, static_cast<float>(1.0 / std::sqrt(192.0))));
  CHECK(std::fabs(v - 0.0721688) <= 1e-6 * 0.0721688);
  // use_yarn is a flag: any non-zero value.
  float v2 = 0;
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, 40.0, 1.0, 2, &v2));
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, 40.0, 1.0, 1, &v));
  CHECK(v2 == v);
  // rope_factor <= 1: no mscale even with YaRN on.
  for (double factor : {1.0, 0.5}) {
    MLA_REQUIRE_OK(dsk_mla_softmax_scale(192, factor, 1.0, 1, &v));
    CHECK(one_ulp(v, static_cast<float>(1.0 / std::sqrt(192.0))));
  }
  // Other widths and mscales.
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(576, 4.0, 2.5, 1, &v));
  CHECK(one_ulp(v, formula(576, 4.0, 2.5, true)));
  MLA_REQUIRE_OK(dsk_mla_softmax_scale(1, 1.0, 1.0, 0, &v));
  CHECK(v == 1.0f);
}

TEST_CASE("mla softmax_scale rejects bad arguments") {
  float v = 0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_invalid(dsk_mla_softmax_scale(0, 40.0, 1.0, 1, &v), {"qk_head_dim"});
  expect_invalid(dsk_mla_softmax_scale(-192, 40.0, 1.0, 1, &v), {"qk_head_dim"});
  expect_invalid(dsk_mla_softmax_scale(192, nan, 1.0, 1, &v), {"rope_factor"});
  expect_invalid(dsk_mla_softmax_scale(192, kInf, 1.0, 1, &v), {"rope_factor"});
  expect_invalid(dsk_mla_softmax_scale(192, 0.0, 1.0, 1, &v), {"rope_factor"});
  expect_invalid(dsk_mla_softmax_scale(192, -2.0, 1.0, 1, &v), {"rope_factor"});
  expect_invalid(dsk_mla_softmax_scale(192, 40.0, nan, 1, &v), {"mscale"});
  expect_invalid(dsk_mla_softmax_scale(192, 40.0, -kInf, 1, &v), {"mscale"});
  expect_invalid(dsk_mla_softmax_scale(192, 40.0, 1.0, 1, nullptr), {"scale"});
}

// ---- decode against the naive formula ----

TEST_CASE("mla decode matches the naive formula with small head dims") {
  CpuContext ctx;
  uint64_t seed = 100;
  for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int64_t page : {16, 64}) {
      for (int64_t h_kv : {1, 2}) {
        for (int64_t h_q : {1, 16, 128}) {
          if (h_q % h_kv != 0) continue;
          for (int64_t s_q = 1; s_q <= 4; ++s_q) {
            for (int32_t causal : {0, 1}) {
              Shape s;
              s.s_q = s_q;
              s.h_q = h_q;
              s.h_kv = h_kv;
              s.d = 72;
              s.dv = 64;
              s.page = page;
              s.dtype = dtype;
              s.causal = causal;
              s.scale = 0.3f;
              // Many heads: a small batch.
              s.seqlens = h_q == 128 ? std::vector<int64_t>{65, 3}
                                     : std::vector<int64_t>{0, 1, 63, 64, 65, 100, 17};
              s.seed = ++seed;
              run_case(ctx, s);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("mla decode matches the naive formula at DeepSeek's 576 and 512") {
  CpuContext ctx;
  uint64_t seed = 500;
  for (int64_t s_q = 1; s_q <= 4; ++s_q) {
    for (int32_t causal : {0, 1}) {
      Shape s;
      s.s_q = s_q;
      s.h_q = 16;
      s.d = 576;
      s.dv = 512;
      s.page = 64;
      s.causal = causal;
      s.scale = kV3Scale;
      s.seqlens = std::vector<int64_t>{0, 1, 63, 64, 65, 130, 200};
      s.seed = ++seed;
      run_case(ctx, s);
    }
  }
  Shape wide;  // 128 heads over 2 cached heads, f16, pages of 16
  wide.s_q = 2;
  wide.h_q = 128;
  wide.h_kv = 2;
  wide.d = 576;
  wide.dv = 512;
  wide.page = 16;
  wide.dtype = DSK_DTYPE_F16;
  wide.causal = 1;
  wide.scale = kV3Scale;
  wide.seqlens = std::vector<int64_t>{65, 3};
  wide.seed = ++seed;
  run_case(ctx, wide);
  Shape one;  // one head
  one.h_q = 1;
  one.d = 576;
  one.dv = 512;
  one.page = 64;
  one.dtype = DSK_DTYPE_F16;
  one.scale = 0.5f;  // large scores: a peaked softmax
  one.seqlens = std::vector<int64_t>{129, 1};
  one.seed = ++seed;
  run_case(ctx, one);
  Shape dv_small;  // Dv much smaller than D, 8 cached heads
  dv_small.s_q = 3;
  dv_small.h_q = 8;
  dv_small.h_kv = 8;
  dv_small.d = 576;
  dv_small.dv = 16;
  dv_small.page = 32;
  dv_small.causal = 1;
  dv_small.scale = kV3Scale;
  dv_small.seqlens = std::vector<int64_t>{40, 2};
  dv_small.seed = ++seed;
  run_case(ctx, dv_small);
}

TEST_CASE("mla decode over 4096 cached tokens") {
  CpuContext ctx;
  Shape s;
  s.s_q = 2;
  s.h_q = 16;
  s.d = 576;
  s.dv = 512;
  s.page = 64;
  s.causal = 1;
  s.scale = kV3Scale;
  s.seqlens = std::vector<int64_t>{4096, 1000};
  s.seed = 4096;
  run_case(ctx, s);
}

// ---- layouts, plans, options ----

TEST_CASE("mla decode permuted pages with NaN tails give the contiguous result bit for bit") {
  CpuContext ctx;
  uint64_t seed = 900;
  for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int64_t d : {72, 576}) {
      for (int32_t causal : {0, 1}) {
        Shape s;
        s.s_q = 2;
        s.h_q = 16;
        s.h_kv = d == 72 ? 2 : 1;
        s.d = d;
        s.dv = d == 72 ? 64 : 512;
        s.page = d == 72 ? 16 : 64;
        s.dtype = dtype;
        s.causal = causal;
        s.scale = d == 72 ? 0.3f : kV3Scale;
        s.seqlens = std::vector<int64_t>{0, 1, 63, 64, 65, 150, 300};
        s.seed = ++seed;
        const std::string what = s.describe();
        INFO(what);
        Logical l = make_logical(s);
        Paged contiguous = make_paged(s, l, Layout::kIdentity, 0);
        Outputs want(s);
        MLA_REQUIRE_OK(decode(ctx, s, l, contiguous, want));
        for (uint64_t perm = 1; perm <= 2; ++perm) {
          Paged scattered = make_paged(s, l, Layout::kScattered, seed * 31 + perm, 2 + perm);
          Outputs got(s);
          MLA_REQUIRE_OK(decode(ctx, s, l, scattered, got));
          CHECK(got.out.raw() == want.out.raw());
          CHECK(got.lse.raw() == want.lse.raw());
        }
        check_against(s, want, reference(s, l));
      }
    }
  }
}

TEST_CASE("mla decode plan serves other seqlens values, page counts and a reserved workspace") {
  CpuContext ctx;
  Shape s;
  s.s_q = 2;
  s.h_q = 16;
  s.d = 576;
  s.dv = 512;
  s.page = 64;
  s.causal = 1;
  s.scale = kV3Scale;
  s.seqlens = std::vector<int64_t>{700, 64, 1, 300};
  s.seed = 77;
  Logical l = make_logical(s);
  Paged p = make_paged(s, l, Layout::kIdentity, 0);
  Outputs o(s);
  // The plan does not read the contents: garbage seqlens and block table at plan time.
  Host junk_seqlens = ints({s.batch()}, DSK_DTYPE_INT32, {-7, 1 << 30, -1, 5});
  Host junk_table({s.batch(), p.max_pages}, DSK_DTYPE_INT32);
  junk_table.fill(-123);
  dsk_mla_decode_plan* plan = nullptr;
  MLA_REQUIRE_OK(dsk_mla_decode_plan_create(ctx, l.q.dl(), p.cache.dl(), junk_table.dl(),
                                            junk_seqlens.dl(), o.out.dl(), &plan));
  REQUIRE(plan != nullptr);
  size_t bytes = 1;
  int32_t splits = 0;
  MLA_REQUIRE_OK(dsk_mla_decode_plan_workspace_size(plan, &bytes));
  MLA_REQUIRE_OK(dsk_mla_decode_plan_num_splits(plan, &splits));
  CHECK(splits >= 1);
  MESSAGE("plan: ", splits, " splits, ", bytes, " workspace bytes");

  // Two sets of seqlens values (request 3 shrinks to 0, request 1 grows), each run = one-shot
  // dsk_mla_decode, bit for bit.
  const std::vector<std::vector<int64_t>> values = {{700, 64, 1, 300}, {65, 128, 63, 0}};
  for (const auto& v : values) {
    Shape sv = s;
    sv.seqlens = v;
    for (size_t b = 0; b < v.size(); ++b) p.seqlens.set(static_cast<int64_t>(b), double(v[b]));
    // Keep the keys: the first v[b] tokens of each request as already placed.
    Logical lv;
    lv.q = Host(l.q.shape(), s.dtype);
    for (int64_t i = 0; i < l.q.size(); ++i) lv.q.set(i, l.q.get(i));
    for (size_t b = 0; b < v.size(); ++b) {
      const int64_t row = s.h_kv * s.d;
      std::vector<double> k(static_cast<size_t>(v[b] * row));
      for (int64_t t = 0; t < v[b]; ++t) {
        const int64_t page = p.table[b * static_cast<size_t>(p.max_pages) + size_t(t / s.page)];
        for (int64_t e = 0; e < row; ++e) {
          k[static_cast<size_t>(t * row + e)] = p.cache.get((page * s.page + t % s.page) * row + e);
        }
      }
      lv.keys.push_back(std::move(k));
    }
    Outputs run(sv);
    MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, lv.q.dl(), p.cache.dl(), p.block_table.dl(),
                                      p.seqlens.dl(), s.scale, s.causal, run.out.dl(),
                                      run.lse.dl()));
    Outputs once(sv);
    MLA_REQUIRE_OK(decode(ctx, sv, lv, p, once));
    CHECK(run.out.raw() == once.out.raw());
    CHECK(run.lse.raw() == once.lse.raw());
    check_against(sv, run, reference(sv, lv));

    // The same plan with a cache of another page count (scattered, NaN spares).
    Paged other = make_paged(sv, lv, Layout::kScattered, 5, 7);
    REQUIRE(other.max_pages <= p.max_pages);
    // Widen the block table to the plan's max_pages with garbage.
    Host table({s.batch(), p.max_pages}, DSK_DTYPE_INT32);
    for (int64_t b = 0; b < s.batch(); ++b) {
      for (int64_t i = 0; i < p.max_pages; ++i) {
        table.set(b * p.max_pages + i,
                  i < other.max_pages ? other.block_table.get(b * other.max_pages + i) : -1.0);
      }
    }
    Outputs moved(sv);
    MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, lv.q.dl(), other.cache.dl(), table.dl(),
                                      other.seqlens.dl(), s.scale, s.causal, moved.out.dl(),
                                      moved.lse.dl()));
    CHECK(moved.out.raw() == once.out.raw());
    CHECK(moved.lse.raw() == once.lse.raw());
  }

  // With the context's workspace reserved (no allocation in run): the same bytes.
  Outputs before(s);
  for (size_t b = 0; b < s.seqlens.size(); ++b) {
    p.seqlens.set(static_cast<int64_t>(b), double(s.seqlens[b]));
  }
  MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, l.q.dl(), p.cache.dl(), p.block_table.dl(),
                                    p.seqlens.dl(), s.scale, s.causal, before.out.dl(),
                                    before.lse.dl()));
  MLA_REQUIRE_OK(dsk_context_reserve_workspace(ctx, bytes));
  Outputs after(s);
  MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, l.q.dl(), p.cache.dl(), p.block_table.dl(),
                                    p.seqlens.dl(), s.scale, s.causal, after.out.dl(),
                                    after.lse.dl()));
  CHECK(after.out.raw() == before.out.raw());
  CHECK(after.lse.raw() == before.lse.raw());
  check_against(s, after, reference(s, l));
  dsk_mla_decode_plan_release(plan);
  dsk_mla_decode_plan_release(nullptr);  // no-op
}

TEST_CASE("mla decode plan queries for small and large shapes") {
  CpuContext ctx;
  for (int64_t n : {1, 32768}) {
    Shape s;
    s.h_q = 16;
    s.d = 576;
    s.dv = 512;
    s.page = 64;
    s.seqlens = std::vector<int64_t>{n};
    Host q({1, 1, 16, 576}, DSK_DTYPE_BF16);
    Host cache({2, 64, 1, 576}, DSK_DTYPE_BF16);
    Host table({1, pages_for(n, 64)}, DSK_DTYPE_INT32);
    Host seqlens({1}, DSK_DTYPE_INT32);
    Host out({1, 1, 16, 512}, DSK_DTYPE_BF16);
    dsk_mla_decode_plan* plan = nullptr;
    MLA_REQUIRE_OK(dsk_mla_decode_plan_create(ctx, q.dl(), cache.dl(), table.dl(), seqlens.dl(),
                                              out.dl(), &plan));
    size_t bytes = 0;
    int32_t splits = 0;
    MLA_REQUIRE_OK(dsk_mla_decode_plan_workspace_size(plan, &bytes));
    MLA_REQUIRE_OK(dsk_mla_decode_plan_num_splits(plan, &splits));
    CHECK(splits >= 1);
    MESSAGE("batch 1, max_pages ", pages_for(n, 64), ": ", splits, " splits, ", bytes, " bytes");
    dsk_mla_decode_plan_release(plan);
  }
}

TEST_CASE("mla decode without lse writes the same out") {
  CpuContext ctx;
  for (int64_t d : {72, 576}) {
    Shape s;
    s.s_q = 3;
    s.h_q = 16;
    s.d = d;
    s.dv = d == 72 ? 64 : 512;
    s.page = 16;
    s.causal = 1;
    s.scale = 0.1f;
    s.seqlens = std::vector<int64_t>{0, 2, 90, 17};
    s.seed = static_cast<uint64_t>(d);
    Logical l = make_logical(s);
    Paged p = make_paged(s, l, Layout::kScattered, 3);
    Outputs with(s), without(s);
    MLA_REQUIRE_OK(decode(ctx, s, l, p, with));
    MLA_REQUIRE_OK(decode(ctx, s, l, p, without, false));
    CHECK(with.out.raw() == without.out.raw());
    // Through a plan too.
    dsk_mla_decode_plan* plan = nullptr;
    MLA_REQUIRE_OK(dsk_mla_decode_plan_create(ctx, l.q.dl(), p.cache.dl(), p.block_table.dl(),
                                              p.seqlens.dl(), without.out.dl(), &plan));
    Outputs planned(s);
    MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, l.q.dl(), p.cache.dl(), p.block_table.dl(),
                                      p.seqlens.dl(), s.scale, s.causal, planned.out.dl(),
                                      nullptr));
    CHECK(planned.out.raw() == with.out.raw());
    dsk_mla_decode_plan_release(plan);
    check_against(s, with, reference(s, l));
  }
}

TEST_CASE("mla decode with hundreds of queries per request as in chunked prefill") {
  CpuContext ctx;
  for (int32_t causal : {1, 0}) {
    Shape s;
    s.s_q = 200;
    s.h_q = 2;
    s.d = 72;
    s.dv = 64;
    s.page = 16;
    s.causal = causal;
    s.scale = 0.3f;
    // 150 < s_q: with causal the first 50 queries of request 2 attend to nothing.
    s.seqlens = std::vector<int64_t>{300, 200, 150, 0};
    s.seed = 200 + static_cast<uint64_t>(causal);
    run_case(ctx, s);
  }
  Shape wide;
  wide.s_q = 130;
  wide.h_q = 4;
  wide.d = 576;
  wide.dv = 512;
  wide.page = 64;
  wide.causal = 1;
  wide.scale = kV3Scale;
  wide.seqlens = std::vector<int64_t>{400};
  wide.seed = 130;
  run_case(ctx, wide);
}

TEST_CASE("mla decode gives the same bytes for any thread count") {
  CpuContext ctx;
  Shape s;
  s.s_q = 2;
  s.h_q = 16;
  s.d = 576;
  s.dv = 512;
  s.page = 64;
  s.causal = 1;
  s.scale = kV3Scale;
  s.seqlens = std::vector<int64_t>{1500, 7, 129};
  s.seed = 3;
  Logical l = make_logical(s);
  Paged p = make_paged(s, l, Layout::kScattered, 9);
  std::vector<std::vector<uint8_t>> outs, lses;
  for (const char* n : {"1", "3", "2"}) {
    dsk_test::Threads t(n);
    Outputs o(s);
    MLA_REQUIRE_OK(decode(ctx, s, l, p, o));
    outs.push_back(o.out.raw());
    lses.push_back(o.lse.raw());
  }
  CHECK(outs[0] == outs[1]);
  CHECK(outs[0] == outs[2]);
  CHECK(lses[0] == lses[1]);
  CHECK(lses[0] == lses[2]);
}

// ---- bad input ----

namespace {

// A valid decode call (B 2, S 2, Hq 4, Hkv 1, D 72, Dv 64, pages of 16, bf16, identity pages)
// whose pieces the bad-input tests replace one at a time. Outputs hold a sentinel that failing
// calls must leave alone.
struct BadFixture {
  Shape s;
  Logical l;
  Paged p;
  Host out, lse;
  std::vector<uint8_t> out_bytes, lse_bytes;
  BadFixture() {
    s.s_q = 2;
    s.h_q = 4;
    s.d = 72;
    s.dv = 64;
    s.page = 16;
    s.seqlens = std::vector<int64_t>{20, 5};
    l = make_logical(s);
    p = make_paged(s, l, Layout::kIdentity, 0);  // max_pages 3, 6 pages
    out = Host({2, 2, 4, 64}, DSK_DTYPE_BF16);
    lse = Host({2, 4, 2}, DSK_DTYPE_F32);
    out.fill_bytes(0x5A);
    lse.fill_bytes(0x5A);
    out_bytes = out.raw();
    lse_bytes = lse.raw();
  }
  struct Args {
    const DLTensor* q;
    const DLTensor* kv;
    const DLTensor* bt;
    const DLTensor* sl;
    const DLTensor* out;
    const DLTensor* lse;
    float scale;
    int32_t causal;
  };
  Args args() {
    return Args{
        l.q.dl(), p.cache.dl(), p.block_table.dl(), p.seqlens.dl(), out.dl(), lse.dl(), 0.3f, 1};
  }
  void untouched() {
    CHECK_MESSAGE(out.raw() == out_bytes, "out was written by a failing call");
    CHECK_MESSAGE(lse.raw() == lse_bytes, "lse was written by a failing call");
  }
};

dsk_status call(dsk_context* ctx, const BadFixture::Args& a) {
  return dsk_mla_decode(ctx, a.q, a.kv, a.bt, a.sl, a.scale, a.causal, a.out, a.lse);
}

}  // namespace

TEST_CASE("mla decode fixture is valid") {
  CpuContext ctx;
  BadFixture f;
  MLA_REQUIRE_OK(call(ctx, f.args()));
}

TEST_CASE("mla decode rejects bad shapes") {
  CpuContext ctx;
  BadFixture f;
  auto with = [&](auto change) {
    BadFixture::Args a = f.args();
    change(a);
    return call(ctx, a);
  };
  // q's D differs from the cache's.
  Host q80({2, 2, 4, 80}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) { a.q = q80.dl(); }), {"q|kv_cache"});
  // Dv > D.
  Host out80({2, 2, 4, 80}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) { a.out = out80.dl(); }), {"out"});
  // out's leading dims differ from q's.
  Host out5({2, 2, 5, 64}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) { a.out = out5.dl(); }), {"out|q"});
  Host out3d({2, 2, 256}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) { a.out = out3d.dl(); }), {"out"});
  // h_q not a multiple of h_kv.
  Host q3({2, 2, 3, 72}, DSK_DTYPE_BF16);
  Host out3({2, 2, 3, 64}, DSK_DTYPE_BF16);
  Host lse3({2, 3, 2}, DSK_DTYPE_F32);
  Host cache2({6, 16, 2, 72}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) {
                   a.q = q3.dl();
                   a.out = out3.dl();
                   a.lse = lse3.dl();
                   a.kv = cache2.dl();
                 }),
                 {"q|kv_cache|h_q|h_kv"});
  // h_kv > 8.
  Host q16({2, 2, 16, 72}, DSK_DTYPE_BF16);
  Host out16({2, 2, 16, 64}, DSK_DTYPE_BF16);
  Host lse16({2, 16, 2}, DSK_DTYPE_F32);
  Host cache16({6, 16, 16, 72}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) {
                   a.q = q16.dl();
                   a.out = out16.dl();
                   a.lse = lse16.dl();
                   a.kv = cache16.dl();
                 }),
                 {"kv_cache|h_kv"});
  // Page sizes that are not multiples of 16.
  for (int64_t page : {24, 8, 1}) {
    Host cache_odd({6, page, 1, 72}, DSK_DTYPE_BF16);
    expect_invalid(with([&](auto& a) { a.kv = cache_odd.dl(); }), {"kv_cache|page_size"});
  }
  // Ranks and batch sizes of the index tensors.
  Host table3({3, 3}, DSK_DTYPE_INT32);
  expect_invalid(with([&](auto& a) { a.bt = table3.dl(); }), {"block_table"});
  Host table1d({6}, DSK_DTYPE_INT32);
  expect_invalid(with([&](auto& a) { a.bt = table1d.dl(); }), {"block_table"});
  Host seq3({3}, DSK_DTYPE_INT32);
  expect_invalid(with([&](auto& a) { a.sl = seq3.dl(); }), {"cache_seqlens|seqlens"});
  // lse [B, S, Hq] instead of [B, Hq, S].
  Host lse_t({2, 2, 4}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.lse = lse_t.dl(); }), {"lse"});
  Host lse2d({2, 8}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.lse = lse2d.dl(); }), {"lse"});
  // The last dimension of q, kv_cache and out must be contiguous.
  Host q_wide({2, 2, 4, 144}, DSK_DTYPE_BF16);
  mla_test::View q_strided = q_wide.view({2, 2, 4, 72}, {1152, 576, 144, 2});
  expect_invalid(with([&](auto& a) { a.q = q_strided.get(); }), {"q"});
  Host cache_wide({6, 16, 1, 144}, DSK_DTYPE_BF16);
  mla_test::View kv_strided = cache_wide.view({6, 16, 1, 72}, {2304, 144, 144, 2});
  expect_invalid(with([&](auto& a) { a.kv = kv_strided.get(); }), {"kv_cache"});
  // NULL tensors (lse may be NULL).
  expect_invalid(with([&](auto& a) { a.q = nullptr; }), {"q"});
  expect_invalid(with([&](auto& a) { a.kv = nullptr; }), {"kv_cache"});
  expect_invalid(with([&](auto& a) { a.bt = nullptr; }), {"block_table"});
  expect_invalid(with([&](auto& a) { a.sl = nullptr; }), {"cache_seqlens|seqlens"});
  expect_invalid(with([&](auto& a) { a.out = nullptr; }), {"out"});
  f.untouched();
}

TEST_CASE("mla decode rejects bad dtypes") {
  CpuContext ctx;
  BadFixture f;
  auto with = [&](auto change) {
    BadFixture::Args a = f.args();
    change(a);
    return call(ctx, a);
  };
  Host q_f16({2, 2, 4, 72}, DSK_DTYPE_F16);
  expect_invalid(with([&](auto& a) { a.q = q_f16.dl(); }), {"q|kv_cache"});
  Host cache_f32({6, 16, 1, 72}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.kv = cache_f32.dl(); }), {"kv_cache"});
  // All f32: not a decode dtype.
  Host q_f32({2, 2, 4, 72}, DSK_DTYPE_F32);
  Host out_f32({2, 2, 4, 64}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) {
                   a.q = q_f32.dl();
                   a.kv = cache_f32.dl();
                   a.out = out_f32.dl();
                 }),
                 {"q|kv_cache|out"});
  Host out_f16({2, 2, 4, 64}, DSK_DTYPE_F16);
  expect_invalid(with([&](auto& a) { a.out = out_f16.dl(); }), {"out"});
  Host table64 = ints({2, 3}, DSK_DTYPE_INT64, {0, 1, 2, 3, 4, 5});
  expect_invalid(with([&](auto& a) { a.bt = table64.dl(); }), {"block_table"});
  Host seq64 = ints({2}, DSK_DTYPE_INT64, {20, 5});
  expect_invalid(with([&](auto& a) { a.sl = seq64.dl(); }), {"cache_seqlens|seqlens"});
  Host seq_f32({2}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.sl = seq_f32.dl(); }), {"cache_seqlens|seqlens"});
  Host lse_bf16({2, 4, 2}, DSK_DTYPE_BF16);
  expect_invalid(with([&](auto& a) { a.lse = lse_bf16.dl(); }), {"lse"});
  f.untouched();
}

TEST_CASE("mla decode rejects bad scalars") {
  CpuContext ctx;
  BadFixture f;
  auto with = [&](auto change) {
    BadFixture::Args a = f.args();
    change(a);
    return call(ctx, a);
  };
  for (float scale : {0.0f, -0.5f, std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
    expect_invalid(with([&](auto& a) { a.scale = scale; }), {"softmax_scale"});
  }
  for (int32_t causal : {2, -1}) {
    expect_invalid(with([&](auto& a) { a.causal = causal; }), {"causal"});
  }
  expect_invalid(dsk_mla_decode(nullptr, f.l.q.dl(), f.p.cache.dl(), f.p.block_table.dl(),
                                f.p.seqlens.dl(), 0.3f, 1, f.out.dl(), f.lse.dl()),
                 {"ctx"});
  f.untouched();
}

TEST_CASE("mla decode rejects out of range block_table and seqlens values before writing") {
  CpuContext ctx;
  BadFixture f;  // seqlens {20, 5}, pages of 16: request 0 needs 2 pages, request 1 needs 1
  auto run = [&]() { return call(ctx, f.args()); };
  // An entry a request needs, past the number of pages (6) or negative.
  for (int64_t bad : {6, 99, -1, -3}) {
    f.p.block_table.set(1, static_cast<double>(bad));  // block_table[0, 1]
    const std::string value = std::to_string(bad);
    expect_invalid(run(), {"block_table"}, {value.c_str()});
    f.untouched();
  }
  f.p.block_table.set(1, 1);
  f.p.block_table.set(3, 99);  // block_table[1, 0]
  expect_invalid(run(), {"block_table"}, {"99"});
  f.untouched();
  f.p.block_table.set(3, 3);
  // Entries past a request's last page are never read: any value is fine.
  f.p.block_table.set(2, 99);  // block_table[0, 2]
  f.p.block_table.set(4, -5);  // block_table[1, 1]
  f.p.block_table.set(5, 1 << 30);
  MLA_REQUIRE_OK(run());
  f.p.block_table.set(2, 2);
  f.p.block_table.set(4, 4);
  f.p.block_table.set(5, 5);
  f.out.fill_bytes(0x5A);
  f.lse.fill_bytes(0x5A);
  // seqlen past max_pages * page_size (3 * 16 = 48) or negative.
  for (int64_t bad : {49, 1000, -1}) {
    f.p.seqlens.set(1, static_cast<double>(bad));
    const std::string value = std::to_string(bad);
    expect_invalid(run(), {"cache_seqlens|seqlens"}, {value.c_str()});
    f.untouched();
  }
  // seqlen exactly max_pages * page_size is fine (all three pages valid).
  f.p.seqlens.set(1, 48);
  MLA_REQUIRE_OK(run());
}

TEST_CASE("mla decode plan and run reject bad arguments") {
  CpuContext ctx;
  BadFixture f;
  auto a = f.args();
  dsk_mla_decode_plan* plan = nullptr;
  // Errors at plan time set *plan to NULL.
  dsk_mla_decode_plan* bad_plan = reinterpret_cast<dsk_mla_decode_plan*>(&f);
  expect_invalid(dsk_mla_decode_plan_create(nullptr, a.q, a.kv, a.bt, a.sl, a.out, &bad_plan),
                 {"ctx"});
  CHECK(bad_plan == nullptr);
  bad_plan = reinterpret_cast<dsk_mla_decode_plan*>(&f);
  Host q80({2, 2, 4, 80}, DSK_DTYPE_BF16);
  expect_invalid(dsk_mla_decode_plan_create(ctx, q80.dl(), a.kv, a.bt, a.sl, a.out, &bad_plan),
                 {"q|kv_cache"});
  CHECK(bad_plan == nullptr);
  expect_invalid(dsk_mla_decode_plan_create(ctx, a.q, a.kv, a.bt, a.sl, a.out, nullptr), {"plan"});
  expect_invalid(dsk_mla_decode_plan_create(ctx, a.q, nullptr, a.bt, a.sl, a.out, &plan),
                 {"kv_cache"});

  MLA_REQUIRE_OK(dsk_mla_decode_plan_create(ctx, a.q, a.kv, a.bt, a.sl, a.out, &plan));
  size_t bytes = 0;
  int32_t splits = 0;
  expect_invalid(dsk_mla_decode_plan_workspace_size(nullptr, &bytes), {"plan"});
  expect_invalid(dsk_mla_decode_plan_workspace_size(plan, nullptr), {"bytes"});
  expect_invalid(dsk_mla_decode_plan_num_splits(nullptr, &splits), {"plan"});
  expect_invalid(dsk_mla_decode_plan_num_splits(plan, nullptr), {"num_splits"});
  expect_invalid(dsk_mla_decode_run(ctx, nullptr, a.q, a.kv, a.bt, a.sl, 0.3f, 1, a.out, a.lse),
                 {"plan"});
  expect_invalid(dsk_mla_decode_run(nullptr, plan, a.q, a.kv, a.bt, a.sl, 0.3f, 1, a.out, a.lse),
                 {"ctx"});
  expect_invalid(dsk_mla_decode_run(ctx, plan, a.q, a.kv, a.bt, a.sl, 0.0f, 1, a.out, a.lse),
                 {"softmax_scale"});
  expect_invalid(dsk_mla_decode_run(ctx, plan, a.q, a.kv, a.bt, a.sl, 0.3f, 3, a.out, a.lse),
                 {"causal"});
  f.untouched();

  // Tensors that do not match the plan: another batch, head count, dtype, max_pages, page size.
  {
    Host q3({3, 2, 4, 72}, DSK_DTYPE_BF16);
    Host t3({3, 3}, DSK_DTYPE_INT32);
    Host s3 = ints({3}, DSK_DTYPE_INT32, {1, 1, 1});
    Host o3({3, 2, 4, 64}, DSK_DTYPE_BF16);
    Host l3({3, 4, 2}, DSK_DTYPE_F32);
    expect_invalid(
        dsk_mla_decode_run(ctx, plan, q3.dl(), a.kv, t3.dl(), s3.dl(), 0.3f, 1, o3.dl(), l3.dl()),
        {"q|plan|block_table|cache_seqlens|out"});
  }
  {
    Host q8({2, 2, 8, 72}, DSK_DTYPE_BF16);
    Host o8({2, 2, 8, 64}, DSK_DTYPE_BF16);
    Host l8({2, 8, 2}, DSK_DTYPE_F32);
    expect_invalid(
        dsk_mla_decode_run(ctx, plan, q8.dl(), a.kv, a.bt, a.sl, 0.3f, 1, o8.dl(), l8.dl()),
        {"q|plan|out"});
  }
  {
    Host qh({2, 2, 4, 72}, DSK_DTYPE_F16);
    Host kh({6, 16, 1, 72}, DSK_DTYPE_F16);
    Host oh({2, 2, 4, 64}, DSK_DTYPE_F16);
    expect_invalid(
        dsk_mla_decode_run(ctx, plan, qh.dl(), kh.dl(), a.bt, a.sl, 0.3f, 1, oh.dl(), a.lse),
        {"q|plan|kv_cache|out"});
  }
  {
    Host t4({2, 4}, DSK_DTYPE_INT32);
    expect_invalid(dsk_mla_decode_run(ctx, plan, a.q, a.kv, t4.dl(), a.sl, 0.3f, 1, a.out, a.lse),
                   {"block_table|plan"});
  }
  {
    Host k32({6, 32, 1, 72}, DSK_DTYPE_BF16);
    expect_invalid(dsk_mla_decode_run(ctx, plan, a.q, k32.dl(), a.bt, a.sl, 0.3f, 1, a.out, a.lse),
                   {"kv_cache|plan"});
  }
  {
    Host o32({2, 2, 4, 32}, DSK_DTYPE_BF16);
    expect_invalid(dsk_mla_decode_run(ctx, plan, a.q, a.kv, a.bt, a.sl, 0.3f, 1, o32.dl(), a.lse),
                   {"out|plan"});
  }
  f.untouched();
  // The matching tensors still run.
  MLA_REQUIRE_OK(dsk_mla_decode_run(ctx, plan, a.q, a.kv, a.bt, a.sl, 0.3f, 1, a.out, a.lse));
  dsk_mla_decode_plan_release(plan);
}
