// Absorbed MLA decode (dsk_mla_decode and plan/run, dsk_mla.h): CUDA against the CPU reference on
// the same inputs, with FlashMLA's tolerances (out: abs 8e-4 or rel 2/128; lse: abs 1e-6 or rel
// 8/65536).
//
// The fixtures follow FlashMLA's tests: block tables are random permutations of the pages, unused
// block_table entries hold 2147480000, and every cache position a request does not own (the tail
// of its last page, unused pages, padding between strided rows) holds NaN, so a kernel that reads
// what it must not produces NaN (or faults) instead of passing by luck.
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
using dsk_test::Env;
using dsk_test::Layout;
using dsk_test::read_f32;
using dsk_test::row_major;
using dsk_test::Tensor;

constexpr int64_t kD = 576;
constexpr int64_t kDv = 512;
constexpr int32_t kUnusedEntry = 2147480000;
constexpr float kV3Scale = 0.1352338f;

struct Problem {
  int64_t s_q = 1;
  int64_t h_q = 16;
  int64_t h_kv = 1;
  int64_t page = 64;
  std::vector<int32_t> seqlens{1};  // batch = seqlens.size()
  int32_t causal = 0;
  int32_t dtype = DSK_DTYPE_BF16;
  float scale = kV3Scale;
  bool with_lse = true;
  bool strided = false;       // padded strides, offsets, column-major block table and lse
  int64_t spare_pages = 3;    // pages no request owns (NaN)
  int64_t extra_columns = 1;  // block_table columns past the longest request (2147480000)
  uint64_t seed = 1;

  int64_t batch() const { return static_cast<int64_t>(seqlens.size()); }
};

std::string describe(const Problem& p) {
  std::string s = "B=" + std::to_string(p.batch()) + " s_q=" + std::to_string(p.s_q) +
                  " h_q=" + std::to_string(p.h_q) + " h_kv=" + std::to_string(p.h_kv) +
                  " page=" + std::to_string(p.page) + " causal=" + std::to_string(p.causal) +
                  " dtype=" + (p.dtype == DSK_DTYPE_BF16 ? "bf16" : "f16") +
                  " scale=" + std::to_string(p.scale) + (p.with_lse ? "" : " no-lse") +
                  (p.strided ? " strided" : "") + " seqlens={";
  for (size_t i = 0; i < p.seqlens.size(); ++i) {
    s += (i ? "," : "") + std::to_string(p.seqlens[i]);
  }
  return s + "}";
}

int64_t element_at(const Layout& l, const std::vector<int64_t>& index) {
  int64_t e = l.offset;
  for (size_t d = 0; d < index.size(); ++d) e += index[d] * l.strides[d];
  return e;
}

// The tensors of one side: 1-D bases holding every byte (padding included) and the views the op
// gets.
struct Side {
  Tensor q_base, kv_base, bt_base, sl_base, out_base, lse_base;
  Tensor q, kv, bt, sl, out, lse;
};

struct Fixture {
  Problem p;
  int64_t max_pages = 0;
  int64_t num_pages = 0;
  Layout lq, lkv, lbt, lsl, lout, llse;
  std::vector<int32_t> table;  // [B * max_pages], logical
  Side cpu, gpu;
};

uint16_t nan_bits(int32_t dtype) { return dtype == DSK_DTYPE_BF16 ? 0x7FC0u : 0x7E00u; }

void fill_u16(const Tensor& t, uint16_t bits) {
  auto* p = reinterpret_cast<uint16_t*>(t.host_bytes());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = bits;
}

void fill_i32(const Tensor& t, int32_t v) {
  auto* p = reinterpret_cast<int32_t*>(t.host_bytes());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = v;
}

// Copies the CPU base's bytes into the CUDA base.
void upload(const Env& env, const Tensor& cpu_base, const Tensor& gpu_base) {
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), cpu_base.dl(), gpu_base.dl()));
}

// Writes uniform values in [-amp, amp) (converted to the view's dtype by dsk_copy) into `view`.
void write_random(const Env& env, const Tensor& view, const std::vector<int64_t>& shape, float amp,
                  std::mt19937_64& rng) {
  Tensor f = create(env.cpu.get(), shape, DSK_DTYPE_F32);
  std::uniform_real_distribution<float> u(-amp, amp);
  auto* p = reinterpret_cast<float*>(f.host_bytes());
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = u(rng);
  DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), f.dl(), view.dl()));
}

void write_seqlens(const Env& env, Fixture& f, const std::vector<int32_t>& seqlens) {
  auto* sl = reinterpret_cast<int32_t*>(f.cpu.sl_base.host_bytes());
  for (int64_t b = 0; b < f.p.batch(); ++b) {
    sl[element_at(f.lsl, {b})] = seqlens[static_cast<size_t>(b)];
  }
  upload(env, f.cpu.sl_base, f.gpu.sl_base);
}

void write_table_entry(const Env& env, Fixture& f, int64_t b, int64_t col, int32_t value) {
  auto* bt = reinterpret_cast<int32_t*>(f.cpu.bt_base.host_bytes());
  bt[element_at(f.lbt, {b, col})] = value;
  upload(env, f.cpu.bt_base, f.gpu.bt_base);
}

Fixture make_fixture(const Env& env, const Problem& p) {
  Fixture f;
  f.p = p;
  const int64_t batch = p.batch();
  std::mt19937_64 rng(p.seed * 7919 + 17);
  std::vector<int64_t> need(static_cast<size_t>(batch));
  int64_t total = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = p.seqlens[static_cast<size_t>(b)];
    need[static_cast<size_t>(b)] = (n + p.page - 1) / p.page;
    f.max_pages = std::max(f.max_pages, need[static_cast<size_t>(b)]);
    total += need[static_cast<size_t>(b)];
  }
  f.max_pages += p.extra_columns;
  if (f.max_pages < 1) f.max_pages = 1;
  f.num_pages = total + p.spare_pages;
  if (f.num_pages < 1) f.num_pages = 1;

  // Block table: a random permutation of the pages; owner[page] = (request, column) or -1.
  std::vector<int32_t> perm(static_cast<size_t>(f.num_pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  f.table.assign(static_cast<size_t>(batch * f.max_pages), kUnusedEntry);
  std::vector<int64_t> owner(static_cast<size_t>(f.num_pages), -1);
  size_t next = 0;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < need[static_cast<size_t>(b)]; ++c) {
      const int32_t page = perm[next++];
      f.table[static_cast<size_t>(b * f.max_pages + c)] = page;
      owner[static_cast<size_t>(page)] = b * f.max_pages + c;
    }
  }

  const int64_t s = p.s_q;
  const int64_t hq = p.h_q;
  const int64_t hk = p.h_kv;
  if (!p.strided) {
    f.lq = row_major({batch, s, hq, kD});
    f.lkv = row_major({f.num_pages, p.page, hk, kD});
    f.lbt = row_major({batch, f.max_pages});
    f.lsl = row_major({batch});
    f.lout = row_major({batch, s, hq, kDv});
    f.llse = row_major({batch, hq, s});
  } else {
    // Padded rows (strides stay multiples of 16 bytes for q and kv_cache, 4 bytes for out).
    f.lq = Layout{{batch, s, hq, kD}, {s * hq * 640 + 8, hq * 640, 640, 1}, 8};
    f.lkv = Layout{{f.num_pages, p.page, hk, kD}, {p.page * hk * 584 + 64, hk * 584, 584, 1}, 0};
    f.lbt = Layout{{batch, f.max_pages}, {1, batch}, 0};
    f.lsl = Layout{{batch}, {3}, 1};
    f.lout = Layout{{batch, s, hq, kDv}, {s * hq * 514 + 2, hq * 514, 514, 1}, 2};
    f.llse = Layout{{batch, hq, s}, {1, batch, batch * hq}, 0};
  }

  Side* sides[2] = {&f.cpu, &f.gpu};
  for (int i = 0; i < 2; ++i) {
    dsk_context* ctx = i == 0 ? env.cpu.get() : env.gpu.get();
    Side& sd = *sides[i];
    sd.q_base = create(ctx, {f.lq.span()}, p.dtype);
    sd.kv_base = create(ctx, {f.lkv.span()}, p.dtype);
    sd.bt_base = create(ctx, {f.lbt.span()}, DSK_DTYPE_INT32);
    sd.sl_base = create(ctx, {f.lsl.span()}, DSK_DTYPE_INT32);
    sd.out_base = create(ctx, {f.lout.span()}, p.dtype);
    sd.lse_base = create(ctx, {f.llse.span()}, DSK_DTYPE_F32);
    sd.q = dsk_test::view(sd.q_base, f.lq);
    sd.kv = dsk_test::view(sd.kv_base, f.lkv);
    sd.bt = dsk_test::view(sd.bt_base, f.lbt);
    sd.sl = dsk_test::view(sd.sl_base, f.lsl);
    sd.out = dsk_test::view(sd.out_base, f.lout);
    sd.lse = dsk_test::view(sd.lse_base, f.llse);
  }

  // CPU side: NaN everywhere first (padding included), then the values, then NaN again in every
  // cache position no request owns.
  fill_u16(f.cpu.q_base, nan_bits(p.dtype));
  fill_u16(f.cpu.kv_base, nan_bits(p.dtype));
  write_random(env, f.cpu.q, {batch, s, hq, kD}, 1.0f, rng);
  write_random(env, f.cpu.kv, {f.num_pages, p.page, hk, kD}, 0.25f, rng);
  auto* kv = reinterpret_cast<uint16_t*>(f.cpu.kv_base.host_bytes());
  for (int64_t pg = 0; pg < f.num_pages; ++pg) {
    const int64_t o = owner[static_cast<size_t>(pg)];
    for (int64_t t = 0; t < p.page; ++t) {
      bool valid = false;
      if (o >= 0) {
        const int64_t b = o / f.max_pages;
        const int64_t c = o % f.max_pages;
        valid = c * p.page + t < p.seqlens[static_cast<size_t>(b)];
      }
      if (valid) continue;
      for (int64_t h = 0; h < hk; ++h) {
        for (int64_t e = 0; e < kD; ++e) kv[element_at(f.lkv, {pg, t, h, e})] = nan_bits(p.dtype);
      }
    }
  }
  fill_i32(f.cpu.bt_base, -77);
  fill_i32(f.cpu.sl_base, -77);
  auto* bt = reinterpret_cast<int32_t*>(f.cpu.bt_base.host_bytes());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < f.max_pages; ++c) {
      bt[element_at(f.lbt, {b, c})] = f.table[static_cast<size_t>(b * f.max_pages + c)];
    }
  }
  upload(env, f.cpu.q_base, f.gpu.q_base);
  upload(env, f.cpu.kv_base, f.gpu.kv_base);
  upload(env, f.cpu.bt_base, f.gpu.bt_base);
  write_seqlens(env, f, p.seqlens);

  // Outputs: different sentinels on the two sides, so stale bytes cannot match.
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), f.cpu.out_base.dl(), 7.0));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), f.gpu.out_base.dl(), -3.0));
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), f.cpu.lse_base.dl(), 7.0));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), f.gpu.lse_base.dl(), -3.0));
  return f;
}

dsk_status decode(dsk_context* ctx, const Fixture& f, const Side& s) {
  return dsk_mla_decode(ctx, s.q.dl(), s.kv.dl(), s.bt.dl(), s.sl.dl(), f.p.scale, f.p.causal,
                        s.out.dl(), f.p.with_lse ? s.lse.dl() : nullptr);
}

class Plan {
 public:
  Plan(dsk_context* ctx, const Side& s) {
    DSK_REQUIRE_OK(dsk_mla_decode_plan_create(ctx, s.q.dl(), s.kv.dl(), s.bt.dl(), s.sl.dl(),
                                              s.out.dl(), &p_));
  }
  ~Plan() { dsk_mla_decode_plan_release(p_); }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  const dsk_mla_decode_plan* get() const { return p_; }
  int32_t splits() const {
    int32_t n = 0;
    DSK_REQUIRE_OK(dsk_mla_decode_plan_num_splits(p_, &n));
    return n;
  }
  size_t workspace() const {
    size_t n = 0;
    DSK_REQUIRE_OK(dsk_mla_decode_plan_workspace_size(p_, &n));
    return n;
  }

 private:
  dsk_mla_decode_plan* p_ = nullptr;
};

dsk_status run(dsk_context* ctx, const Plan& plan, const Fixture& f, const Side& s) {
  return dsk_mla_decode_run(ctx, plan.get(), s.q.dl(), s.kv.dl(), s.bt.dl(), s.sl.dl(), f.p.scale,
                            f.p.causal, s.out.dl(), f.p.with_lse ? s.lse.dl() : nullptr);
}

// CUDA against CPU with FlashMLA's tolerances; names the first few mismatches.
void check_close(const Env& env, const Fixture& f) {
  const std::vector<float> want = read_f32(env, f.cpu.out.dl());
  const std::vector<float> got = read_f32(env, f.gpu.out.dl());
  REQUIRE(got.size() == want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double w = want[i];
    const double g = got[i];
    if (!std::isfinite(w)) FAIL("the CPU reference gave a non-finite out at " << i);
    const double diff = std::fabs(g - w);
    const bool ok = std::isfinite(g) && (diff <= 8e-4 || diff <= (2.0 / 128) * std::fabs(w));
    if (!ok && bad++ < 5) {
      const int64_t c = static_cast<int64_t>(i) % kDv;
      const int64_t h = static_cast<int64_t>(i) / kDv % f.p.h_q;
      const int64_t j = static_cast<int64_t>(i) / kDv / f.p.h_q % f.p.s_q;
      const int64_t b = static_cast<int64_t>(i) / kDv / f.p.h_q / f.p.s_q;
      FAIL_CHECK("out[" << b << ", " << j << ", " << h << ", " << c << "]: cuda " << g << ", cpu "
                        << w);
    }
  }
  CHECK_MESSAGE(bad == 0, bad << " out elements differ");
  if (!f.p.with_lse) return;
  const std::vector<float> lw = read_f32(env, f.cpu.lse.dl());
  const std::vector<float> lg = read_f32(env, f.gpu.lse.dl());
  REQUIRE(lg.size() == lw.size());
  bad = 0;
  for (size_t i = 0; i < lg.size(); ++i) {
    const double w = lw[i];
    const double g = lg[i];
    bool ok;
    if (std::isinf(w) && w < 0) {
      ok = std::isinf(g) && g < 0;
    } else {
      if (!std::isfinite(w)) FAIL("the CPU reference gave a bad lse at " << i);
      const double diff = std::fabs(g - w);
      ok = std::isfinite(g) && (diff <= 1e-6 || diff <= (8.0 / 65536) * std::fabs(w));
    }
    if (!ok && bad++ < 5) {
      const int64_t j = static_cast<int64_t>(i) % f.p.s_q;
      const int64_t h = static_cast<int64_t>(i) / f.p.s_q % f.p.h_q;
      const int64_t b = static_cast<int64_t>(i) / f.p.s_q / f.p.h_q;
      FAIL_CHECK("lse[" << b << ", " << h << ", " << j << "]: cuda " << g << ", cpu " << w);
    }
  }
  CHECK_MESSAGE(bad == 0, bad << " lse elements differ");
}

// One-shot dsk_mla_decode on both sides, compared.
void check_problem(const Env& env, const Problem& p) {
  INFO(describe(p));
  Fixture f = make_fixture(env, p);
  DSK_REQUIRE_OK(decode(env.cpu.get(), f, f.cpu));
  DSK_REQUIRE_OK(decode(env.gpu.get(), f, f.gpu));
  check_close(env, f);
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
}

int32_t splits_of(const Env& env, const Problem& p) {
  Fixture f = make_fixture(env, p);
  Plan plan(env.gpu.get(), f.gpu);
  return plan.splits();
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.mla_decode matches the CPU reference for short and edge lengths") {
    Env env;
    const int32_t lengths[] = {0, 1, 20, 63, 64, 65, 140};
    const size_t batches[] = {1, 2, 6};
    struct Heads {
      int64_t h_q;
      int64_t h_kv;
    };
    const Heads heads[] = {{1, 1}, {16, 1}, {16, 2}, {128, 1}, {128, 2}};
    uint64_t iter = 0;
    for (int32_t n : lengths) {
      for (int64_t s_q : {1, 2, 4}) {
        for (const Heads& hd : heads) {
          for (int32_t causal : {0, 1}) {
            Problem p;
            p.s_q = s_q;
            p.h_q = hd.h_q;
            p.h_kv = hd.h_kv;
            p.causal = causal;
            p.seqlens.assign(batches[iter % 3], n);
            for (size_t b = 1; b < p.seqlens.size(); ++b) {
              p.seqlens[b] = static_cast<int32_t>((n * 5 + 37 * b + iter) % 150);
            }
            p.scale = iter % 2 == 0 ? kV3Scale : 0.5f;
            p.seed = ++iter;
            check_problem(env, p);
          }
        }
      }
    }
  }

  TEST_CASE("cuda.mla_decode matches the CPU reference over 4096 cached tokens and varlen") {
    Env env;
    std::vector<Problem> problems;
    Problem p;
    p.seqlens = {4096, 4000};
    p.h_q = 16;
    problems.push_back(p);
    p.seqlens = {4096, 4096};
    p.s_q = 2;
    p.h_q = 128;
    p.causal = 1;
    problems.push_back(p);
    p.seqlens = {4096, 0, 1000, 2047, 33, 3001};
    p.s_q = 2;
    p.h_q = 16;
    p.h_kv = 2;
    p.causal = 1;
    problems.push_back(p);
    p.seqlens = {4096, 1, 64, 4095, 2500, 129};
    p.s_q = 4;
    p.h_q = 64;
    p.h_kv = 1;
    p.causal = 0;
    p.dtype = DSK_DTYPE_F16;
    p.scale = 0.5f;
    problems.push_back(p);
    p = Problem{};
    p.seqlens = {4096};
    p.h_q = 1;
    problems.push_back(p);
    p.h_q = 32;
    p.s_q = 2;
    p.causal = 1;
    p.dtype = DSK_DTYPE_F16;
    problems.push_back(p);
    uint64_t seed = 100;
    for (Problem& q : problems) {
      q.seed = ++seed;
      check_problem(env, q);
    }
  }

  TEST_CASE("cuda.mla_decode with head counts off multiples of 16 and up to 8 kv heads") {
    Env env;
    struct Heads {
      int64_t h_q;
      int64_t h_kv;
    };
    // FlashMLA's grid has h_q {1, 3, 9, 63, 64, 126, 128} x h_kv {1, 2, 3, 8}.
    const Heads heads[] = {{3, 1}, {9, 3}, {63, 1}, {126, 2}, {8, 8}, {24, 8}, {40, 8}};
    uint64_t seed = 700;
    for (const Heads& hd : heads) {
      for (int64_t s_q : {1, 3}) {
        Problem p;
        p.h_q = hd.h_q;
        p.h_kv = hd.h_kv;
        p.s_q = s_q;
        p.causal = s_q > 1 ? 1 : 0;
        p.seqlens = {20, 140, 1000, 0};
        p.seed = ++seed;
        p.dtype = seed % 2 == 0 ? DSK_DTYPE_BF16 : DSK_DTYPE_F16;
        check_problem(env, p);
      }
    }
  }

  TEST_CASE("cuda.mla_decode with a batch of 64 where half the requests are empty") {
    Env env;
    Problem p;
    p.s_q = 2;
    p.h_q = 16;
    p.causal = 1;
    std::mt19937_64 rng(800);
    p.seqlens.resize(64);
    for (size_t b = 0; b < p.seqlens.size(); ++b) {
      p.seqlens[b] = b % 2 == 0 ? 0 : static_cast<int32_t>(1 + rng() % 2048);
    }
    p.seed = 801;
    check_problem(env, p);
  }

  TEST_CASE("cuda.mla_decode with hundreds of queries per request as in chunked prefill") {
    Env env;
    for (int32_t causal : {1, 0}) {
      Problem p;
      p.s_q = 128;
      p.h_q = 16;
      p.seqlens = {100, 1000};  // causal: the first 28 queries of request 0 see nothing
      p.causal = causal;
      p.seed = 200 + static_cast<uint64_t>(causal);
      check_problem(env, p);
      p.h_q = 1;
      p.s_q = 200;
      p.seqlens = {150, 700, 1};
      p.seed += 10;
      check_problem(env, p);
    }
  }

  TEST_CASE("cuda.mla_decode splits the keys of a small batch with long sequences") {
    Env env;
    Problem p;
    p.seqlens = {16384};
    p.h_q = 16;
    p.seed = 300;
    CHECK(splits_of(env, p) > 1);
    check_problem(env, p);
    p.s_q = 2;
    p.causal = 1;
    p.seqlens = {16000};
    p.seed = 301;
    check_problem(env, p);
    // Two row tiles of 64 per request, each split.
    p.s_q = 1;
    p.h_q = 128;
    p.causal = 0;
    p.seqlens = {9000, 16384};
    p.seed = 302;
    check_problem(env, p);
    // Splits of a request shorter than the plan's capacity: several splits are empty.
    p.h_q = 16;
    p.h_kv = 2;
    p.seqlens = {16384, 100, 0};
    p.seed = 303;
    check_problem(env, p);
  }

  TEST_CASE("cuda.mla_decode plan serves two seqlens sets and a reserved workspace") {
    Env env;
    for (const std::vector<int32_t>& lengths :
         {std::vector<int32_t>{700, 64, 1, 300}, std::vector<int32_t>{12000}}) {
      Problem p;
      p.s_q = 2;
      p.h_q = 16;
      p.causal = 1;
      p.seqlens = lengths;
      p.seed = 400 + lengths.size();
      INFO(describe(p));
      Fixture f = make_fixture(env, p);
      Plan plan(env.gpu.get(), f.gpu);
      const int32_t splits = plan.splits();
      const size_t bytes = plan.workspace();
      MESSAGE("plan: ", splits, " splits, ", bytes, " workspace bytes");
      CHECK(splits >= 1);
      CHECK((splits == 1) == (bytes == 0));
      // The graph-friendly path: the context workspace covers the plan's scratch.
      DSK_REQUIRE_OK(dsk_context_reserve_workspace(env.gpu.get(), bytes));
      // Second set: each request at most as long (positions past the first seqlens hold NaN).
      std::vector<int32_t> shorter = lengths;
      for (int32_t& n : shorter) n = n > 2 ? n / 2 + 1 : 0;
      for (const std::vector<int32_t>& values : {lengths, shorter, lengths}) {
        write_seqlens(env, f, values);
        DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), f.gpu.out_base.dl(), -3.0));
        DSK_REQUIRE_OK(run(env.gpu.get(), plan, f, f.gpu));
        DSK_REQUIRE_OK(decode(env.cpu.get(), f, f.cpu));
        check_close(env, f);
      }
      DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
    }
  }

  TEST_CASE("cuda.mla_decode with strided tensors, page sizes 16 and 128, f16 and no lse") {
    Env env;
    uint64_t seed = 500;
    for (int64_t page : {16, 128}) {
      for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
        Problem p;
        p.page = page;
        p.dtype = dtype;
        p.strided = true;
        p.s_q = 2;
        p.h_q = 32;
        p.h_kv = 2;
        p.causal = 1;
        p.seqlens = {300, 17, 0, 257};
        p.seed = ++seed;
        check_problem(env, p);
        p.strided = false;
        p.with_lse = false;
        p.seed = ++seed;
        check_problem(env, p);
      }
    }
    // A long strided case that splits.
    Problem p;
    p.strided = true;
    p.seqlens = {8000};
    p.h_q = 64;
    p.seed = ++seed;
    check_problem(env, p);
  }

  TEST_CASE("cuda.mla_decode reports bad block_table entries and seqlens at the next synchronize") {
    Env env;
    for (const std::vector<int32_t>& lengths :
         {std::vector<int32_t>{100, 200}, std::vector<int32_t>{12000, 300}}) {
      Problem p;
      p.seqlens = lengths;
      p.h_q = 16;
      p.seed = 600 + lengths.size();
      INFO(describe(p));
      Fixture f = make_fixture(env, p);
      // Unused entries (2147480000) are never read: no error.
      DSK_REQUIRE_OK(decode(env.gpu.get(), f, f.gpu));
      DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
      const int64_t max_tokens = f.max_pages * p.page;
      struct Bad {
        int64_t b;
        int64_t col;  // -1: a seqlens value instead
        int32_t value;
        const char* name;
      };
      const Bad bads[] = {
          {1, 2, static_cast<int32_t>(f.num_pages + 5), "block_table"},
          {0, 0, -1, "block_table"},
          {0, -1, static_cast<int32_t>(max_tokens + 1), "cache_seqlens"},
          {1, -1, -5, "cache_seqlens"},
      };
      for (const Bad& bad : bads) {
        CAPTURE(bad.b);
        CAPTURE(bad.col);
        CAPTURE(bad.value);
        if (bad.col >= 0) {
          write_table_entry(env, f, bad.b, bad.col, bad.value);
        } else {
          std::vector<int32_t> values = lengths;
          values[static_cast<size_t>(bad.b)] = bad.value;
          write_seqlens(env, f, values);
        }
        // The run itself is asynchronous and succeeds; the error comes with the next synchronize.
        DSK_REQUIRE_OK(decode(env.gpu.get(), f, f.gpu));
        const dsk_status st = dsk_context_synchronize(env.gpu.get());
        CHECK(st == DSK_ERR_INVALID_ARGUMENT);
        const std::string message = dsk_last_error_message();
        CHECK_MESSAGE(message.find(bad.name) != std::string::npos, message);
        // Reported once: the next synchronize is clean.
        DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
        // Restore and check that the same call is clean and right again.
        if (bad.col >= 0) {
          write_table_entry(env, f, bad.b, bad.col,
                            f.table[static_cast<size_t>(bad.b * f.max_pages + bad.col)]);
        } else {
          write_seqlens(env, f, lengths);
        }
        DSK_REQUIRE_OK(decode(env.gpu.get(), f, f.gpu));
        DSK_REQUIRE_OK(decode(env.cpu.get(), f, f.cpu));
        check_close(env, f);
        DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
      }
    }
  }

  TEST_CASE("cuda.mla_decode refuses widths other than 576 and 512 and unaligned q rows") {
    Env env;
    {
      Tensor q = create(env.gpu.get(), {1, 1, 2, 96}, DSK_DTYPE_BF16);
      Tensor kv = create(env.gpu.get(), {2, 16, 1, 96}, DSK_DTYPE_BF16);
      Tensor bt = create(env.gpu.get(), {1, 2}, DSK_DTYPE_INT32);
      Tensor sl = create(env.gpu.get(), {1}, DSK_DTYPE_INT32);
      Tensor out = create(env.gpu.get(), {1, 1, 2, 64}, DSK_DTYPE_BF16);
      DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), bt.dl(), 0.0));
      DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), sl.dl(), 1.0));
      const dsk_status st = dsk_mla_decode(env.gpu.get(), q.dl(), kv.dl(), bt.dl(), sl.dl(),
                                           kV3Scale, 0, out.dl(), nullptr);
      CHECK(st == DSK_ERR_UNSUPPORTED);
      const std::string message = dsk_last_error_message();
      CHECK_MESSAGE(message.find("576") != std::string::npos, message);
    }
    {
      Problem p;
      p.seqlens = {50};
      Fixture f = make_fixture(env, p);
      // q moved by one element: rows no longer 16-byte aligned.
      Layout l = f.lq;
      l.offset += 1;
      Tensor base = create(env.gpu.get(), {l.span()}, p.dtype);
      Tensor q = dsk_test::view(base, l);
      DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), base.dl(), 0.5));
      const dsk_status st = dsk_mla_decode(env.gpu.get(), q.dl(), f.gpu.kv.dl(), f.gpu.bt.dl(),
                                           f.gpu.sl.dl(), kV3Scale, 0, f.gpu.out.dl(), nullptr);
      CHECK(st == DSK_ERR_UNSUPPORTED);
      DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
    }
  }
}
