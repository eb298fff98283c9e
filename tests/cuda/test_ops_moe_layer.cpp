// The MoE expert FFN (dsk_moe_experts, which runs the backend's grouped GEMM for float weights) and
// the whole layer (dsk_moe_forward, plan/run) on CUDA against the CPU reference, same inputs.
//
// Tolerances. Both sides accumulate every GEMM in f32 (in different orders) and round the gate/up
// outputs and their SwiGLU product to y's dtype, so a difference starts as f32 noise and survives
// as at most an ulp of an intermediate now and then. Per element of y:
//   |cuda - cpu| <= rtol * |cpu| + atol * rms(cpu)
// and over the compared rows ||cuda - cpu|| / ||cpu|| <= frob, with (rtol, atol, frob) =
//   f32 weights and y   (1e-4, 2e-4, 1e-4)  f32 noise of three chained GEMMs
//   bf16/f16 weights    (2e-2, 1e-2, 2e-3)  an ulp of y, rare ulp flips of an intermediate
//   fp8 weights         (5e-2, 5e-2, 3e-2)  an ulp flip of the SwiGLU product before its fp8
//                       re-quantization moves it a whole fp8 step (up to 2^-3 relative), and
//                       CUDA's block-scaled GEMM (or its dequantize-to-bf16 fallback) rounds
//                       differently from the CPU's f32 dequantization.
// Rows at or past offsets[E] must keep their fill on both sides.
//
// The layer: the router GEMM may round differently on the two backends, so a token whose top-k set
// is a near tie can route differently; tokens whose ids differ are excluded from the comparison
// and must be rare (at most 2% of the tokens, plus one). Everything else is compared as above,
// with the gate weights within 1e-4 relative.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

constexpr int32_t kFp8 = DSK_DTYPE_FP8_E4M3FN;

std::vector<float> uniform(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// A CPU tensor and its byte-identical CUDA copy.
Pair mirror(const Env& env, Tensor cpu) {
  Pair p;
  const DLTensor* dl = cpu.dl();
  p.gpu = create(env.gpu.get(), std::vector<int64_t>(dl->shape, dl->shape + dl->ndim),
                 dtype_id_of(dl->dtype));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), dl, p.gpu.dl()));
  p.cpu = std::move(cpu);
  return p;
}

// Tolerances of one comparison.
struct Tol {
  double rtol;
  double atol;  // times rms(cpu)
  double frob;  // ||cuda - cpu|| / ||cpu||
};

Tol tol_for(int32_t weight_dtype, int32_t y_dtype) {
  // fp8: h = silu(gate) * up is re-quantized per 1 x 128 tile, and GEMM accumulation order decides
  // a few of its e4m3 roundings; one flipped rounding moves a whole row of y by one e4m3 step (6 to
  // 12.5%) of h_j * w2[:, j], which for the heavy-tailed h stands out per element while the
  // aggregate stays small. Measured on an H100: worst element 0.21 rms (block-scaled GEMM) and
  // 0.38 rms (DSK_FP8_GEMM=dequant), Frobenius 0.4-1.8% and 1.7-2.4%. The Frobenius bound is the
  // binding check; the per-element one catches wrong rows and columns (errors of ~1 rms).
  if (weight_dtype == kFp8) return Tol{5e-2, 0.5, 3e-2};
  if (y_dtype == DSK_DTYPE_F32 && weight_dtype == DSK_DTYPE_F32) return Tol{1e-4, 2e-4, 1e-4};
  return Tol{2e-2, 1e-2, 2e-3};
}

// Compares rows [0, rows) of [*, cols] row-major values, skipping rows with skip[r] set.
void compare(const std::vector<float>& got, const std::vector<float>& want, int64_t rows,
             int64_t cols, const Tol& tol, const std::vector<char>& skip, const std::string& what) {
  CAPTURE(what);
  double sum2 = 0.0;
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!skip.empty() && skip[static_cast<size_t>(r)]) continue;
    for (int64_t c = 0; c < cols; ++c) {
      const double w = want[static_cast<size_t>(r * cols + c)];
      sum2 += w * w;
      ++count;
    }
  }
  const double rms = count > 0 ? std::sqrt(sum2 / static_cast<double>(count)) : 0.0;
  double diff2 = 0.0;
  double worst = 0.0;
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!skip.empty() && skip[static_cast<size_t>(r)]) continue;
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      const double w = want[i];
      const double g = got[i];
      const double err = std::fabs(g - w);
      diff2 += err * err;
      if (rms > 0) worst = std::max(worst, err / rms);
      if (!(err <= tol.rtol * std::fabs(w) + tol.atol * rms)) {
        if (bad++ < 5) {
          MESSAGE(what << ": row " << r << " col " << c << ": cuda " << g << ", cpu " << w
                       << " (rms " << rms << ")");
        }
      }
    }
  }
  const double frob = sum2 > 0 ? std::sqrt(diff2 / sum2) : 0.0;
  CAPTURE(rms);
  CAPTURE(worst);
  CAPTURE(frob);
  CHECK(bad == 0);
  CHECK(frob <= tol.frob);
}

// Expert weights on both sides: w1, w3 [E, I, D], w2 [E, D, I] (no E for the shared expert, e = 0)
// of `dtype`; fp8 weights are quantized on the CPU in 128 x 128 blocks and copied.
struct Weights {
  Pair w1, w3, w2, s1, s3, s2;
  dsk_moe_expert_weights cpu{}, gpu{};
};

// One [N, K] matrix quantized (CPU) into q/scales views at matrix index e of [E, ...] bases.
void quantize_matrix(const Env& env, const Tensor& src, const Tensor& q, const Tensor& s, int64_t e,
                     int64_t n, int64_t k, bool batched) {
  const int64_t nb = (n + 127) / 128;
  const int64_t kb = (k + 127) / 128;
  const Layout ml{{n, k}, {k, 1}, batched ? e * n * k : 0};
  const Layout sl{{nb, kb}, {kb, 1}, batched ? e * nb * kb : 0};
  Tensor sv = view(src, ml);
  Tensor qv = view(q, ml);
  Tensor scv = view(s, sl);
  DSK_REQUIRE_OK(dsk_quant_fp8_weight(env.cpu.get(), sv.dl(), qv.dl(), scv.dl(), 0));
}

void make_weights(const Env& env, int64_t experts, int64_t inter, int64_t hidden, int32_t dtype,
                  uint32_t seed, Weights* w) {
  const bool batched = experts > 0;
  const int64_t e = batched ? experts : 1;
  auto shape = [&](int64_t r, int64_t c) {
    return batched ? std::vector<int64_t>{experts, r, c} : std::vector<int64_t>{r, c};
  };
  // Scaled so that gate/up outputs and y stay O(1).
  const float a1 = 1.5f / std::sqrt(static_cast<float>(hidden));
  const float a2 = 1.5f / std::sqrt(static_cast<float>(inter));
  const int32_t base_dtype = dtype == kFp8 ? DSK_DTYPE_BF16 : dtype;
  Pair p1 = upload_values(env, uniform(e * inter * hidden, -a1, a1, seed), shape(inter, hidden),
                          base_dtype);
  Pair p3 = upload_values(env, uniform(e * inter * hidden, -a1, a1, seed + 1), shape(inter, hidden),
                          base_dtype);
  Pair p2 = upload_values(env, uniform(e * hidden * inter, -a2, a2, seed + 2), shape(hidden, inter),
                          base_dtype);
  if (dtype != kFp8) {
    w->w1 = std::move(p1);
    w->w3 = std::move(p3);
    w->w2 = std::move(p2);
  } else {
    const int64_t ib = (inter + 127) / 128;
    const int64_t db = (hidden + 127) / 128;
    Tensor q1 = create(env.cpu.get(), shape(inter, hidden), kFp8);
    Tensor q3 = create(env.cpu.get(), shape(inter, hidden), kFp8);
    Tensor q2 = create(env.cpu.get(), shape(hidden, inter), kFp8);
    Tensor s1 = create(env.cpu.get(), shape(ib, db), DSK_DTYPE_F32);
    Tensor s3 = create(env.cpu.get(), shape(ib, db), DSK_DTYPE_F32);
    Tensor s2 = create(env.cpu.get(), shape(db, ib), DSK_DTYPE_F32);
    for (int64_t i = 0; i < e; ++i) {
      quantize_matrix(env, p1.cpu, q1, s1, i, inter, hidden, batched);
      quantize_matrix(env, p3.cpu, q3, s3, i, inter, hidden, batched);
      quantize_matrix(env, p2.cpu, q2, s2, i, hidden, inter, batched);
    }
    w->w1 = mirror(env, std::move(q1));
    w->w3 = mirror(env, std::move(q3));
    w->w2 = mirror(env, std::move(q2));
    w->s1 = mirror(env, std::move(s1));
    w->s3 = mirror(env, std::move(s3));
    w->s2 = mirror(env, std::move(s2));
  }
  for (int side = 0; side < 2; ++side) {
    dsk_moe_expert_weights& d = side == 0 ? w->cpu : w->gpu;
    DSK_REQUIRE_OK(dsk_moe_expert_weights_init(&d));
    auto pick = [&](const Pair& p) { return side == 0 ? p.cpu.dl() : p.gpu.dl(); };
    d.w1 = pick(w->w1);
    d.w3 = pick(w->w3);
    d.w2 = pick(w->w2);
    if (dtype == kFp8) {
      d.w1_scales = pick(w->s1);
      d.w3_scales = pick(w->s3);
      d.w2_scales = pick(w->s2);
    }
  }
}

// ---- dsk_moe_experts ----

struct ExpertsCase {
  int32_t weight_dtype;  // bf16, f16, f32 or fp8
  int32_t x_dtype;       // float weights: = weight_dtype; fp8 weights: bf16 or fp8 (prequantized)
  int32_t y_dtype;
  int64_t block;        // 1 = packed offsets, else aligned segments
  bool device_offsets;  // the CUDA call reads offsets from device memory
  int64_t x_pad = 0;    // extra elements per row of x (0 = dense)
  int64_t y_pad = 0;    // extra elements per row of y
  int64_t experts = 16, hidden = 256, inter = 128;

  std::string label() const {
    return "w " + dtype_name(weight_dtype) + " x " + dtype_name(x_dtype) + " y " +
           dtype_name(y_dtype) + " block " + std::to_string(block) +
           (device_offsets ? " device offsets" : " host offsets") + " x_pad " +
           std::to_string(x_pad) + " y_pad " + std::to_string(y_pad) + " E " +
           std::to_string(experts) + " D " + std::to_string(hidden) + " I " + std::to_string(inter);
  }
};

void check_experts(const Env& env, const ExpertsCase& c, uint32_t seed) {
  CAPTURE(c.label());
  const int64_t d = c.hidden;
  // Rows per expert: some empty, one large (crosses 128-row GEMM tiles).
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> count_dist(0, 9);
  std::vector<int32_t> offsets(1, 0);
  std::vector<char> padding;  // per row: a padding row of an aligned segment
  for (int64_t e = 0; e < c.experts; ++e) {
    int32_t n = e % 5 == 3 ? 0 : count_dist(rng);
    if (e == 2) n = 150;
    for (int32_t i = 0; i < n; ++i) padding.push_back(0);
    int32_t end = offsets.back() + n;
    const int32_t aligned = static_cast<int32_t>((end + c.block - 1) / c.block * c.block);
    for (int32_t i = end; i < aligned; ++i) padding.push_back(1);
    offsets.push_back(aligned);
  }
  const int64_t used = offsets.back();
  const int64_t rows = used + 3;  // three rows past offsets[E]: never written
  for (int i = 0; i < 3; ++i) padding.push_back(1);

  Weights w;
  make_weights(env, c.experts, c.inter, d, c.weight_dtype, seed + 10, &w);

  // x: uniform rows, zero padding rows (as dsk_moe_permute writes them), in a padded base.
  std::vector<float> xv = uniform(rows * d, -1.0f, 1.0f, seed + 20);
  for (int64_t r = 0; r < rows; ++r) {
    if (padding[static_cast<size_t>(r)]) std::fill_n(xv.begin() + r * d, d, 0.0f);
  }
  const int64_t xs = d + c.x_pad;
  std::vector<float> xbase(static_cast<size_t>(rows * xs), 0.0f);
  for (int64_t r = 0; r < rows; ++r) std::copy_n(xv.begin() + r * d, d, xbase.begin() + r * xs);
  const int32_t x_float = c.x_dtype == kFp8 ? DSK_DTYPE_BF16 : c.x_dtype;
  Pair xb = upload_values(env, xbase, {rows * xs}, x_float);
  const Layout xl{{rows, d}, {xs, 1}, 0};
  Tensor x_cpu = view(xb.cpu, xl);
  Tensor x_gpu = view(xb.gpu, xl);
  Pair xq, xsc;
  if (c.x_dtype == kFp8) {
    Tensor q = create(env.cpu.get(), {rows, d}, kFp8);
    Tensor s = create(env.cpu.get(), {rows, (d + 127) / 128}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_quant_fp8_act(env.cpu.get(), x_cpu.dl(), q.dl(), s.dl(), 0));
    xq = mirror(env, std::move(q));
    xsc = mirror(env, std::move(s));
  }
  const DLTensor* x_in_cpu = c.x_dtype == kFp8 ? xq.cpu.dl() : x_cpu.dl();
  const DLTensor* x_in_gpu = c.x_dtype == kFp8 ? xq.gpu.dl() : x_gpu.dl();

  // y: every element (padding of the base included) starts at 7.
  const int64_t ys = d + c.y_pad;
  Pair yb = upload_values(env, std::vector<float>(static_cast<size_t>(rows * ys), 7.0f),
                          {rows * ys}, c.y_dtype);
  const Layout yl{{rows, d}, {ys, 1}, 0};
  Tensor y_cpu = view(yb.cpu, yl);
  Tensor y_gpu = view(yb.gpu, yl);

  Tensor off_cpu = create(env.cpu.get(), {c.experts + 1}, DSK_DTYPE_INT32);
  std::memcpy(off_cpu.host_bytes(), offsets.data(), offsets.size() * sizeof(int32_t));
  Pair off = mirror(env, std::move(off_cpu));

  const DLTensor* xs_cpu = c.x_dtype == kFp8 ? xsc.cpu.dl() : nullptr;
  const DLTensor* xs_gpu = c.x_dtype == kFp8 ? xsc.gpu.dl() : nullptr;
  DSK_REQUIRE_OK(
      dsk_moe_experts(env.cpu.get(), &w.cpu, x_in_cpu, xs_cpu, off.cpu.dl(), y_cpu.dl()));
  DSK_REQUIRE_OK(dsk_moe_experts(env.gpu.get(), &w.gpu, x_in_gpu, xs_gpu,
                                 c.device_offsets ? off.gpu.dl() : off.cpu.dl(), y_gpu.dl()));
  DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));

  const std::vector<float> want_base = read_f32(env, yb.cpu.dl());
  const std::vector<float> got_base = read_f32(env, yb.gpu.dl());
  std::vector<float> want(static_cast<size_t>(rows * d)), got(static_cast<size_t>(rows * d));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(want_base.begin() + r * ys, d, want.begin() + r * d);
    std::copy_n(got_base.begin() + r * ys, d, got.begin() + r * d);
  }
  compare(got, want, used, d, tol_for(c.weight_dtype, c.y_dtype), {}, "experts y");
  // Rows past offsets[E] and the padding of the base keep their 7 on both sides.
  int64_t touched = 0;
  for (int64_t i = 0; i < rows * ys; ++i) {
    const bool live = i < used * ys && i % ys < d;
    if (live) continue;
    if (want_base[static_cast<size_t>(i)] != 7.0f || got_base[static_cast<size_t>(i)] != 7.0f) {
      ++touched;
    }
  }
  CHECK(touched == 0);
}

// ---- dsk_moe_forward ----

struct LayerCase {
  int32_t weight_dtype;  // bf16 or fp8
  bool shared;
  int64_t tokens;
};

void check_layer(const Env& env, const LayerCase& c, uint32_t seed) {
  constexpr int32_t kE = 16, kK = 4, kG = 4, kTopG = 2;
  constexpr int64_t kD = 256, kI = 128, kIs = 256;
  const int64_t t = c.tokens;
  CAPTURE(dtype_name(c.weight_dtype));
  CAPTURE(c.shared);
  CAPTURE(t);
  dsk_moe_gate_config config;
  DSK_REQUIRE_OK(dsk_moe_gate_config_init(&config));
  config.num_experts = kE;
  config.top_k = kK;
  config.n_group = kG;
  config.topk_group = kTopG;
  // The rest is V3's gate: sigmoid, AUTO (top-2 sum with the bias), renormalized, scale 2.5.

  Pair x = upload_values(env, uniform(t * kD, -1.0f, 1.0f, seed), {t, kD}, DSK_DTYPE_BF16);
  // Router logits of a few units: separated scores, rare near ties.
  Pair router =
      upload_values(env, uniform(kE * kD, -0.2f, 0.2f, seed + 1), {kE, kD}, DSK_DTYPE_BF16);
  Pair bias = upload_values(env, uniform(kE, -0.05f, 0.05f, seed + 2), {kE}, DSK_DTYPE_F32);
  Weights routed, shared;
  make_weights(env, kE, kI, kD, c.weight_dtype, seed + 3, &routed);
  if (c.shared) make_weights(env, 0, kIs, kD, c.weight_dtype, seed + 4, &shared);

  struct Side {
    Tensor out_run, out_fwd, ids, weights;
  } sides[2];
  for (int s = 0; s < 2; ++s) {
    dsk_context* ctx = s == 0 ? env.cpu.get() : env.gpu.get();
    auto pick = [&](const Pair& p) { return s == 0 ? p.cpu.dl() : p.gpu.dl(); };
    const dsk_moe_expert_weights* ew = s == 0 ? &routed.cpu : &routed.gpu;
    const dsk_moe_expert_weights* sw = c.shared ? (s == 0 ? &shared.cpu : &shared.gpu) : nullptr;
    Side& side = sides[s];
    side.out_run = create(ctx, {t, kD}, DSK_DTYPE_BF16);
    side.out_fwd = create(ctx, {t, kD}, DSK_DTYPE_BF16);
    side.ids = create(ctx, {t, kK}, DSK_DTYPE_INT32);
    side.weights = create(ctx, {t, kK}, DSK_DTYPE_F32);
    dsk_moe_plan* raw = nullptr;
    DSK_REQUIRE_OK(
        dsk_moe_plan_create(ctx, &config, pick(x), pick(router), ew, sw, side.out_run.dl(), &raw));
    std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> plan(raw, dsk_moe_plan_release);
    size_t bytes = 0;
    DSK_REQUIRE_OK(dsk_moe_plan_workspace_size(plan.get(), &bytes));
    DSK_REQUIRE_OK(dsk_context_reserve_workspace(ctx, bytes));
    DSK_REQUIRE_OK(dsk_moe_forward_run(ctx, plan.get(), pick(x), pick(router), pick(bias), ew, sw,
                                       side.out_run.dl(), side.ids.dl(), side.weights.dl()));
    DSK_REQUIRE_OK(dsk_moe_forward(ctx, &config, pick(x), pick(router), pick(bias), ew, sw,
                                   side.out_fwd.dl()));
    DSK_REQUIRE_OK(dsk_context_synchronize(ctx));
  }
  const std::vector<uint8_t> ids_cpu(sides[0].ids.host_bytes(),
                                     sides[0].ids.host_bytes() + sides[0].ids.nbytes());
  const std::vector<uint8_t> ids_gpu = download(env, sides[1].ids);
  std::vector<char> skip(static_cast<size_t>(t), 0);
  int64_t rerouted = 0;
  for (int64_t i = 0; i < t; ++i) {
    const size_t row = static_cast<size_t>(i * kK) * sizeof(int32_t);
    if (std::memcmp(ids_cpu.data() + row, ids_gpu.data() + row, kK * sizeof(int32_t)) != 0) {
      skip[static_cast<size_t>(i)] = 1;
      ++rerouted;
    }
  }
  CAPTURE(rerouted);
  CHECK(rerouted <= 1 + t / 50);
  const std::vector<float> w_cpu = read_f32(env, sides[0].weights.dl());
  const std::vector<float> w_gpu = read_f32(env, sides[1].weights.dl());
  compare(w_gpu, w_cpu, t, kK, Tol{1e-4, 1e-6, 1e-4}, skip, "gate weights");
  const Tol tol = tol_for(c.weight_dtype, DSK_DTYPE_BF16);
  const std::vector<float> want = read_f32(env, sides[0].out_run.dl());
  compare(read_f32(env, sides[1].out_run.dl()), want, t, kD, tol, skip, "forward_run out");
  compare(read_f32(env, sides[1].out_fwd.dl()), want, t, kD, tol, skip, "forward out");
  // One call and plan/run are the same computation on the CPU.
  const std::vector<float> cpu_fwd = read_f32(env, sides[0].out_fwd.dl());
  CHECK(cpu_fwd == want);
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("moe_experts on CUDA matches the CPU: float weights through the grouped GEMM") {
    Env env;
    uint32_t seed = 100;
    // bf16/f16/f32 weights with y of the same dtype: cuBLAS grouped GEMM; packed and aligned
    // offsets, on the host and on the device.
    for (int32_t dt : {DSK_DTYPE_BF16, DSK_DTYPE_F16, DSK_DTYPE_F32}) {
      for (int64_t block : {int64_t{1}, int64_t{16}, int64_t{64}}) {
        for (bool dev : {false, true}) {
          check_experts(env, ExpertsCase{dt, dt, dt, block, dev}, seed++);
        }
      }
    }
  }

  TEST_CASE("moe_experts on CUDA matches the CPU: grouped GEMM fallbacks") {
    Env env;
    uint32_t seed = 200;
    // y f32 with bf16 weights: intermediates in f32, the per-group cuBLASLt loop.
    check_experts(env, ExpertsCase{DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_F32, 1, false},
                  seed++);
    // Row pitches that keep 16-byte alignment (grouped) and that break it (per-group loop).
    for (int64_t pad : {int64_t{8}, int64_t{3}}) {
      ExpertsCase c{DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 16, true};
      c.x_pad = pad;
      c.y_pad = pad + 5;
      check_experts(env, c, seed++);
    }
    // Ragged sizes (D, I not multiples of 128 or of 8 elements).
    ExpertsCase r{DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1, false};
    r.hidden = 200;
    r.inter = 77;
    r.experts = 5;
    check_experts(env, r, seed++);
  }

  TEST_CASE("moe_experts on CUDA matches the CPU: fp8 weights") {
    Env env;
    uint32_t seed = 300;
    for (int32_t x_dtype : {DSK_DTYPE_BF16, kFp8}) {
      for (int64_t block : {int64_t{1}, int64_t{64}}) {
        for (bool dev : {false, true}) {
          check_experts(env, ExpertsCase{kFp8, x_dtype, DSK_DTYPE_BF16, block, dev}, seed++);
        }
      }
    }
    ExpertsCase r{kFp8, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 16, false};
    r.hidden = 200;
    r.inter = 160;
    r.experts = 6;
    check_experts(env, r, seed++);
  }

  TEST_CASE("moe_forward on CUDA matches the CPU (E 16, k 4, 4 groups keep 2, D 256, I 128)") {
    Env env;
    uint32_t seed = 400;
    for (int32_t wd : {DSK_DTYPE_BF16, kFp8}) {
      for (bool shared : {false, true}) {
        for (int64_t t : {int64_t{1}, int64_t{7}, int64_t{300}}) {
          check_layer(env, LayerCase{wd, shared, t}, seed);
          seed += 10;
        }
      }
    }
  }
}

}  // namespace dsk_test
