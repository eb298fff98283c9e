// MLA attention (dsk_mla.h): absorbed decode over the paged latent cache, MHA-form prefill, cache
// append and weight absorption, through the public C API.
//
// Decode follows FlashMLA's benchmark: D = 576, Dv = 512, h_kv = 1, page 64, bf16, a randomly
// permuted block table; seqlens fixed at the mean or, for "varlen", drawn per request from
// Normal(mean, mean / 2) (seeded, at least s_q). The plan is made once outside the timed loop and
// the context workspace reserved to its size, so a timed run neither allocates scratch nor
// synchronizes (the CPU backend still starts its worker threads per call). Counters:
//   flop_per_second   2 * h_q * sum over queries of attended keys * (D + Dv)
//   bytes_per_second  FlashMLA's formula: q + the attended latent cache counted once per request
//                     (sum of seqlens * h_kv * D) + out, all bf16 (the latent is both K and V)
//   splits            the plan's split count
// Causal only changes anything for s_q > 1, so s_q = 1 runs the non-causal case only. Every case
// makes one untimed warm-up call first (library handles, first-touch page faults).
//
// Grids:
//   CUDA  b 128, h_q 128, s_q {1, 2}, mean seqlen {4096, 8192, 16384, 32768}, fixed and varlen,
//         s_q 2 causal and not (FlashMLA's cases); h_q 16 (8-way tensor parallel), s_q 1, fixed,
//         b {1, 8, 32}, seqlen {4096, 8192, 16384, 32768}; FlashMLA v1 memory-bound grid: b 128,
//         h_q {16, 32, 64}, s_q 1, seqlen {4096, 8192}, fixed and varlen.
//   CPU   reduced: b {1, 8}, seqlen {1024, 4096}, h_q {16, 128}, s_q {1, 2 causal}, fixed, plus
//         b 8 varlen at 4096 for both head counts.
//   Prefill: one causal request of T tokens, Dqk 192, Dv 128, H = Hk; CUDA H 128, T {1024, 4096,
//         8192}; CPU H 16 (not DeepSeek's 128, to stay affordable), T {1024, 4096}. FLOPs count
//         the attended (causal) pairs: 2 * H * T (T + 1) / 2 * (Dqk + Dv).
//   Cache append: T {1, 128, 4096} new tokens (c_kv 512 + k_pe 64 bf16) at random slots.
//   Absorption: wkv_b of H 128 heads [128 * 256, 512], bf16 and fp8 (128 x 128 block scales);
//         absorb_q q_nope [T, 128, 128] -> [T, 128, 512], absorb_out [T, 128, 512] ->
//         [T, 128, 128]; T {1, 16, 128} (CUDA also 1024). Bytes count the half of wkv_b used.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

constexpr int64_t kD = 576;
constexpr int64_t kDv = 512;
constexpr int64_t kPage = 64;
constexpr int64_t kNope = 128;  // qk_nope_head_dim = v_head_dim
constexpr int64_t kRope = 64;
constexpr int64_t kPrefillDqk = kNope + kRope;
constexpr int64_t kPrefillDv = 128;

struct DecodeCase {
  int64_t batch;
  int64_t s_q;
  int64_t h_q;
  int64_t seqlen;  // mean
  bool varlen;
  bool causal;

  std::string name() const {
    std::string n = "mla/decode_bf16/b:" + std::to_string(batch) + "/sq:" + std::to_string(s_q) +
                    "/hq:" + std::to_string(h_q) + "/seqlen:" + std::to_string(seqlen);
    n += varlen ? "/varlen" : "/fixed";
    if (causal) n += "/causal";
    return n;
  }

  std::vector<int32_t> seqlens() const {
    std::vector<int32_t> out(static_cast<size_t>(batch), static_cast<int32_t>(seqlen));
    if (!varlen) return out;
    std::mt19937 rng(static_cast<uint32_t>(batch * 131 + seqlen));
    std::normal_distribution<double> dist(static_cast<double>(seqlen),
                                          static_cast<double>(seqlen) / 2.0);
    for (int32_t& n : out) {
      n = static_cast<int32_t>(std::max<double>(std::round(dist(rng)), static_cast<double>(s_q)));
    }
    return out;
  }
};

void add_decode(const OpsEnv& env, const DecodeCase& c) {
  const OpsEnv* e = &env;
  env.add(c.name(), [e, c](benchmark::State& state) {
    guarded_case(state, [&] {
      const std::vector<int32_t> seqlens = c.seqlens();
      // Pages: exactly what the requests need, handed out in a random order.
      int64_t max_pages = 1;
      int64_t pages = 0;
      for (int32_t n : seqlens) {
        const int64_t p = (n + kPage - 1) / kPage;
        max_pages = std::max(max_pages, p);
        pages += p;
      }
      std::vector<int32_t> perm(static_cast<size_t>(pages));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), std::mt19937(17));
      std::vector<int32_t> table(static_cast<size_t>(c.batch * max_pages), 0);
      size_t next = 0;
      double attended = 0.0;
      double cached = 0.0;
      for (int64_t b = 0; b < c.batch; ++b) {
        const int64_t n = seqlens[static_cast<size_t>(b)];
        for (int64_t p = 0; p * kPage < n; ++p) {
          table[static_cast<size_t>(b * max_pages + p)] = perm[next++];
        }
        cached += static_cast<double>(n);
        for (int64_t j = 0; j < c.s_q; ++j) {
          attended +=
              static_cast<double>(c.causal ? std::clamp<int64_t>(n - c.s_q + j + 1, 0, n) : n);
        }
      }
      dsk::Tensor q = e->random({c.batch, c.s_q, c.h_q, kD}, DSK_DTYPE_BF16, -0.1f, 0.1f);
      dsk::Tensor kv =
          e->random({std::max<int64_t>(pages, 1), kPage, 1, kD}, DSK_DTYPE_BF16, -0.1f, 0.1f);
      dsk::Tensor bt = e->int32s(table).view({c.batch, max_pages});
      dsk::Tensor sl = e->int32s(seqlens);
      dsk::Tensor out = e->tensor({c.batch, c.s_q, c.h_q, kDv}, DSK_DTYPE_BF16);
      dsk::Tensor lse = e->tensor({c.batch, c.h_q, c.s_q}, DSK_DTYPE_F32);
      dsk::MlaDecodePlan plan(*e->ctx, q, kv, bt, sl, out);
      dsk::check(dsk_context_reserve_workspace(e->ctx->get(), plan.workspace_size()));
      const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
      const double seconds = timed(state, *e, [&] {
        return dsk_mla_decode_run(e->ctx->get(), plan.get(), q, kv, bt, sl, scale, c.causal ? 1 : 0,
                                  out, lse);
      });
      if (seconds < 0) return;
      const double qo = static_cast<double>(c.batch * c.s_q * c.h_q);
      const double bytes = 2.0 * (cached * kD + qo * static_cast<double>(kD + kDv));
      const double flops =
          2.0 * static_cast<double>(c.h_q) * attended * static_cast<double>(kD + kDv);
      report(state, *e, seconds, bytes, flops);
      state.counters["splits"] = static_cast<double>(plan.num_splits());
    });
  });
}

void add_prefill(const OpsEnv& env, int64_t heads, int64_t tokens) {
  const OpsEnv* e = &env;
  const std::string name =
      "mla/prefill_bf16_causal/h:" + std::to_string(heads) + "/tokens:" + std::to_string(tokens);
  env.add(name, [e, heads, tokens](benchmark::State& state) {
    guarded_case(state, [&] {
      dsk::Tensor q = e->random({tokens, heads, kPrefillDqk}, DSK_DTYPE_BF16);
      dsk::Tensor k = e->random({tokens, heads, kPrefillDqk}, DSK_DTYPE_BF16);
      dsk::Tensor v = e->random({tokens, heads, kPrefillDv}, DSK_DTYPE_BF16);
      dsk::Tensor out = e->tensor({tokens, heads, kPrefillDv}, DSK_DTYPE_BF16);
      dsk::Tensor lse = e->tensor({heads, tokens}, DSK_DTYPE_F32);
      dsk::Tensor cu = e->int32s({0, static_cast<int32_t>(tokens)});
      const float scale = 1.0f / std::sqrt(static_cast<float>(kPrefillDqk));
      const double seconds = timed(state, *e, [&] {
        return dsk_mla_prefill(e->ctx->get(), q, k, v, cu, nullptr, scale, 1, out, lse);
      });
      if (seconds < 0) return;
      const double t = static_cast<double>(tokens);
      const double h = static_cast<double>(heads);
      const double bytes = 2.0 * t * h * static_cast<double>(2 * kPrefillDqk + 2 * kPrefillDv);
      const double flops =
          2.0 * h * (t * (t + 1.0) / 2.0) * static_cast<double>(kPrefillDqk + kPrefillDv);
      report(state, *e, seconds, bytes, flops);
    });
  });
}

void add_append(const OpsEnv& env, int64_t tokens) {
  const OpsEnv* e = &env;
  env.add("mla/cache_append_bf16/tokens:" + std::to_string(tokens),
          [e, tokens](benchmark::State& state) {
            guarded_case(state, [&] {
              const int64_t pages = (tokens + kPage - 1) / kPage + 1;
              std::vector<int64_t> slots(static_cast<size_t>(pages * kPage));
              std::iota(slots.begin(), slots.end(), int64_t{0});
              std::shuffle(slots.begin(), slots.end(), std::mt19937(5));
              slots.resize(static_cast<size_t>(tokens));
              dsk::Tensor c_kv = e->random({tokens, kDv}, DSK_DTYPE_BF16);
              dsk::Tensor k_pe = e->random({tokens, kD - kDv}, DSK_DTYPE_BF16);
              dsk::Tensor slot = e->int64s(slots);
              dsk::Tensor kv = e->tensor({pages, kPage, 1, kD}, DSK_DTYPE_BF16);
              const double seconds = timed(state, *e, [&] {
                return dsk_mla_cache_append(e->ctx->get(), c_kv, k_pe, slot, kv);
              });
              if (seconds < 0) return;
              const double t = static_cast<double>(tokens);
              report(state, *e, seconds, 2.0 * 2.0 * t * kD + 8.0 * t, 0.0);
            });
          });
}

void add_absorb(const OpsEnv& env, bool out_side, bool fp8, int64_t tokens) {
  const OpsEnv* e = &env;
  constexpr int64_t kHeads = kV3Heads;
  constexpr int64_t kLatent = kDv;
  const std::string name = std::string("mla/") + (out_side ? "absorb_out" : "absorb_q") +
                           (fp8 ? "/wkv_b_fp8" : "/wkv_b_bf16") + "/h:" + std::to_string(kHeads) +
                           "/tokens:" + std::to_string(tokens);
  env.add(name, [e, out_side, fp8, tokens](benchmark::State& state) {
    guarded_case(state, [&] {
      const int64_t rows = kHeads * 2 * kNope;
      dsk::Tensor w =
          e->random({rows, kLatent}, fp8 ? DSK_DTYPE_FP8_E4M3FN : DSK_DTYPE_BF16, -0.05f, 0.05f);
      dsk::Tensor scales;
      if (fp8) scales = e->random({rows / 128, kLatent / 128}, DSK_DTYPE_F32, 0.5f, 1.0f);
      const int64_t in_width = out_side ? kLatent : kNope;
      const int64_t out_width = out_side ? kNope : kLatent;
      dsk::Tensor x = e->random({tokens, kHeads, in_width}, DSK_DTYPE_BF16);
      dsk::Tensor y = e->tensor({tokens, kHeads, out_width}, DSK_DTYPE_BF16);
      const DLTensor* s = fp8 ? static_cast<const DLTensor*>(scales) : nullptr;
      const double seconds = timed(state, *e, [&] {
        return out_side ? dsk_mla_absorb_out(e->ctx->get(), x, w, s, y)
                        : dsk_mla_absorb_q(e->ctx->get(), x, w, s, y);
      });
      if (seconds < 0) return;
      const double t = static_cast<double>(tokens);
      const double h = static_cast<double>(kHeads);
      const double weight = h * kNope * kLatent * (fp8 ? 1.0 : 2.0) +
                            (fp8 ? 4.0 * static_cast<double>(rows / 128 * kLatent / 128) : 0.0);
      const double bytes = weight + 2.0 * t * h * static_cast<double>(kNope + kLatent);
      const double flops = 2.0 * t * h * static_cast<double>(kNope) * kLatent;
      report(state, *e, seconds, bytes, flops);
    });
  });
}

}  // namespace

void register_mla_benchmarks(const OpsEnv& env) {
  const bool cuda = env.backend == DSK_BACKEND_CUDA;
  std::vector<DecodeCase> cases;
  if (cuda) {
    for (int64_t s_q : {1, 2}) {
      for (int64_t seqlen : {4096, 8192, 16384, 32768}) {
        for (bool varlen : {false, true}) {
          for (bool causal : {false, true}) {
            if (causal && s_q == 1) continue;
            cases.push_back({128, s_q, 128, seqlen, varlen, causal});
          }
        }
      }
    }
    for (int64_t b : {1, 8, 32}) {
      for (int64_t seqlen : {4096, 8192, 16384, 32768}) {
        cases.push_back({b, 1, 16, seqlen, false, false});
      }
    }
    // FlashMLA v1's memory-bound grid (h_q * s_q <= 64), b 128: its published 2.8 TB/s cases.
    for (int64_t h_q : {16, 32, 64}) {
      for (int64_t seqlen : {4096, 8192}) {
        for (bool varlen : {false, true}) cases.push_back({128, 1, h_q, seqlen, varlen, false});
      }
    }
  } else {
    for (int64_t h_q : {16, 128}) {
      for (int64_t b : {1, 8}) {
        for (int64_t seqlen : {1024, 4096}) {
          cases.push_back({b, 1, h_q, seqlen, false, false});
          cases.push_back({b, 2, h_q, seqlen, false, true});
        }
      }
      cases.push_back({8, 1, h_q, 4096, true, false});
    }
  }
  for (const DecodeCase& c : cases) add_decode(env, c);

  const int64_t prefill_heads = cuda ? kV3Heads : 16;
  std::vector<int64_t> prefill_tokens = {1024, 4096};
  if (cuda) prefill_tokens.push_back(8192);
  for (int64_t t : prefill_tokens) add_prefill(env, prefill_heads, t);

  for (int64_t t : {1, 128, 4096}) add_append(env, t);

  std::vector<int64_t> absorb_tokens = {1, 16, 128};
  if (cuda) absorb_tokens.push_back(1024);
  for (bool out_side : {false, true}) {
    for (bool fp8 : {false, true}) {
      for (int64_t t : absorb_tokens) add_absorb(env, out_side, fp8, t);
    }
  }
}

}  // namespace dsk::bench
