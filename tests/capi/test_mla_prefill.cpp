// MLA prefill (MHA form, varlen) on the CPU (dsk_mla.h): dsk_mla_prefill against an independent
// naive formula in double for packed requests of 1, 17 and 65 queries, keys equal to the queries
// (cu_seqlens_k NULL) or with a cached prefix, causal and not, H a multiple of Hk, bf16 and f16,
// DeepSeek's 192/128 heads, k and v as views of one buffer; queries without keys (out 0, lse
// -inf); lse NULL; thread-count independence; every bad argument.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
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

const double kInf = std::numeric_limits<double>::infinity();

struct Case {
  int64_t h = 4, hk = 4, dqk = 40, dv = 24;
  int32_t dtype = DSK_DTYPE_BF16;
  int32_t causal = 0;
  float scale = 0.25f;
  std::vector<int64_t> q_lens, k_lens;  // k_lens empty: cu_seqlens_k NULL (= q_lens)
  bool kv_shared = false;               // k and v as column slices of one [Tk, Hk, Dqk + Dv] buffer
  uint64_t seed = 1;

  const std::vector<int64_t>& keys() const { return k_lens.empty() ? q_lens : k_lens; }
  std::string describe() const {
    std::ostringstream o;
    o << "H " << h << " Hk " << hk << " Dqk " << dqk << " Dv " << dv << " "
      << mla_test::dtype_label(dtype) << " causal " << causal << " q lens {";
    for (int64_t n : q_lens) o << " " << n;
    o << " } k lens {";
    for (int64_t n : keys()) o << " " << n;
    o << " }" << (k_lens.empty() ? " (cu_seqlens_k NULL)" : "") << (kv_shared ? " kv shared" : "");
    return o.str();
  }
};

std::vector<int64_t> prefix_sums(const std::vector<int64_t>& lens) {
  std::vector<int64_t> cu(1, 0);
  for (int64_t n : lens) cu.push_back(cu.back() + n);
  return cu;
}

struct Data {
  int64_t tq = 0, tk = 0;
  Host q, kv, k_own, v_own, cu_q, cu_k, out, lse;
  mla_test::View k, v;
  const DLTensor* cu_k_dl = nullptr;
};

void make_data(const Case& c, Data& d) {
  const std::vector<int64_t> cq = prefix_sums(c.q_lens), ck = prefix_sums(c.keys());
  d.tq = cq.back();
  d.tk = ck.back();
  d.q = Host({d.tq, c.h, c.dqk}, c.dtype);
  d.q.fill_random(c.seed);
  if (c.kv_shared) {
    d.kv = Host({d.tk, c.hk, c.dqk + c.dv}, c.dtype);
    d.kv.fill_random(c.seed + 1);
    const int64_t row = c.dqk + c.dv;
    d.k = d.kv.view({d.tk, c.hk, c.dqk}, {c.hk * row, row, 1}, 0);
    d.v = d.kv.view({d.tk, c.hk, c.dv}, {c.hk * row, row, 1}, c.dqk);
  } else {
    d.k_own = Host({d.tk, c.hk, c.dqk}, c.dtype);
    d.v_own = Host({d.tk, c.hk, c.dv}, c.dtype);
    d.k_own.fill_random(c.seed + 1);
    d.v_own.fill_random(c.seed + 2);
    d.k = d.k_own.reshaped({d.tk, c.hk, c.dqk});
    d.v = d.v_own.reshaped({d.tk, c.hk, c.dv});
  }
  d.cu_q = ints({static_cast<int64_t>(cq.size())}, DSK_DTYPE_INT32, cq);
  d.cu_k = ints({static_cast<int64_t>(ck.size())}, DSK_DTYPE_INT32, ck);
  d.cu_k_dl = c.k_lens.empty() ? nullptr : d.cu_k.dl();
  d.out = Host({d.tq, c.h, c.dv}, c.dtype);
  d.lse = Host({c.h, d.tq}, DSK_DTYPE_F32);
  d.out.fill_nan();
  d.lse.fill_nan();
}

// Values of a view of a Host (row-major over the view's shape).
std::vector<double> values_of(const Host& base, const mla_test::View& v) {
  const auto offset =
      (static_cast<const uint8_t*>(v.dl.data) - static_cast<const uint8_t*>(base.data())) /
      static_cast<int64_t>(mla_test::dtype_bytes(base.dtype()));
  return mla_test::gather(base, v.shape, v.strides, offset);
}

struct Result {
  std::vector<double> out, lse;
};

// The naive formula in double: a dense score matrix per request and head, masked, softmax, P @ V.
Result reference(const Case& c, const Data& d) {
  const std::vector<double> q = d.q.values();
  const Host& kb = c.kv_shared ? d.kv : d.k_own;
  const Host& vb = c.kv_shared ? d.kv : d.v_own;
  const std::vector<double> k = values_of(kb, d.k), v = values_of(vb, d.v);
  const std::vector<int64_t> cq = prefix_sums(c.q_lens), ck = prefix_sums(c.keys());
  const int64_t H = c.h, Hk = c.hk, group = c.h / c.hk;
  Result r;
  r.out.assign(static_cast<size_t>(d.tq * H * c.dv), 0.0);
  r.lse.assign(static_cast<size_t>(H * d.tq), -kInf);
  for (size_t b = 0; b + 1 < cq.size(); ++b) {
    const int64_t nq = cq[b + 1] - cq[b], nk = ck[b + 1] - ck[b];
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / group;
      // Dense scores [nq, nk].
      std::vector<double> s(static_cast<size_t>(nq * nk));
      for (int64_t i = 0; i < nq; ++i) {
        for (int64_t j = 0; j < nk; ++j) {
          double acc = 0;
          for (int64_t x = 0; x < c.dqk; ++x) {
            acc += q[static_cast<size_t>(((cq[b] + i) * H + h) * c.dqk + x)] *
                   k[static_cast<size_t>(((ck[b] + j) * Hk + kh) * c.dqk + x)];
          }
          s[static_cast<size_t>(i * nk + j)] = acc * static_cast<double>(c.scale);
        }
      }
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t limit = c.causal ? std::min(nk, nk - nq + i + 1) : nk;
        if (limit <= 0) continue;
        double m = -kInf;
        for (int64_t j = 0; j < limit; ++j) m = std::max(m, s[static_cast<size_t>(i * nk + j)]);
        double sum = 0;
        double* o = &r.out[static_cast<size_t>(((cq[b] + i) * H + h) * c.dv)];
        for (int64_t j = 0; j < limit; ++j) {
          const double p = std::exp(s[static_cast<size_t>(i * nk + j)] - m);
          sum += p;
          for (int64_t x = 0; x < c.dv; ++x) {
            o[x] += p * v[static_cast<size_t>(((ck[b] + j) * Hk + kh) * c.dv + x)];
          }
        }
        for (int64_t x = 0; x < c.dv; ++x) o[x] /= sum;
        r.lse[static_cast<size_t>(h * d.tq + cq[b] + i)] = m + std::log(sum);
      }
    }
  }
  return r;
}

dsk_status prefill(dsk_context* ctx, const Case& c, Data& d, bool with_lse = true) {
  return dsk_mla_prefill(ctx, d.q.dl(), d.k.get(), d.v.get(), d.cu_q.dl(), d.cu_k_dl, c.scale,
                         c.causal, d.out.dl(), with_lse ? d.lse.dl() : nullptr);
}

void check_against(const Case& c, const Data& d, const Result& r) {
  const std::vector<double> out = d.out.values();
  check_close(out, r.out, out_atol(c.dtype), out_rtol(c.dtype), "out");
  check_close(d.lse.values(), r.lse, kLseAtol, 0.0, "lse");
  size_t bad = 0;  // queries without keys: out exactly 0
  for (int64_t h = 0; h < c.h; ++h) {
    for (int64_t t = 0; t < d.tq; ++t) {
      if (!std::isinf(r.lse[static_cast<size_t>(h * d.tq + t)])) continue;
      for (int64_t x = 0; x < c.dv; ++x) {
        if (out[static_cast<size_t>((t * c.h + h) * c.dv + x)] != 0.0) ++bad;
      }
    }
  }
  CHECK_MESSAGE(bad == 0, bad, " outputs of queries without keys are not 0");
}

void run_case(dsk_context* ctx, const Case& c) {
  const std::string what = c.describe();
  INFO(what);
  Data d;
  make_data(c, d);
  MLA_REQUIRE_OK(prefill(ctx, c, d));
  check_against(c, d, reference(c, d));
}

}  // namespace

TEST_CASE("mla prefill matches the naive formula for varlen requests") {
  CpuContext ctx;
  uint64_t seed = 1;
  for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int64_t hk : {4, 2, 1}) {
      for (int32_t causal : {0, 1}) {
        for (bool prefix : {false, true}) {
          Case c;
          c.h = 4;
          c.hk = hk;
          c.dtype = dtype;
          c.causal = causal;
          c.q_lens = std::vector<int64_t>{1, 17, 65};
          if (prefix) c.k_lens = std::vector<int64_t>{6, 17, 95};  // 5, 0 and 30 cached tokens
          c.kv_shared = hk == 2;
          c.seed = ++seed;
          run_case(ctx, c);
        }
      }
    }
  }
}

TEST_CASE("mla prefill at DeepSeek's 192 and 128 head dims") {
  CpuContext ctx;
  for (int32_t causal : {0, 1}) {
    Case c;
    c.h = 2;
    c.hk = 2;
    c.dqk = 192;
    c.dv = 128;
    c.causal = causal;
    c.scale = 0.1352338f;
    c.q_lens = std::vector<int64_t>{1, 17, 65};
    c.k_lens = std::vector<int64_t>{6, 17, 95};
    c.kv_shared = causal == 1;
    c.seed = 40 + static_cast<uint64_t>(causal);
    run_case(ctx, c);
  }
}

TEST_CASE("mla prefill queries without keys get out 0 and lse -inf") {
  CpuContext ctx;
  // Non-causal with a request of no keys; causal with fewer keys than queries (the first queries
  // see nothing); an empty request in the middle.
  for (int32_t causal : {0, 1}) {
    Case c;
    c.h = 2;
    c.hk = 1;
    c.causal = causal;
    c.q_lens = std::vector<int64_t>{3, 4, 0, 2};
    c.k_lens = std::vector<int64_t>{0, 2, 3, 5};
    c.seed = 50 + static_cast<uint64_t>(causal);
    run_case(ctx, c);
  }
}

TEST_CASE("mla prefill without lse writes the same out and is thread-count independent") {
  CpuContext ctx;
  Case c;
  c.h = 4;
  c.hk = 2;
  c.causal = 1;
  c.q_lens = std::vector<int64_t>{1, 17, 65, 130};
  c.k_lens = std::vector<int64_t>{6, 17, 95, 300};
  c.seed = 60;
  Data d;
  make_data(c, d);
  MLA_REQUIRE_OK(prefill(ctx, c, d));
  const std::vector<uint8_t> out = d.out.raw(), lse = d.lse.raw();
  check_against(c, d, reference(c, d));
  d.out.fill_nan();
  MLA_REQUIRE_OK(prefill(ctx, c, d, false));
  CHECK(d.out.raw() == out);
  for (const char* n : {"1", "3"}) {
    dsk_test::Threads t(n);
    d.out.fill_nan();
    d.lse.fill_nan();
    MLA_REQUIRE_OK(prefill(ctx, c, d));
    CHECK(d.out.raw() == out);
    CHECK(d.lse.raw() == lse);
  }
}

// ---- bad input ----

TEST_CASE("mla prefill rejects bad arguments") {
  CpuContext ctx;
  // B 2, q lens {3, 5} (Tq 8), k lens {4, 6} (Tk 10), H 4, Hk 2, Dqk 40, Dv 24, bf16.
  const int32_t bf = DSK_DTYPE_BF16;
  Host q({8, 4, 40}, bf), k({10, 2, 40}, bf), v({10, 2, 24}, bf);
  q.fill(0.5);
  k.fill(0.25);
  v.fill(1.0);
  Host cu_q = ints({3}, DSK_DTYPE_INT32, {0, 3, 8}), cu_k = ints({3}, DSK_DTYPE_INT32, {0, 4, 10});
  Host out({8, 4, 24}, bf), lse({4, 8}, DSK_DTYPE_F32);
  out.fill_bytes(0x5A);
  lse.fill_bytes(0x5A);
  const std::vector<uint8_t> out0 = out.raw(), lse0 = lse.raw();
  struct Args {
    const DLTensor *q, *k, *v, *cq, *ck;
    float scale;
    int32_t causal;
    const DLTensor *out, *lse;
  };
  const Args good{q.dl(), k.dl(), v.dl(), cu_q.dl(), cu_k.dl(), 0.3f, 1, out.dl(), lse.dl()};
  auto with = [&](auto change) {
    Args a = good;
    change(a);
    return dsk_mla_prefill(ctx, a.q, a.k, a.v, a.cq, a.ck, a.scale, a.causal, a.out, a.lse);
  };
  // cu_seqlens values (checked before anything is written).
  for (const std::vector<int64_t>& bad :
       {std::vector<int64_t>{1, 3, 8}, {0, 9, 8}, {0, 3, 7}, {0, 3, 9}, {-1, 3, 8}}) {
    Host cq = ints({3}, DSK_DTYPE_INT32, bad);
    expect_invalid(with([&](auto& a) { a.cq = cq.dl(); }), {"cu_seqlens_q"});
  }
  for (const std::vector<int64_t>& bad :
       {std::vector<int64_t>{2, 4, 10}, {0, 11, 10}, {0, 4, 9}, {0, 4, 11}}) {
    Host ck = ints({3}, DSK_DTYPE_INT32, bad);
    expect_invalid(with([&](auto& a) { a.ck = ck.dl(); }), {"cu_seqlens_k"});
  }
  // cu_seqlens_k NULL means cu_seqlens_q, which does not end at Tk = 10.
  expect_invalid(with([&](auto& a) { a.ck = nullptr; }), {"cu_seqlens_k|cu_seqlens_q|k"});
  CHECK(out.raw() == out0);
  CHECK(lse.raw() == lse0);
  // cu_seqlens shapes and dtypes.
  Host cq4 = ints({4}, DSK_DTYPE_INT32, {0, 3, 8, 8});
  expect_invalid(with([&](auto& a) { a.cq = cq4.dl(); }), {"cu_seqlens_q|cu_seqlens_k"});
  Host cq64 = ints({3}, DSK_DTYPE_INT64, {0, 3, 8});
  expect_invalid(with([&](auto& a) { a.cq = cq64.dl(); }), {"cu_seqlens_q"});
  Host ck64 = ints({3}, DSK_DTYPE_INT64, {0, 4, 10});
  expect_invalid(with([&](auto& a) { a.ck = ck64.dl(); }), {"cu_seqlens_k"});
  Host cq2d = ints({1, 3}, DSK_DTYPE_INT32, {0, 3, 8});
  expect_invalid(with([&](auto& a) { a.cq = cq2d.dl(); }), {"cu_seqlens_q"});
  // Heads and dims.
  Host q3({8, 3, 40}, bf), out3({8, 3, 24}, bf), lse3({3, 8}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) {
                   a.q = q3.dl();
                   a.out = out3.dl();
                   a.lse = lse3.dl();
                 }),
                 {"q|k"});
  Host q48({8, 4, 48}, bf);
  expect_invalid(with([&](auto& a) { a.q = q48.dl(); }), {"q|k"});
  Host v_h({10, 1, 24}, bf);
  expect_invalid(with([&](auto& a) { a.v = v_h.dl(); }), {"v|k"});
  Host v_t({9, 2, 24}, bf);
  expect_invalid(with([&](auto& a) { a.v = v_t.dl(); }), {"v|k"});
  Host out_dv({8, 4, 16}, bf);
  expect_invalid(with([&](auto& a) { a.out = out_dv.dl(); }), {"out|v"});
  Host out_t({7, 4, 24}, bf);
  expect_invalid(with([&](auto& a) { a.out = out_t.dl(); }), {"out|q"});
  Host lse_t({8, 4}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.lse = lse_t.dl(); }), {"lse"});
  Host lse_bf({4, 8}, bf);
  expect_invalid(with([&](auto& a) { a.lse = lse_bf.dl(); }), {"lse"});
  // dtypes.
  Host q_f16({8, 4, 40}, DSK_DTYPE_F16);
  expect_invalid(with([&](auto& a) { a.q = q_f16.dl(); }), {"q|k"});
  Host v_f32({10, 2, 24}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.v = v_f32.dl(); }), {"v"});
  Host out_f16({8, 4, 24}, DSK_DTYPE_F16);
  expect_invalid(with([&](auto& a) { a.out = out_f16.dl(); }), {"out"});
  Host qf({8, 4, 40}, DSK_DTYPE_F32), kf({10, 2, 40}, DSK_DTYPE_F32), of({8, 4, 24}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) {
                   a.q = qf.dl();
                   a.k = kf.dl();
                   a.v = v_f32.dl();
                   a.out = of.dl();
                 }),
                 {"q|k|v|out"});
  // Scalars.
  for (float scale : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
    expect_invalid(with([&](auto& a) { a.scale = scale; }), {"softmax_scale"});
  }
  expect_invalid(with([&](auto& a) { a.causal = 2; }), {"causal"});
  // NULLs.
  expect_invalid(with([&](auto& a) { a.q = nullptr; }), {"q"});
  expect_invalid(with([&](auto& a) { a.k = nullptr; }), {"k"});
  expect_invalid(with([&](auto& a) { a.v = nullptr; }), {"v"});
  expect_invalid(with([&](auto& a) { a.cq = nullptr; }), {"cu_seqlens_q"});
  expect_invalid(with([&](auto& a) { a.out = nullptr; }), {"out"});
  expect_invalid(dsk_mla_prefill(nullptr, q.dl(), k.dl(), v.dl(), cu_q.dl(), cu_k.dl(), 0.3f, 1,
                                 out.dl(), lse.dl()),
                 {"ctx"});
  CHECK(out.raw() == out0);
  CHECK(lse.raw() == lse0);
  // The fixture itself is valid.
  MLA_REQUIRE_OK(with([](auto&) {}));
}
