// The CPU backend's MLA prefill and cache append entries (lib/cpu/mla_prefill.cpp,
// lib/cpu/mla_append.cpp) called directly, against naive formulas evaluated in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk.h"

namespace {

DLDataType dl_dtype(int32_t id) {
  switch (id) {
    case DSK_DTYPE_BF16:
      return DLDataType{kDLBfloat, 16, 1};
    case DSK_DTYPE_F16:
      return DLDataType{kDLFloat, 16, 1};
    case DSK_DTYPE_F32:
      return DLDataType{kDLFloat, 32, 1};
    case DSK_DTYPE_INT32:
      return DLDataType{kDLInt, 32, 1};
    default:
      return DLDataType{kDLInt, 64, 1};
  }
}

// A host tensor over a byte buffer, with explicit element strides (row-major by default).
struct HostT {
  std::vector<uint8_t> bytes;
  std::vector<int64_t> shape, strides;
  int32_t dtype = 0;
  DLTensor dl{};

  HostT(int32_t id, std::vector<int64_t> s, std::vector<int64_t> st = {}, int64_t span = -1)
      : shape(std::move(s)), strides(std::move(st)), dtype(id) {
    if (strides.empty()) {
      strides.assign(shape.size(), 1);
      for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    }
    if (span < 0) {
      span = 1;
      for (size_t d = 0; d < shape.size(); ++d) span += (shape[d] - 1) * strides[d];
    }
    bytes.assign(static_cast<size_t>(span) * dsk::dtype_id_size(id), 0);
    dl.data = bytes.data();
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dl_dtype(id);
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
  HostT(const HostT&) = delete;
  HostT& operator=(const HostT&) = delete;

  int64_t offset(std::initializer_list<int64_t> idx) const {
    int64_t o = 0;
    size_t d = 0;
    for (int64_t i : idx) o += i * strides[d++];
    return o;
  }
  uint8_t* at(int64_t off) {
    return bytes.data() + off * static_cast<int64_t>(dsk::dtype_id_size(dtype));
  }
  float get(std::initializer_list<int64_t> idx) { return dsk::load_as_f32(dtype, at(offset(idx))); }
  void set(std::initializer_list<int64_t> idx, float v) {
    dsk::store_from_f32(dtype, v, at(offset(idx)));
  }
};

void set_i32(HostT& t, int64_t i, int32_t v) { std::memcpy(t.at(i * t.strides[0]), &v, 4); }

struct PrefillCase {
  int32_t dtype;
  std::vector<int32_t> lq, lk;  // per-request lengths
  int64_t h, hk, dqk, dv;
  bool causal;
  bool strided;  // non-contiguous last dims and padded rows
};

// Runs one case through dsk::cpu::mla_prefill and checks out and lse against double math.
void check_prefill(const PrefillCase& c, uint64_t seed) {
  const auto batch = static_cast<int64_t>(c.lq.size());
  int64_t tq = 0, tk = 0;
  for (int32_t x : c.lq) tq += x;
  for (int32_t x : c.lk) tk += x;
  auto dims = [&](int64_t h, int64_t d) -> std::vector<int64_t> {
    if (!c.strided) return {};
    // Rows padded, heads padded, last dim stepping 2.
    return {(h + 1) * (2 * d + 3), 2 * d + 3, 2};
  };
  HostT q(c.dtype, {tq, c.h, c.dqk}, dims(c.h, c.dqk));
  HostT k(c.dtype, {tk, c.hk, c.dqk}, dims(c.hk, c.dqk));
  HostT v(c.dtype, {tk, c.hk, c.dv}, dims(c.hk, c.dv));
  HostT out(c.dtype, {tq, c.h, c.dv}, dims(c.h, c.dv));
  HostT lse(DSK_DTYPE_F32, {c.h, tq},
            c.strided ? std::vector<int64_t>{1, c.h + 1} : std::vector<int64_t>{});
  HostT cu_q(DSK_DTYPE_INT32, {batch + 1});
  HostT cu_k(DSK_DTYPE_INT32, {batch + 1});
  std::vector<int64_t> cq(1, 0), ck(1, 0);
  for (int64_t b = 0; b < batch; ++b) {
    cq.push_back(cq.back() + c.lq[static_cast<size_t>(b)]);
    ck.push_back(ck.back() + c.lk[static_cast<size_t>(b)]);
  }
  for (int64_t b = 0; b <= batch; ++b) {
    set_i32(cu_q, b, static_cast<int32_t>(cq[static_cast<size_t>(b)]));
    set_i32(cu_k, b, static_cast<int32_t>(ck[static_cast<size_t>(b)]));
  }
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t t = 0; t < tq; ++t)
    for (int64_t h = 0; h < c.h; ++h)
      for (int64_t d = 0; d < c.dqk; ++d) q.set({t, h, d}, nd(rng));
  for (int64_t t = 0; t < tk; ++t)
    for (int64_t h = 0; h < c.hk; ++h) {
      for (int64_t d = 0; d < c.dqk; ++d) k.set({t, h, d}, nd(rng));
      for (int64_t d = 0; d < c.dv; ++d) v.set({t, h, d}, nd(rng));
    }
  // Sentinels: every output element must be written.
  for (int64_t t = 0; t < tq; ++t)
    for (int64_t h = 0; h < c.h; ++h) {
      for (int64_t d = 0; d < c.dv; ++d) out.set({t, h, d}, 12345.0f);
      lse.set({h, t}, 12345.0f);
    }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dqk));
  dsk_exec ex{};
  const dsk_status st = dsk::cpu::mla_prefill(&ex, &q.dl, &k.dl, &v.dl, &cu_q.dl, &cu_k.dl, &out.dl,
                                              &lse.dl, scale, c.causal ? 1 : 0);
  REQUIRE_MESSAGE(st == DSK_OK, dsk::cpu::last_error());

  int64_t bad = 0;
  std::vector<double> s, o(static_cast<size_t>(c.dv));
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t nq = c.lq[static_cast<size_t>(b)];
    const int64_t nk = c.lk[static_cast<size_t>(b)];
    for (int64_t h = 0; h < c.h; ++h) {
      const int64_t kh = h / (c.h / c.hk);
      for (int64_t j = 0; j < nq; ++j) {
        const int64_t tok = cq[static_cast<size_t>(b)] + j;
        const int64_t vis = c.causal ? std::min(std::max<int64_t>(nk - nq + j + 1, 0), nk) : nk;
        s.assign(static_cast<size_t>(vis), 0.0);
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t t = 0; t < vis; ++t) {
          double acc = 0;
          for (int64_t d = 0; d < c.dqk; ++d) {
            acc += static_cast<double>(q.get({tok, h, d})) *
                   k.get({ck[static_cast<size_t>(b)] + t, kh, d});
          }
          s[static_cast<size_t>(t)] = acc * scale;
          m = std::max(m, s[static_cast<size_t>(t)]);
        }
        double l = 0;
        std::fill(o.begin(), o.end(), 0.0);
        for (int64_t t = 0; t < vis; ++t) {
          const double p = std::exp(s[static_cast<size_t>(t)] - m);
          l += p;
          for (int64_t d = 0; d < c.dv; ++d) {
            o[static_cast<size_t>(d)] += p * v.get({ck[static_cast<size_t>(b)] + t, kh, d});
          }
        }
        const double want_lse =
            vis > 0 ? m + std::log(l) : -std::numeric_limits<double>::infinity();
        const double got_lse = lse.get({h, tok});
        const bool lse_ok =
            vis > 0 ? std::fabs(got_lse - want_lse) <= 1e-5 * std::max(1.0, std::fabs(want_lse))
                    : got_lse == want_lse;
        if (!lse_ok && bad++ < 5) {
          FAIL_CHECK("lse request " << b << " head " << h << " query " << j << ": " << got_lse
                                    << " vs " << want_lse);
        }
        for (int64_t d = 0; d < c.dv; ++d) {
          const double want = vis > 0 ? o[static_cast<size_t>(d)] / l : 0.0;
          const double got = out.get({tok, h, d});
          // One rounding to the output dtype (half an ulp) plus f32 noise.
          const double ulp = c.dtype == DSK_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048;
          if (!(std::fabs(got - want) <= ulp * std::fabs(want) + 1e-5) && bad++ < 5) {
            FAIL_CHECK("out request " << b << " head " << h << " query " << j << " col " << d
                                      << ": " << got << " vs " << want);
          }
        }
      }
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("cpu mla_prefill matches a double-precision formula") {
  const PrefillCase cases[] = {
      {DSK_DTYPE_BF16, {17}, {17}, 2, 2, 192, 128, true, false},
      {DSK_DTYPE_BF16, {1, 64, 65}, {1, 64, 65}, 2, 1, 192, 128, true, false},
      {DSK_DTYPE_F16, {3, 70, 0, 5}, {40, 130, 7, 2}, 4, 2, 64, 64, true, false},
      {DSK_DTYPE_F16, {3, 70, 5}, {40, 130, 2}, 4, 2, 64, 64, false, false},
      {DSK_DTYPE_BF16, {20, 9}, {150, 9}, 3, 3, 40, 24, true, true},
      {DSK_DTYPE_BF16, {130}, {200}, 2, 1, 8, 200, false, true},
  };
  uint64_t seed = 1;
  for (const PrefillCase& c : cases) {
    CAPTURE(seed);
    check_prefill(c, seed++);
  }
}

TEST_CASE("cpu mla_prefill gives the same bits for any thread count") {
  // Reuses the sizes of a large case through the public-free entry twice.
  const int64_t tq = 300, h = 4, dqk = 192, dv = 128;
  HostT q(DSK_DTYPE_BF16, {tq, h, dqk}), k(DSK_DTYPE_BF16, {tq, h, dqk}),
      v(DSK_DTYPE_BF16, {tq, h, dv});
  HostT out1(DSK_DTYPE_BF16, {tq, h, dv}), out2(DSK_DTYPE_BF16, {tq, h, dv});
  HostT lse1(DSK_DTYPE_F32, {h, tq}), lse2(DSK_DTYPE_F32, {h, tq});
  HostT cu(DSK_DTYPE_INT32, {3});
  set_i32(cu, 0, 0);
  set_i32(cu, 1, 100);
  set_i32(cu, 2, 300);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (HostT* t : {&q, &k, &v}) {
    const int64_t n = t->shape[0] * t->shape[1] * t->shape[2];
    for (int64_t i = 0; i < n; ++i) dsk::store_from_f32(t->dtype, u(rng), t->at(i));
  }
  dsk_exec ex{};
  const char* old = std::getenv("DSK_NUM_THREADS");
  const std::string saved = old != nullptr ? old : "";
  setenv("DSK_NUM_THREADS", "1", 1);
  REQUIRE(dsk::cpu::mla_prefill(&ex, &q.dl, &k.dl, &v.dl, &cu.dl, &cu.dl, &out1.dl, &lse1.dl, 0.07f,
                                1) == DSK_OK);
  setenv("DSK_NUM_THREADS", "3", 1);
  REQUIRE(dsk::cpu::mla_prefill(&ex, &q.dl, &k.dl, &v.dl, &cu.dl, &cu.dl, &out2.dl, &lse2.dl, 0.07f,
                                1) == DSK_OK);
  if (old != nullptr) {
    setenv("DSK_NUM_THREADS", saved.c_str(), 1);
  } else {
    unsetenv("DSK_NUM_THREADS");
  }
  CHECK(out1.bytes == out2.bytes);
  CHECK(lse1.bytes == lse2.bytes);
}

TEST_CASE("cpu mla_prefill rejects bad cu_seqlens before writing") {
  HostT q(DSK_DTYPE_BF16, {10, 2, 16}), k(DSK_DTYPE_BF16, {12, 2, 16}),
      v(DSK_DTYPE_BF16, {12, 2, 8});
  HostT out(DSK_DTYPE_BF16, {10, 2, 8});
  HostT cu_q(DSK_DTYPE_INT32, {3}), cu_k(DSK_DTYPE_INT32, {3});
  struct Bad {
    int32_t q[3], k[3];
    const char* message;
  };
  const Bad bads[] = {
      {{1, 5, 10}, {0, 6, 12}, "cu_seqlens_q[0] = 1, expected 0"},
      {{0, 5, 4}, {0, 6, 12}, "cu_seqlens_q[2] = 4, expected >= cu_seqlens_q[1] = 5"},
      {{0, 11, 10}, {0, 6, 12}, "cu_seqlens_q[1] = 11, expected at most 10"},
      {{0, 5, 9}, {0, 6, 12}, "cu_seqlens_q[2] = 9, expected 10"},
      {{0, 5, 10}, {0, 6, 13}, "cu_seqlens_k[2] = 13, expected at most 12"},
  };
  for (const Bad& b : bads) {
    for (int i = 0; i < 3; ++i) {
      set_i32(cu_q, i, b.q[i]);
      set_i32(cu_k, i, b.k[i]);
    }
    std::fill(out.bytes.begin(), out.bytes.end(), uint8_t{0x5A});
    dsk_exec ex{};
    CHECK(dsk::cpu::mla_prefill(&ex, &q.dl, &k.dl, &v.dl, &cu_q.dl, &cu_k.dl, &out.dl, nullptr,
                                0.5f, 1) == DSK_ERR_INVALID_ARGUMENT);
    const std::string msg = dsk::cpu::last_error();
    CHECK_MESSAGE(msg.find(b.message) != std::string::npos, msg);
    bool untouched = true;
    for (uint8_t x : out.bytes) untouched = untouched && x == 0x5A;
    CHECK(untouched);
  }
}

TEST_CASE("cpu mla_cache_append writes converted rows and skips slot -1") {
  const int64_t pages = 3, page = 16, hkv = 2, d = 20, dv = 12, tokens = 5;
  for (int32_t cache_dt : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    HostT cache(cache_dt, {pages, page, hkv, d});
    // c_kv f32 with a strided last dim, k_pe in the cache dtype.
    HostT c_kv(DSK_DTYPE_F32, {tokens, hkv, dv}, {hkv * 2 * dv, 2 * dv, 2});
    HostT k_pe(cache_dt, {tokens, hkv, d - dv});
    HostT slots(DSK_DTYPE_INT64, {tokens});
    const int64_t slot_values[tokens] = {17, -1, 0, 47, 5};
    for (int64_t t = 0; t < tokens; ++t) std::memcpy(slots.at(t), &slot_values[t], 8);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t h = 0; h < hkv; ++h) {
        for (int64_t i = 0; i < dv; ++i) c_kv.set({t, h, i}, u(rng));
        for (int64_t i = 0; i < d - dv; ++i) k_pe.set({t, h, i}, u(rng));
      }
    std::fill(cache.bytes.begin(), cache.bytes.end(), uint8_t{0x11});
    const std::vector<uint8_t> before = cache.bytes;
    dsk_exec ex{};
    REQUIRE(dsk::cpu::mla_cache_append(&ex, &c_kv.dl, &k_pe.dl, &slots.dl, &cache.dl) == DSK_OK);
    std::vector<uint8_t> want = before;
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t s = slot_values[t];
      if (s < 0) continue;
      for (int64_t h = 0; h < hkv; ++h)
        for (int64_t i = 0; i < d; ++i) {
          const int64_t off = cache.offset({s / page, s % page, h, i});
          if (i < dv) {
            dsk::convert_element(DSK_DTYPE_F32, c_kv.at(c_kv.offset({t, h, i})), cache_dt,
                                 want.data() + off * 2);
          } else {
            std::memcpy(want.data() + off * 2, k_pe.at(k_pe.offset({t, h, i - dv})), 2);
          }
        }
    }
    CHECK(cache.bytes == want);

    // A bad slot: an error naming it, nothing written.
    const int64_t bad = 48;
    std::memcpy(slots.at(3), &bad, 8);
    cache.bytes = before;
    CHECK(dsk::cpu::mla_cache_append(&ex, &c_kv.dl, &k_pe.dl, &slots.dl, &cache.dl) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk::cpu::last_error()) ==
          "slot_mapping[3] = 48, expected -1 or a slot in [0, 48) (num_pages * page_size)");
    CHECK(cache.bytes == before);
  }
}
