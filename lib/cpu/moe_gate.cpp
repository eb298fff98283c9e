// CPU reference of the moe_gate entry (include/dsk/dsk_moe.h, "Gate"; contract in
// lib/core/backend_iface.h). Every float step is lib/common/moe_gate_row.h's, so the CUDA kernel
// (cuda/ops/moe_gate_kernels.cu) gives the same bits.
//
// Per row: the logits are widened to f32 (contiguous f32 rows are read in place), scored (steps
// 1-2 of moe_gate_row.h) into s and the selection keys gate_key(s'), the group stage masks keys,
// the k best (key, index) are selected (step 4), and the weights are finished in pick order. Rows
// are split over threads (cpu/parallel.h); no row depends on another, so neither the thread count
// nor T changes a result.
//
// The scalar functions below are the definition. On CPUs with AVX-512F the scores, the group
// scores and the selection run in moe_gate_avx512.cpp, 16 experts at a time: per element the same
// operations in the same order, across elements only exact reductions (max, argmax, counts); the
// softmax sum is the header's canonical one either way. Tested equal to the scalar versions
// (tests/core/test_moe_gate_entry.cpp).
//
// Sigmoid configs with f32 scores (V3) take the fast row where the CPU has AVX-512F/DQ and FMA
// (moe_gate_score.h, moe_gate_row_fast_avx512): a cheap approximation of every score with a
// proven error bound rules most experts out, and only the few that can still matter get the
// exact det_sigmoid, so the picks, weights and flags keep the exact row's bits
// (tests/core/test_moe_gate_fast.cpp); rows it cannot decide go through the exact row. Softmax
// configs without a bias (V2, V2-Lite) take a fast row too: every exp and the sum exactly, then
// the selection on e (s = e / sum is non-decreasing in e) with divisions only for the groups and
// for the few candidates that can be picked.
#include <stdint.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "common/convert.h"
#include "common/detmath.h"
#include "common/moe_gate_row.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/moe_gate_score.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_moe.h"

namespace dsk {
namespace cpu {

// ---- Scores (steps 1-2), scalar: the definition ----

bool moe_gate_score_row_scalar(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                               uint32_t* key) {
  const int32_t n = a.num_experts;
  if (a.score_func == DSK_MOE_SCORE_SOFTMAX) {
    float m = moe::gate_neg_inf();
    for (int32_t e = 0; e < n; ++e) {
      x[e] = moe::gate_clean_logit(in[e]);
      if (x[e] > m) m = x[e];
    }
    m = moe::gate_softmax_max(m);
    for (int32_t e = 0; e < n; ++e) s[e] = moe::gate_softmax_exp(x[e], m);
    const float sum = moe::gate_softmax_sum(s, n);
    for (int32_t e = 0; e < n; ++e) s[e] = moe::gate_softmax_score(s[e], sum);
  } else {
    for (int32_t e = 0; e < n; ++e) {
      x[e] = moe::gate_clean_logit(in[e]);
      s[e] = moe::gate_point_score(a.score_func, a.score_bf16, x[e]);
    }
  }
  bool any_finite = false;
  const bool has_bias = a.bias != nullptr;
  for (int32_t e = 0; e < n; ++e) {
    const bool valid = x[e] != moe::gate_neg_inf();
    const float sp = moe::gate_biased(s[e], valid, has_bias, has_bias ? a.bias[e] : 0.0f);
    key[e] = moe::gate_key(sp);
    any_finite = any_finite || key[e] > moe::kKeyNegInf;
  }
  return any_finite;
}

bool moe_gate_score_row(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                        uint32_t* key) {
  if (moe_gate_have_avx512()) return moe_gate_score_row_avx512(a, in, x, s, key);
  return moe_gate_score_row_scalar(a, in, x, s, key);
}

// ---- Group scores (step 3), scalar ----

void moe_gate_group_keys_scalar(const uint32_t* key, int32_t groups, int32_t size, bool top2,
                                uint32_t* gk) {
  for (int32_t g = 0; g < groups; ++g) {
    const uint32_t* k = key + static_cast<int64_t>(g) * size;
    if (top2) {
      uint32_t a = moe::kKeyTaken;
      uint32_t b = moe::kKeyTaken;
      for (int32_t i = 0; i < size; ++i) moe::gate_top2_push(k[i], a, b);
      gk[g] = moe::gate_top2_key(a, b);
    } else {
      uint32_t a = k[0];
      for (int32_t i = 1; i < size; ++i) a = k[i] > a ? k[i] : a;
      gk[g] = a;
    }
  }
}

// ---- Selection (step 4), scalar: experts arrive in index order, so an equal key never
// passes an earlier one ----

void moe_gate_select_scalar(const uint32_t* key, int32_t n, int32_t k, uint32_t* top_key,
                            int32_t* top_index) {
  int32_t filled = 0;
  for (int32_t e = 0; e < n; ++e) {
    const uint32_t v = key[e];
    int32_t pos;
    if (filled < k) {
      pos = filled++;
    } else if (v > top_key[k - 1]) {
      pos = k - 1;
    } else {
      continue;
    }
    while (pos > 0 && top_key[pos - 1] < v) {
      top_key[pos] = top_key[pos - 1];
      top_index[pos] = top_index[pos - 1];
      --pos;
    }
    top_key[pos] = v;
    top_index[pos] = e;
  }
}

float moe_gate_fast_margin(float maxb) {
  // c: the smallest integer with 2^(c - 1) >= 2 + maxb.
  int32_t c = 1;
  while (std::ldexp(1.0, c - 1) < 2.0 + static_cast<double>(maxb)) ++c;
  const double u = std::ldexp(1.0, c - 23);
  const double d = 2.0 * static_cast<double>(kMoeGateSigmoidApproxBound) + 3.0 * u;
  float f = static_cast<float>(d);
  if (static_cast<double>(f) < d) f = std::nextafter(f, 1.0f);
  return f;
}

namespace {

struct GateRun {
  const dsk_moe_gate_params* p;
  Layout logits;
  Layout ids;
  Layout weights;
  Layout flags;
  bool has_flags;
  MoeGateScoreArgs score;
  int32_t group_size;
  bool grouped;  // a group stage runs (G > 1 and topk_group < G)
  moe::GateWeightMode mode;
  // Step 5's quotients and products 16 lanes at a time (no bf16 rounding, k <= 16, contiguous
  // aligned f32 weights, AVX-512F): the same IEEE operations per weight.
  bool vector_weights;
};

// Per-thread buffers.
struct Scratch {
  std::vector<float> x;
  std::vector<float> s;
  std::vector<uint32_t> key;
  std::vector<uint32_t> group_key;
  std::vector<uint32_t> select;  // moe_gate_select_avx512's scratch
  std::vector<uint32_t> top_key;
  std::vector<int32_t> top_index;
  std::vector<float> w;
};

// Step 3: masks the keys of every expert outside the topk_group best groups.
void group_stage(const GateRun& r, Scratch& sc) {
  const int32_t groups = r.p->n_group;
  const int32_t size = r.group_size;
  uint32_t* key = sc.key.data();
  uint32_t* gk = sc.group_key.data();
  if (moe_gate_have_avx512() && size % 16 == 0) {
    moe_gate_group_keys_avx512(key, groups, size, r.p->top2sum != 0, gk);
  } else {
    moe_gate_group_keys_scalar(key, groups, size, r.p->top2sum != 0, gk);
  }
  // topk_group rounds of argmax over the groups not taken yet; a taken group's key becomes
  // kKeyTaken, so afterwards exactly the kept groups hold it.
  // (Real keys are above kKeyTaken, so starting from group 0 even when it is taken is fine.)
  for (int32_t round = 0; round < r.p->topk_group; ++round) {
    int32_t best = 0;
    for (int32_t g = 1; g < groups; ++g) best = gk[g] > gk[best] ? g : best;
    gk[best] = moe::kKeyTaken;
  }
  for (int32_t g = 0; g < groups; ++g) {
    if (gk[g] == moe::kKeyTaken) continue;
    uint32_t* k = key + static_cast<int64_t>(g) * size;
    for (int32_t i = 0; i < size; ++i) k[i] = moe::kKeyNegInf;
  }
}

void store_id(const Layout& ids, char* row, int64_t j, int32_t id) {
  char* p = row + j * ids.strides[1] * static_cast<int64_t>(ids.elem_size);
  if (ids.dtype_id == DSK_DTYPE_INT64) {
    const int64_t v = id;
    std::memcpy(p, &v, sizeof(v));
  } else {
    std::memcpy(p, &id, sizeof(id));
  }
}

// Step 5, in pick order, and the row's outputs.
void finish_row(const GateRun& r, int64_t t, bool any_finite, const uint32_t* top_key,
                const int32_t* top_index, const float* s) {
  const int32_t k = r.p->top_k;
  float w[16];
  float* wp = k <= 16 ? w : nullptr;
  std::vector<float> w_big;
  if (wp == nullptr) {
    w_big.resize(static_cast<size_t>(k));
    wp = w_big.data();
  }
  float sum = 0.0f;
  int64_t finite_picks = 0;
  for (int32_t j = 0; j < k; ++j) {
    const bool finite = top_key[j] > moe::kKeyNegInf;
    const float v = finite ? s[top_index[j]] : 0.0f;
    finite_picks += finite ? 1 : 0;
    sum = moe::gate_add(sum, v);
    wp[j] = v;
  }
  const float divisor = moe::gate_renorm_divisor(r.mode, sum);
  char* id_row = r.ids.data + t * r.ids.strides[0] * static_cast<int64_t>(r.ids.elem_size);
  char* w_row = r.weights.data + t * r.weights.strides[0] * 4;
  if (r.ids.dtype_id == DSK_DTYPE_INT32 && r.ids.strides[1] == 1) {
    // One id at a time: the picks were just stored one at a time, and a wide copy would wait
    // for those stores to reach the cache instead of reading them from the store buffer.
    for (int32_t j = 0; j < k; ++j) std::memcpy(id_row + 4 * j, &top_index[j], 4);
  } else {
    for (int32_t j = 0; j < k; ++j) store_id(r.ids, id_row, j, top_index[j]);
  }
  if (r.vector_weights) {
    moe_gate_finish_weights_avx512(wp, k, r.mode.renormalize, divisor, r.mode.scale,
                                   reinterpret_cast<float*>(w_row));
  } else {
    for (int32_t j = 0; j < k; ++j) {
      const float v = moe::gate_finish_weight(r.mode, wp[j], divisor);
      std::memcpy(w_row + j * r.weights.strides[1] * 4, &v, sizeof(v));
    }
  }
  if (r.has_flags) {
    const uint8_t f = moe::gate_row_flags(any_finite, finite_picks, k);
    std::memcpy(r.flags.data + t * r.flags.strides[0], &f, 1);
  }
}

void gate_row(const GateRun& r, int64_t t, Scratch& sc) {
  const int32_t n = r.p->num_experts;
  const int32_t k = r.p->top_k;
  const Layout& lg = r.logits;
  const auto le = static_cast<int64_t>(lg.elem_size);
  const char* src = lg.data + t * lg.strides[0] * le;
  // Contiguous aligned f32 rows are scored in place; others are widened first.
  const float* in = sc.x.data();
  if (lg.dtype_id == DSK_DTYPE_F32 && lg.strides[1] == 1 &&
      reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    in = reinterpret_cast<const float*>(src);
  } else {
    load_f32_row(lg.dtype_id, src, lg.strides[1] * le, sc.x.data(), n);
  }
  const bool any_finite = moe_gate_score_row(r.score, in, sc.x.data(), sc.s.data(), sc.key.data());
  if (r.grouped) group_stage(r, sc);
  if (moe_gate_have_avx512()) {
    moe_gate_select_avx512(sc.key.data(), n, k, sc.select.data(), sc.top_key.data(),
                           sc.top_index.data());
  } else {
    moe_gate_select_scalar(sc.key.data(), n, k, sc.top_key.data(), sc.top_index.data());
  }

  finish_row(r, t, any_finite, sc.top_key.data(), sc.top_index.data(), sc.s.data());
}

// Row t's logits as f32: in place when they are aligned contiguous f32, else converted into x.
const float* row_input(const GateRun& r, int64_t t, float* x) {
  const Layout& lg = r.logits;
  const auto le = static_cast<int64_t>(lg.elem_size);
  const char* src = lg.data + t * lg.strides[0] * le;
  if (lg.dtype_id == DSK_DTYPE_F32 && lg.strides[1] == 1 &&
      reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(src);
  }
  load_f32_row(lg.dtype_id, src, lg.strides[1] * le, x, r.p->num_experts);
  return x;
}

// Rows [lo, hi) through the fast row (plan.fast), in pairs, three pairs in flight: the group
// stage and candidates of pair t + 2 (moe_gate_row_fast_select), the exact tails of pair t
// (moe_gate_row_fast_finish) and the first pass of pair t + 4 (moe_gate_row_fast_approx2, which
// interleaves the two rows' operations) are issued one after the other: the first two are chains
// of dependent operations that the CPU overlaps with each other and with the third. A row the
// fast row cannot decide goes through the exact fused row. Rows stay independent: the same bits
// as one row at a time.
void fast_rows(const GateRun& r, const MoeGateRowPlan& plan, int64_t lo, int64_t hi) {
  struct Slot {
    alignas(64) float x[256];
    alignas(64) float s[256];
    MoeGateFastRow st;
    const float* in;
    bool ok;
  };
  auto slots = std::make_unique<Slot[]>(6);
  alignas(64) uint32_t key[256];
  alignas(64) uint32_t scratch[256];
  uint32_t top_key[2][16];
  int32_t top_index[2][16];
  auto slot = [&](int64_t t) -> Slot& { return slots[static_cast<size_t>((t - lo) % 6)]; };
  // Contiguous bf16 and f16 rows are widened by the first pass itself; other rows that are not
  // contiguous aligned f32 are converted before it.
  const Layout& lg = r.logits;
  const bool widen_in_pass =
      lg.strides[1] == 1 && (lg.dtype_id == DSK_DTYPE_BF16 || lg.dtype_id == DSK_DTYPE_F16);
  auto row_in = [&](int64_t t, Slot& sl) {
    MoeGateRowIn in{nullptr, DSK_DTYPE_F32, sl.x};
    if (widen_in_pass) {
      in.data = lg.data + t * lg.strides[0] * static_cast<int64_t>(lg.elem_size);
      in.dtype = lg.dtype_id;
    } else {
      in.data = row_input(r, t, sl.x);
    }
    sl.in = in.f32();
    return in;
  };
  auto approx = [&](int64_t t) {  // rows t and t + 1
    Slot& a = slot(t);
    if (t + 1 < hi) {
      Slot& b = slot(t + 1);
      const MoeGateRowIn rows[2] = {row_in(t, a), row_in(t + 1, b)};
      MoeGateFastRow* st[2] = {&a.st, &b.st};
      moe_gate_row_fast_approx2(plan, rows, st);
    } else {
      moe_gate_row_fast_approx(plan, row_in(t, a), a.st);
    }
  };
  auto select = [&](int64_t t) {  // rows t and t + 1
    Slot& a = slot(t);
    if (t + 1 < hi) {
      Slot& b = slot(t + 1);
      bool ok[2];
      moe_gate_row_fast_select2(plan, a.in, a.st, b.in, b.st, ok);
      a.ok = ok[0];
      b.ok = ok[1];
    } else {
      a.ok = moe_gate_row_fast_select(plan, a.in, a.st);
    }
  };
  auto finish = [&](int64_t t) {  // rows t and t + 1
    if (t + 1 < hi && slot(t).ok && slot(t + 1).ok) {
      Slot& a = slot(t);
      Slot& b = slot(t + 1);
      const float* in[2] = {a.in, b.in};
      const MoeGateFastRow* st[2] = {&a.st, &b.st};
      float* s[2] = {a.s, b.s};
      uint32_t* tk[2] = {top_key[0], top_key[1]};
      int32_t* ti[2] = {top_index[0], top_index[1]};
      moe_gate_row_fast_finish2(plan, in, st, s, tk, ti);
      finish_row(r, t, true, top_key[0], top_index[0], a.s);
      finish_row(r, t + 1, true, top_key[1], top_index[1], b.s);
      return;
    }
    for (int64_t u = t; u < t + 2 && u < hi; ++u) {
      Slot& sl = slot(u);
      bool any_finite = true;
      if (sl.ok) {
        moe_gate_row_fast_finish(plan, sl.in, sl.st, sl.s, top_key[0], top_index[0]);
      } else {
        any_finite = moe_gate_row_avx512(plan, sl.in, sl.s, key, scratch, top_key[0], top_index[0]);
      }
      finish_row(r, u, any_finite, top_key[0], top_index[0], sl.s);
    }
  };
  approx(lo);
  select(lo);
  if (lo + 2 < hi) approx(lo + 2);
  for (int64_t t = lo; t < hi; t += 2) {
    if (t + 2 < hi) select(t + 2);
    finish(t);
    if (t + 4 < hi) approx(t + 4);
  }
}

// Rows [lo, hi) through the fused AVX-512 row.
void fused_rows(const GateRun& r, const MoeGateRowPlan& plan, int64_t lo, int64_t hi) {
  if (plan.fast) {
    fast_rows(r, plan, lo, hi);
    return;
  }
  // Two rows in flight: the scores of row t + 1 are issued before the selection of row t, two
  // chains of dependent operations that the CPU overlaps. Rows stay independent: the same bits.
  const int32_t n = r.p->num_experts;
  struct Slot {
    alignas(64) float x[256];
    alignas(64) float s[256];
    alignas(64) uint32_t key[256];
    bool any;
  };
  auto slots = std::make_unique<Slot[]>(2);
  alignas(64) uint32_t scratch[256];
  uint32_t top_key[16];
  int32_t top_index[16];
  const Layout& lg = r.logits;
  const auto le = static_cast<int64_t>(lg.elem_size);
  const int64_t row_bytes = lg.strides[1] == 1 ? n * le : 0;
  auto score = [&](int64_t t) {
    Slot& sl = slots[static_cast<size_t>((t - lo) % 2)];
    if (t + 2 < hi) {
      const char* next = lg.data + (t + 2) * lg.strides[0] * le;
      for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(next + off);
    }
    sl.any = moe_gate_row_score_avx512(plan, row_input(r, t, sl.x), sl.s, sl.key);
  };
  score(lo);
  for (int64_t t = lo; t < hi; ++t) {
    if (t + 1 < hi) score(t + 1);
    Slot& sl = slots[static_cast<size_t>((t - lo) % 2)];
    moe_gate_row_select_avx512(plan, sl.key, scratch, top_key, top_index);
    finish_row(r, t, sl.any, top_key, top_index, sl.s);
  }
}
}  // namespace

dsk_status moe_gate(const dsk_exec* /*ex*/, const dsk_moe_gate_params* p, const DLTensor* logits_t,
                    const DLTensor* bias_t, const DLTensor* ids_t, const DLTensor* weights_t,
                    const DLTensor* row_flags_t) noexcept {
  return guarded([&] {
    check_arg(p != nullptr, "moe_gate: params must not be NULL");
    GateRun r{};
    r.p = p;
    r.logits = check_tensor(logits_t, "logits", Access::kRead);
    r.ids = check_tensor(ids_t, "ids", Access::kRead);
    r.weights = check_tensor(weights_t, "weights", Access::kRead);
    r.has_flags = row_flags_t != nullptr;
    if (r.has_flags) r.flags = check_tensor(row_flags_t, "row_flags", Access::kRead);
    const int32_t n = p->num_experts;
    const int32_t k = p->top_k;
    const int32_t groups = p->n_group;
    check_arg(n >= 1 && groups >= 1 && n % groups == 0 && p->topk_group >= 1 &&
                  p->topk_group <= groups && k >= 1 &&
                  static_cast<int64_t>(k) <= static_cast<int64_t>(p->topk_group) * (n / groups),
              "moe_gate: invalid config (E {}, k {}, n_group {}, topk_group {})", n, k, groups,
              p->topk_group);
    check_arg(p->score_func == DSK_MOE_SCORE_SOFTMAX || p->score_func == DSK_MOE_SCORE_SIGMOID ||
                  p->score_func == DSK_MOE_SCORE_NONE,
              "moe_gate: unknown score function {}", p->score_func);
    check_arg(p->top2sum == 0 || groups == 1 || n / groups >= 2,
              "moe_gate: the top-2 group rule needs at least 2 experts per group");
    const int64_t rows = r.logits.ndim == 2 ? r.logits.shape[0] : -1;
    check_arg(r.logits.ndim == 2 && r.logits.shape[1] == n &&
                  (r.logits.dtype_id == DSK_DTYPE_F32 || r.logits.dtype_id == DSK_DTYPE_F16 ||
                   r.logits.dtype_id == DSK_DTYPE_BF16),
              "moe_gate: expected logits [T, {}] f32, f16 or bf16", n);
    check_arg(r.ids.ndim == 2 && r.ids.shape[0] == rows && r.ids.shape[1] == k &&
                  (r.ids.dtype_id == DSK_DTYPE_INT32 || r.ids.dtype_id == DSK_DTYPE_INT64),
              "moe_gate: expected ids [T, {}] int32 or int64", k);
    check_arg(r.weights.ndim == 2 && r.weights.shape[0] == rows && r.weights.shape[1] == k &&
                  r.weights.dtype_id == DSK_DTYPE_F32,
              "moe_gate: expected weights [T, {}] f32", k);
    check_arg(!r.has_flags || (r.flags.ndim == 1 && r.flags.shape[0] == rows &&
                               r.flags.dtype_id == DSK_DTYPE_UINT8),
              "moe_gate: expected row_flags [T] uint8");
    std::vector<float> bias;
    if (bias_t != nullptr) {
      const Layout b = check_tensor(bias_t, "bias", Access::kRead);
      check_arg(b.ndim == 1 && b.shape[0] == n && b.dtype_id == DSK_DTYPE_F32,
                "moe_gate: expected bias [{}] f32", n);
      bias.resize(static_cast<size_t>(n));
      for (int32_t e = 0; e < n; ++e) std::memcpy(&bias[e], b.data + e * b.strides[0] * 4, 4);
    }
    if (rows == 0) return;
    r.score.num_experts = n;
    r.score.score_func = p->score_func;
    r.score.score_bf16 = p->score_bf16;
    r.score.bias = bias.empty() ? nullptr : bias.data();
    r.group_size = n / groups;
    r.grouped = groups > 1 && p->topk_group < groups;
    r.mode = moe::gate_weight_mode(p->score_func, p->renormalize, p->score_bf16, p->scale);
    r.vector_weights = moe_gate_have_avx512() && !r.mode.bf16_steps && !r.mode.bf16_final &&
                       k <= 16 && r.weights.strides[1] == 1 &&
                       reinterpret_cast<uintptr_t>(r.weights.data) % alignof(float) == 0;
    // The fused AVX-512 row where the config fits it (moe_gate_avx512.cpp).
    auto plan = std::make_unique<MoeGateRowPlan>();
    const bool fused = moe_gate_row_plan_init(*plan, n, k, p->score_func, p->score_bf16,
                                              r.score.bias, groups, p->topk_group, p->top2sum != 0);
    // A row costs about as much as a copy of 16 of its elements per expert: give each thread
    // at least ~2^14 experts' worth.
    const int64_t min_rows = std::max<int64_t>(1, (int64_t{1} << 14) / n);
    if (fused) {
      parallel_for(rows, min_rows, [&](int64_t lo, int64_t hi) { fused_rows(r, *plan, lo, hi); });
      return;
    }
    parallel_for(rows, min_rows, [&](int64_t lo, int64_t hi) {
      Scratch sc;
      sc.x.resize(static_cast<size_t>(n));
      sc.s.resize(static_cast<size_t>(n));
      sc.key.resize(static_cast<size_t>(n));
      sc.group_key.resize(static_cast<size_t>(groups));
      sc.select.resize(static_cast<size_t>(moe_gate_select_scratch(n)));
      sc.top_key.resize(static_cast<size_t>(k));
      sc.top_index.resize(static_cast<size_t>(k));
      sc.w.resize(static_cast<size_t>(k));
      // Rows with a contiguous last dimension: the row two ahead is prefetched while this one
      // is computed (the scores are compute-bound, the stream of rows is not).
      const auto le = static_cast<int64_t>(r.logits.elem_size);
      const int64_t row_bytes = r.logits.strides[1] == 1 ? n * le : 0;
      for (int64_t t = lo; t < hi; ++t) {
        if (t + 2 < hi) {
          const char* next = r.logits.data + (t + 2) * r.logits.strides[0] * le;
          for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(next + off);
        }
        gate_row(r, t, sc);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
