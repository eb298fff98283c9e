// Speculative verification (dsk_speculative_verify, dsk_sampling.h). Statistical: with drafts drawn
// from q (draft_probs given) or fixed drafts (draft_probs NULL), the first emitted token follows
// the target p_0 exactly in distribution, the token after an accepted draft follows p_1, the bonus
// p_2, and the acceptance rate is sum_j min(p_0, q_0) (chi-square / z-tests at p = 1e-6). Exact:
// the acceptance uniforms follow the documented stream-1 layout; resampled and bonus tokens equal
// dsk_sample at offset + i on the same support; the greedy variant (argmax, ties to the lower id,
// NaN never the max); -1 drafts end the chain; out_ids padding and the accepted / emitted counts.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using samp_test::Batch;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::kNaN;
using samp_test::Outputs;
using samp_test::sz;

// Inputs and outputs of one dsk_speculative_verify call over std::vector storage.
struct Verify {
  int64_t b, n, v;
  std::vector<int64_t> drafts;          // [B, n]
  std::vector<float> q;                 // [B, n, V] (empty: NULL)
  std::vector<float> target;            // [B, n + 1, V]
  std::vector<int64_t> seeds, offsets;  // [B] (empty: the scalars)
  int32_t ids_dtype = DSK_DTYPE_INT32;
  int32_t target_dtype = DSK_DTYPE_F32;
  dsk_verify_params params{};
  std::vector<int32_t> out, accepted, emitted;

  Verify(int64_t rows, int64_t drafts_n, int64_t vocab)
      : b(rows),
        n(drafts_n),
        v(vocab),
        drafts(sz(std::max<int64_t>(rows * drafts_n, 1)), 0),
        target(sz(std::max<int64_t>(rows * (drafts_n + 1) * vocab, 1)), 0.0f) {
    REQUIRE(dsk_verify_params_init(&params) == DSK_OK);
  }
  float& p(int64_t row, int64_t i, int64_t j) { return target[sz((row * (n + 1) + i) * v + j)]; }
  float& qq(int64_t row, int64_t i, int64_t j) { return q[sz((row * n + i) * v + j)]; }
  int64_t& draft(int64_t row, int64_t i) { return drafts[sz(row * n + i)]; }
  int32_t out_id(int64_t row, int64_t k) const { return out[sz(row * (n + 1) + k)]; }

  dsk_status run(dsk_context* ctx) {
    std::vector<int32_t> d32(drafts.begin(), drafts.end());
    Borrowed d(ids_dtype == DSK_DTYPE_INT32 ? static_cast<void*>(d32.data())
                                            : static_cast<void*>(drafts.data()),
               {b, n}, ids_dtype);
    std::vector<uint16_t> t16;
    void* tdata = target.data();
    if (target_dtype != DSK_DTYPE_F32) {
      for (float t : target)
        t16.push_back(target_dtype == DSK_DTYPE_BF16 ? mla_test::bf16_bits(t)
                                                     : mla_test::f16_bits(t));
      tdata = t16.data();
    }
    Borrowed t(tdata, {b, n + 1, v}, target_dtype);
    Borrowed qt(q.data(), {b, n, v}, DSK_DTYPE_F32);
    Borrowed st(seeds.data(), {b}, DSK_DTYPE_INT64), ot(offsets.data(), {b}, DSK_DTYPE_INT64);
    params.seeds = seeds.empty() ? nullptr : &st;
    params.offsets = offsets.empty() ? nullptr : &ot;
    out.assign(sz(std::max<int64_t>(b * (n + 1), 1)), -7);
    accepted.assign(sz(std::max<int64_t>(b, 1)), -7);
    emitted.assign(sz(std::max<int64_t>(b, 1)), -7);
    Borrowed o(out.data(), {b, n + 1}, DSK_DTYPE_INT32), a(accepted.data(), {b}, DSK_DTYPE_INT32),
        e(emitted.data(), {b}, DSK_DTYPE_INT32);
    const dsk_status s =
        dsk_speculative_verify(ctx, &params, &d, q.empty() ? nullptr : &qt, &t, &o, &a, &e);
    params.seeds = nullptr;
    params.offsets = nullptr;
    if (s != DSK_OK) return s;
    return dsk_context_synchronize(ctx);
  }

  // The emitted layout: accepted drafts, one token, then -1; emitted = accepted + 1.
  void check_layout() {
    for (int64_t r = 0; r < b; ++r) {
      INFO("row ", r);
      const int32_t a = accepted[sz(r)];
      REQUIRE(a >= 0);
      REQUIRE(a <= n);
      CHECK(emitted[sz(r)] == a + 1);
      for (int64_t k = 0; k < a; ++k) CHECK(out_id(r, k) == draft(r, k));
      CHECK(out_id(r, a) >= 0);
      CHECK(out_id(r, a) < v);
      for (int64_t k = a + 1; k <= n; ++k) CHECK(out_id(r, k) == -1);
    }
  }
};

std::vector<float> random_dist(std::mt19937_64& rng, int64_t v, int zeros) {
  std::vector<float> d(sz(v));
  std::gamma_distribution<double> g(0.7, 1.0);
  double s = 0;
  std::vector<double> w(sz(v));
  for (auto& t : w) s += (t = g(rng) + 0.01);
  for (int k = 0; k < zeros; ++k) {
    const auto j = sz(static_cast<int64_t>(rng() % static_cast<uint64_t>(v)));
    s -= w[j];
    w[j] = 0;
  }
  for (size_t j = 0; j < d.size(); ++j) d[j] = static_cast<float>(w[j] / s);
  return d;
}

std::vector<double> normalized(const std::vector<float>& p) {
  double s = 0;
  for (float t : p) s += t;
  std::vector<double> out;
  for (float t : p) out.push_back(t / s);
  return out;
}

int64_t sample_from(std::mt19937_64& rng, const std::vector<float>& d) {
  std::discrete_distribution<int64_t> dd(d.begin(), d.end());
  return dd(rng);
}

// z-test of `hits` successes in `trials` against probability `prob` at p = 1e-6 (two-sided).
void check_rate(int64_t hits, int64_t trials, double prob, const std::string& what) {
  const double mean = prob * static_cast<double>(trials);
  const double sd = std::sqrt(static_cast<double>(trials) * prob * (1.0 - prob));
  INFO(what);
  CHECK_MESSAGE(std::fabs(static_cast<double>(hits) - mean) <= 4.9 * sd + 1.0, hits, " of ", trials,
                ", expected ", mean, " (sd ", sd, ")");
}

// Runs `rows` verifications of n = 2 drafts against fixed p_0..p_2 (and q_0, q_1 when
// `with_q`), and checks the distributions of the emitted tokens.
void statistical(dsk_context* ctx, bool with_q, int64_t rows, uint64_t seed) {
  const int64_t v = 8, n = 2;
  std::mt19937_64 rng(seed);
  std::vector<std::vector<float>> p = {random_dist(rng, v, 1), random_dist(rng, v, 2),
                                       random_dist(rng, v, 0)};
  std::vector<std::vector<float>> q = {random_dist(rng, v, 2), random_dist(rng, v, 1)};
  std::vector<int64_t> c0(sz(v), 0), c1(sz(v), 0), c2(sz(v), 0);
  int64_t acc0 = 0, reached1 = 0, acc1 = 0;
  double alpha0 = 0, alpha1 = 0;  // acceptance probabilities
  for (int64_t j = 0; j < v; ++j) {
    alpha0 += with_q ? std::min<double>(p[0][sz(j)], q[0][sz(j)]) : 0.0;
    alpha1 += with_q ? std::min<double>(p[1][sz(j)], q[1][sz(j)]) : 0.0;
  }
  double fixed_alpha0 = 0, fixed_alpha1 = 0;  // deterministic drafts: the mean of p(t)
  const int64_t chunk = 50000;
  for (int64_t start = 0; start < rows; start += chunk) {
    const int64_t b = std::min(chunk, rows - start);
    Verify vf(b, n, v);
    vf.params.seed = seed * 7 + 1;
    vf.offsets.resize(sz(b));
    if (with_q) vf.q.assign(sz(b * n * v), 0.0f);
    for (int64_t r = 0; r < b; ++r) {
      vf.offsets[sz(r)] = (start + r) * (n + 1);
      for (int64_t i = 0; i <= n; ++i) {
        for (int64_t j = 0; j < v; ++j) vf.p(r, i, j) = p[sz(i)][sz(j)];
      }
      for (int64_t i = 0; i < n; ++i) {
        if (with_q) {
          for (int64_t j = 0; j < v; ++j) vf.qq(r, i, j) = q[sz(i)][sz(j)];
          vf.draft(r, i) = sample_from(rng, q[sz(i)]);
        } else {
          vf.draft(r, i) = ((start + r) / (i == 0 ? 1 : v)) % v;
        }
      }
      if (!with_q) {
        fixed_alpha0 += p[0][sz(vf.draft(r, 0))];
      }
    }
    SAMP_REQUIRE_OK(vf.run(ctx));
    vf.check_layout();
    for (int64_t r = 0; r < b; ++r) {
      const int32_t a = vf.accepted[sz(r)];
      ++c0[sz(vf.out_id(r, 0))];
      acc0 += a >= 1;
      if (a >= 1) {
        ++reached1;
        if (!with_q) fixed_alpha1 += p[1][sz(vf.draft(r, 1))];
        ++c1[sz(vf.out_id(r, 1))];
        acc1 += a >= 2;
      }
      if (a >= 2) ++c2[sz(vf.out_id(r, 2))];
    }
  }
  const std::string what = with_q ? "drafts from q" : "deterministic drafts";
  samp_test::check_fit(c0, normalized(p[0]), what + ": first token ~ p_0");
  samp_test::check_fit(c1, normalized(p[1]), what + ": token after an accepted draft ~ p_1");
  samp_test::check_fit(c2, normalized(p[2]), what + ": bonus ~ p_2");
  if (with_q) {
    check_rate(acc0, rows, alpha0, what + ": acceptance of draft 0");
    check_rate(acc1, reached1, alpha1, what + ": acceptance of draft 1");
  } else {
    check_rate(acc0, rows, fixed_alpha0 / static_cast<double>(rows), what + ": acceptance 0");
    check_rate(acc1, reached1, fixed_alpha1 / static_cast<double>(reached1),
               what + ": acceptance 1");
  }
}

// dsk_sample's id for one row: logits 0 on `support`, -inf elsewhere, at (seed, offset).
int32_t sample_on(dsk_context* ctx, int64_t v, const std::vector<int64_t>& support, uint64_t seed,
                  uint64_t offset) {
  Batch batch(1, v);
  for (int64_t j = 0; j < v; ++j) batch.x(0, j) = -kInf;
  for (int64_t j : support) batch.x(0, j) = 0.0f;
  batch.row(0).seed = seed;
  batch.row(0).offset = offset;
  Outputs out(1, 0);
  samp_test::run_sample(ctx, batch, out);
  REQUIRE(int{out.status[0]} == DSK_SAMPLE_OK);
  return out.ids[0];
}

}  // namespace

TEST_CASE("speculative verify: emitted tokens follow the target (drafts from q)") {
  CpuContext ctx;
  statistical(ctx, true, 200000, 3);
}

TEST_CASE("speculative verify: emitted tokens follow the target (deterministic drafts)") {
  CpuContext ctx;
  statistical(ctx, false, 200000, 4);
}

TEST_CASE("speculative verify: acceptance uniforms follow the stream-1 layout") {
  CpuContext ctx;
  const int64_t b = 300, n = 3, v = 16;
  Verify vf(b, n, v);
  std::mt19937_64 rng(11);
  vf.seeds.resize(sz(b));
  vf.offsets.resize(sz(b));
  const float levels[] = {0.1f, 0.3f, 0.5f, 0.9f};
  for (int64_t r = 0; r < b; ++r) {
    vf.seeds[sz(r)] = static_cast<int64_t>(rng());
    vf.offsets[sz(r)] = static_cast<int64_t>(rng() >> 3);
    for (int64_t i = 0; i < n; ++i) {
      vf.draft(r, i) = static_cast<int64_t>(rng() % v);
      // p_i(t_i) = level; the rest spread over the other tokens.
      const float lv = levels[(r + i) % 4];
      for (int64_t j = 0; j < v; ++j) vf.p(r, i, j) = (1.0f - lv) / static_cast<float>(v - 1);
      vf.p(r, i, vf.draft(r, i)) = lv;
    }
    for (int64_t j = 0; j < v; ++j) vf.p(r, n, j) = 1.0f / static_cast<float>(v);
  }
  SAMP_REQUIRE_OK(vf.run(ctx));
  vf.check_layout();
  for (int64_t r = 0; r < b; ++r) {
    INFO("row ", r);
    int32_t want = 0;
    const auto s = static_cast<uint64_t>(vf.seeds[sz(r)]);
    const auto o = static_cast<uint64_t>(vf.offsets[sz(r)]);
    while (want < n && samp_test::accept_uniform(s, o, static_cast<uint32_t>(want)) <
                           static_cast<double>(vf.p(r, want, vf.draft(r, want)))) {
      ++want;
    }
    CHECK(vf.accepted[sz(r)] == want);
  }
}

TEST_CASE("speculative verify: resampled and bonus tokens equal dsk_sample at offset + i") {
  CpuContext ctx;
  const int64_t v = 40, n = 3;
  std::mt19937_64 rng(21);
  for (int trial = 0; trial < 24; ++trial) {
    INFO("trial ", trial);
    const int64_t reject_at = trial % 4;  // 3 = all accepted: the bonus
    const bool with_q = trial % 8 >= 4;
    const uint64_t seed = rng(), offset = rng() >> 1;
    Verify vf(1, n, v);
    vf.params.seed = seed;
    vf.params.offset = offset;
    if (with_q) vf.q.assign(sz(n * v), 0.0f);
    std::vector<int64_t> support;
    for (int64_t j = 0; j < v; ++j) {
      if (rng() % 3 == 0) support.push_back(j);
    }
    if (support.size() < 2) support = {1, 5, 9};
    for (int64_t i = 0; i < n; ++i) {
      const auto t = static_cast<int64_t>(rng() % v);
      vf.draft(0, i) = t;
      if (with_q) vf.qq(0, i, t) = 1.0f;
      if (i < reject_at) {
        vf.p(0, i, t) = 1.0f;  // u * q < 1: accepted
      } else if (i == reject_at) {
        // p_i = 1 on the support minus t (p_i(t) = 0: rejected); the residual max(p - q, 0) is
        // the same set with weight 1.
        for (int64_t j : support) vf.p(0, i, j) = j == t ? 0.0f : 1.0f;
      }
    }
    if (reject_at == n) {
      for (int64_t j : support) vf.p(0, n, j) = 1.0f;
    }
    SAMP_REQUIRE_OK(vf.run(ctx));
    vf.check_layout();
    CHECK(vf.accepted[0] == reject_at);
    std::vector<int64_t> s2;
    for (int64_t j : support) {
      if (reject_at == n || j != vf.draft(0, reject_at)) s2.push_back(j);
    }
    const int32_t want = sample_on(ctx, v, s2, seed, offset + static_cast<uint64_t>(reject_at));
    CHECK(vf.out_id(0, reject_at) == want);
  }
  // A -1 draft ends the chain: the bonus comes from the row at the -1.
  {
    Verify vf(1, 3, v);
    vf.params.seed = 9;
    vf.params.offset = 100;
    vf.draft(0, 0) = 4;
    vf.draft(0, 1) = -1;
    vf.draft(0, 2) = 6;  // not verified
    vf.p(0, 0, 4) = 1.0f;
    for (int64_t j : {2, 3, 30}) vf.p(0, 1, j) = 1.0f;
    vf.p(0, 2, 6) = 1.0f;
    SAMP_REQUIRE_OK(vf.run(ctx));
    CHECK(vf.accepted[0] == 1);
    CHECK(vf.emitted[0] == 2);
    CHECK(vf.out_id(0, 0) == 4);
    CHECK(vf.out_id(0, 1) == sample_on(ctx, v, {2, 3, 30}, 9, 101));
    CHECK(vf.out_id(0, 2) == -1);
    CHECK(vf.out_id(0, 3) == -1);
  }
  // n = 0: just a sample from target[b, 0].
  {
    Verify vf(2, 0, v);
    vf.params.seed = 10;
    vf.offsets = {5, 6};
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t j : {0, 11, 12, 39}) vf.p(r, 0, j) = 1.0f;
    }
    SAMP_REQUIRE_OK(vf.run(ctx));
    for (int64_t r = 0; r < 2; ++r) {
      CHECK(vf.accepted[sz(r)] == 0);
      CHECK(vf.emitted[sz(r)] == 1);
      CHECK(vf.out_id(r, 0) ==
            sample_on(ctx, v, {0, 11, 12, 39}, 10, static_cast<uint64_t>(5 + r)));
    }
  }
}

TEST_CASE("speculative verify: greedy mode") {
  CpuContext ctx;
  const int64_t b = 40, n = 3, v = 30;
  for (int32_t tdt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
    for (int32_t idt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      INFO(mla_test::dtype_label(tdt), " drafts ", mla_test::dtype_label(idt));
      Verify vf(b, n, v);
      vf.params.mode = DSK_VERIFY_GREEDY;
      vf.target_dtype = tdt;
      vf.ids_dtype = idt;
      std::mt19937_64 rng(31);
      std::normal_distribution<double> nd(0.0, 1.0);
      std::vector<int64_t> arg(sz(b * (n + 1)));
      for (int64_t r = 0; r < b; ++r) {
        for (int64_t i = 0; i <= n; ++i) {
          for (int64_t j = 0; j < v; ++j) vf.p(r, i, j) = static_cast<float>(nd(rng));
          const auto a = static_cast<int64_t>(rng() % v);
          vf.p(r, i, a) = 10.0f;
          if (r % 5 == 1 && a + 3 < v) vf.p(r, i, a + 3) = 10.0f;  // a tie: the lower id
          if (r % 7 == 2) vf.p(r, i, (a + 1) % v) = kNaN;          // NaN is never the max
          arg[sz(r * (n + 1) + i)] = a;
        }
        const int64_t match = r % (n + 1);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t a = arg[sz(r * (n + 1) + i)];
          vf.draft(r, i) = i < match ? a : (a + 2) % v;
        }
        if (r % 9 == 4) vf.draft(r, 1) = -1;  // ends the chain after (at most) one draft
      }
      // An all-NaN target row verifies to 0.
      for (int64_t j = 0; j < v; ++j) vf.p(b - 1, 0, j) = kNaN;
      vf.draft(b - 1, 0) = 3;
      // Random draft probs are ignored in greedy mode.
      vf.q.assign(sz(b * n * v), 0.5f);
      SAMP_REQUIRE_OK(vf.run(ctx));
      vf.check_layout();
      for (int64_t r = 0; r < b; ++r) {
        INFO("row ", r);
        int64_t want_acc = 0;
        int64_t want_tok = -1;
        for (int64_t i = 0;; ++i) {
          const int64_t a = (r == b - 1 && i == 0) ? 0 : arg[sz(r * (n + 1) + i)];
          if (i == n || vf.draft(r, i) == -1 || vf.draft(r, i) != a) {
            want_tok = a;
            break;
          }
          ++want_acc;
        }
        CHECK(vf.accepted[sz(r)] == want_acc);
        CHECK(vf.out_id(r, want_acc) == want_tok);
      }
    }
  }
}

TEST_CASE("speculative verify: seeds tensor equals the scalar; B = 0") {
  CpuContext ctx;
  const int64_t b = 30, n = 2, v = 12;
  Verify a(b, n, v), c(b, n, v);
  std::mt19937_64 rng(41);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i <= n; ++i) {
      const std::vector<float> d = random_dist(rng, v, 1);
      for (int64_t j = 0; j < v; ++j) a.p(r, i, j) = c.p(r, i, j) = d[sz(j)];
    }
    for (int64_t i = 0; i < n; ++i) a.draft(r, i) = c.draft(r, i) = static_cast<int64_t>(rng() % v);
  }
  a.params.seed = 0x8000000000000003ull;
  a.params.offset = 12345;
  c.seeds.assign(sz(b), static_cast<int64_t>(0x8000000000000003ull));
  c.offsets.assign(sz(b), 12345);
  SAMP_REQUIRE_OK(a.run(ctx));
  SAMP_REQUIRE_OK(c.run(ctx));
  CHECK(a.out == c.out);
  CHECK(a.accepted == c.accepted);
  Verify z(0, 2, v);
  SAMP_REQUIRE_OK(z.run(ctx));
  CHECK(z.accepted[0] == -7);
}

TEST_CASE("speculative verify: bf16 / f16 probabilities equal their f32 values") {
  CpuContext ctx;
  const int64_t b = 64, n = 3, v = 20;
  Verify base(b, n, v);
  std::mt19937_64 rng(51);
  base.q.assign(sz(b * n * v), 0.0f);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i <= n; ++i) {
      const std::vector<float> d = random_dist(rng, v, 2);
      for (int64_t j = 0; j < v; ++j) base.p(r, i, j) = d[sz(j)];
    }
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<float> d = random_dist(rng, v, 2);
      for (int64_t j = 0; j < v; ++j) base.qq(r, i, j) = d[sz(j)];
      base.draft(r, i) = sample_from(rng, d);
    }
  }
  base.params.seed = 52;
  for (int32_t dt : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    INFO(mla_test::dtype_label(dt));
    Verify f32v(b, n, v), low(b, n, v);
    for (Verify* vf : {&f32v, &low}) {
      vf->drafts = base.drafts;
      vf->q = base.q;
      vf->params.seed = 52;
      for (size_t k = 0; k < base.target.size(); ++k) {
        const float t = base.target[k];
        vf->target[k] = dt == DSK_DTYPE_BF16 ? mla_test::bf16_value(mla_test::bf16_bits(t))
                                             : mla_test::f16_value(mla_test::f16_bits(t));
      }
    }
    low.target_dtype = dt;
    SAMP_REQUIRE_OK(f32v.run(ctx));
    SAMP_REQUIRE_OK(low.run(ctx));
    f32v.check_layout();
    CHECK(f32v.out == low.out);
    CHECK(f32v.accepted == low.accepted);
    CHECK(f32v.emitted == low.emitted);
  }
}
