// Token sampling on CUDA against the CPU reference through the public API. dsk_sampling.h promises
// the same token ids on both backends; since every float goes through common/sampling_math.h, the
// logprobs, top lists, statuses, processed logits and probabilities are compared byte for byte too.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::create;
using dsk_test::Env;
using dsk_test::Pair;
using dsk_test::Tensor;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A batch: logits and every per-row parameter and list, on the host.
struct Batch {
  int64_t b = 0, v = 0;
  std::vector<float> logits;
  bool per_row = false;
  std::vector<float> temp, top_p, min_p, rep, freq, pres;
  std::vector<int32_t> top_k;
  std::vector<int64_t> seeds, offsets;
  bool lists = false;
  std::vector<int32_t> out_offs, out_ids, prompt_offs, prompt_ids, bias_offs, bias_ids;
  std::vector<float> bias_vals;
  std::vector<int32_t> mask;  // [B, ceil(V / 32)] or empty
  // Scalars when !per_row.
  float s_temp = 1.0f, s_top_p = 1.0f, s_min_p = 0.0f;
  int32_t s_top_k = 0;
  uint64_t s_seed = 0, s_offset = 0;
};

// The device copies of a batch's tensors, one side.
struct Side {
  Tensor logits, temp, top_k, top_p, min_p, rep, freq, pres, seeds, offsets;
  Tensor out_offs, out_ids, prompt_offs, prompt_ids, bias_offs, bias_ids, bias_vals, mask;
  dsk_sampling_params params{};
};

struct Sides {
  Side cpu, gpu;
};

template <typename T>
void put(const Env& env, const std::vector<T>& v, const std::vector<int64_t>& shape, int32_t dt,
         Tensor Side::*field, Sides* s) {
  Pair p = upload_raw(env, v, shape, dt);
  s->cpu.*field = std::move(p.cpu);
  s->gpu.*field = std::move(p.gpu);
}

void upload(const Env& env, const Batch& bt, int32_t logits_dtype, Sides* s) {
  Pair lg = dsk_test::upload_values(env, bt.logits, {bt.b, bt.v}, logits_dtype);
  s->cpu.logits = std::move(lg.cpu);
  s->gpu.logits = std::move(lg.gpu);
  if (bt.per_row) {
    put(env, bt.temp, {bt.b}, DSK_DTYPE_F32, &Side::temp, s);
    put(env, bt.top_k, {bt.b}, DSK_DTYPE_INT32, &Side::top_k, s);
    put(env, bt.top_p, {bt.b}, DSK_DTYPE_F32, &Side::top_p, s);
    put(env, bt.min_p, {bt.b}, DSK_DTYPE_F32, &Side::min_p, s);
    put(env, bt.rep, {bt.b}, DSK_DTYPE_F32, &Side::rep, s);
    put(env, bt.freq, {bt.b}, DSK_DTYPE_F32, &Side::freq, s);
    put(env, bt.pres, {bt.b}, DSK_DTYPE_F32, &Side::pres, s);
    put(env, bt.seeds, {bt.b}, DSK_DTYPE_INT64, &Side::seeds, s);
    put(env, bt.offsets, {bt.b}, DSK_DTYPE_INT64, &Side::offsets, s);
  }
  if (bt.lists) {
    const auto n = [](const std::vector<int32_t>& x) { return static_cast<int64_t>(x.size()); };
    put(env, bt.out_offs, {bt.b + 1}, DSK_DTYPE_INT32, &Side::out_offs, s);
    put(env, bt.out_ids, {n(bt.out_ids)}, DSK_DTYPE_INT32, &Side::out_ids, s);
    put(env, bt.prompt_offs, {bt.b + 1}, DSK_DTYPE_INT32, &Side::prompt_offs, s);
    put(env, bt.prompt_ids, {n(bt.prompt_ids)}, DSK_DTYPE_INT32, &Side::prompt_ids, s);
    put(env, bt.bias_offs, {bt.b + 1}, DSK_DTYPE_INT32, &Side::bias_offs, s);
    put(env, bt.bias_ids, {n(bt.bias_ids)}, DSK_DTYPE_INT32, &Side::bias_ids, s);
    put(env, bt.bias_vals, {n(bt.bias_ids)}, DSK_DTYPE_F32, &Side::bias_vals, s);
  }
  if (!bt.mask.empty()) {
    put(env, bt.mask, {bt.b, (bt.v + 31) / 32}, DSK_DTYPE_INT32, &Side::mask, s);
  }
  for (Side* side : {&s->cpu, &s->gpu}) {
    dsk_sampling_params& p = side->params;
    DSK_REQUIRE_OK(dsk_sampling_params_init(&p));
    p.temperature = bt.s_temp;
    p.top_k = bt.s_top_k;
    p.top_p = bt.s_top_p;
    p.min_p = bt.s_min_p;
    p.seed = bt.s_seed;
    p.offset = bt.s_offset;
    if (bt.per_row) {
      p.temperatures = side->temp.dl();
      p.top_ks = side->top_k.dl();
      p.top_ps = side->top_p.dl();
      p.min_ps = side->min_p.dl();
      p.repetition_penalties = side->rep.dl();
      p.frequency_penalties = side->freq.dl();
      p.presence_penalties = side->pres.dl();
      p.seeds = side->seeds.dl();
      p.offsets = side->offsets.dl();
    }
    if (bt.lists) {
      p.output_offsets = side->out_offs.dl();
      p.output_ids = side->out_ids.dl();
      p.prompt_offsets = side->prompt_offs.dl();
      p.prompt_ids = side->prompt_ids.dl();
      p.bias_offsets = side->bias_offs.dl();
      p.bias_ids = side->bias_ids.dl();
      p.bias_values = side->bias_vals.dl();
    }
    if (!bt.mask.empty()) p.allowed_mask = side->mask.dl();
  }
}

// Random logits: rows peaky or flat, optionally on a coarse grid (many ties); special rows: 3 all
// NaN, 5 all -inf, 6 one NaN, 9 one +inf, 11 constant.
Batch make_batch(int64_t b, int64_t v, bool ties, uint64_t seed) {
  Batch bt;
  bt.b = b;
  bt.v = v;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  bt.logits.resize(static_cast<size_t>(b * v));
  for (int64_t i = 0; i < b; ++i) {
    const float sd = i % 3 == 0 ? 6.0f : (i % 3 == 1 ? 1.5f : 0.3f);
    for (int64_t j = 0; j < v; ++j) {
      float x = normal(rng) * sd;
      if (ties) x = std::round(x * 4.0f) / 4.0f;
      bt.logits[static_cast<size_t>(i * v + j)] = x;
    }
  }
  auto row = [&](int64_t i, int64_t j) -> float& {
    return bt.logits[static_cast<size_t>(i * v + j)];
  };
  for (int64_t j = 0; j < v; ++j) {
    if (b > 3) row(3, j) = kNaN;
    if (b > 5) row(5, j) = -kInf;
    if (b > 11) row(11, j) = 0.5f;
  }
  if (b > 6) row(6, v / 2) = kNaN;
  if (b > 9) row(9, v / 3) = kInf;
  return bt;
}

// Mixed per-row parameters: greedy rows, temperatures, top-k (off, 1, small, >= V), top-p (off,
// 0.95, 0.5, tiny), min-p, penalties; per-row seeds and offsets.
void mix_params(Batch* bt, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const float temps[] = {0.0f, 0.6f, 1.0f, 1.3f, 0.05f};
  const int32_t ks[] = {0, 1, 5, 50, 1 << 30};
  const float ps[] = {1.0f, 0.95f, 0.5f, 1e-6f, 0.999f};
  const float mins[] = {0.0f, 0.0f, 0.05f, 1.0f, 0.3f};
  bt->per_row = true;
  for (int64_t i = 0; i < bt->b; ++i) {
    bt->temp.push_back(temps[rng() % 5]);
    bt->top_k.push_back(ks[rng() % 5]);
    bt->top_p.push_back(ps[rng() % 5]);
    bt->min_p.push_back(mins[rng() % 5]);
    bt->rep.push_back(rng() % 2 ? 1.0f : 1.3f);
    bt->freq.push_back(rng() % 2 ? 0.0f : 0.4f);
    bt->pres.push_back(rng() % 2 ? 0.0f : -0.7f);
    bt->seeds.push_back(static_cast<int64_t>(rng()));
    bt->offsets.push_back(static_cast<int64_t>(rng() % 1000));
  }
}

// Output / prompt / bias lists with repeats (bias duplicates too) and a mask dropping every 7th
// token in odd rows (and every token of row 2 when there are more than 2 rows).
void add_lists(Batch* bt, uint64_t seed) {
  std::mt19937_64 rng(seed);
  bt->lists = true;
  const auto vocab = static_cast<uint64_t>(bt->v);
  bt->out_offs.push_back(0);
  bt->prompt_offs.push_back(0);
  bt->bias_offs.push_back(0);
  for (int64_t i = 0; i < bt->b; ++i) {
    const uint64_t n_out = rng() % 24, n_prompt = rng() % 60, n_bias = rng() % 6;
    for (uint64_t k = 0; k < n_out; ++k)
      bt->out_ids.push_back(static_cast<int32_t>(rng() % (vocab < 16 ? vocab : 16)));
    for (uint64_t k = 0; k < n_prompt; ++k)
      bt->prompt_ids.push_back(static_cast<int32_t>(rng() % vocab));
    for (uint64_t k = 0; k < n_bias; ++k) {
      bt->bias_ids.push_back(static_cast<int32_t>(rng() % (vocab < 8 ? vocab : 8)));
      bt->bias_vals.push_back(static_cast<float>(static_cast<int>(rng() % 41) - 20) * 0.37f);
    }
    bt->out_offs.push_back(static_cast<int32_t>(bt->out_ids.size()));
    bt->prompt_offs.push_back(static_cast<int32_t>(bt->prompt_ids.size()));
    bt->bias_offs.push_back(static_cast<int32_t>(bt->bias_ids.size()));
  }
  const int64_t words = (bt->v + 31) / 32;
  bt->mask.assign(static_cast<size_t>(bt->b * words), -1);
  for (int64_t i = 0; i < bt->b; ++i) {
    for (int64_t j = 0; j < bt->v; ++j) {
      const bool drop = (i % 2 == 1 && j % 7 == 3) || (i == 2 && bt->b > 2);
      if (drop) {
        auto& w = bt->mask[static_cast<size_t>(i * words + j / 32)];
        w = static_cast<int32_t>(static_cast<uint32_t>(w) & ~(1u << (j % 32)));
      }
    }
  }
}

// dsk_sample on both backends with every output; byte comparison.
void check_sample(const Env& env, const Sides& s, int64_t b, int32_t n_top, int32_t top_source,
                  const std::string& what) {
  CAPTURE(what);
  Pair ids = outputs(env, {b}, DSK_DTYPE_INT32);
  Pair lp = outputs(env, {b}, DSK_DTYPE_F32);
  Pair raw = outputs(env, {b}, DSK_DTYPE_F32);
  Pair st = outputs(env, {b}, DSK_DTYPE_UINT8);
  Pair tid = outputs(env, {b, n_top > 0 ? n_top : 1}, DSK_DTYPE_INT32);
  Pair tlp = outputs(env, {b, n_top > 0 ? n_top : 1}, DSK_DTYPE_F32);
  for (int side = 0; side < 2; ++side) {
    const bool gpu = side == 1;
    auto pick = [&](const Pair& p) { return gpu ? p.gpu.dl() : p.cpu.dl(); };
    dsk_sampling_outputs o;
    DSK_REQUIRE_OK(dsk_sampling_outputs_init(&o));
    o.ids = pick(ids);
    o.logprobs = pick(lp);
    o.raw_logprobs = pick(raw);
    o.status = pick(st);
    if (n_top > 0) {
      o.top_ids = pick(tid);
      o.top_logprobs = pick(tlp);
      o.top_source = top_source;
    }
    const Side& sd = gpu ? s.gpu : s.cpu;
    DSK_REQUIRE_OK(dsk_sample(gpu ? env.gpu.get() : env.cpu.get(), &sd.params, sd.logits.dl(), &o));
  }
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  dsk_test::check_same_bytes(env, ids, what + ": ids");
  dsk_test::check_same_bytes(env, st, what + ": status");
  dsk_test::check_same_bytes(env, lp, what + ": logprobs");
  dsk_test::check_same_bytes(env, raw, what + ": raw_logprobs");
  if (n_top > 0) {
    dsk_test::check_same_bytes(env, tid, what + ": top_ids");
    dsk_test::check_same_bytes(env, tlp, what + ": top_logprobs");
  }
}

// Only ids (the single-pass greedy / temperature-only path).
void check_ids_only(const Env& env, const Sides& s, int64_t b, const std::string& what) {
  CAPTURE(what);
  Pair ids = outputs(env, {b}, DSK_DTYPE_INT32);
  for (int side = 0; side < 2; ++side) {
    const bool gpu = side == 1;
    dsk_sampling_outputs o;
    DSK_REQUIRE_OK(dsk_sampling_outputs_init(&o));
    o.ids = gpu ? ids.gpu.dl() : ids.cpu.dl();
    const Side& sd = gpu ? s.gpu : s.cpu;
    DSK_REQUIRE_OK(dsk_sample(gpu ? env.gpu.get() : env.cpu.get(), &sd.params, sd.logits.dl(), &o));
  }
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  dsk_test::check_same_bytes(env, ids, what + ": ids only");
}

void check_transforms(const Env& env, const Sides& s, int64_t b, int64_t v, int32_t out_dtype,
                      const std::string& what) {
  CAPTURE(what);
  Pair lg = outputs(env, {b, v}, out_dtype);
  Pair pr = outputs(env, {b, v}, DSK_DTYPE_F32);
  Pair st1 = outputs(env, {b}, DSK_DTYPE_UINT8);
  Pair st2 = outputs(env, {b}, DSK_DTYPE_UINT8);
  DSK_REQUIRE_OK(dsk_sampling_logits(env.cpu.get(), &s.cpu.params, s.cpu.logits.dl(), lg.cpu.dl(),
                                     st1.cpu.dl()));
  DSK_REQUIRE_OK(dsk_sampling_logits(env.gpu.get(), &s.gpu.params, s.gpu.logits.dl(), lg.gpu.dl(),
                                     st1.gpu.dl()));
  DSK_REQUIRE_OK(dsk_sampling_probs(env.cpu.get(), &s.cpu.params, s.cpu.logits.dl(), pr.cpu.dl(),
                                    st2.cpu.dl()));
  DSK_REQUIRE_OK(dsk_sampling_probs(env.gpu.get(), &s.gpu.params, s.gpu.logits.dl(), pr.gpu.dl(),
                                    st2.gpu.dl()));
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  dsk_test::check_same_bytes(env, lg, what + ": processed logits");
  dsk_test::check_same_bytes(env, pr, what + ": probs");
  dsk_test::check_same_bytes(env, st1, what + ": logits status");
  dsk_test::check_same_bytes(env, st2, what + ": probs status");
}

std::string name_of(int64_t b, int64_t v, int32_t dt, bool ties, const char* extra) {
  return "B " + std::to_string(b) + " V " + std::to_string(v) + " " + dsk_test::dtype_name(dt) +
         (ties ? " ties " : " random ") + extra;
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.sample equals the CPU reference: mixed per-row parameters, lists, mask") {
    Env env;
    uint64_t seed = 100;
    const int64_t shapes[][2] = {{1, 1}, {1, 7}, {13, 33}, {300, 1000}, {8, 129280}, {1, 129280}};
    for (const auto& sh : shapes) {
      const int64_t b = sh[0], v = sh[1];
      for (const bool ties : {false, true}) {
        Batch bt = make_batch(b, v, ties, seed++);
        mix_params(&bt, seed++);
        const bool big = v > 100000;
        for (const int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
          if (big && dt == DSK_DTYPE_F16) continue;
          Sides s;
          upload(env, bt, dt, &s);
          check_sample(env, s, b, 0, DSK_LOGPROBS_PROCESSED, name_of(b, v, dt, ties, "no lists"));
          check_sample(env, s, b, 5, DSK_LOGPROBS_PROCESSED, name_of(b, v, dt, ties, "top 5"));
          if (!big) {
            check_sample(env, s, b, 64, DSK_LOGPROBS_RAW, name_of(b, v, dt, ties, "raw top 64"));
          }
          check_ids_only(env, s, b, name_of(b, v, dt, ties, "no lists"));
          check_transforms(env, s, b, v, dt, name_of(b, v, dt, ties, "no lists"));
        }
        add_lists(&bt, seed++);
        for (const int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          Sides s;
          upload(env, bt, dt, &s);
          check_sample(env, s, b, 3, DSK_LOGPROBS_PROCESSED, name_of(b, v, dt, ties, "lists"));
          check_ids_only(env, s, b, name_of(b, v, dt, ties, "lists"));
          check_transforms(env, s, b, v, DSK_DTYPE_F32, name_of(b, v, dt, ties, "lists"));
        }
      }
    }
  }

  TEST_CASE("cuda.sample scalar configurations: greedy, temperature only, top-k + top-p, min-p") {
    Env env;
    struct Cfg {
      const char* name;
      float t, p, min_p;
      int32_t k;
    };
    const Cfg cfgs[] = {
        {"greedy", 0.0f, 1.0f, 0.0f, 0},          {"T 0.6", 0.6f, 1.0f, 0.0f, 0},
        {"T 0.6 p 0.95", 0.6f, 0.95f, 0.0f, 0},   {"k 50 p 0.95", 1.0f, 0.95f, 0.0f, 50},
        {"min_p 0.05", 1.0f, 1.0f, 0.05f, 0},     {"k 1", 1.0f, 1.0f, 0.0f, 1},
        {"greedy k 5 p 0.5", 0.0f, 0.5f, 0.0f, 5}};
    uint64_t seed = 7;
    for (const int64_t b : {int64_t{1}, int64_t{32}}) {
      for (const int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        Batch bt = make_batch(b, 129280, false, seed++);
        for (const Cfg& c : cfgs) {
          bt.s_temp = c.t;
          bt.s_top_p = c.p;
          bt.s_min_p = c.min_p;
          bt.s_top_k = c.k;
          bt.s_seed = 0x123456789abcdefull + seed;
          bt.s_offset = seed * 3;
          Sides s;
          upload(env, bt, dt, &s);
          check_ids_only(env, s, b, name_of(b, 129280, dt, false, c.name));
          check_sample(env, s, b, 8, DSK_LOGPROBS_PROCESSED, name_of(b, 129280, dt, false, c.name));
        }
      }
    }
  }

  TEST_CASE("cuda.sample strided and misaligned logits") {
    Env env;
    const int64_t b = 9, v = 517;
    Batch bt = make_batch(b, v, false, 31);
    mix_params(&bt, 32);
    Sides s;
    upload(env, bt, DSK_DTYPE_BF16, &s);
    // Column-major copies of the logits on both sides.
    std::vector<float> cm(bt.logits.size());
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < v; ++j) {
        cm[static_cast<size_t>(j * b + i)] = bt.logits[static_cast<size_t>(i * v + j)];
      }
    }
    cm.insert(cm.begin(), 0.0f);
    const Pair base2 = dsk_test::upload_values(env, cm, {b * v + 1}, DSK_DTYPE_BF16);
    const dsk_test::Layout col{{b, v}, {1, b}, 1};  // element offset 1: 2-byte aligned only
    s.cpu.logits = dsk_test::view(base2.cpu, col);
    s.gpu.logits = dsk_test::view(base2.gpu, col);
    check_sample(env, s, b, 4, DSK_LOGPROBS_PROCESSED, "column-major bf16 logits");
    check_transforms(env, s, b, v, DSK_DTYPE_BF16, "column-major bf16 logits");
  }

  TEST_CASE("cuda.sample bad per-row values are deferred errors; the row is INVALID") {
    Env env;
    const int64_t b = 6, v = 100;
    auto run_bad = [&](Batch bt, int64_t bad_row, const char* what) {
      CAPTURE(what);
      Sides s;
      upload(env, bt, DSK_DTYPE_F32, &s);
      Pair ids = outputs(env, {b}, DSK_DTYPE_INT32);
      Pair st = outputs(env, {b}, DSK_DTYPE_UINT8);
      dsk_sampling_outputs o;
      DSK_REQUIRE_OK(dsk_sampling_outputs_init(&o));
      o.ids = ids.gpu.dl();
      o.status = st.gpu.dl();
      DSK_REQUIRE_OK(dsk_sample(env.gpu.get(), &s.gpu.params, s.gpu.logits.dl(), &o));
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
      CHECK(std::string(dsk_last_error_message()).find("sampling") != std::string::npos);
      CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);  // reported once
      const std::vector<uint8_t> status = dsk_test::download(env, st.gpu);
      const std::vector<uint8_t> id_bytes = dsk_test::download(env, ids.gpu);
      for (int64_t i = 0; i < b; ++i) {
        if (i == bad_row) {
          CHECK(status[static_cast<size_t>(i)] == DSK_SAMPLE_INVALID);
          int32_t id = -1;
          std::memcpy(&id, id_bytes.data() + i * 4, 4);
          CHECK(id == 0);
        } else {
          CHECK(status[static_cast<size_t>(i)] != DSK_SAMPLE_INVALID);
        }
      }
    };
    Batch good = make_batch(b, v, false, 55);
    mix_params(&good, 56);
    add_lists(&good, 57);
    {
      Batch bt = good;
      bt.top_p[2] = 1.5f;
      run_bad(bt, 2, "top_p 1.5");
    }
    {
      Batch bt = good;
      bt.temp[4] = -1.0f;
      run_bad(bt, 4, "temperature -1");
    }
    {
      Batch bt = good;
      bt.top_k[1] = -3;
      run_bad(bt, 1, "top_k -3");
    }
    {
      Batch bt = good;
      bt.rep[0] = kInf;
      run_bad(bt, 0, "repetition inf");
    }
    {
      Batch bt = good;
      bt.out_ids.push_back(0);
      bt.out_ids[static_cast<size_t>(bt.out_offs[3])] = static_cast<int32_t>(v);
      if (bt.out_offs[4] == bt.out_offs[3]) {
        for (int64_t i = 4; i <= b; ++i) ++bt.out_offs[static_cast<size_t>(i)];
      }
      run_bad(bt, 3, "output id V");
    }
    {
      Batch bt = good;
      bt.bias_vals.push_back(1.0f);
      bt.bias_ids.push_back(-1);
      bt.bias_offs[static_cast<size_t>(b)] = static_cast<int32_t>(bt.bias_ids.size());
      run_bad(bt, b - 1, "bias id -1");
    }
    // Offsets out of order: rows on either side of the break would own overlapping list ranges
    // (and with them the same scratch records), so every row is INVALID, deterministically.
    auto run_bad_offsets = [&](const Batch& bt, const char* what, const char* where) {
      CAPTURE(what);
      Sides s;
      upload(env, bt, DSK_DTYPE_F32, &s);
      for (int rep = 0; rep < 3; ++rep) {
        Pair st = outputs(env, {b}, DSK_DTYPE_UINT8);
        Pair ids = outputs(env, {b}, DSK_DTYPE_INT32);
        Pair lp = outputs(env, {b}, DSK_DTYPE_F32);
        dsk_sampling_outputs o;
        DSK_REQUIRE_OK(dsk_sampling_outputs_init(&o));
        o.ids = ids.gpu.dl();
        o.status = st.gpu.dl();
        o.logprobs = lp.gpu.dl();
        DSK_REQUIRE_OK(dsk_sample(env.gpu.get(), &s.gpu.params, s.gpu.logits.dl(), &o));
        CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
        CHECK(std::string(dsk_last_error_message()).find(where) != std::string::npos);
        CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
        const std::vector<uint8_t> status = dsk_test::download(env, st.gpu);
        const std::vector<uint8_t> id_bytes = dsk_test::download(env, ids.gpu);
        const std::vector<uint8_t> lp_bytes = dsk_test::download(env, lp.gpu);
        for (int64_t i = 0; i < b; ++i) {
          CHECK(status[static_cast<size_t>(i)] == DSK_SAMPLE_INVALID);
          int32_t id = -1;
          float l = 0.0f;
          std::memcpy(&id, id_bytes.data() + i * 4, 4);
          std::memcpy(&l, lp_bytes.data() + i * 4, 4);
          CHECK(id == 0);
          CHECK(std::isnan(l));
        }
      }
    };
    {
      Batch bt = good;
      // Row 2's end before its start.
      bt.prompt_offs[3] = bt.prompt_offs[2] > 0 ? bt.prompt_offs[2] - 1 : -1;
      run_bad_offsets(bt, "prompt_offsets[3] < prompt_offsets[2]", "prompt_offsets[2..3]");
    }
    {
      // Every row's own pair in order, but row 1 goes back: rows 0 and 2 would both own output
      // ids 3 .. 5 (each with the same repeated id, so the two rows race on one count record).
      Batch bt = good;
      bt.out_ids.assign(9, 4);
      bt.out_offs.assign(static_cast<size_t>(b + 1), 9);
      bt.out_offs[0] = 0;
      bt.out_offs[1] = 6;
      bt.out_offs[2] = 3;
      bt.out_offs[3] = 9;
      run_bad_offsets(bt, "output_offsets going back at row 1", "output_offsets[1..2]");
    }
    {
      Batch bt = good;
      bt.bias_offs[0] = 1;  // bias_offs[1] may be smaller: either way a bad offset at index 0 or 1
      bt.bias_offs[static_cast<size_t>(b)] = static_cast<int32_t>(bt.bias_ids.size()) + 1;
      run_bad_offsets(bt, "bias_offsets past N", "bias_offsets[");
    }
  }

  TEST_CASE("cuda.speculative_verify equals the CPU reference") {
    Env env;
    std::mt19937_64 rng(77);
    for (const int64_t v : {int64_t{1}, int64_t{50}, int64_t{129280}}) {
      for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{3}}) {
        const int64_t b = v > 1000 ? 4 : 37;
        // Target and draft probabilities: softmax of random logits (some rows one-hot-ish).
        auto probs = [&](int64_t rows) {
          std::vector<float> p(static_cast<size_t>(rows * v));
          std::normal_distribution<float> normal(0.0f, 2.0f);
          for (int64_t r = 0; r < rows; ++r) {
            double sum = 0.0;
            for (int64_t j = 0; j < v; ++j) {
              const double e = std::exp(static_cast<double>(normal(rng)));
              p[static_cast<size_t>(r * v + j)] = static_cast<float>(e);
              sum += e;
            }
            for (int64_t j = 0; j < v; ++j) {
              p[static_cast<size_t>(r * v + j)] =
                  static_cast<float>(p[static_cast<size_t>(r * v + j)] / sum);
            }
          }
          return p;
        };
        const std::vector<float> target = probs(b * (n + 1));
        const std::vector<float> draft = probs(b * (n > 0 ? n : 1));
        std::vector<int64_t> ids(static_cast<size_t>(b * n));
        for (int64_t r = 0; r < b; ++r) {
          for (int64_t i = 0; i < n; ++i) {
            int64_t t = static_cast<int64_t>(rng() % static_cast<uint64_t>(v));
            if (r % 5 == 0) {  // the target argmax: accepted by GREEDY
              const float* row = &target[static_cast<size_t>((r * (n + 1) + i) * v)];
              t = 0;
              for (int64_t j = 1; j < v; ++j) t = row[j] > row[t] ? j : t;
            }
            if (r % 7 == 3 && i == n - 1) t = -1;
            ids[static_cast<size_t>(r * n + i)] = t;
          }
        }
        std::vector<int64_t> seeds(static_cast<size_t>(b)), offsets(static_cast<size_t>(b));
        for (int64_t r = 0; r < b; ++r) {
          seeds[static_cast<size_t>(r)] = static_cast<int64_t>(rng());
          offsets[static_cast<size_t>(r)] = static_cast<int64_t>(rng() % 100);
        }
        for (const int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          const Pair tg = dsk_test::upload_values(env, target, {b, n + 1, v}, dt);
          const Pair dp = dsk_test::upload_values(
              env, std::vector<float>(draft.begin(), draft.begin() + b * n * v), {b, n, v}, dt);
          const Pair di = upload_raw(env, ids, {b, n}, DSK_DTYPE_INT64);
          const Pair sd = upload_raw(env, seeds, {b}, DSK_DTYPE_INT64);
          const Pair of = upload_raw(env, offsets, {b}, DSK_DTYPE_INT64);
          for (const int32_t mode : {DSK_VERIFY_SAMPLE, DSK_VERIFY_GREEDY}) {
            for (const bool with_draft : {true, false}) {
              if (mode == DSK_VERIFY_GREEDY && with_draft) continue;
              const std::string what = "V " + std::to_string(v) + " n " + std::to_string(n) + " " +
                                       dsk_test::dtype_name(dt) +
                                       (mode == DSK_VERIFY_GREEDY ? " greedy" : " sample") +
                                       (with_draft ? " draft probs" : " one-hot drafts");
              CAPTURE(what);
              Pair out = outputs(env, {b, n + 1}, DSK_DTYPE_INT32);
              Pair acc = outputs(env, {b}, DSK_DTYPE_INT32);
              Pair emi = outputs(env, {b}, DSK_DTYPE_INT32);
              for (int side = 0; side < 2; ++side) {
                const bool gpu = side == 1;
                auto pick = [&](const Pair& p) { return gpu ? p.gpu.dl() : p.cpu.dl(); };
                dsk_verify_params vp;
                DSK_REQUIRE_OK(dsk_verify_params_init(&vp));
                vp.mode = mode;
                vp.seeds = pick(sd);
                vp.offsets = pick(of);
                DSK_REQUIRE_OK(dsk_speculative_verify(gpu ? env.gpu.get() : env.cpu.get(), &vp,
                                                      pick(di), with_draft ? pick(dp) : nullptr,
                                                      pick(tg), pick(out), pick(acc), pick(emi)));
              }
              DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
              dsk_test::check_same_bytes(env, out, what + ": out_ids");
              dsk_test::check_same_bytes(env, acc, what + ": accepted");
              dsk_test::check_same_bytes(env, emi, what + ": emitted");
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda.speculative_verify bad draft ids are deferred errors") {
    Env env;
    const int64_t b = 3, n = 2, v = 40;
    const Pair tg = dsk_test::upload_values(
        env, std::vector<float>(static_cast<size_t>(b * (n + 1) * v), 0.025f), {b, n + 1, v},
        DSK_DTYPE_F32);
    const Pair di = upload_raw(env, std::vector<int32_t>{1, 2, 3, static_cast<int32_t>(v), 5, -1},
                               {b, n}, DSK_DTYPE_INT32);
    Pair out = outputs(env, {b, n + 1}, DSK_DTYPE_INT32);
    Pair acc = outputs(env, {b}, DSK_DTYPE_INT32);
    dsk_verify_params vp;
    DSK_REQUIRE_OK(dsk_verify_params_init(&vp));
    DSK_REQUIRE_OK(dsk_speculative_verify(env.gpu.get(), &vp, di.gpu.dl(), nullptr, tg.gpu.dl(),
                                          out.gpu.dl(), acc.gpu.dl(), nullptr));
    CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk_last_error_message()).find("draft_ids[1, 1]") != std::string::npos);
    const std::vector<uint8_t> o = dsk_test::download(env, out.gpu);
    const std::vector<uint8_t> a = dsk_test::download(env, acc.gpu);
    int32_t row1[3], acc1 = 0;
    std::memcpy(row1, o.data() + 3 * 4, sizeof(row1));
    std::memcpy(&acc1, a.data() + 4, 4);
    CHECK(row1[0] == -1);
    CHECK(row1[1] == -1);
    CHECK(row1[2] == -1);
    CHECK(acc1 == 0);
  }
}
