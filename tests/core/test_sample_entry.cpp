// Tests of the CPU sampling entries (dsk::cpu::sample, sampling_transform, speculative_verify)
// against a deliberately simple full-row implementation written here straight from the
// definitions of include/dsk/dsk_sampling.h (every float step through lib/common/sampling_math.h,
// the whole vocabulary sorted), bit for bit, over random rows and parameters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "common/sampling_math.h"
#include "core/backend_iface.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "cpu/sample_row.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_sampling.h"

namespace {

using dsk::f32_bits;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kF16{kDLFloat, 16, 1};
constexpr DLDataType kBF16{kDLBfloat, 16, 1};
constexpr DLDataType kI32{kDLInt, 32, 1};
constexpr DLDataType kI64{kDLInt, 64, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};

struct HostTensor {
  std::vector<int64_t> shape, strides;
  DLTensor t{};
  HostTensor() = default;
  HostTensor(void* data, DLDataType dt, std::vector<int64_t> s, std::vector<int64_t> st)
      : shape(std::move(s)), strides(std::move(st)) {
    t.data = data;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = dt;
    t.shape = shape.data();
    t.strides = strides.data();
  }
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;
  const DLTensor* dl() const { return &t; }
};

bool same_bits(float a, float b) {
  if (a != a || b != b) return a != a && b != b;
  return f32_bits(a) == f32_bits(b);
}

// ---- The simple definition ------------------------------------------------------------------

struct RowP {
  float t = 1.0f;
  int32_t k = 0;
  float p = 1.0f;
  float min_p = 0.0f;
  float rep = 1.0f, freq = 0.0f, pres = 0.0f;
  uint64_t seed = 0, offset = 0;
};

struct RowIn {
  std::vector<float> x;  // raw logits as f32
  std::vector<int64_t> out_ids, prompt_ids, bias_ids;
  std::vector<float> bias_vals;
  std::vector<uint32_t> mask;  // empty: all allowed
};

struct RefOut {
  uint8_t status = 0;
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<int32_t> top_ids;
  std::vector<float> top_lp;
  float raw_lp = 0.0f;
  std::vector<float> transformed;  // logits or probs
};

bool before(float za, int64_t a, float zb, int64_t b) { return dsk::sample_before(za, a, zb, b); }

RefOut reference(const RowIn& in, const RowP& p, int32_t top_n, bool top_raw, int transform) {
  using namespace dsk;
  const auto v = static_cast<int64_t>(in.x.size());
  std::vector<bool> allowed(static_cast<size_t>(v), true);
  if (!in.mask.empty())
    for (int64_t j = 0; j < v; ++j) allowed[j] = ((in.mask[j / 32] >> (j % 32)) & 1u) != 0;
  std::vector<float> x(in.x);
  for (int64_t j = 0; j < v; ++j)
    if (!allowed[j]) x[j] = -kInf;
  for (size_t i = 0; i < in.bias_ids.size(); ++i)
    x[in.bias_ids[i]] = sample_add_bias(x[in.bias_ids[i]], in.bias_vals[i]);
  std::vector<int32_t> count(static_cast<size_t>(v), 0);
  std::vector<bool> seen(static_cast<size_t>(v), false);
  for (int64_t id : in.out_ids) {
    ++count[id];
    seen[id] = true;
  }
  for (int64_t id : in.prompt_ids) seen[id] = true;
  std::vector<float> z(static_cast<size_t>(v));
  for (int64_t j = 0; j < v; ++j)
    z[j] = sample_temper(sample_penalize(x[j], seen[j], count[j], p.rep, p.freq, p.pres), p.t);
  RefOut r;
  bool bad = false;
  std::vector<int64_t> order;
  for (int64_t j = 0; j < v; ++j) {
    if (!allowed[j]) continue;
    if (sample_bad_logit(z[j]))
      bad = true;
    else if (z[j] != -kInf)
      order.push_back(j);
  }
  // Raw distribution.
  bool raw_bad = false;
  std::vector<int64_t> raw_order;
  for (int64_t j = 0; j < v; ++j) {
    if (sample_bad_logit(in.x[j]))
      raw_bad = true;
    else if (in.x[j] != -kInf)
      raw_order.push_back(j);
  }
  std::sort(raw_order.begin(), raw_order.end(),
            [&](int64_t a, int64_t b) { return before(in.x[a], a, in.x[b], b); });
  if (raw_order.empty()) raw_bad = true;
  const int32_t s = sample_weight_shift(v);
  float raw_m = 0.0f, raw_log_s = 0.0f;
  if (!raw_bad) {
    raw_m = in.x[raw_order[0]];
    uint64_t tot = 0;
    for (int64_t j : raw_order) tot += sample_weight_of(sample_rel_exp(in.x[j], raw_m), s);
    raw_log_s = sample_log_normalizer(tot, s);
  }
  if (bad || order.empty()) {
    r.status = bad ? DSK_SAMPLE_NONFINITE : DSK_SAMPLE_ALL_MASKED;
    r.id = 0;
    r.logprob = kNaN;
    r.raw_lp = kNaN;
    r.top_ids.assign(static_cast<size_t>(top_n), -1);
    r.top_lp.assign(static_cast<size_t>(top_n), kNaN);
    if (transform) r.transformed.assign(static_cast<size_t>(v), kNaN);
    return r;
  }
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return before(z[a], a, z[b], b); });
  const auto f = static_cast<int64_t>(order.size());
  const int64_t am = order[0];
  const float m = z[am];
  auto w_of = [&](int64_t j) { return sample_weight_of(sample_rel_exp(z[j], m), s); };
  int64_t kt = (p.k > 0 && p.k < f) ? p.k : f;
  if (p.p < 1.0f) {
    uint64_t tot = 0;
    for (int64_t i = 0; i < kt; ++i) tot += w_of(order[i]);
    const uint64_t target = sample_top_p_target(p.p, tot);
    uint64_t acc = 0;
    for (int64_t i = 0; i < kt; ++i) {
      acc += w_of(order[i]);
      if (acc >= target) {
        kt = i + 1;
        break;
      }
    }
  }
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < kt; ++i) {
    const int64_t j = order[i];
    if (p.min_p > 0.0f && !sample_min_p_keeps(sample_rel_exp(z[j], m), p.min_p)) continue;
    kept.push_back(j);
  }
  uint64_t total = 0;
  for (int64_t j : kept) total += w_of(j);
  const float log_s = sample_log_normalizer(total, s);
  r.status = DSK_SAMPLE_OK;
  if (p.t > 0.0f) {
    float best = 0.0f;
    int64_t id = -1;
    for (int64_t j : kept) {
      const float sc =
          sample_score(z[j], sample_gumbel_at(p.seed, p.offset, static_cast<uint32_t>(j)));
      if (id < 0 || sc > best || (sc == best && j < id)) {
        best = sc;
        id = j;
      }
    }
    r.id = static_cast<int32_t>(id);
  } else {
    r.id = static_cast<int32_t>(am);
  }
  r.logprob = sample_logprob(z[r.id], m, log_s);
  r.raw_lp = raw_bad ? kNaN : sample_logprob(in.x[r.id], raw_m, raw_log_s);
  for (int32_t i = 0; i < top_n; ++i) {
    if (!top_raw) {
      if (i < static_cast<int32_t>(kept.size())) {
        r.top_ids.push_back(static_cast<int32_t>(kept[i]));
        r.top_lp.push_back(sample_logprob(z[kept[i]], m, log_s));
      } else {
        r.top_ids.push_back(-1);
        r.top_lp.push_back(-kInf);
      }
    } else {
      if (i < static_cast<int32_t>(raw_order.size())) {
        r.top_ids.push_back(static_cast<int32_t>(raw_order[i]));
        r.top_lp.push_back(raw_bad ? kNaN : sample_logprob(in.x[raw_order[i]], raw_m, raw_log_s));
      } else {
        r.top_ids.push_back(-1);
        r.top_lp.push_back(raw_bad ? kNaN : -kInf);
      }
    }
  }
  if (transform) {
    const float norm = sample_normalizer(total, s);
    r.transformed.assign(static_cast<size_t>(v), transform == 2 ? 0.0f : -kInf);
    for (int64_t j : kept)
      r.transformed[j] = transform == 2 ? sample_prob(sample_rel_exp(z[j], m), norm) : z[j];
  }
  return r;
}

// ---- Random cases ---------------------------------------------------------------------------

struct Batch {
  int64_t b = 0, v = 0;
  DLDataType dtype = kF32;
  int64_t row_stride = 0, elem_stride = 1;
  std::vector<uint8_t> storage;  // logits
  std::vector<RowIn> rows;
  std::vector<RowP> params;
  bool per_row = true;
  bool int64_lists = false;
  bool has_out = false, has_prompt = false, has_bias = false, has_mask = false;
  int32_t top_n = 0;
  bool top_raw = false;
  bool want_logprobs = true, want_raw = true, want_status = true;
};

float round_to(DLDataType dt, float x, void* dst) {
  if (dt.bits == 32) {
    std::memcpy(dst, &x, 4);
    return x;
  }
  uint16_t h = dt.code == kDLBfloat ? dsk::f32_to_bf16(x) : dsk::f32_to_f16(x);
  std::memcpy(dst, &h, 2);
  return dt.code == kDLBfloat ? dsk::bf16_to_f32(h) : dsk::f16_to_f32(h);
}

float gen_logit(std::mt19937_64& rng, int kind, int64_t j) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  switch (kind) {
    case 0:
      return nd(rng);
    case 1:
      return nd(rng) * 6.0f;
    case 2: {  // peaked with a long low tail
      if (ud(rng) < 0.01f) return 8.0f + nd(rng);
      return -25.0f - 30.0f * ud(rng);
    }
    case 3:  // ties
      return std::round(nd(rng) * 2.0f);
    case 4:  // huge range
      return (ud(rng) - 0.5f) * 400.0f;
    default:
      return static_cast<float>(j % 7) * (ud(rng) < 0.5f ? -0.0f : 0.0f);
  }
}

Batch make_batch(std::mt19937_64& rng, int64_t b, int64_t v, DLDataType dt,
                 bool contiguous = false) {
  Batch bt;
  bt.b = b;
  bt.v = v;
  bt.dtype = dt;
  std::uniform_int_distribution<int> coin(0, 1);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  bt.elem_stride = coin(rng) && ud(rng) < 0.3f ? 2 : 1;
  if (contiguous) bt.elem_stride = 1;
  bt.row_stride = v * bt.elem_stride + (coin(rng) ? 3 : 0);
  const size_t es = dt.bits / 8;
  bt.storage.assign(static_cast<size_t>(b * bt.row_stride) * es + 16, 0xCD);
  bt.per_row = ud(rng) < 0.8f;
  bt.int64_lists = coin(rng) != 0;
  bt.has_out = ud(rng) < 0.5f;
  bt.has_prompt = ud(rng) < 0.4f;
  bt.has_bias = ud(rng) < 0.5f;
  bt.has_mask = ud(rng) < 0.4f;
  bt.top_n = ud(rng) < 0.5f ? std::uniform_int_distribution<int32_t>(1, 12)(rng) : 0;
  bt.top_raw = ud(rng) < 0.3f;
  bt.want_logprobs = ud(rng) < 0.7f;
  bt.want_raw = ud(rng) < 0.5f;
  bt.want_status = ud(rng) < 0.8f;
  auto pick_params = [&]() {
    RowP p;
    const float ts[] = {0.0f, 0.5f, 1.0f, 1.7f, 0.05f};
    p.t = ts[std::uniform_int_distribution<int>(0, 4)(rng)];
    const int32_t ks[] = {0,
                          0,
                          1,
                          3,
                          50,
                          static_cast<int32_t>(v),
                          static_cast<int32_t>(v + 5),
                          static_cast<int32_t>(std::max<int64_t>(1, v / 2))};
    p.k = ks[std::uniform_int_distribution<int>(0, 7)(rng)];
    const float ps[] = {1.0f, 1.0f, 0.95f, 0.5f, 0.01f, 1e-30f, 0.999f};
    p.p = ps[std::uniform_int_distribution<int>(0, 6)(rng)];
    const float mps[] = {0.0f, 0.0f, 0.05f, 0.5f, 1.0f, 1e-30f, 1e-12f};
    p.min_p = mps[std::uniform_int_distribution<int>(0, 6)(rng)];
    if (ud(rng) < 0.5f) {
      p.rep = 0.5f + ud(rng) * 1.5f;
      p.freq = ud(rng) - 0.3f;
      p.pres = ud(rng) - 0.5f;
    }
    p.seed = rng();
    p.offset = rng() % 4 == 0 ? rng() : rng() % 1000;
    return p;
  };
  const RowP scalar = pick_params();
  for (int64_t r = 0; r < b; ++r) {
    RowIn in;
    const int kind = std::uniform_int_distribution<int>(0, 5)(rng);
    // NaN / +inf only in some rows: at V = 129280 a few per 1000 tokens make a row NONFINITE.
    const bool dirty = ud(rng) < 0.3f;
    for (int64_t j = 0; j < v; ++j) {
      float x = gen_logit(rng, kind, j);
      const float u = ud(rng);
      if (u < 0.01f) x = -kInf;
      if (dirty && ud(rng) < 0.002f) x = kNaN;
      if (dirty && ud(rng) < 0.001f) x = kInf;
      const size_t off = static_cast<size_t>((r * bt.row_stride + j * bt.elem_stride)) * es;
      in.x.push_back(round_to(dt, x, bt.storage.data() + off));
    }
    std::uniform_int_distribution<int64_t> tok(0, v - 1);
    const int64_t lim = std::min<int64_t>(v, 40);
    if (bt.has_out) {
      const int64_t n = std::uniform_int_distribution<int64_t>(0, lim)(rng);
      for (int64_t i = 0; i < n; ++i)
        in.out_ids.push_back(i > 0 && coin(rng) ? in.out_ids[0] : tok(rng));
    }
    if (bt.has_prompt) {
      const int64_t n = std::uniform_int_distribution<int64_t>(0, lim)(rng);
      for (int64_t i = 0; i < n; ++i) in.prompt_ids.push_back(tok(rng));
    }
    if (bt.has_bias) {
      const int64_t n = std::uniform_int_distribution<int64_t>(0, 8)(rng);
      for (int64_t i = 0; i < n; ++i) {
        in.bias_ids.push_back(i > 0 && coin(rng) ? in.bias_ids[0] : tok(rng));
        const float u = ud(rng);
        in.bias_vals.push_back(u < 0.1f ? -kInf : u < 0.15f ? 1e30f : (ud(rng) - 0.5f) * 20.0f);
      }
    }
    if (bt.has_mask) {
      const int64_t nw = (v + 31) / 32;
      const float dens = ud(rng) < 0.1f ? 0.0f : ud(rng);
      for (int64_t w = 0; w < nw; ++w) {
        uint32_t word = 0;
        for (int i = 0; i < 32; ++i)
          if (ud(rng) < dens || ud(rng) < 0.02f * (dens > 0.0f)) word |= 1u << i;
        in.mask.push_back(word);
      }
    }
    bt.rows.push_back(std::move(in));
    bt.params.push_back(bt.per_row ? pick_params() : scalar);
  }
  return bt;
}

struct Run {
  std::vector<int32_t> ids;
  std::vector<float> logprobs, raw;
  std::vector<int32_t> top_ids;
  std::vector<float> top_lp;
  std::vector<uint8_t> status;
  std::vector<float> out;  // transform
  dsk_status st = DSK_OK;
  std::string error;
};

// Flattened inputs owning the memory the tensors point at.
struct Args {
  std::vector<float> temps, topps, minps, reps, freqs, press;
  std::vector<int32_t> topks;
  std::vector<int64_t> seeds, offsets;
  std::vector<int64_t> offs64[3], ids64[3];
  std::vector<int32_t> offs32[3], ids32[3];
  std::vector<float> bias_vals;
  std::vector<int32_t> mask;
  HostTensor logits, t_temp, t_topk, t_topp, t_minp, t_rep, t_freq, t_pres, t_seed, t_off;
  HostTensor t_offs[3], t_ids[3], t_bv, t_mask;
  dsk_sampling_args a{};
};

void emplace(HostTensor& h, void* data, DLDataType dt, std::vector<int64_t> s,
             std::vector<int64_t> st) {
  h.shape = std::move(s);
  h.strides = std::move(st);
  h.t = DLTensor{};
  h.t.data = data;
  h.t.device = DLDevice{kDLCPU, 0};
  h.t.ndim = static_cast<int32_t>(h.shape.size());
  h.t.dtype = dt;
  h.t.shape = h.shape.data();
  h.t.strides = h.strides.data();
}

void build_args(Batch& bt, Args& g) {
  const int64_t b = bt.b;
  emplace(g.logits, bt.storage.data(), bt.dtype, {b, bt.v}, {bt.row_stride, bt.elem_stride});
  dsk_sampling_args& a = g.a;
  a = dsk_sampling_args{};
  a.logits = g.logits.dl();
  const RowP& p0 = bt.params[0];
  a.temperature_value = p0.t;
  a.top_k_value = p0.k;
  a.top_p_value = p0.p;
  a.min_p_value = p0.min_p;
  a.repetition_value = p0.rep;
  a.frequency_value = p0.freq;
  a.presence_value = p0.pres;
  a.seed_value = p0.seed;
  a.offset_value = p0.offset;
  if (bt.per_row) {
    for (const RowP& p : bt.params) {
      g.temps.push_back(p.t);
      g.topks.push_back(p.k);
      g.topps.push_back(p.p);
      g.minps.push_back(p.min_p);
      g.reps.push_back(p.rep);
      g.freqs.push_back(p.freq);
      g.press.push_back(p.pres);
      g.seeds.push_back(static_cast<int64_t>(p.seed));
      g.offsets.push_back(static_cast<int64_t>(p.offset));
    }
    emplace(g.t_temp, g.temps.data(), kF32, {b}, {1});
    emplace(g.t_topk, g.topks.data(), kI32, {b}, {1});
    emplace(g.t_topp, g.topps.data(), kF32, {b}, {1});
    emplace(g.t_minp, g.minps.data(), kF32, {b}, {1});
    emplace(g.t_rep, g.reps.data(), kF32, {b}, {1});
    emplace(g.t_freq, g.freqs.data(), kF32, {b}, {1});
    emplace(g.t_pres, g.press.data(), kF32, {b}, {1});
    emplace(g.t_seed, g.seeds.data(), kI64, {b}, {1});
    emplace(g.t_off, g.offsets.data(), kI64, {b}, {1});
    a.temperature = g.t_temp.dl();
    a.top_k = g.t_topk.dl();
    a.top_p = g.t_topp.dl();
    a.min_p = g.t_minp.dl();
    a.repetition = g.t_rep.dl();
    a.frequency = g.t_freq.dl();
    a.presence = g.t_pres.dl();
    a.seed = g.t_seed.dl();
    a.offset = g.t_off.dl();
  }
  const bool has[3] = {bt.has_out, bt.has_prompt, bt.has_bias};
  for (int l = 0; l < 3; ++l) {
    if (!has[l]) continue;
    g.offs64[l].push_back(0);
    for (const RowIn& in : bt.rows) {
      const std::vector<int64_t>& ids = l == 0 ? in.out_ids : l == 1 ? in.prompt_ids : in.bias_ids;
      for (int64_t id : ids) g.ids64[l].push_back(id);
      if (l == 2)
        for (float bv : in.bias_vals) g.bias_vals.push_back(bv);
      g.offs64[l].push_back(static_cast<int64_t>(g.ids64[l].size()));
    }
    g.ids64[l].push_back(0);  // never empty
    if (l == 2) g.bias_vals.push_back(0.0f);
    const auto n = static_cast<int64_t>(g.ids64[l].size());
    if (bt.int64_lists) {
      emplace(g.t_offs[l], g.offs64[l].data(), kI64, {b + 1}, {1});
      emplace(g.t_ids[l], g.ids64[l].data(), kI64, {n}, {1});
    } else {
      for (int64_t o : g.offs64[l]) g.offs32[l].push_back(static_cast<int32_t>(o));
      for (int64_t o : g.ids64[l]) g.ids32[l].push_back(static_cast<int32_t>(o));
      emplace(g.t_offs[l], g.offs32[l].data(), kI32, {b + 1}, {1});
      emplace(g.t_ids[l], g.ids32[l].data(), kI32, {n}, {1});
    }
  }
  if (bt.has_out) {
    a.output_offsets = g.t_offs[0].dl();
    a.output_ids = g.t_ids[0].dl();
  }
  if (bt.has_prompt) {
    a.prompt_offsets = g.t_offs[1].dl();
    a.prompt_ids = g.t_ids[1].dl();
  }
  if (bt.has_bias) {
    emplace(g.t_bv, g.bias_vals.data(), kF32, {static_cast<int64_t>(g.bias_vals.size())}, {1});
    a.bias_offsets = g.t_offs[2].dl();
    a.bias_ids = g.t_ids[2].dl();
    a.bias_values = g.t_bv.dl();
  }
  if (bt.has_mask) {
    const int64_t nw = (bt.v + 31) / 32;
    for (const RowIn& in : bt.rows)
      for (uint32_t w : in.mask) g.mask.push_back(static_cast<int32_t>(w));
    emplace(g.t_mask, g.mask.data(), kI32, {b, nw}, {nw, 1});
    a.allowed_mask = g.t_mask.dl();
  }
}

Run run_sample(Batch& bt) {
  Args g;
  build_args(bt, g);
  Run r;
  const int64_t b = bt.b;
  const int32_t n = bt.top_n;
  r.ids.assign(static_cast<size_t>(b), -77);
  r.logprobs.assign(static_cast<size_t>(b), -77.0f);
  r.raw.assign(static_cast<size_t>(b), -77.0f);
  r.top_ids.assign(static_cast<size_t>(b * std::max(n, 1)), -77);
  r.top_lp.assign(static_cast<size_t>(b * std::max(n, 1)), -77.0f);
  r.status.assign(static_cast<size_t>(b), 0xEE);
  HostTensor ti(r.ids.data(), kI32, {b}, {1});
  HostTensor tl(r.logprobs.data(), kF32, {b}, {1});
  HostTensor tr(r.raw.data(), kF32, {b}, {1});
  HostTensor tti(r.top_ids.data(), kI32, {b, n}, {n, 1});
  HostTensor ttl(r.top_lp.data(), kF32, {b, n}, {n, 1});
  HostTensor ts(r.status.data(), kU8, {b}, {1});
  g.a.ids = ti.dl();
  g.a.logprobs = bt.want_logprobs ? tl.dl() : nullptr;
  g.a.raw_logprobs = bt.want_raw ? tr.dl() : nullptr;
  g.a.top_ids = n > 0 ? tti.dl() : nullptr;
  g.a.top_logprobs = n > 0 ? ttl.dl() : nullptr;
  g.a.status = bt.want_status ? ts.dl() : nullptr;
  g.a.top_source = bt.top_raw ? DSK_LOGPROBS_RAW : DSK_LOGPROBS_PROCESSED;
  dsk_exec ex{};
  r.st = dsk::cpu::sample(&ex, &g.a);
  if (r.st != DSK_OK) r.error = dsk::cpu::last_error();
  return r;
}

Run run_transform(Batch& bt, int probs, DLDataType out_dt) {
  Args g;
  build_args(bt, g);
  Run r;
  const int64_t b = bt.b;
  const int64_t v = bt.v;
  std::vector<uint8_t> out(static_cast<size_t>(b * v * (out_dt.bits / 8)), 0xAB);
  r.status.assign(static_cast<size_t>(b), 0xEE);
  HostTensor to(out.data(), out_dt, {b, v}, {v, 1});
  HostTensor ts(r.status.data(), kU8, {b}, {1});
  g.a.status = ts.dl();
  dsk_exec ex{};
  r.st = dsk::cpu::sampling_transform(&ex, &g.a, to.dl(), probs);
  if (r.st != DSK_OK) r.error = dsk::cpu::last_error();
  const int32_t id = dsk::dtype_id_of(out_dt);
  for (int64_t i = 0; i < b * v; ++i)
    r.out.push_back(dsk::load_as_f32(id, out.data() + i * (out_dt.bits / 8)));
  return r;
}

float rounded(DLDataType dt, float x) {
  uint8_t buf[4];
  return round_to(dt, x, buf);
}

void check_batch(Batch& bt, const Run& r) {
  REQUIRE_MESSAGE(r.st == DSK_OK, r.error);
  for (int64_t row = 0; row < bt.b; ++row) {
    const RefOut e = reference(bt.rows[row], bt.params[row], bt.top_n, bt.top_raw, 0);
    INFO("row " << row << " V " << bt.v << " T " << bt.params[row].t << " k " << bt.params[row].k
                << " p " << bt.params[row].p << " min_p " << bt.params[row].min_p);
    CHECK(r.ids[row] == e.id);
    if (bt.want_status) CHECK(static_cast<int>(r.status[row]) == static_cast<int>(e.status));
    if (bt.want_logprobs)
      CHECK_MESSAGE(same_bits(r.logprobs[row], e.logprob), r.logprobs[row] << " vs " << e.logprob);
    if (bt.want_raw)
      CHECK_MESSAGE(same_bits(r.raw[row], e.raw_lp), r.raw[row] << " vs " << e.raw_lp);
    for (int32_t i = 0; i < bt.top_n; ++i) {
      CHECK(r.top_ids[row * bt.top_n + i] == e.top_ids[i]);
      CHECK_MESSAGE(same_bits(r.top_lp[row * bt.top_n + i], e.top_lp[i]),
                    "top " << i << ": " << r.top_lp[row * bt.top_n + i] << " vs " << e.top_lp[i]);
    }
  }
}

struct EnvThreads {
  explicit EnvThreads(const char* n) { setenv("DSK_NUM_THREADS", n, 1); }
  ~EnvThreads() { unsetenv("DSK_NUM_THREADS"); }
};

}  // namespace

TEST_CASE("cpu sample: random rows equal the simple definition bit for bit") {
  std::mt19937_64 rng(12345);
  const int64_t vs[] = {1, 2, 5, 31, 64, 65, 100, 257, 1000, 4099};
  const DLDataType dts[] = {kF32, kBF16, kF16};
  int cases = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int64_t v = vs[iter % 10];
    const int64_t b = std::uniform_int_distribution<int64_t>(1, 6)(rng);
    Batch bt = make_batch(rng, b, v, dts[(iter / 10) % 3]);
    const Run r = run_sample(bt);
    check_batch(bt, r);
    ++cases;
  }
  CHECK(cases == 300);
}

TEST_CASE("cpu sample: large vocabulary, peaked and flat rows") {
  std::mt19937_64 rng(777);
  const DLDataType dts[] = {kF32, kBF16, kF16};
  for (int iter = 0; iter < 12; ++iter) {
    Batch bt = make_batch(rng, 3, 129280 / (iter % 3 + 1) + iter, dts[iter % 3]);
    const Run r = run_sample(bt);
    check_batch(bt, r);
  }
}

// Rows without NaN or +inf (the random batches above hold a few per 1000 tokens in about a third
// of their rows, which makes those long rows NONFINITE): the top-p and top-k histogram selections,
// the min-p and top-n paths after them and the race's prunes run on real rows, also with many ties
// (bf16, rounded values).
TEST_CASE("cpu sample: top-p (with or without top-k) on finite long rows, vector and scalar") {
  std::mt19937_64 rng(31337);
  const DLDataType dts[] = {kF32, kBF16, kF16};
  const int64_t vs[] = {129280, 70001, 4099, 129280};
  for (int iter = 0; iter < 16; ++iter) {
    const int64_t v = vs[iter % 4];
    Batch bt = make_batch(rng, 3, v, dts[iter % 3], iter % 2 == 0);
    const size_t es = bt.dtype.bits / 8;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    for (int64_t r = 0; r < bt.b; ++r) {
      const int kind = (iter + static_cast<int>(r)) % 4;
      for (int64_t j = 0; j < v; ++j) {
        float x = kind == 0   ? nd(rng)
                  : kind == 1 ? std::round(nd(rng) * 3.0f) * 0.5f
                  : kind == 2 ? nd(rng) * 2.0f + (ud(rng) < 5e-5f ? 12.0f : 0.0f)
                              : nd(rng) * 8.0f;
        if (ud(rng) < 0.01f) x = -kInf;
        const size_t off = static_cast<size_t>((r * bt.row_stride + j * bt.elem_stride)) * es;
        bt.rows[r].x[j] = round_to(bt.dtype, x, bt.storage.data() + off);
      }
    }
    const float ts[] = {0.6f, 1.0f, 0.3f, 2.0f};
    const float ps[] = {0.95f, 0.5f, 0.999f, 0.2f, 0.9999f};
    const float mps[] = {0.0f, 0.0f, 0.05f, 1e-4f};
    for (size_t r = 0; r < bt.params.size(); ++r) {
      RowP& pr = bt.params[r];
      if (r == 0 || bt.per_row) {
        pr.t = ts[std::uniform_int_distribution<int>(0, 3)(rng)];
        const int32_t ks[] = {0, 0, 0, 50, 3000};
        pr.k = ks[std::uniform_int_distribution<int>(0, 4)(rng)];
        pr.p = ps[std::uniform_int_distribution<int>(0, 4)(rng)];
        pr.min_p = mps[std::uniform_int_distribution<int>(0, 3)(rng)];
      } else {
        pr = bt.params[0];
      }
    }
    INFO("iter " << iter);
    const Run vr = run_sample(bt);
    check_batch(bt, vr);
    dsk::cpu::sampling::g_force_scalar_kernels = true;
    const Run sr = run_sample(bt);
    dsk::cpu::sampling::g_force_scalar_kernels = false;
    CHECK(sr.ids == vr.ids);
    CHECK(sr.top_ids == vr.top_ids);
    if (iter % 4 == 3) {
      const Run tr = run_transform(bt, iter % 8 == 3, kF32);
      REQUIRE_MESSAGE(tr.st == DSK_OK, tr.error);
      for (int64_t row = 0; row < bt.b; ++row) {
        const RefOut e = reference(bt.rows[row], bt.params[row], 0, false, iter % 8 == 3 ? 2 : 1);
        int bad = 0;
        for (int64_t j = 0; j < v; ++j)
          if (!same_bits(tr.out[row * v + j], e.transformed[j])) ++bad;
        CHECK(bad == 0);
      }
    }
  }
}

// A single long row splits its race and mass passes over the threads (kMinTokensPerShare tokens
// each at least, from 4 threads a row): the same results for 1, 4 and 6 threads, and the
// definition's.
TEST_CASE("cpu sample: a single long row split over threads gives the same results") {
  std::mt19937_64 rng(4711);
  const DLDataType dts[] = {kBF16, kF32};
  for (int iter = 0; iter < 8; ++iter) {
    const int64_t v = iter % 4 == 3 ? 70001 : 129280;
    Batch bt = make_batch(rng, 1, v, dts[iter % 2], true);
    const size_t es = bt.dtype.bits / 8;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    for (int64_t j = 0; j < v; ++j) {
      float x = iter % 2 == 0 ? nd(rng) : nd(rng) * 2.0f + (ud(rng) < 5e-5f ? 12.0f : 0.0f);
      if (ud(rng) < 0.01f) x = -kInf;
      bt.rows[0].x[j] = round_to(bt.dtype, x, bt.storage.data() + static_cast<size_t>(j) * es);
    }
    RowP& pr = bt.params[0];
    const float ts[] = {0.6f, 1.0f, 0.0f, 0.6f};
    pr.t = ts[iter % 4];
    pr.k = 0;
    const float ps[] = {1.0f, 0.95f, 0.5f, 1.0f};
    pr.p = ps[(iter / 2) % 4];
    pr.min_p = iter % 3 == 2 ? 0.05f : 0.0f;
    bt.top_n = iter % 2 == 0 ? 4 : 0;
    bt.want_logprobs = true;
    INFO("iter " << iter);
    Run one, three, six;
    {
      EnvThreads e("1");
      one = run_sample(bt);
    }
    {
      EnvThreads e("4");
      three = run_sample(bt);
    }
    {
      EnvThreads e("6");
      six = run_sample(bt);
    }
    check_batch(bt, one);
    check_batch(bt, three);
    check_batch(bt, six);
    CHECK(one.ids == three.ids);
    CHECK(one.ids == six.ids);
    CHECK(std::memcmp(one.logprobs.data(), six.logprobs.data(), one.logprobs.size() * 4) == 0);
  }
}

// Top-p whose target is exactly the mass of the first histogram bucket: tokens 5 (z = 0) and
// 7 (z = -1e-30, another bucket) both have W = 2^s, p = 0.5: the prefix is token 5 alone.
TEST_CASE("cpu sample: top-p target equal to a whole bucket's mass") {
  for (int64_t v : {int64_t{100}, int64_t{129280}}) {
    Batch bt;
    bt.b = 2;
    bt.v = v;
    bt.dtype = kF32;
    bt.row_stride = v;
    bt.storage.assign(static_cast<size_t>(2 * v) * 4, 0);
    bt.top_n = 3;
    for (int64_t r = 0; r < 2; ++r) {
      RowIn in;
      for (int64_t j = 0; j < v; ++j) {
        const float x = j == 5 ? 0.0f : j == 7 ? -1e-30f : -kInf;
        in.x.push_back(round_to(kF32, x, bt.storage.data() + static_cast<size_t>(r * v + j) * 4));
      }
      bt.rows.push_back(in);
      RowP pr;
      pr.t = 1.0f;
      pr.p = 0.5f;
      pr.seed = static_cast<uint64_t>(r) * 977 + 3;
      bt.params.push_back(pr);
    }
    for (uint64_t seed = 0; seed < 8; ++seed) {
      bt.params[0].seed = seed;
      bt.params[1].seed = seed + 100;
      const Run r = run_sample(bt);
      check_batch(bt, r);
      CHECK(r.ids[0] == 5);
      CHECK(r.ids[1] == 5);
      CHECK(r.logprobs[0] == 0.0f);
    }
  }
}

// The AVX-512 race prunes with the largest Gumbel value of each group of 2^20 words, which
// needs sample_gumbel nondecreasing in u over all 2^23 values.
TEST_CASE("cpu sample: sample_gumbel is nondecreasing over every u") {
  float prev = -kInf;
  int64_t bad = 0;
  for (uint32_t h = 0; h < (1u << 23); ++h) {
    const float g = dsk::sample_gumbel(h << 9);
    if (g < prev) ++bad;
    prev = g;
  }
  CHECK(bad == 0);
}

TEST_CASE("cpu sample: the scalar dense kernels give the same results") {
  std::mt19937_64 rng(2024);
  const DLDataType dts[] = {kF32, kBF16, kF16};
  for (int iter = 0; iter < 60; ++iter) {
    Batch bt = make_batch(rng, 3, 100 + 997 * iter, dts[iter % 3], true);
    dsk::cpu::sampling::g_force_scalar_kernels = true;
    const Run s = run_sample(bt);
    dsk::cpu::sampling::g_force_scalar_kernels = false;
    const Run v = run_sample(bt);
    REQUIRE(s.st == DSK_OK);
    REQUIRE(v.st == DSK_OK);
    CHECK(s.ids == v.ids);
    CHECK(s.top_ids == v.top_ids);
    CHECK(std::memcmp(s.logprobs.data(), v.logprobs.data(), s.logprobs.size() * 4) == 0);
    check_batch(bt, s);
  }
}

TEST_CASE("cpu sample: results do not depend on the thread count or the batch") {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 6; ++iter) {
    Batch bt = make_batch(rng, 9, 3000 + iter * 1000, iter % 2 ? kBF16 : kF32);
    bt.top_n = 5;
    bt.want_logprobs = bt.want_raw = bt.want_status = true;
    Run one, many;
    {
      EnvThreads e("1");
      one = run_sample(bt);
    }
    {
      EnvThreads e("7");
      many = run_sample(bt);
    }
    REQUIRE(one.st == DSK_OK);
    REQUIRE(many.st == DSK_OK);
    CHECK(one.ids == many.ids);
    CHECK(one.top_ids == many.top_ids);
    CHECK(std::memcmp(one.logprobs.data(), many.logprobs.data(), one.logprobs.size() * 4) == 0);
    CHECK(std::memcmp(one.top_lp.data(), many.top_lp.data(), one.top_lp.size() * 4) == 0);
    // Row 4 alone gives the same as inside the batch.
    Batch single = bt;
    single.b = 1;
    single.rows = {bt.rows[4]};
    single.params = {bt.params[4]};
    single.per_row = true;
    const size_t es = bt.dtype.bits / 8;
    single.storage.assign(bt.storage.begin() + static_cast<int64_t>(4 * bt.row_stride * es),
                          bt.storage.begin() + static_cast<int64_t>(5 * bt.row_stride * es));
    const Run s = run_sample(single);
    REQUIRE(s.st == DSK_OK);
    CHECK(s.ids[0] == one.ids[4]);
  }
}

TEST_CASE("cpu sampling_transform: logits and probs equal the definition") {
  std::mt19937_64 rng(4242);
  const int64_t vs[] = {1, 3, 64, 100, 777, 5000};
  const DLDataType outs[] = {kF32, kBF16, kF16};
  for (int iter = 0; iter < 120; ++iter) {
    const int64_t v = vs[iter % 6];
    Batch bt = make_batch(rng, 4, v, iter % 3 == 0 ? kBF16 : kF32);
    const int probs = (iter / 6) % 2;
    const DLDataType od = probs ? kF32 : outs[(iter / 12) % 3];
    const Run r = run_transform(bt, probs, od);
    REQUIRE_MESSAGE(r.st == DSK_OK, r.error);
    for (int64_t row = 0; row < bt.b; ++row) {
      const RefOut e = reference(bt.rows[row], bt.params[row], 0, false, probs ? 2 : 1);
      CHECK(static_cast<int>(r.status[row]) == static_cast<int>(e.status));
      int bad = 0;
      for (int64_t j = 0; j < v; ++j) {
        const float want = rounded(od, e.transformed[j]);
        if (!same_bits(r.out[row * v + j], want)) {
          if (bad++ < 3)
            FAIL_CHECK("row " << row << " token " << j << ": " << r.out[row * v + j] << " vs "
                              << want << " (k " << bt.params[row].k << " p " << bt.params[row].p
                              << " min_p " << bt.params[row].min_p << ")");
        }
      }
      CHECK(bad == 0);
    }
  }
}

namespace {

// A random batch without token lists or masks, for rows whose values a test sets.
Batch make_plain_batch(std::mt19937_64& rng, int64_t b, int64_t v, DLDataType dt) {
  Batch bt = make_batch(rng, b, v, dt);
  bt.has_mask = bt.has_bias = bt.has_out = bt.has_prompt = false;
  for (RowIn& in : bt.rows) {
    in.mask.clear();
    in.bias_ids.clear();
    in.bias_vals.clear();
    in.out_ids.clear();
    in.prompt_ids.clear();
  }
  return bt;
}

}  // namespace

TEST_CASE("cpu sample: edge cases") {
  // V = 1, k >= V, p = 1, min_p = 1, all -inf, NaN rows, greedy mixed with random rows.
  std::mt19937_64 rng(5);
  Batch bt = make_plain_batch(rng, 6, 50, kF32);
  auto set = [&](int64_t r, int64_t j, float x) {
    bt.rows[r].x[j] = x;
    std::memcpy(bt.storage.data() + (r * bt.row_stride + j * bt.elem_stride) * 4, &x, 4);
  };
  for (int64_t j = 0; j < 50; ++j) {
    set(0, j, -kInf);
    set(1, j, kNaN);
    set(2, j, j == 17 ? 3.0f : 1.0f);
    set(3, j, static_cast<float>(j % 5));
    set(4, j, 0.5f);
    set(5, j, j == 9 ? kInf : 0.0f);
  }
  bt.per_row = true;
  bt.params[0] = RowP{};
  bt.params[1] = RowP{};
  bt.params[2] = RowP{0.0f, 0, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f, 1, 2};     // greedy, min_p = 1
  bt.params[3] = RowP{1.0f, 1000, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f, 3, 4};  // k >= V, min_p = 1
  bt.params[4] = RowP{2.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 5, 6};     // flat
  bt.params[5] = RowP{};
  bt.top_n = 4;
  bt.top_raw = false;
  bt.want_logprobs = bt.want_raw = bt.want_status = true;
  const Run r = run_sample(bt);
  check_batch(bt, r);
  CHECK(r.status[0] == DSK_SAMPLE_ALL_MASKED);
  CHECK(r.status[1] == DSK_SAMPLE_NONFINITE);
  CHECK(r.status[5] == DSK_SAMPLE_NONFINITE);
  CHECK(r.ids[2] == 17);
  CHECK(r.top_ids[2 * 4 + 1] == -1);
  // min_p = 1 keeps the max ties only: ids 4, 9, ... (z = 4).
  CHECK(r.ids[3] % 5 == 4);
  CHECK(r.top_ids[3 * 4 + 0] == 4);
  CHECK(r.top_ids[3 * 4 + 1] == 9);
  CHECK(r.logprobs[4] == doctest::Approx(-std::log(50.0)).epsilon(1e-5));
}

// bf16 rows: whole 64-token blocks take their maxima over 16-bit keys of the bf16 bits, the
// tail and masked blocks over f32 keys; both must order signed zeros, infinities, NaN of either
// sign and negative rows as sample_key does.
TEST_CASE("cpu sample: bf16 rows of signed zeros, infinities, NaN and negative values") {
  std::mt19937_64 rng(99);
  const int64_t v = 200;  // three whole blocks and a tail of 8
  Batch bt = make_plain_batch(rng, 8, v, kBF16);
  auto set = [&](int64_t r, int64_t j, float x) {
    bt.rows[r].x[j] =
        round_to(kBF16, x, bt.storage.data() + (r * bt.row_stride + j * bt.elem_stride) * 2);
  };
  float neg_nan;
  const uint32_t neg_nan_bits = 0xFFC10000u;
  std::memcpy(&neg_nan, &neg_nan_bits, 4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t j = 0; j < v; ++j) {
    set(0, j, j == 5 ? 0.0f : -0.0f);                     // -0 and +0 tie: the first token wins
    set(1, j, -1.0f - std::fabs(nd(rng)));                // every value negative
    set(2, j, j == 150 ? -1e30f : -kInf);                 // one finite value
    set(3, j, j == 70 ? kInf : nd(rng));                  // +inf: NONFINITE
    set(4, j, j == 130 ? neg_nan : nd(rng));              // a negative NaN: NONFINITE
    set(5, j, -kInf);                                     // ALL_MASKED
    set(6, j, j == 100 || j == 64 ? 3.0f : nd(rng));      // ties across blocks
    set(7, j, j == 199 || j == 63 ? 3.3e38f : -3.3e38f);  // the largest finite bf16, in the tail
  }
  set(1, 131, -0.5f);
  for (float t : {0.0f, 1.0f}) {
    INFO("temperature " << t);
    bt.per_row = true;
    for (RowP& p : bt.params) p = RowP{t, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 7, 8};
    bt.top_n = 2;
    bt.want_logprobs = bt.want_raw = bt.want_status = true;
    const Run r = run_sample(bt);
    check_batch(bt, r);
    CHECK(r.status[3] == DSK_SAMPLE_NONFINITE);
    CHECK(r.status[4] == DSK_SAMPLE_NONFINITE);
    CHECK(r.status[5] == DSK_SAMPLE_ALL_MASKED);
    CHECK(r.ids[2] == 150);
    if (t == 0.0f) {
      CHECK(r.ids[0] == 0);
      CHECK(r.ids[1] == 131);
      CHECK(r.ids[6] == 64);
      CHECK(r.ids[7] == 63);
    }
  }
}

TEST_CASE("cpu sample: per-row values and token lists are checked before writing") {
  std::mt19937_64 rng(8);
  auto expect_error = [](Batch& bt, const std::string& needle) {
    const Run r = run_sample(bt);
    CHECK(r.st == DSK_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE(r.error.find(needle) != std::string::npos, r.error);
    for (int32_t id : r.ids) CHECK(id == -77);
    for (uint8_t s : r.status) CHECK(s == 0xEE);
  };
  auto fresh = [&]() {
    Batch bt = make_batch(rng, 4, 100, kF32);
    bt.per_row = true;
    bt.want_status = true;
    return bt;
  };
  {
    Batch bt = fresh();
    bt.params[3].p = 1.5f;
    expect_error(bt, "params->top_ps[3] = 1.5, expected (0, 1]");
  }
  {
    Batch bt = fresh();
    bt.params[1].t = -1.0f;
    expect_error(bt, "params->temperatures[1] = -1");
  }
  {
    Batch bt = fresh();
    bt.params[2].k = -3;
    expect_error(bt, "params->top_ks[2] = -3");
  }
  {
    Batch bt = fresh();
    bt.params[0].min_p = kNaN;
    expect_error(bt, "params->min_ps[0]");
  }
  {
    Batch bt = fresh();
    bt.params[2].rep = 0.0f;
    expect_error(bt, "params->repetition_penalties[2]");
  }
  {
    Batch bt = fresh();
    bt.params[2].freq = kInf;
    expect_error(bt, "params->frequency_penalties[2]");
  }
  {
    Batch bt = fresh();
    bt.params[1].pres = kNaN;
    expect_error(bt, "params->presence_penalties[1]");
  }
  {
    Batch bt = fresh();
    bt.has_out = true;
    bt.rows[2].out_ids = {1, 2, 100};
    expect_error(bt, "(row 2), expected [0, 100)");
  }
  {
    Batch bt = fresh();
    bt.has_bias = true;
    bt.rows[1].bias_ids = {-1};
    bt.rows[1].bias_vals = {1.0f};
    expect_error(bt, "params->bias_ids[");
  }
  {
    // Decreasing offsets.
    Batch bt = fresh();
    bt.has_prompt = true;
    bt.rows[0].prompt_ids = {1, 2, 3};
    Args g;
    build_args(bt, g);
    if (bt.int64_lists)
      g.offs64[1][2] = 1;
    else
      g.offs32[1][2] = 1;
    std::vector<int32_t> ids(4, -77);
    HostTensor ti(ids.data(), kI32, {4}, {1});
    g.a.ids = ti.dl();
    dsk_exec ex{};
    CHECK(dsk::cpu::sample(&ex, &g.a) == DSK_ERR_INVALID_ARGUMENT);
    const std::string err = dsk::cpu::last_error();
    CHECK_MESSAGE(
        err.find("params->prompt_offsets[2] = 1 < prompt_offsets[1] = 3") != std::string::npos,
        err);
    for (int32_t id : ids) CHECK(id == -77);
  }
}

// ---- Speculative verification ---------------------------------------------------------------

namespace {

struct VerifyCase {
  int64_t b, n, v;
  std::vector<int64_t> drafts;  // [b, n]
  std::vector<float> q, p;      // [b, n, v], [b, n + 1, v]
  std::vector<uint64_t> seeds, offs;
  bool has_q = true;
  int32_t mode = DSK_VERIFY_SAMPLE;
};

struct VerifyOut {
  std::vector<int32_t> out, acc, emitted;
  dsk_status st;
  std::string error;
};

VerifyOut run_verify(VerifyCase& c) {
  VerifyOut o;
  o.out.assign(static_cast<size_t>(c.b * (c.n + 1)), -77);
  o.acc.assign(static_cast<size_t>(c.b), -77);
  o.emitted.assign(static_cast<size_t>(c.b), -77);
  std::vector<int64_t> seeds(c.seeds.begin(), c.seeds.end()), offs(c.offs.begin(), c.offs.end());
  HostTensor td(c.drafts.data(), kI64, {c.b, c.n}, {c.n, 1});
  HostTensor tq(c.q.data(), kF32, {c.b, c.n, c.v}, {c.n * c.v, c.v, 1});
  HostTensor tp(c.p.data(), kF32, {c.b, c.n + 1, c.v}, {(c.n + 1) * c.v, c.v, 1});
  HostTensor to(o.out.data(), kI32, {c.b, c.n + 1}, {c.n + 1, 1});
  HostTensor ta(o.acc.data(), kI32, {c.b}, {1});
  HostTensor te(o.emitted.data(), kI32, {c.b}, {1});
  HostTensor ts(seeds.data(), kI64, {c.b}, {1});
  HostTensor tf(offs.data(), kI64, {c.b}, {1});
  dsk_verify_args a{};
  a.mode = c.mode;
  a.seed = ts.dl();
  a.offset = tf.dl();
  a.draft_ids = td.dl();
  a.draft_probs = c.has_q && c.mode == DSK_VERIFY_SAMPLE ? tq.dl() : nullptr;
  a.target = tp.dl();
  a.out_ids = to.dl();
  a.accepted = ta.dl();
  a.emitted = te.dl();
  dsk_exec ex{};
  o.st = dsk::cpu::speculative_verify(&ex, &a);
  if (o.st != DSK_OK) o.error = dsk::cpu::last_error();
  return o;
}

// The definition, written plainly.
void verify_reference(const VerifyCase& c, int64_t row, std::vector<int32_t>& out, int32_t& acc) {
  using namespace dsk;
  const int64_t v = c.v;
  auto p = [&](int64_t i, int64_t j) { return c.p[(row * (c.n + 1) + i) * v + j]; };
  auto q = [&](int64_t i, int64_t j, int64_t t) {
    return c.has_q ? c.q[(row * c.n + i) * v + j] : (j == t ? 1.0f : 0.0f);
  };
  auto sample_w = [&](int64_t i, const std::vector<float>& r) {
    int32_t id = 0;
    float best = 0.0f;
    bool any = false;
    for (int64_t j = 0; j < v; ++j) {
      if (!(r[j] > 0.0f)) continue;
      const float s = verify_score(
          r[j], sample_gumbel_at(c.seeds[row], c.offs[row] + i, static_cast<uint32_t>(j)));
      if (!any || s > best) {
        best = s;
        id = static_cast<int32_t>(j);
        any = true;
      }
    }
    return id;
  };
  out.assign(static_cast<size_t>(c.n + 1), -1);
  acc = 0;
  for (int64_t i = 0; i <= c.n; ++i) {
    const int64_t t = i < c.n ? c.drafts[row * c.n + i] : -1;
    std::vector<float> r(static_cast<size_t>(v));
    if (c.mode == DSK_VERIFY_GREEDY) {
      int64_t am = 0;
      bool any = false;
      for (int64_t j = 0; j < v; ++j) {
        const float x = p(i, j);
        if (x != x) continue;
        if (!any || sample_before(x, j, p(i, am), am)) am = j;
        any = true;
      }
      if (t == am) {
        out[acc++] = static_cast<int32_t>(t);
        continue;
      }
      out[acc] = static_cast<int32_t>(am);
      return;
    }
    if (t < 0) {
      for (int64_t j = 0; j < v; ++j) r[j] = p(i, j);
      out[acc] = sample_w(i, r);
      return;
    }
    const float u = sample_accept_uniform(c.seeds[row], c.offs[row], static_cast<uint32_t>(i));
    if (verify_accepts(u, q(i, t, t), p(i, t))) {
      out[acc++] = static_cast<int32_t>(t);
      continue;
    }
    bool pos = false;
    for (int64_t j = 0; j < v; ++j) {
      r[j] = verify_residual(p(i, j), q(i, j, t));
      pos = pos || r[j] > 0.0f;
    }
    if (!pos)
      for (int64_t j = 0; j < v; ++j) r[j] = p(i, j);
    out[acc] = sample_w(i, r);
    return;
  }
}

VerifyCase random_verify(std::mt19937_64& rng, int64_t b, int64_t n, int64_t v, bool has_q,
                         int32_t mode) {
  VerifyCase c{b, n, v, {}, {}, {}, {}, {}, has_q, mode};
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  auto dist = [&](std::vector<float>& dst) {
    std::vector<float> w(static_cast<size_t>(v));
    float s = 0.0f;
    for (float& x : w) {
      x = ud(rng) < 0.3f ? 0.0f : std::pow(ud(rng), 3.0f);
      s += x;
    }
    for (float x : w) dst.push_back(s > 0.0f ? x / s : 0.0f);
  };
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < n; ++i) dist(c.q);
    for (int64_t i = 0; i <= n; ++i) dist(c.p);
    for (int64_t i = 0; i < n; ++i) {
      int64_t t = std::uniform_int_distribution<int64_t>(0, v - 1)(rng);
      if (mode == DSK_VERIFY_GREEDY && ud(rng) < 0.7f) {
        int64_t am = 0;
        for (int64_t j = 1; j < v; ++j)
          if (c.p[(r * (n + 1) + i) * v + j] > c.p[(r * (n + 1) + i) * v + am]) am = j;
        t = am;
      }
      if (ud(rng) < 0.05f) t = -1;
      c.drafts.push_back(t);
    }
    c.seeds.push_back(rng());
    c.offs.push_back(rng() % 100000);
  }
  return c;
}

}  // namespace

TEST_CASE("cpu speculative_verify: equals the definition") {
  std::mt19937_64 rng(31);
  for (int iter = 0; iter < 200; ++iter) {
    const int32_t mode = iter % 3 == 2 ? DSK_VERIFY_GREEDY : DSK_VERIFY_SAMPLE;
    VerifyCase c = random_verify(rng, 3, iter % 4, 1 + iter % 37, iter % 2 == 0, mode);
    const VerifyOut o = run_verify(c);
    REQUIRE_MESSAGE(o.st == DSK_OK, o.error);
    for (int64_t r = 0; r < c.b; ++r) {
      std::vector<int32_t> want;
      int32_t acc = 0;
      verify_reference(c, r, want, acc);
      CHECK(o.acc[r] == acc);
      CHECK(o.emitted[r] == acc + 1);
      for (int64_t i = 0; i <= c.n; ++i) CHECK(o.out[r * (c.n + 1) + i] == want[i]);
    }
  }
}

TEST_CASE("cpu speculative_verify: emitted tokens follow the target distribution") {
  // One draft (n = 1), V = 4: the first emitted token must be distributed as p_0.
  const std::vector<float> p0 = {0.1f, 0.2f, 0.3f, 0.4f};
  const std::vector<float> q0 = {0.4f, 0.3f, 0.2f, 0.1f};
  const int64_t rows = 20000;
  VerifyCase c{rows, 1, 4, {}, {}, {}, {}, {}, true, DSK_VERIFY_SAMPLE};
  std::mt19937_64 rng(1);
  std::discrete_distribution<int> qd(q0.begin(), q0.end());
  for (int64_t r = 0; r < rows; ++r) {
    c.drafts.push_back(qd(rng));
    c.q.insert(c.q.end(), q0.begin(), q0.end());
    c.p.insert(c.p.end(), p0.begin(), p0.end());
    c.p.insert(c.p.end(), q0.begin(), q0.end());
    c.seeds.push_back(static_cast<uint64_t>(r) * 7919u + 3u);
    c.offs.push_back(static_cast<uint64_t>(r));
  }
  const VerifyOut o = run_verify(c);
  REQUIRE(o.st == DSK_OK);
  std::vector<double> freq(4, 0.0);
  for (int64_t r = 0; r < rows; ++r) freq[static_cast<size_t>(o.out[r * 2])] += 1.0;
  double chi2 = 0.0;
  for (int j = 0; j < 4; ++j) {
    const double e = p0[j] * rows;
    chi2 += (freq[j] - e) * (freq[j] - e) / e;
  }
  CHECK(chi2 < 16.27);  // 3 degrees of freedom, p = 0.001
}

TEST_CASE("cpu speculative_verify: bad draft ids are rejected before writing") {
  std::mt19937_64 rng(3);
  VerifyCase c = random_verify(rng, 3, 2, 10, true, DSK_VERIFY_SAMPLE);
  c.drafts[3] = 10;
  const VerifyOut o = run_verify(c);
  CHECK(o.st == DSK_ERR_INVALID_ARGUMENT);
  CHECK_MESSAGE(o.error.find("draft_ids[1, 1] = 10, expected [-1, 10)") != std::string::npos,
                o.error);
  for (int32_t x : o.out) CHECK(x == -77);
  for (int32_t x : o.acc) CHECK(x == -77);
}
