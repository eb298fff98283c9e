// RoPE with YaRN: the frequency table (computed here on the host with the f32 steps of
// DeepSeek-V3's precompute_freqs_cis, then copied to the tensors' device) and dsk_rope_apply's
// checks and normalization to [T, H, D].
#include "ops/rope.h"

#include <algorithm>
#include <cmath>

#include "core/tensor_ops.h"
#include "dsk/dsk_dtype.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Hugging Face's yarn_get_mscale.
double yarn_mscale(double factor, double mscale) {
  if (factor <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(factor) + 1.0;
}

// find_correction_dim of the reference, in double like Python's math module.
double correction_dim(double rotations, int32_t dim, double theta, double original_seq_len) {
  return static_cast<double>(dim) * std::log(original_seq_len / (rotations * 2.0 * kPi)) /
         (2.0 * std::log(theta));
}

}  // namespace

void check_rope_config(const dsk_rope_config& c) {
  check_arg(c.dim >= 2 && c.dim % 2 == 0, "config->dim = {}, expected an even number >= 2", c.dim);
  check_arg(std::isfinite(c.theta) && c.theta > 1.0,
            "config->theta = {}, expected a finite value > 1", c.theta);
  check_arg(std::isfinite(c.factor), "config->factor = {}, expected a finite value", c.factor);
  check_arg(c.original_seq_len > 0, "config->original_seq_len = {}, expected > 0",
            c.original_seq_len);
  check_arg(std::isfinite(c.mscale), "config->mscale = {}, expected a finite value", c.mscale);
  check_arg(std::isfinite(c.mscale_all_dim), "config->mscale_all_dim = {}, expected a finite value",
            c.mscale_all_dim);
  if (c.factor > 1.0) {
    check_arg(std::isfinite(c.beta_slow) && c.beta_slow > 0.0,
              "config->beta_slow = {}, expected a finite value > 0 (YaRN is on: factor > 1)",
              c.beta_slow);
    check_arg(std::isfinite(c.beta_fast) && c.beta_fast > c.beta_slow,
              "config->beta_fast = {}, expected a finite value > beta_slow = {} (YaRN is on: "
              "factor > 1)",
              c.beta_fast, c.beta_slow);
    const double scale = yarn_mscale(c.factor, c.mscale) / yarn_mscale(c.factor, c.mscale_all_dim);
    check_arg(std::isfinite(scale) && std::isfinite(static_cast<float>(scale)),
              "config->mscale_all_dim = {} makes the scale m(mscale) / m(mscale_all_dim) = {} "
              "with m(s) = 0.1 * s * ln(factor) + 1, expected a finite value",
              c.mscale_all_dim, scale);
  }
}

std::vector<float> rope_frequencies(const dsk_rope_config& c) {
  const int32_t half = c.dim / 2;
  std::vector<float> freqs(static_cast<size_t>(half));
  // freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)): the exponent is
  // an f32 division, the power is taken in double and rounded to f32, the reciprocal is f32.
  const auto fdim = static_cast<float>(c.dim);
  for (int32_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / fdim;
    const auto p = static_cast<float>(std::pow(c.theta, static_cast<double>(e)));
    freqs[static_cast<size_t>(i)] = 1.0f / p;
  }
  if (!(c.factor > 1.0)) return freqs;
  // find_correction_range: floor/ceil in double, then clamped to [0, dim - 1].
  const auto orig = static_cast<double>(c.original_seq_len);
  const double low = std::max(std::floor(correction_dim(c.beta_fast, c.dim, c.theta, orig)), 0.0);
  double high = std::min(std::ceil(correction_dim(c.beta_slow, c.dim, c.theta, orig)),
                         static_cast<double>(c.dim - 1));
  // linear_ramp_factor(low, high, dim // 2): (arange(f32) - low) / (high - low), clamped; the
  // Python scalars low and high - low enter the f32 tensor ops as f32.
  if (low == high) high += 0.001;
  const auto flow = static_cast<float>(low);
  const auto range = static_cast<float>(high - low);
  const auto factor = static_cast<float>(c.factor);
  for (int32_t i = 0; i < half; ++i) {
    float ramp = (static_cast<float>(i) - flow) / range;
    ramp = std::min(std::max(ramp, 0.0f), 1.0f);
    const float smooth = 1.0f - ramp;
    const float f = freqs[static_cast<size_t>(i)];
    // freqs / factor * (1 - smooth) + freqs * smooth, each step in f32 (no contraction).
    const float scaled = f / factor * (1.0f - smooth);
    const float kept = f * smooth;
    freqs[static_cast<size_t>(i)] = scaled + kept;
  }
  return freqs;
}

float rope_attention_scale(const dsk_rope_config& c) {
  return static_cast<float>(yarn_mscale(c.factor, c.mscale) /
                            yarn_mscale(c.factor, c.mscale_all_dim));
}

void rope_table(dsk_context& ctx, const dsk_rope_config& config, const DLTensor* cos_t,
                const DLTensor* sin_t) {
  check_rope_config(config);
  const Arg cs = output(cos_t, "cos");
  const Arg sn = output(sin_t, "sin");
  check_dtype(cs, DSK_DTYPE_F32);
  check_dtype(sn, DSK_DTYPE_F32);
  check_ndim(cs, 2);
  check_dim(cs, 1, config.dim / 2, "config->dim / 2");
  check_same_shape(cs, sn);
  check_no_overlap(sn, cs);
  target(ctx, {&cs, &sn});  // both on one device, usable from ctx
  const int64_t positions = cs.l.shape[0];
  const int64_t half = config.dim / 2;
  if (positions == 0) return;
  const std::vector<float> freqs = rope_frequencies(config);
  const float scale = rope_attention_scale(config);
  std::vector<float> cos_h(static_cast<size_t>(positions * half));
  std::vector<float> sin_h(cos_h.size());
  for (int64_t p = 0; p < positions; ++p) {
    // torch.outer(arange(seqlen), freqs): the position becomes f32, then one f32 product.
    const auto fp = static_cast<float>(p);
    float* cr = cos_h.data() + p * half;
    float* sr = sin_h.data() + p * half;
    for (int64_t i = 0; i < half; ++i) {
      const float angle = fp * freqs[static_cast<size_t>(i)];
      const auto a = static_cast<double>(angle);
      cr[i] = static_cast<float>(std::cos(a)) * scale;
      sr[i] = static_cast<float>(std::sin(a)) * scale;
    }
  }
  int64_t shape[2] = {positions, half};
  DLTensor src{};
  src.device = DLDevice{kDLCPU, 0};
  src.ndim = 2;
  src.dtype = DLDataType{kDLFloat, 32, 1};
  src.shape = shape;
  src.data = cos_h.data();
  copy(ctx, &src, cos_t);
  src.data = sin_h.data();
  copy(ctx, &src, sin_t);
}

void rope_apply(const dsk_context& ctx, const DLTensor* x_t, const DLTensor* positions_t,
                const DLTensor* cos_t, const DLTensor* sin_t, const DLTensor* y_t, int32_t layout) {
  const Arg x = input(x_t, "x");
  const Arg pos = input(positions_t, "positions");
  const Arg cs = input(cos_t, "cos");
  const Arg sn = input(sin_t, "sin");
  const Arg y = output(y_t, "y");
  check_arg(layout == DSK_ROPE_INTERLEAVED || layout == DSK_ROPE_HALF_SPLIT,
            "layout = {}, expected DSK_ROPE_INTERLEAVED (0) or DSK_ROPE_HALF_SPLIT (1)", layout);
  check_float({&x, &y});
  check_index(pos);
  check_dtype(cs, DSK_DTYPE_F32);
  check_dtype(sn, DSK_DTYPE_F32);
  check_ndim(cs, 2);
  check_same_shape(cs, sn);
  check_arg(x.l.ndim == 2 || x.l.ndim == 3,
            "x has {} dimensions, expected [T, H, D] or [T, D] (2 or 3 dimensions)", x.l.ndim);
  check_same_shape(x, y);
  const int64_t d = x.l.shape[x.l.ndim - 1];
  check_arg(d == 2 * cs.l.shape[1],
            "x.shape[{}] = {}, expected D = 2 * cos.shape[1] = {} (the rotated dimensions)",
            x.l.ndim - 1, d, 2 * cs.l.shape[1]);
  check_ndim(pos, 1);
  check_dim(pos, 0, x.l.shape[0], "T = x.shape[0]");
  check_no_overlap(y, x, /*allow_same_view=*/true);
  check_no_overlap(y, pos);
  check_no_overlap(y, cs);
  check_no_overlap(y, sn);
  const Target t = target(ctx, {&x, &pos, &cs, &sn, &y});
  View xv;
  View yv;
  View pv;
  View cv;
  View sv;
  if (x.l.ndim == 3) {
    as_is(x, xv);
    as_is(y, yv);
  } else {
    // [T, D] -> [T, 1, D].
    const int64_t shape[3] = {x.l.shape[0], 1, d};
    const int64_t xs[3] = {x.l.strides[0], 0, x.l.strides[1]};
    const int64_t ys[3] = {y.l.strides[0], 0, y.l.strides[1]};
    xv.set(x, 3, shape, xs);
    yv.set(y, 3, shape, ys);
  }
  as_is(pos, pv);
  as_is(cs, cv);
  as_is(sn, sv);
  if (y.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->rope, "rope");
  call(t, fn(&t.exec, xv.get(), pv.get(), cv.get(), sv.get(), yv.get(), layout), "rope");
}

}  // namespace ops
}  // namespace dsk
