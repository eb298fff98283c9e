// The MoE gate: CUDA against the CPU reference on the same logits. The gate promises bitwise equal
// ids, weights and row flags on both backends (include/dsk/dsk_moe.h), so every comparison here is
// byte for byte.
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

struct GateCase {
  const char* name;
  int32_t e, k, groups, topk_group, score;
  int32_t renorm;
  float scale;
  bool bias;
};

// DeepSeek's configs (docs/ops/moe.md) and stress shapes: 384 experts in one group, 16 groups,
// k = 16, groups smaller than a warp (serial group scores) and larger ones.
const GateCase kCases[] = {
    {"V2-Lite", 64, 6, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f, false},
    {"V2", 160, 6, 8, 3, DSK_MOE_SCORE_SOFTMAX, 0, 16.0f, false},
    {"V3", 256, 8, 8, 4, DSK_MOE_SCORE_SIGMOID, 1, 2.5f, true},
    {"384/1", 384, 8, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 2.5f, true},
    {"256/16/8 k16", 256, 16, 16, 8, DSK_MOE_SCORE_SIGMOID, 1, 2.5f, true},
    {"512/4/2 none", 512, 8, 4, 2, DSK_MOE_SCORE_NONE, 1, 1.0f, true},
    {"40/20/5 top2", 40, 5, 20, 5, DSK_MOE_SCORE_SIGMOID, 1, 1.5f, true},
    {"33/11/2 softmax", 33, 4, 11, 2, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, false},
    {"7/1 k7", 7, 7, 1, 1, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, false},
};

dsk_moe_gate_config config_of(const GateCase& c, int32_t score_dtype) {
  dsk_moe_gate_config cfg;
  DSK_REQUIRE_OK(dsk_moe_gate_config_init(&cfg));
  cfg.num_experts = c.e;
  cfg.top_k = c.k;
  cfg.n_group = c.groups;
  cfg.topk_group = c.topk_group;
  cfg.score_func = c.score;
  cfg.group_rule = DSK_MOE_GROUP_AUTO;  // top-2 sum with the bias, max without
  cfg.renormalize = c.renorm;
  cfg.routed_scaling_factor = c.scale;
  cfg.score_dtype = score_dtype;
  return cfg;
}

// Normal logits (sd 2); `ties` rounds them to a coarse grid on the bf16 grid (quarter units), so
// equal scores are common within rows. Rows 3, 5 and 7 (when present) are all NaN, partly
// non-finite, and constant.
std::vector<float> make_logits(int64_t t, int32_t e, bool ties, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> v(static_cast<size_t>(t * e));
  for (float& x : v) {
    x = normal(rng);
    if (ties) x = std::round(x * 4.0f) / 4.0f;
  }
  for (int64_t j = 0; j < e; ++j) {
    if (t > 3) v[static_cast<size_t>(3 * e + j)] = kNaN;
    if (t > 5 && j % 3 == 0) v[static_cast<size_t>(5 * e + j)] = j % 2 ? kInf : -kInf;
    if (t > 7) v[static_cast<size_t>(7 * e + j)] = 0.5f;
  }
  return v;
}

std::vector<float> make_bias(int32_t e, bool ties, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> b(static_cast<size_t>(e));
  for (float& x : b) x = ties ? std::round(normal(rng) * 2.0f) / 64.0f : normal(rng) / 8.0f;
  return b;
}

// Runs the gate on both backends over the same logits (an upload of `values` rounded to
// logits_dtype, or the given pair) and compares ids, weights and flags byte for byte.
void check_gate(const Env& env, const dsk_moe_gate_config& cfg, const Pair& logits,
                const Pair* bias, int64_t t, int32_t ids_dtype, const std::string& what) {
  CAPTURE(what);
  Pair ids = outputs(env, {t, cfg.top_k}, ids_dtype);
  Pair weights = outputs(env, {t, cfg.top_k}, DSK_DTYPE_F32);
  Pair flags = outputs(env, {t}, DSK_DTYPE_UINT8);
  DSK_REQUIRE_OK(dsk_moe_gate(env.cpu.get(), &cfg, logits.cpu.dl(),
                              bias != nullptr ? bias->cpu.dl() : nullptr, ids.cpu.dl(),
                              weights.cpu.dl(), flags.cpu.dl()));
  DSK_REQUIRE_OK(dsk_moe_gate(env.gpu.get(), &cfg, logits.gpu.dl(),
                              bias != nullptr ? bias->gpu.dl() : nullptr, ids.gpu.dl(),
                              weights.gpu.dl(), flags.gpu.dl()));
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  dsk_test::check_same_bytes(env, ids, what + ": ids");
  dsk_test::check_same_bytes(env, weights, what + ": weights");
  dsk_test::check_same_bytes(env, flags, what + ": row_flags");
}

// A row-major DLTensor of `dtype_id` at byte `offset` of a uint8 base (any alignment), as another
// framework might hand one over.
DLTensor raw_view(const Tensor& byte_base, int32_t dtype_id, std::vector<int64_t>& shape,
                  uint64_t offset) {
  DLTensor t{};
  t.data = byte_base.dl()->data;
  t.device = byte_base.dl()->device;
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dsk_test::dtype(dtype_id);
  t.shape = shape.data();
  t.strides = nullptr;
  t.byte_offset = offset;
  return t;
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.moe_gate equals the CPU reference bit for bit on DeepSeek and stress configs") {
    Env env;
    const int64_t t = 257;
    uint64_t seed = 1;
    for (const GateCase& c : kCases) {
      for (const bool ties : {false, true}) {
        const std::vector<float> lg = make_logits(t, c.e, ties, seed++);
        const std::vector<float> b = make_bias(c.e, ties, seed++);
        const Pair bias = dsk_test::upload_values(env, b, {c.e}, DSK_DTYPE_F32);
        for (const int32_t ldt : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
          const Pair logits = dsk_test::upload_values(env, lg, {t, c.e}, ldt);
          for (const int32_t sdt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
            const std::string what = std::string(c.name) + (ties ? " ties" : " random") +
                                     " logits " + dsk_test::dtype_name(ldt) + " score " +
                                     dsk_test::dtype_name(sdt);
            check_gate(env, config_of(c, sdt), logits, c.bias ? &bias : nullptr, t, DSK_DTYPE_INT32,
                       what);
          }
        }
      }
    }
  }

  TEST_CASE("cuda.moe_gate T = 0, 1 and 65536, int64 ids") {
    Env env;
    const GateCase v3 = kCases[2];
    const dsk_moe_gate_config cfg = config_of(v3, DSK_DTYPE_F32);
    const Pair bias =
        dsk_test::upload_values(env, make_bias(v3.e, false, 5), {v3.e}, DSK_DTYPE_F32);
    for (const int64_t t : {int64_t{0}, int64_t{1}, int64_t{65536}}) {
      const Pair logits =
          dsk_test::upload_values(env, make_logits(t, v3.e, false, 9), {t, v3.e}, DSK_DTYPE_F32);
      check_gate(env, cfg, logits, &bias, t, DSK_DTYPE_INT32, "V3 T = " + std::to_string(t));
      if (t != 65536) {
        check_gate(env, cfg, logits, &bias, t, DSK_DTYPE_INT64,
                   "V3 int64 T = " + std::to_string(t));
      }
    }
    // V2 (softmax, no bias) at T = 65536 in bf16.
    const GateCase v2 = kCases[1];
    const Pair logits = dsk_test::upload_values(env, make_logits(65536, v2.e, true, 11),
                                                {65536, v2.e}, DSK_DTYPE_BF16);
    check_gate(env, config_of(v2, DSK_DTYPE_F32), logits, nullptr, 65536, DSK_DTYPE_INT64,
               "V2 T = 65536");
  }

  TEST_CASE("cuda.moe_gate strided logits and outputs") {
    Env env;
    const GateCase v3 = kCases[2];
    const dsk_moe_gate_config cfg = config_of(v3, DSK_DTYPE_BF16);
    const int64_t t = 45;
    const std::vector<float> lg = make_logits(t, v3.e, false, 21);
    // Column-major logits ([T, E] with strides {1, T}) on both sides.
    std::vector<float> cm(lg.size());
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t e = 0; e < v3.e; ++e)
        cm[static_cast<size_t>(e * t + i)] = lg[static_cast<size_t>(i * v3.e + e)];
    }
    const Pair base = dsk_test::upload_values(env, cm, {v3.e * t}, DSK_DTYPE_F32);
    const dsk_test::Layout col{{t, v3.e}, {1, t}, 0};
    Pair logits;
    logits.cpu = dsk_test::view(base.cpu, col);
    logits.gpu = dsk_test::view(base.gpu, col);
    const Pair bias =
        dsk_test::upload_values(env, make_bias(v3.e, false, 22), {v3.e}, DSK_DTYPE_F32);
    // Weights with a padded row stride and an element offset, ids int64 column-major, no flags.
    const Pair wbase = outputs(env, {t * 11 + 3}, DSK_DTYPE_F32);
    const Pair ibase = outputs(env, {t * v3.k}, DSK_DTYPE_INT64);
    const dsk_test::Layout wl{{t, v3.k}, {11, 1}, 3};
    const dsk_test::Layout il{{t, v3.k}, {1, t}, 0};
    Pair w, ids;
    w.cpu = dsk_test::view(wbase.cpu, wl);
    w.gpu = dsk_test::view(wbase.gpu, wl);
    ids.cpu = dsk_test::view(ibase.cpu, il);
    ids.gpu = dsk_test::view(ibase.gpu, il);
    DSK_REQUIRE_OK(dsk_moe_gate(env.cpu.get(), &cfg, logits.cpu.dl(), bias.cpu.dl(), ids.cpu.dl(),
                                w.cpu.dl(), nullptr));
    DSK_REQUIRE_OK(dsk_moe_gate(env.gpu.get(), &cfg, logits.gpu.dl(), bias.gpu.dl(), ids.gpu.dl(),
                                w.gpu.dl(), nullptr));
    DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
    // The sentinels between the rows must match too (7.0 on the CPU, 3.0 on CUDA), so compare
    // the written elements only.
    const std::vector<float> wc = dsk_test::read_f32(env, w.cpu.dl());
    const std::vector<float> wg = dsk_test::read_f32(env, w.gpu.dl());
    REQUIRE(wc.size() == wg.size());
    CHECK(std::memcmp(wc.data(), wg.data(), wc.size() * 4) == 0);
    const std::vector<uint8_t> ic = dsk_test::download(env, ibase.gpu);
    const uint8_t* want = ibase.cpu.host_bytes();
    CHECK(std::memcmp(ic.data(), want, ic.size()) == 0);
  }

  TEST_CASE("cuda.moe_gate misaligned logits and outputs (run-time dtype loads, byte stores)") {
    Env env;
    const GateCase v3 = kCases[2];
    const int64_t t = 70;
    const int64_t e = v3.e;
    const int64_t k = v3.k;
    const std::vector<float> lg = make_logits(t, v3.e, true, 31);
    const Pair bias =
        dsk_test::upload_values(env, make_bias(v3.e, true, 32), {v3.e}, DSK_DTYPE_F32);
    // uint8 bases holding the same bytes on both sides: logits f32 at byte 2, ids int64 at byte 4,
    // weights f32 at byte 1, row flags at byte 3.
    dsk_test::Twin lb = dsk_test::make_twin(env, DSK_DTYPE_UINT8, t * e * 4 + 2, 41);
    std::memcpy(lb.cpu.host_bytes() + 2, lg.data(), lg.size() * sizeof(float));
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), lb.cpu.dl(), lb.gpu.dl()));
    dsk_test::Twin ib = dsk_test::make_twin(env, DSK_DTYPE_UINT8, t * k * 8 + 4, 42);
    dsk_test::Twin wb = dsk_test::make_twin(env, DSK_DTYPE_UINT8, t * k * 4 + 1, 43);
    dsk_test::Twin fb = dsk_test::make_twin(env, DSK_DTYPE_UINT8, t + 3, 44);
    std::vector<int64_t> lshape{t, e};
    std::vector<int64_t> oshape{t, k};
    std::vector<int64_t> fshape{t};
    for (const int32_t sdt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      CAPTURE(sdt);
      const dsk_moe_gate_config cfg = config_of(v3, sdt);
      for (const bool gpu : {false, true}) {
        dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
        const DLTensor logits = raw_view(gpu ? lb.gpu : lb.cpu, DSK_DTYPE_F32, lshape, 2);
        const DLTensor ids = raw_view(gpu ? ib.gpu : ib.cpu, DSK_DTYPE_INT64, oshape, 4);
        const DLTensor weights = raw_view(gpu ? wb.gpu : wb.cpu, DSK_DTYPE_F32, oshape, 1);
        const DLTensor flags = raw_view(gpu ? fb.gpu : fb.cpu, DSK_DTYPE_UINT8, fshape, 3);
        DSK_REQUIRE_OK(dsk_moe_gate(ctx, &cfg, &logits, (gpu ? bias.gpu : bias.cpu).dl(), &ids,
                                    &weights, &flags));
      }
      DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
      dsk_test::check_twin(env, ib);
      dsk_test::check_twin(env, wb);
      dsk_test::check_twin(env, fb);
    }
  }

  TEST_CASE("cuda.moe_gate many experts and k > 32 (shared-memory opt-in path)") {
    Env env;
    const GateCase big[] = {
        {"4096/1 k64", 4096, 64, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 2.5f, true},
        {"2048/16/4 k40", 2048, 40, 16, 4, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, false},
        {"6144/64/8 k8", 6144, 8, 64, 8, DSK_MOE_SCORE_SIGMOID, 1, 1.0f, true},
        {"300/300/300 k300", 300, 300, 300, 300, DSK_MOE_SCORE_NONE, 0, 1.0f, false},
    };
    uint64_t seed = 100;
    for (const GateCase& c : big) {
      const int64_t t = 67;
      const Pair logits =
          dsk_test::upload_values(env, make_logits(t, c.e, true, seed++), {t, c.e}, DSK_DTYPE_BF16);
      const Pair bias =
          dsk_test::upload_values(env, make_bias(c.e, true, seed++), {c.e}, DSK_DTYPE_F32);
      check_gate(env, config_of(c, DSK_DTYPE_F32), logits, c.bias ? &bias : nullptr, t,
                 DSK_DTYPE_INT32, c.name);
    }
  }
}
