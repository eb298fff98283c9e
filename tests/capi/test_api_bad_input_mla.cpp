// Bad-input sweep (sweep_test_util.h) over dsk_mla.h: decode (plan, run, one-shot), cache append,
// weight absorption, latent decompression and prefill, every tensor argument broken one way at a
// time.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <memory>

#include "sweep_test_util.h"

using sweep::Case;
using sweep::Expect;

namespace {

constexpr int32_t kF32 = DSK_DTYPE_F32, kBF16 = DSK_DTYPE_BF16, kFP8 = DSK_DTYPE_FP8_E4M3FN,
                  kI32 = DSK_DTYPE_INT32, kI64 = DSK_DTYPE_INT64;

// B 2, S 2, Hq 4, Hkv 1, D 72, Dv 64, 6 pages of 16, max_pages 3; request 0 needs pages 0-1,
// request 1 page 3.
struct Decode {
  int q, kv, table, seqlens, out;
  explicit Decode(Case& c)
      : q(c.in("q", {2, 2, 4, 72}, kBF16)),
        kv(c.in("kv_cache", {6, 16, 1, 72}, kBF16)),
        table(c.in("block_table", {2, 3}, kI32, {0, 1, 2, 3, 4, 5})),
        seqlens(c.in("cache_seqlens", {2}, kI32, {20, 5})),
        out(c.out("out", {2, 2, 4, 64}, kBF16)) {}
};

}  // namespace

TEST_CASE("bad input sweep: dsk_mla_decode_plan_create") {
  Case c("dsk_mla_decode_plan_create");
  const Decode d(c);
  c.call = [&] {
    auto* plan = reinterpret_cast<dsk_mla_decode_plan*>(&c);  // must become NULL on error
    const dsk_status s = dsk_mla_decode_plan_create(c.ctx, c[d.q], c[d.kv], c[d.table],
                                                    c[d.seqlens], c[d.out], &plan);
    if (s == DSK_OK) {
      dsk_mla_decode_plan_release(plan);
    } else {
      CHECK(plan == nullptr);
    }
    return s;
  };
  // Other page counts and table widths are plans of their own, and Dv is out's last dimension
  // (1 <= Dv <= D). Nothing is read at plan time, but a larger shape claims memory past the
  // buffer, which may overlap another argument's.
  c.expect(d.kv, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kAny);
  c.expect(d.table, sweep::kLastPlus1, Expect::kAny);
  c.expect(d.out, sweep::kLastPlus1, Expect::kAny);
  c.expect(d.out, sweep::kLastMinus1, Expect::kOk);
  c.expect(d.table, sweep::kLastMinus1, Expect::kOk);  // 2 pages still hold 20 tokens
  for (int i : {d.table, d.seqlens}) c.expect(i, {sweep::kMinValue, sweep::kMaxValue}, Expect::kOk);
  c.also_named({"h_q", "h_kv", "page_size"});
  c.run();
}

TEST_CASE("bad input sweep: dsk_mla_decode_run") {
  Case c("dsk_mla_decode_run");
  const Decode d(c);
  const int lse = c.opt_out("lse", {2, 4, 2}, kF32);
  dsk_mla_decode_plan* plan = nullptr;
  REQUIRE(dsk_mla_decode_plan_create(c.ctx, c[d.q], c[d.kv], c[d.table], c[d.seqlens], c[d.out],
                                     &plan) == DSK_OK);
  std::unique_ptr<dsk_mla_decode_plan, void (*)(dsk_mla_decode_plan*)> owned(
      plan, dsk_mla_decode_plan_release);
  c.call = [&] {
    return dsk_mla_decode_run(c.ctx, plan, c[d.q], c[d.kv], c[d.table], c[d.seqlens], 0.3f, 1,
                              c[d.out], c[lse]);
  };
  // "The number of pages may differ" from the plan's.
  c.expect(d.kv, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.all_cuda_host(Expect::kAny);  // the plan was made for kDLCPU tensors
  c.also_named({"plan", "h_q", "h_kv", "page_size"});
  c.run();
}

TEST_CASE("bad input sweep: dsk_mla_decode") {
  Case c("dsk_mla_decode");
  const Decode d(c);
  const int lse = c.opt_out("lse", {2, 4, 2}, kF32);
  c.call = [&] {
    return dsk_mla_decode(c.ctx, c[d.q], c[d.kv], c[d.table], c[d.seqlens], 0.3f, 1, c[d.out],
                          c[lse]);
  };
  // Valid shapes over more memory than the test owns (more pages, wider tables, a wider Dv).
  c.expect(d.kv, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.expect(d.table, sweep::kLastPlus1, Expect::kSkip);
  c.expect(d.out, sweep::kLastPlus1, Expect::kSkip);
  c.expect(d.out, sweep::kLastMinus1, Expect::kOk);    // Dv 63 <= D
  c.expect(d.table, sweep::kLastMinus1, Expect::kOk);  // 2 pages still hold 20 tokens
  c.also_named({"h_q", "h_kv", "page_size"});
  c.run();
}

TEST_CASE("bad input sweep: dsk_mla_cache_append") {
  Case c("dsk_mla_cache_append");
  const int ckv = c.in("c_kv", {3, 2, 32}, kF32), kpe = c.in("k_pe", {3, 2, 8}, kBF16),
            slots = c.in("slot_mapping", {3}, kI64, {0, 17, 63}),
            kv = c.out("kv_cache", {4, 16, 2, 40}, kBF16);
  c.call = [&] { return dsk_mla_cache_append(c.ctx, c[ckv], c[kpe], c[slots], c[kv]); };
  // More pages: valid, but not the test's memory.
  c.expect(kv, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.also_named({"page_size"});
  c.run();
}

TEST_CASE("bad input sweep: dsk_mla_absorb_q dsk_mla_absorb_out and dsk_mla_decompress_kv") {
  // H 2, dn 16, dv 8, Dc 32, Dr 8; fp8 wkv_b so that wkv_b_scale is present (and required).
  auto weights = [](Case& c, int* w, int* s) {
    *w = c.in("wkv_b", {48, 32}, kFP8);
    *s = c.in("wkv_b_scale", {1, 1}, kF32, {0.5});
    c.also_named({"dn", "dv", "H"});
  };
  int w = 0, s = 0;
  {
    Case c("dsk_mla_absorb_q");
    const int q = c.in("q_nope", {2, 2, 16}, kF32);
    weights(c, &w, &s);
    const int lat = c.out("q_latent", {2, 2, 32}, kBF16);
    c.call = [&] { return dsk_mla_absorb_q(c.ctx, c[q], c[w], c[s], c[lat]); };
    // dn is q_nope's last dimension and dv the rest of a head's rows.
    c.expect(q, sweep::kLastMinus1, Expect::kOk);
    c.expect(q, sweep::kLastPlus1, Expect::kSkip);
    c.run();
  }
  {
    Case c("dsk_mla_absorb_out");
    const int lat = c.in("o_latent", {2, 2, 32}, kF32);
    weights(c, &w, &s);
    const int o = c.out("o", {2, 2, 8}, kF32);
    c.call = [&] { return dsk_mla_absorb_out(c.ctx, c[lat], c[w], c[s], c[o]); };
    // dv is o's last dimension and dn the rest of a head's rows.
    c.expect(o, sweep::kLastMinus1, Expect::kOk);
    c.expect(o, sweep::kLastPlus1, Expect::kSkip);
    c.run();
  }
  {
    Case c("dsk_mla_decompress_kv");
    // k_pe is optional, but k is sized for it: without it the call is invalid.
    const int ckv = c.in("c_kv", {2, 32}, kBF16), kpe = c.opt_in("k_pe", {2, 8}, kF32);
    weights(c, &w, &s);
    const int k = c.out("k", {2, 2, 24}, kF32), v = c.out("v", {2, 2, 8}, kBF16);
    c.call = [&] { return dsk_mla_decompress_kv(c.ctx, c[ckv], c[kpe], c[w], c[s], c[k], c[v]); };
    c.expect(kpe, sweep::kNull, Expect::kFail);
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_mla_prefill") {
  // B 2, q lens {3, 5}, k lens {4, 6}, H 4, Hk 2, Dqk 40, Dv 24. cu_seqlens_k may be NULL only
  // when the key lengths are the query lengths: here it is required.
  Case c("dsk_mla_prefill");
  const int q = c.in("q", {8, 4, 40}, kBF16), k = c.in("k", {10, 2, 40}, kBF16),
            v = c.in("v", {10, 2, 24}, kBF16), cq = c.in("cu_seqlens_q", {3}, kI32, {0, 3, 8}),
            ck = c.in("cu_seqlens_k", {3}, kI32, {0, 4, 10}), o = c.out("out", {8, 4, 24}, kBF16),
            lse = c.opt_out("lse", {4, 8}, kF32);
  c.call = [&] {
    return dsk_mla_prefill(c.ctx, c[q], c[k], c[v], c[cq], c[ck], 0.3f, 1, c[o], c[lse]);
  };
  c.run();
}
