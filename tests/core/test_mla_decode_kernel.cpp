// The CPU backend's absorbed MLA decode entry (lib/cpu/mla_decode.cpp) called directly, against a
// naive double-precision formula: every kernel set (AVX-512 where the CPU has it, portable),
// paged caches with permuted pages and NaN in every unused position, causal and not, s_q > 1,
// grouped heads, odd widths, split-KV vs not, thread-count invariance, strided tensors and the
// checks of block_table and seqlens.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/mla_decode_kernels.h"
#include "cpu/ops.h"
#include "dsk/dsk.h"

namespace {

using dsk::cpu::MlaIsa;

// A host tensor view over `data` with explicit strides (elements).
struct View {
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
  View(void* data, DLDataType dt, std::vector<int64_t> s, std::vector<int64_t> st = {})
      : shape(std::move(s)), strides(std::move(st)) {
    if (strides.empty()) {
      strides.assign(shape.size(), 1);
      for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
    }
    dl.data = data;
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dt;
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
};

constexpr DLDataType kBf16{kDLBfloat, 16, 1};
constexpr DLDataType kF16{kDLFloat, 16, 1};
constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kI32{kDLInt, 32, 1};

struct Case {
  int64_t batch = 2, s_q = 1, h_q = 16, h_kv = 1, d = 576, dv = 512, page = 64;
  std::vector<int32_t> seqlens;
  bool causal = false;
  bool f16 = false;
  int64_t q_pad = 0;    // extra elements between heads of q (strided q)
  int64_t out_pad = 0;  // extra elements between heads of out
};

float to_f32(bool f16, uint16_t v) { return f16 ? dsk::f16_to_f32(v) : dsk::bf16_to_f32(v); }
uint16_t from_f32(bool f16, float v) { return f16 ? dsk::f32_to_f16(v) : dsk::f32_to_bf16(v); }

struct Problem {
  Case c;
  int64_t max_pages = 0, pages = 0;
  std::vector<uint16_t> q, kv;
  std::vector<int32_t> bt;
  // Reference: out [B, S, Hq, Dv], lse [B, Hq, S].
  std::vector<double> ref_out, ref_lse;

  explicit Problem(const Case& cs, uint32_t seed) : c(cs) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    int32_t longest = 0;
    for (int32_t n : c.seqlens) longest = std::max(longest, n);
    max_pages = std::max<int64_t>(1, (longest + c.page - 1) / c.page + 1);
    pages = c.batch * max_pages + 3;
    const int64_t q_head = c.d + c.q_pad;
    q.resize(static_cast<size_t>(c.batch * c.s_q * c.h_q * q_head));
    for (auto& v : q) v = from_f32(c.f16, u(rng));
    // Every position starts as NaN; the used ones get values below.
    kv.assign(static_cast<size_t>(pages * c.page * c.h_kv * c.d), c.f16 ? 0x7E00 : 0x7FC0);
    std::vector<int32_t> perm(static_cast<size_t>(pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    // Unused block_table entries hold garbage that must never be read.
    bt.assign(static_cast<size_t>(c.batch * max_pages), -12345);
    for (int64_t b = 0; b < c.batch; ++b) {
      const int64_t n = c.seqlens[static_cast<size_t>(b)];
      for (int64_t p = 0; p * c.page < n; ++p) {
        bt[static_cast<size_t>(b * max_pages + p)] = perm[static_cast<size_t>(b * max_pages + p)];
      }
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t g = 0; g < c.h_kv; ++g) {
          uint16_t* row = key(b, t, g);
          for (int64_t i = 0; i < c.d; ++i) row[i] = from_f32(c.f16, u(rng));
        }
      }
    }
  }

  uint16_t* key(int64_t b, int64_t t, int64_t g) {
    const int64_t page = bt[static_cast<size_t>(b * max_pages + t / c.page)];
    return kv.data() + ((page * c.page + t % c.page) * c.h_kv + g) * c.d;
  }
  const uint16_t* qrow(int64_t b, int64_t s, int64_t h) const {
    return q.data() + ((b * c.s_q + s) * c.h_q + h) * (c.d + c.q_pad);
  }

  void reference(float scale) {
    ref_out.assign(static_cast<size_t>(c.batch * c.s_q * c.h_q * c.dv), 0.0);
    ref_lse.assign(static_cast<size_t>(c.batch * c.h_q * c.s_q),
                   -std::numeric_limits<double>::infinity());
    const int64_t group = c.h_q / c.h_kv;
    for (int64_t b = 0; b < c.batch; ++b) {
      const int64_t n = c.seqlens[static_cast<size_t>(b)];
      for (int64_t s = 0; s < c.s_q; ++s) {
        const int64_t lim = c.causal ? std::clamp<int64_t>(n - c.s_q + s + 1, 0, n) : n;
        if (lim == 0) continue;
        for (int64_t h = 0; h < c.h_q; ++h) {
          const int64_t g = h / group;
          std::vector<double> sc(static_cast<size_t>(lim));
          double mx = -std::numeric_limits<double>::infinity();
          for (int64_t t = 0; t < lim; ++t) {
            const uint16_t* k = key(b, t, g);
            const uint16_t* qq = qrow(b, s, h);
            double dot = 0.0;
            for (int64_t i = 0; i < c.d; ++i)
              dot += double(to_f32(c.f16, qq[i])) * to_f32(c.f16, k[i]);
            sc[static_cast<size_t>(t)] = dot * scale;
            mx = std::max(mx, sc[static_cast<size_t>(t)]);
          }
          double sum = 0.0;
          std::vector<double> acc(static_cast<size_t>(c.dv), 0.0);
          for (int64_t t = 0; t < lim; ++t) {
            const double p = std::exp(sc[static_cast<size_t>(t)] - mx);
            sum += p;
            const uint16_t* k = key(b, t, g);
            for (int64_t i = 0; i < c.dv; ++i)
              acc[static_cast<size_t>(i)] += p * to_f32(c.f16, k[i]);
          }
          double* o = ref_out.data() + ((b * c.s_q + s) * c.h_q + h) * c.dv;
          for (int64_t i = 0; i < c.dv; ++i) o[i] = acc[static_cast<size_t>(i)] / sum;
          ref_lse[static_cast<size_t>((b * c.h_q + h) * c.s_q + s)] = mx + std::log(sum);
        }
      }
    }
  }

  struct Result {
    dsk_status status;
    bool has_lse = true;
    std::vector<uint16_t> out;
    std::vector<float> lse;
  };

  // Runs the entry; num_splits 0 takes the plan's schedule.
  Result run(float scale, int32_t num_splits = 0, bool with_lse = true, bool workspace = false) {
    const int64_t out_head = c.dv + c.out_pad;
    Result r;
    r.has_lse = with_lse;
    r.out.assign(static_cast<size_t>(c.batch * c.s_q * c.h_q * out_head), 0xBEEF);
    r.lse.assign(static_cast<size_t>(c.batch * c.h_q * c.s_q), 12345.0f);
    const DLDataType dt = c.f16 ? kF16 : kBf16;
    View qv(q.data(), dt, {c.batch, c.s_q, c.h_q, c.d},
            {c.s_q * c.h_q * (c.d + c.q_pad), c.h_q * (c.d + c.q_pad), c.d + c.q_pad, 1});
    View kvv(kv.data(), dt, {pages, c.page, c.h_kv, c.d});
    View btv(bt.data(), kI32, {c.batch, max_pages});
    View slv(c.seqlens.data(), kI32, {c.batch});
    View ov(r.out.data(), dt, {c.batch, c.s_q, c.h_q, c.dv},
            {c.s_q * c.h_q * out_head, c.h_q * out_head, out_head, 1});
    View lv(r.lse.data(), kF32, {c.batch, c.h_q, c.s_q});
    dsk_mla_decode_shape shape{c.batch, c.s_q,     c.h_q,
                               c.h_kv,  c.d,       c.dv,
                               c.page,  max_pages, c.f16 ? DSK_DTYPE_F16 : DSK_DTYPE_BF16,
                               0};
    dsk_mla_decode_work work{};
    REQUIRE(dsk::cpu::mla_decode_plan(0, &shape, &work) == DSK_OK);
    CHECK(work.num_splits >= 1);
    if (num_splits > 0) work.num_splits = num_splits;
    dsk_exec ex{};
    std::vector<char> scratch;
    if (workspace) {
      // The plan's size, handed over unaligned: the entry aligns what it uses itself.
      scratch.resize(work.workspace_bytes + 1);
      ex.workspace = scratch.data() + 1;
      ex.workspace_bytes = work.workspace_bytes;
    }
    r.status = dsk::cpu::mla_decode(&ex, &qv.dl, &kvv.dl, &btv.dl, &slv.dl, &ov.dl,
                                    with_lse ? &lv.dl : nullptr, scale, c.causal ? 1 : 0, &work);
    return r;
  }

  void check(const Result& r) const {
    INFO(std::string(dsk::cpu::last_error()));
    REQUIRE(r.status == DSK_OK);
    const int64_t out_head = c.dv + c.out_pad;
    double worst = 0.0;
    for (int64_t b = 0; b < c.batch; ++b) {
      for (int64_t s = 0; s < c.s_q; ++s) {
        for (int64_t h = 0; h < c.h_q; ++h) {
          const double* e = ref_out.data() + ((b * c.s_q + s) * c.h_q + h) * c.dv;
          const uint16_t* o = r.out.data() + ((b * c.s_q + s) * c.h_q + h) * out_head;
          for (int64_t i = 0; i < c.dv; ++i) {
            const double got = to_f32(c.f16, o[i]);
            // One rounding to bf16/f16 plus f32 accumulation error.
            const double tol = (c.f16 ? 1.5e-3 : 8e-3) * std::abs(e[i]) + 2e-4;
            const double err = std::abs(got - e[i]);
            worst = std::max(worst, err - tol);
            if (!(err <= tol)) {
              FAIL_CHECK("out[" << b << "," << s << "," << h << "," << i << "] = " << got
                                << ", expected " << e[i]);
              return;
            }
          }
          for (int64_t i = c.dv; i < out_head; ++i) CHECK(o[i] == 0xBEEF);  // padding untouched
          const float got_lse = r.lse[static_cast<size_t>((b * c.h_q + h) * c.s_q + s)];
          const double want_lse = ref_lse[static_cast<size_t>((b * c.h_q + h) * c.s_q + s)];
          if (!r.has_lse) {
            CHECK(got_lse == 12345.0f);  // untouched
          } else if (std::isinf(want_lse)) {
            CHECK(std::isinf(got_lse));
            CHECK(got_lse < 0);
          } else {
            CHECK(std::abs(got_lse - want_lse) <= 2e-5 * std::abs(want_lse) + 2e-5);
          }
        }
      }
    }
  }
};

// Runs `f` once per kernel set available here.
template <typename F>
void for_each_isa(F&& f) {
  for (MlaIsa isa : {MlaIsa::kGeneric, MlaIsa::kAvx512}) {
    if (isa == MlaIsa::kAvx512 && dsk::cpu::mla_kernels_avx512() == nullptr) continue;
    dsk::cpu::mla_decode_force_isa(isa);
    const std::string kernels = dsk::cpu::mla_kernels().name;
    CAPTURE(kernels);
    f();
  }
  dsk::cpu::mla_decode_force_isa(MlaIsa::kAuto);
}

struct ThreadsEnv {
  std::string old;
  bool had = false;
  explicit ThreadsEnv(const char* value) {
    const char* o = std::getenv("DSK_NUM_THREADS");
    had = o != nullptr;
    if (had) old = o;
    setenv("DSK_NUM_THREADS", value, 1);
  }
  ~ThreadsEnv() {
    if (had) {
      setenv("DSK_NUM_THREADS", old.c_str(), 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
  }
};

}  // namespace

TEST_CASE("mla decode kernel: DeepSeek widths, paged, NaN tails, causal and not") {
  for (int64_t s_q : {1, 2, 3}) {
    for (bool causal : {false, true}) {
      Case c;
      c.batch = 6;
      c.s_q = s_q;
      c.h_q = 16;
      c.causal = causal;
      c.seqlens = {0, 1, 63, 64, 65, 300};
      Problem p(c, 11u + static_cast<uint32_t>(s_q));
      const float scale = 1.0f / std::sqrt(576.0f);
      p.reference(scale);
      CAPTURE(s_q);
      CAPTURE(causal);
      for_each_isa([&] { p.check(p.run(scale)); });
    }
  }
}

TEST_CASE("mla decode kernel: 128 heads, grouped heads, long request, f16") {
  Case c;
  c.batch = 2;
  c.s_q = 2;
  c.h_q = 128;
  c.causal = true;
  c.seqlens = {1000, 77};
  Problem p(c, 5u);
  p.reference(0.1352338f);
  for_each_isa([&] { p.check(p.run(0.1352338f)); });

  Case g;
  g.batch = 3;
  g.s_q = 1;
  g.h_q = 8;
  g.h_kv = 2;
  g.f16 = true;
  g.page = 16;
  g.seqlens = {40, 0, 129};
  Problem pg(g, 6u);
  pg.reference(0.07f);
  for_each_isa([&] { pg.check(pg.run(0.07f)); });
}

TEST_CASE("mla decode kernel: odd widths, one head, strided q and out, many query rows") {
  Case c;
  c.batch = 3;
  c.s_q = 5;
  c.h_q = 3;
  c.h_kv = 3;
  c.d = 37;
  c.dv = 21;
  c.page = 16;
  c.causal = true;
  c.seqlens = {5, 3, 100};
  c.q_pad = 3;
  c.out_pad = 2;
  Problem p(c, 9u);
  p.reference(0.3f);
  for_each_isa([&] { p.check(p.run(0.3f)); });

  // More query rows than one block holds (s_q * Hq / Hkv > 128): chunked prefill over a cache.
  Case big;
  big.batch = 1;
  big.s_q = 70;
  big.h_q = 4;
  big.d = 64;
  big.dv = 48;
  big.page = 32;
  big.causal = true;
  big.seqlens = {200};
  Problem pb(big, 10u);
  pb.reference(0.125f);
  for_each_isa([&] { pb.check(pb.run(0.125f)); });

  Case one;
  one.batch = 1;
  one.h_q = 1;
  one.d = 16;
  one.dv = 1;
  one.page = 16;
  one.seqlens = {33};
  Problem po(one, 12u);
  po.reference(1.0f);
  for_each_isa([&] { po.check(po.run(1.0f)); });
}

TEST_CASE(
    "mla decode kernel: split-KV agrees with one chunk, identical bits for any thread count") {
  Case c;
  c.batch = 2;
  c.s_q = 2;
  c.h_q = 32;
  c.causal = true;
  c.seqlens = {2000, 450};
  Problem p(c, 21u);
  const float scale = 0.05f;
  p.reference(scale);
  for_each_isa([&] {
    Problem::Result base;
    {
      ThreadsEnv env("1");
      base = p.run(scale);
      p.check(base);
      p.check(p.run(scale, 1));                                // no split
      p.check(p.run(scale, 7));                                // another split count
      p.check(p.run(scale, 0, false));                         // no lse
      const Problem::Result ws = p.run(scale, 0, true, true);  // the caller's workspace
      CHECK(ws.out == base.out);
    }
    for (const char* threads : {"2", "3", "8"}) {
      ThreadsEnv env(threads);
      const Problem::Result again = p.run(scale);
      CHECK(again.out == base.out);
      CHECK(std::memcmp(again.lse.data(), base.lse.data(), 4 * base.lse.size()) == 0);
    }
  });
}

TEST_CASE("mla decode kernel: bad block_table entries and seqlens are errors before any write") {
  Case c;
  c.batch = 2;
  c.h_q = 16;
  c.page = 16;
  c.seqlens = {20, 40};
  Problem p(c, 31u);
  const float scale = 0.1f;
  {
    Problem bad = p;
    bad.bt[static_cast<size_t>(1 * bad.max_pages + 2)] = static_cast<int32_t>(bad.pages);
    const Problem::Result r = bad.run(scale);
    CHECK(r.status == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk::cpu::last_error()).find("block_table[1, 2]") != std::string::npos);
    CHECK(std::all_of(r.out.begin(), r.out.end(), [](uint16_t v) { return v == 0xBEEF; }));
    CHECK(r.lse[0] == 12345.0f);
  }
  {
    Problem bad = p;
    bad.bt[0] = -1;
    CHECK(bad.run(scale).status == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk::cpu::last_error()).find("block_table[0, 0] = -1") != std::string::npos);
  }
  {
    Problem bad = p;
    bad.c.seqlens[1] = static_cast<int32_t>(bad.max_pages * bad.c.page + 1);
    const Problem::Result r = bad.run(scale);
    CHECK(r.status == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk::cpu::last_error()).find("cache_seqlens[1]") != std::string::npos);
    CHECK(std::all_of(r.out.begin(), r.out.end(), [](uint16_t v) { return v == 0xBEEF; }));
  }
  {
    Problem bad = p;
    bad.c.seqlens[0] = -1;
    CHECK(bad.run(scale).status == DSK_ERR_INVALID_ARGUMENT);
  }
  // Entries past a request's last page are never read (they hold -12345 here).
  p.reference(scale);
  p.check(p.run(scale));
}
