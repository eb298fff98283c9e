// dsk.hpp: the C++ wrappers of MLA attention (dsk_mla.h) on a CPU context, against naive formulas
// computed here in double. The C functions themselves are tested in test_mla_*.cpp; this checks
// that each wrapper passes its arguments through in order, that MlaDecodePlan owns its plan, and
// that failures come back as dsk::Error with the library's message.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <dsk/dsk.hpp>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cpp_test_util.h"

namespace {

using cpp_test::expect_invalid;
using cpp_test::make_int;

const DLDataType kF32 = dsk::dtype(DSK_DTYPE_F32);
const DLDataType kBF16 = dsk::dtype(DSK_DTYPE_BF16);
const DLDataType kI32 = dsk::dtype(DSK_DTYPE_INT32);
const DLDataType kI64 = dsk::dtype(DSK_DTYPE_INT64);
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Deterministic values in [-1, 1).
std::vector<float> rand_vec(size_t n, uint64_t seed) {
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  std::vector<float> v(n);
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
  return v;
}

dsk::Tensor make(dsk::Context& ctx, const std::vector<int64_t>& shape, const std::vector<float>& v,
                 DLDataType dtype = kF32) {
  dsk::Tensor t = dsk::Tensor::empty(ctx, shape, kF32);
  REQUIRE(static_cast<size_t>(t.numel()) == v.size());
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  if (dtype.code == kF32.code && dtype.bits == kF32.bits) return t;
  return dsk::Tensor::clone(ctx, t.dl(), dtype);
}

// The values of any float tensor, as f32.
std::vector<float> values(dsk::Context& ctx, const dsk::Tensor& t) {
  dsk::Tensor f = dsk::Tensor::clone(ctx, t.dl(), kF32);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double rtol,
                 double atol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i])) {
      CHECK_MESSAGE(static_cast<double>(got[i]) == want[i], "element ", i, ": ", got[i]);
      continue;
    }
    CHECK_MESSAGE(
        std::fabs(static_cast<double>(got[i]) - want[i]) <= atol + rtol * std::fabs(want[i]),
        "element ", i, ": ", got[i], " vs ", want[i]);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read ", path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A small paged decode problem: the cache holds NaN at every position no request owns.
struct Decode {
  int64_t B, S, Hq, Hkv, D, Dv, page, num_pages, max_pages;
  std::vector<int32_t> block_table, seqlens;
  std::vector<float> q, cache;  // f32 values, rounded through bf16 by the tensors below
};

Decode decode_problem(int64_t S, int64_t Hq, int64_t Hkv, uint64_t seed) {
  Decode p{2, S, Hq, Hkv, 16, 8, 16, 3, 2, {2, 0, 1, 0}, {5, 20}, {}, {}};
  p.q = rand_vec(static_cast<size_t>(p.B * S * Hq * p.D), seed);
  p.cache.assign(static_cast<size_t>(p.num_pages * p.page * Hkv * p.D), kNaN);
  const std::vector<float> fresh = rand_vec(p.cache.size(), seed + 1);
  for (int64_t b = 0; b < p.B; ++b) {
    for (int64_t t = 0; t < p.seqlens[static_cast<size_t>(b)]; ++t) {
      const int64_t pg = p.block_table[static_cast<size_t>(b * p.max_pages + t / p.page)];
      for (int64_t i = 0; i < Hkv * p.D; ++i) {
        const size_t at = static_cast<size_t>((pg * p.page + t % p.page) * Hkv * p.D + i);
        p.cache[at] = fresh[at];
      }
    }
  }
  return p;
}

// dsk_mla.h's decode in double over dense loops: out [B, S, Hq, Dv], lse [B, Hq, S].
void decode_ref(const Decode& p, const std::vector<float>& q, const std::vector<float>& cache,
                double scale, bool causal, std::vector<double>& out, std::vector<double>& lse) {
  out.assign(static_cast<size_t>(p.B * p.S * p.Hq * p.Dv), 0.0);
  lse.assign(static_cast<size_t>(p.B * p.Hq * p.S), 0.0);
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t n = p.seqlens[static_cast<size_t>(b)];
    for (int64_t j = 0; j < p.S; ++j) {
      const int64_t len = causal ? std::max<int64_t>(0, n - p.S + j + 1) : n;
      for (int64_t h = 0; h < p.Hq; ++h) {
        const int64_t hk = h / (p.Hq / p.Hkv);
        const float* qv = &q[static_cast<size_t>(((b * p.S + j) * p.Hq + h) * p.D)];
        std::vector<double> s(static_cast<size_t>(len));
        std::vector<const float*> rows(static_cast<size_t>(len));
        double mx = -INFINITY;
        for (int64_t t = 0; t < len; ++t) {
          const int64_t pg = p.block_table[static_cast<size_t>(b * p.max_pages + t / p.page)];
          rows[static_cast<size_t>(t)] =
              &cache[static_cast<size_t>(((pg * p.page + t % p.page) * p.Hkv + hk) * p.D)];
          double dot = 0;
          for (int64_t d = 0; d < p.D; ++d) dot += double(qv[d]) * rows[static_cast<size_t>(t)][d];
          s[static_cast<size_t>(t)] = dot * scale;
          mx = std::max(mx, s[static_cast<size_t>(t)]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        const size_t li = static_cast<size_t>((b * p.Hq + h) * p.S + j);
        lse[li] = len == 0 ? -INFINITY : mx + std::log(sum);
        for (int64_t t = 0; t < len; ++t) {
          for (int64_t d = 0; d < p.Dv; ++d) {
            out[static_cast<size_t>(((b * p.S + j) * p.Hq + h) * p.Dv + d)] +=
                s[static_cast<size_t>(t)] / sum * rows[static_cast<size_t>(t)][d];
          }
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("dsk.hpp wraps every function of dsk_mla.h") {
  const std::string root = DSK_SOURCE_DIR;
  const std::string header = slurp(root + "/include/dsk/dsk_mla.h");
  const std::string hpp = slurp(root + "/include/dsk/dsk.hpp");
  int found = 0;
  for (size_t pos = header.find("DSK_API"); pos != std::string::npos;
       pos = header.find("DSK_API", pos + 1)) {
    const size_t open = header.find('(', pos);
    size_t begin = header.rfind(' ', open) + 1;
    if (header[begin] == '*') ++begin;
    const std::string name = header.substr(begin, open - begin);
    CHECK_MESSAGE(hpp.find(name + "(") != std::string::npos, "dsk.hpp does not call ", name);
    ++found;
  }
  CHECK(found == 12);
}

TEST_CASE("dsk.hpp mla_softmax_scale") {
  const double m = 0.1 * 1.0 * std::log(40.0) + 1.0;
  CHECK(dsk::mla_softmax_scale(192, 40, 1, true) == static_cast<float>(m * m / std::sqrt(192.0)));
  CHECK(dsk::mla_softmax_scale(192, 40, 1, true) == doctest::Approx(0.1352338).epsilon(1e-6));
  CHECK(dsk::mla_softmax_scale(192) == static_cast<float>(1 / std::sqrt(192.0)));
  CHECK(dsk::mla_softmax_scale(192, 40, 1, false) == dsk::mla_softmax_scale(192));
  expect_invalid([] { dsk::mla_softmax_scale(0); }, "qk_head_dim");
}

TEST_CASE("dsk.hpp MlaDecodePlan and mla_decode against a naive decode") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  for (const bool causal : {false, true}) {
    CAPTURE(causal);
    // S = 1 with one cached head; S = 2 (MTP) with two, where causality matters.
    const Decode p = causal ? decode_problem(2, 4, 2, 11) : decode_problem(1, 2, 1, 7);
    dsk::Tensor q = make(ctx, {p.B, p.S, p.Hq, p.D}, p.q, kBF16);
    dsk::Tensor cache = make(ctx, {p.num_pages, p.page, p.Hkv, p.D}, p.cache, kBF16);
    dsk::Tensor bt = make_int(ctx, {p.B, p.max_pages}, p.block_table);
    dsk::Tensor sl = make_int(ctx, {p.B}, p.seqlens);
    dsk::Tensor out = dsk::Tensor::empty(ctx, {p.B, p.S, p.Hq, p.Dv}, kBF16);
    dsk::Tensor lse = dsk::Tensor::empty(ctx, {p.B, p.Hq, p.S}, kF32);
    const float scale = 0.3f;
    std::vector<double> want_out, want_lse;
    decode_ref(p, values(ctx, q), values(ctx, cache), scale, causal, want_out, want_lse);

    dsk::MlaDecodePlan plan(ctx, q, cache, bt, sl, out);
    REQUIRE(plan);
    CHECK(plan.num_splits() >= 1);
    const size_t ws = plan.workspace_size();
    plan.run(ctx, q, cache, bt, sl, scale, causal, out, lse);
    check_close(values(ctx, out), want_out, 1.0 / 128, 1e-3);
    check_close(values(ctx, lse), want_lse, 1e-5, 1e-5);

    // The free function, with the plan's workspace reserved and without lse.
    dsk::check(dsk_context_reserve_workspace(ctx.get(), ws));
    dsk::fill(ctx, out, 0.0);
    dsk::mla_decode_run(ctx, plan, q, cache, bt, sl, scale, causal, out);
    check_close(values(ctx, out), want_out, 1.0 / 128, 1e-3);

    // One-shot form.
    dsk::fill(ctx, out, 0.0);
    dsk::fill(ctx, lse, 0.0);
    dsk::mla_decode(ctx, q, cache, bt, sl, scale, causal, out, lse);
    check_close(values(ctx, out), want_out, 1.0 / 128, 1e-3);
    check_close(values(ctx, lse), want_lse, 1e-5, 1e-5);
  }
}

TEST_CASE("dsk.hpp MlaDecodePlan serves other seqlens and page counts") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  Decode p = decode_problem(1, 2, 1, 21);
  dsk::Tensor q = make(ctx, {p.B, p.S, p.Hq, p.D}, p.q, kBF16);
  dsk::Tensor bt = make_int(ctx, {p.B, p.max_pages}, p.block_table);
  dsk::Tensor sl = make_int(ctx, {p.B}, p.seqlens);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {p.B, p.S, p.Hq, p.Dv}, kBF16);
  dsk::Tensor cache = make(ctx, {p.num_pages, p.page, p.Hkv, p.D}, p.cache, kBF16);
  dsk::MlaDecodePlan plan(ctx, q, cache, bt, sl, out);

  // Shorter requests (one of them empty) and a larger cache: the plan fixes shapes, not values.
  p.seqlens = {0, 17};
  p.num_pages = 5;
  p.cache.resize(static_cast<size_t>(p.num_pages * p.page * p.Hkv * p.D), kNaN);
  dsk::Tensor cache5 = make(ctx, {p.num_pages, p.page, p.Hkv, p.D}, p.cache, kBF16);
  dsk::Tensor sl2 = make_int(ctx, {p.B}, p.seqlens);
  dsk::Tensor lse = dsk::Tensor::empty(ctx, {p.B, p.Hq, p.S}, kF32);
  std::vector<double> want_out, want_lse;
  decode_ref(p, values(ctx, q), values(ctx, cache5), 0.5, false, want_out, want_lse);
  plan.run(ctx, q, cache5, bt, sl2, 0.5f, false, out, lse);
  check_close(values(ctx, out), want_out, 1.0 / 128, 1e-3);
  check_close(values(ctx, lse), want_lse, 1e-5, 1e-5);
  CHECK(values(ctx, lse)[0] == -INFINITY);  // request 0 attends to nothing: out = 0, lse = -inf
  CHECK(values(ctx, out)[0] == 0.0f);
}

TEST_CASE("dsk.hpp MlaDecodePlan owns and releases its plan") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const Decode p = decode_problem(1, 2, 1, 3);
  dsk::Tensor q = make(ctx, {p.B, p.S, p.Hq, p.D}, p.q, kBF16);
  dsk::Tensor cache = make(ctx, {p.num_pages, p.page, p.Hkv, p.D}, p.cache, kBF16);
  dsk::Tensor bt = make_int(ctx, {p.B, p.max_pages}, p.block_table);
  dsk::Tensor sl = make_int(ctx, {p.B}, p.seqlens);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {p.B, p.S, p.Hq, p.Dv}, kBF16);

  dsk::MlaDecodePlan a(ctx, q, cache, bt, sl, out);
  const dsk_mla_decode_plan* raw = a.get();
  REQUIRE(raw != nullptr);
  dsk::MlaDecodePlan b(std::move(a));
  CHECK(a.get() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(b.get() == raw);
  dsk::MlaDecodePlan c;
  CHECK(!c);
  c = std::move(b);
  CHECK(c.get() == raw);
  dsk::MlaDecodePlan& alias = c;
  c = std::move(alias);  // self-move keeps the plan
  CHECK(c.get() == raw);
  c.reset();
  c.reset();  // idempotent
  CHECK(!c);
  dsk_mla_decode_plan_release(nullptr);  // a no-op

  // An empty plan: the library's NULL-argument errors.
  expect_invalid([&] { (void)c.workspace_size(); }, "plan");
  expect_invalid([&] { (void)c.num_splits(); }, "plan");
  expect_invalid([&] { c.run(ctx, q, cache, bt, sl, 1.0f, false, out); }, "plan");

  // A plan adopted from the C API is released by the wrapper; it does not need the context that
  // made it, only one on the same device.
  dsk_mla_decode_plan* made = nullptr;
  {
    dsk::Context other(DSK_BACKEND_CPU);
    dsk::check(dsk_mla_decode_plan_create(other.get(), q, cache, bt, sl, out, &made));
  }
  dsk::MlaDecodePlan adopted(made);
  adopted.run(ctx, q, cache, bt, sl, 1.0f, false, out);
}

TEST_CASE("dsk.hpp MLA decode errors name the argument") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const Decode p = decode_problem(1, 2, 1, 5);
  dsk::Tensor q = make(ctx, {p.B, p.S, p.Hq, p.D}, p.q, kBF16);
  dsk::Tensor cache = make(ctx, {p.num_pages, p.page, p.Hkv, p.D}, p.cache, kBF16);
  dsk::Tensor bt = make_int(ctx, {p.B, p.max_pages}, p.block_table);
  dsk::Tensor sl = make_int(ctx, {p.B}, p.seqlens);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {p.B, p.S, p.Hq, p.Dv}, kBF16);
  dsk::Tensor bad_bt = make(ctx, {p.B, p.max_pages}, {0, 0, 0, 0});  // f32, not int32

  expect_invalid([&] { dsk::MlaDecodePlan bad(ctx, q, cache, bad_bt, sl, out); }, "block_table");
  dsk::MlaDecodePlan plan(ctx, q, cache, bt, sl, out);
  expect_invalid([&] { plan.run(ctx, q, cache, bt, sl, 0.0f, false, out); }, "softmax_scale");
  expect_invalid([&] { dsk::mla_decode_run(ctx, plan, q, cache, bt, sl, NAN, false, out); },
                 "softmax_scale");
  dsk::Tensor bad_lse = dsk::Tensor::empty(ctx, {p.B, p.Hq, p.S + 1}, kF32);
  expect_invalid([&] { dsk::mla_decode(ctx, q, cache, bt, sl, 1.0f, false, out, bad_lse); }, "lse");
  // Out-of-range values are checked on the CPU before anything is written.
  dsk::Tensor far = make_int(ctx, {p.B}, std::vector<int32_t>{5, 33});  // > max_pages * page_size
  expect_invalid([&] { dsk::mla_decode(ctx, q, cache, bt, far, 1.0f, false, out); },
                 "cache_seqlens");
}

TEST_CASE("dsk.hpp mla_cache_append writes the slots") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t T = 3, H = 2, Dv = 8, Dr = 8, D = Dv + Dr, page = 16, pages = 2;
  dsk::Tensor cache = dsk::Tensor::empty(ctx, {pages, page, H, D}, kBF16);
  dsk::fill(ctx, cache, 0.0);
  const std::vector<float> ckv = rand_vec(static_cast<size_t>(T * H * Dv), 1);
  const std::vector<float> kpe = rand_vec(static_cast<size_t>(T * H * Dr), 2);
  dsk::Tensor c_kv = make(ctx, {T, H, Dv}, ckv);
  dsk::Tensor k_pe = make(ctx, {T, H, Dr}, kpe);
  const std::vector<int64_t> slot_values = {17, -1, 3};  // token 1 is padding
  dsk::Tensor slots = make_int(ctx, {T}, slot_values);
  dsk::mla_cache_append(ctx, c_kv, k_pe, slots, cache);

  // Expected: the bf16 roundings of the inputs at the slots, zeros elsewhere.
  const std::vector<float> ckv16 = values(ctx, make(ctx, {T, H, Dv}, ckv, kBF16));
  const std::vector<float> kpe16 = values(ctx, make(ctx, {T, H, Dr}, kpe, kBF16));
  std::vector<double> want(static_cast<size_t>(pages * page * H * D), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s = slot_values[static_cast<size_t>(t)];
    if (s < 0) continue;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < D; ++i) {
        want[static_cast<size_t>((s * H + h) * D + i)] =
            i < Dv ? ckv16[static_cast<size_t>((t * H + h) * Dv + i)]
                   : kpe16[static_cast<size_t>((t * H + h) * Dr + i - Dv)];
      }
    }
  }
  const std::vector<float> got = values(ctx, cache);
  check_close(got, want, 0, 0);

  // A slot past num_pages * page_size: an error before anything is written.
  dsk::Tensor bad = make_int(ctx, {T}, std::vector<int64_t>{0, 1, pages * page});
  expect_invalid([&] { dsk::mla_cache_append(ctx, c_kv, k_pe, bad, cache); }, "slot_mapping");
  CHECK(values(ctx, cache) == got);
}

TEST_CASE("dsk.hpp mla_absorb_q, mla_absorb_out, mla_decompress_kv") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t T = 2, H = 2, dn = 4, dv = 3, Dc = 8, Dr = 2, rows = H * (dn + dv);
  const std::vector<float> w = rand_vec(static_cast<size_t>(rows * Dc), 1);
  const std::vector<float> qn = rand_vec(static_cast<size_t>(T * H * dn), 2);
  const std::vector<float> ol = rand_vec(static_cast<size_t>(T * H * Dc), 3);
  const std::vector<float> ckv = rand_vec(static_cast<size_t>(T * Dc), 4);
  const std::vector<float> kpe = rand_vec(static_cast<size_t>(T * Dr), 5);
  dsk::Tensor wkv_b = make(ctx, {rows, Dc}, w);
  auto W = [&](int64_t h, int64_t r, int64_t c) {  // row r of head h's block
    return double(w[static_cast<size_t>((h * (dn + dv) + r) * Dc + c)]);
  };

  // q_latent[t, h, c] = sum_i q_nope[t, h, i] * W_UK[h][i, c]
  dsk::Tensor q_latent = dsk::Tensor::empty(ctx, {T, H, Dc}, kF32);
  dsk::mla_absorb_q(ctx, make(ctx, {T, H, dn}, qn), wkv_b, nullptr, q_latent);
  std::vector<double> want(static_cast<size_t>(T * H * Dc), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t c = 0; c < Dc; ++c)
        for (int64_t i = 0; i < dn; ++i)
          want[static_cast<size_t>((t * H + h) * Dc + c)] +=
              qn[static_cast<size_t>((t * H + h) * dn + i)] * W(h, i, c);
  check_close(values(ctx, q_latent), want, 1e-5, 1e-6);

  // fp8 weights with block scales give what the dequantized weights give.
  dsk::Tensor wq = dsk::Tensor::empty(ctx, {rows, Dc}, dsk::dtype(DSK_DTYPE_FP8_E4M3FN));
  dsk::Tensor ws = dsk::Tensor::empty(ctx, {1, 1}, kF32);
  dsk::quant_fp8_weight(ctx, wkv_b, wq, ws);
  dsk::Tensor wd = dsk::Tensor::empty(ctx, {rows, Dc}, kF32);
  dsk::dequant_fp8_weight(ctx, wq, ws, wd);
  dsk::Tensor q_latent8 = dsk::Tensor::empty(ctx, {T, H, Dc}, kF32);
  dsk::mla_absorb_q(ctx, make(ctx, {T, H, dn}, qn), wq, ws, q_latent8);
  dsk::mla_absorb_q(ctx, make(ctx, {T, H, dn}, qn), wd, nullptr, q_latent);
  std::vector<double> deq;
  for (float x : values(ctx, q_latent)) deq.push_back(x);
  check_close(values(ctx, q_latent8), deq, 1e-5, 1e-6);

  // o[t, h, j] = sum_c o_latent[t, h, c] * W_UV[h][j, c]
  dsk::Tensor o = dsk::Tensor::empty(ctx, {T, H, dv}, kF32);
  dsk::mla_absorb_out(ctx, make(ctx, {T, H, Dc}, ol), wkv_b, nullptr, o);
  want.assign(static_cast<size_t>(T * H * dv), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < dv; ++j)
        for (int64_t c = 0; c < Dc; ++c)
          want[static_cast<size_t>((t * H + h) * dv + j)] +=
              ol[static_cast<size_t>((t * H + h) * Dc + c)] * W(h, dn + j, c);
  check_close(values(ctx, o), want, 1e-5, 1e-6);

  // k[t, h] = [c_kv[t] @ W_UK[h]^T | k_pe[t]], v[t, h] = c_kv[t] @ W_UV[h]^T
  dsk::Tensor k = dsk::Tensor::empty(ctx, {T, H, dn + Dr}, kF32);
  dsk::Tensor v = dsk::Tensor::empty(ctx, {T, H, dv}, kF32);
  dsk::mla_decompress_kv(ctx, make(ctx, {T, Dc}, ckv), make(ctx, {T, Dr}, kpe), wkv_b, nullptr, k,
                         v);
  std::vector<double> want_k(static_cast<size_t>(T * H * (dn + Dr)), 0.0);
  std::vector<double> want_v(static_cast<size_t>(T * H * dv), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t r = 0; r < dn + dv; ++r) {
        double acc = 0;
        for (int64_t c = 0; c < Dc; ++c) acc += ckv[static_cast<size_t>(t * Dc + c)] * W(h, r, c);
        if (r < dn)
          want_k[static_cast<size_t>((t * H + h) * (dn + Dr) + r)] = acc;
        else
          want_v[static_cast<size_t>((t * H + h) * dv + r - dn)] = acc;
      }
      for (int64_t i = 0; i < Dr; ++i)
        want_k[static_cast<size_t>((t * H + h) * (dn + Dr) + dn + i)] =
            kpe[static_cast<size_t>(t * Dr + i)];
    }
  }
  check_close(values(ctx, k), want_k, 1e-5, 1e-6);
  check_close(values(ctx, v), want_v, 1e-5, 1e-6);
  // Without k_pe, k holds only the dn decompressed values.
  dsk::Tensor k_nope = dsk::Tensor::empty(ctx, {T, H, dn}, kF32);
  dsk::mla_decompress_kv(ctx, make(ctx, {T, Dc}, ckv), nullptr, wkv_b, nullptr, k_nope, v);
  std::vector<double> want_kn;
  for (int64_t i = 0; i < T * H; ++i)
    for (int64_t d = 0; d < dn; ++d)
      want_kn.push_back(want_k[static_cast<size_t>(i * (dn + Dr) + d)]);
  check_close(values(ctx, k_nope), want_kn, 1e-5, 1e-6);

  // Errors: a scale for float weights; integer outputs.
  expect_invalid(
      [&] {
        dsk::mla_absorb_q(ctx, make(ctx, {T, H, dn}, qn), wkv_b, ws, q_latent);
      },
      "wkv_b_scale");
  dsk::Tensor o_int = dsk::Tensor::empty(ctx, {T, H, dv}, kI32);
  expect_invalid(
      [&] {
        dsk::mla_absorb_out(ctx, make(ctx, {T, H, Dc}, ol), wkv_b, nullptr, o_int);
      },
      "o");
  dsk::Tensor v_int = dsk::Tensor::empty(ctx, {T, H, dv}, kI32);
  expect_invalid(
      [&] {
        dsk::mla_decompress_kv(ctx, make(ctx, {T, Dc}, ckv), nullptr, wkv_b, nullptr, k_nope,
                               v_int);
      },
      "v");
}

TEST_CASE("dsk.hpp mla_prefill against a naive varlen attention") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t H = 2, Hk = 1, Dqk = 8, Dv = 8, Tq = 5, Tk = 6;
  const std::vector<int32_t> cq = {0, 2, 5}, ck = {0, 3, 6};
  dsk::Tensor q = make(ctx, {Tq, H, Dqk}, rand_vec(static_cast<size_t>(Tq * H * Dqk), 1), kBF16);
  dsk::Tensor k = make(ctx, {Tk, Hk, Dqk}, rand_vec(static_cast<size_t>(Tk * Hk * Dqk), 2), kBF16);
  dsk::Tensor v = make(ctx, {Tk, Hk, Dv}, rand_vec(static_cast<size_t>(Tk * Hk * Dv), 3), kBF16);
  const std::vector<float> qv = values(ctx, q), kv = values(ctx, k), vv = values(ctx, v);
  dsk::Tensor cu_q = make_int(ctx, {3}, cq);
  dsk::Tensor cu_k = make_int(ctx, {3}, ck);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {Tq, H, Dv}, kBF16);
  dsk::Tensor lse = dsk::Tensor::empty(ctx, {H, Tq}, kF32);
  const double scale = 0.4;

  for (const bool causal : {false, true}) {
    CAPTURE(causal);
    std::vector<double> want(static_cast<size_t>(Tq * H * Dv), 0.0);
    std::vector<double> want_lse(static_cast<size_t>(H * Tq), 0.0);
    for (size_t b = 0; b + 1 < cq.size(); ++b) {
      const int64_t nq = cq[b + 1] - cq[b], nk = ck[b + 1] - ck[b];
      for (int64_t j = 0; j < nq; ++j) {
        const int64_t len = causal ? nk - nq + j + 1 : nk;
        const int64_t row = cq[b] + j;
        for (int64_t h = 0; h < H; ++h) {
          std::vector<double> s(static_cast<size_t>(len));
          double mx = -INFINITY, sum = 0;
          for (int64_t t = 0; t < len; ++t) {
            double dot = 0;
            for (int64_t d = 0; d < Dqk; ++d)
              dot += double(qv[static_cast<size_t>((row * H + h) * Dqk + d)]) *
                     kv[static_cast<size_t>(((ck[b] + t) * Hk + h / (H / Hk)) * Dqk + d)];
            s[static_cast<size_t>(t)] = dot * scale;
            mx = std::max(mx, s[static_cast<size_t>(t)]);
          }
          for (double& x : s) sum += (x = std::exp(x - mx));
          want_lse[static_cast<size_t>(h * Tq + row)] = mx + std::log(sum);
          for (int64_t t = 0; t < len; ++t)
            for (int64_t d = 0; d < Dv; ++d)
              want[static_cast<size_t>((row * H + h) * Dv + d)] +=
                  s[static_cast<size_t>(t)] / sum *
                  vv[static_cast<size_t>(((ck[b] + t) * Hk + h / (H / Hk)) * Dv + d)];
        }
      }
    }
    dsk::mla_prefill(ctx, q, k, v, cu_q, cu_k, static_cast<float>(scale), causal, out, lse);
    check_close(values(ctx, out), want, 1.0 / 128, 1e-3);
    check_close(values(ctx, lse), want_lse, 1e-5, 1e-5);
  }
  // cu_seqlens_k nullptr means cu_seqlens_q: q against its own first Tq keys.
  dsk::Tensor k5 = k.view({Tq, Hk, Dqk});
  dsk::Tensor v5 = v.view({Tq, Hk, Dv});
  dsk::mla_prefill(ctx, q, k5, v5, cu_q, nullptr, 0.4f, true, out);
  std::vector<float> first = values(ctx, out);
  dsk::mla_prefill(ctx, q, k5, v5, cu_q, cu_q, 0.4f, true, out);
  CHECK(values(ctx, out) == first);

  dsk::Tensor bad =
      make_int(ctx, {3}, std::vector<int32_t>{0, 4, 2});  // decreasing, not ending at Tq
  expect_invalid([&] { dsk::mla_prefill(ctx, q, k, v, bad, cu_k, 0.4f, true, out); },
                 "cu_seqlens_q");
}
