// The MoE gate (dsk_moe.h): config checks, the router GEMM and dispatch to the backend's moe_gate
// entry, which holds the selection math (shared by CPU and CUDA in lib/common/moe_gate_row.h).
#include <cmath>

#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "ops/moe.h"
#include "ops/moe_experts.h"
#include "ops/moe_scratch.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

struct GateArgs {
  Arg bias, ids, weights, flags;
};

// The outputs and the bias for T tokens of `config`; the scores' source (logits or x) is checked
// by the caller and passed as `source` for the overlap checks.
GateArgs check_gate_outputs(const dsk_moe_gate_config& config, const DLTensor* bias_t,
                            const DLTensor* ids_t, const DLTensor* weights_t,
                            const DLTensor* flags_t, int64_t tokens,
                            std::initializer_list<const Arg*> sources) {
  GateArgs a{optional_input(bias_t, "bias"), output(ids_t, "ids"), output(weights_t, "weights"),
             optional_output(flags_t, "row_flags")};
  const int64_t e = config.num_experts;
  const int64_t k = config.top_k;
  if (a.bias.present) {
    check_dtype(a.bias, DSK_DTYPE_F32);
    const int64_t shape[1] = {e};
    check_shape(a.bias, shape, 1, "[E] (config->num_experts)");
  }
  check_index(a.ids);
  const int64_t out_shape[2] = {tokens, k};
  check_shape(a.ids, out_shape, 2, "[T, k] (config->top_k)");
  check_dtype(a.weights, DSK_DTYPE_F32);
  check_shape(a.weights, out_shape, 2, "[T, k] (config->top_k)");
  if (a.flags.present) {
    check_dtype(a.flags, DSK_DTYPE_UINT8);
    const int64_t shape[1] = {tokens};
    check_shape(a.flags, shape, 1, "[T]");
  }
  for (const Arg* out : {&a.ids, &a.weights, &a.flags}) {
    if (!out->present) continue;
    for (const Arg* in : sources) check_no_overlap(*out, *in);
    if (a.bias.present) check_no_overlap(*out, a.bias);
  }
  check_no_overlap(a.weights, a.ids);
  if (a.flags.present) {
    check_no_overlap(a.flags, a.ids);
    check_no_overlap(a.flags, a.weights);
  }
  return a;
}

void run_gate(const Target& t, const dsk_exec& ex, const dsk_moe_gate_params& p,
              const DLTensor* logits, const GateArgs& a) {
  View bv, iv, wv, fv;
  as_is(a.bias, bv);
  as_is(a.ids, iv);
  as_is(a.weights, wv);
  as_is(a.flags, fv);
  auto fn = entry(t, t.backend->iface->moe_gate, "moe_gate");
  call(t, fn(&ex, &p, logits, bv.get(), iv.get(), wv.get(), fv.get()), "moe_gate");
}

}  // namespace

size_t router_logits_bytes(const dsk_moe_gate_params& p, int64_t tokens) {
  return static_cast<size_t>(tokens) * static_cast<size_t>(p.num_experts) *
         (p.score_bf16 != 0 ? 2 : 4);
}

void router_gate(const Target& t, const dsk_exec& ex, const dsk_moe_gate_params& p, const Arg& x,
                 const Arg& w, char* logits, const DLTensor* bias, const DLTensor* ids,
                 const DLTensor* weights, const DLTensor* flags) {
  const int64_t tokens = x.l.shape[0];
  const int64_t d = x.l.shape[1];
  const int64_t e = p.num_experts;
  const int32_t logits_dtype = p.score_bf16 != 0 ? DSK_DTYPE_BF16 : DSK_DTYPE_F32;
  // logits [1, T, E] = x [1, T, D] @ w^T [1, D, E] (w read through swapped strides).
  const auto st = gemm_stride;
  View xv, wv, lv;
  const int64_t x_shape[3] = {1, tokens, d};
  const int64_t x_strides[3] = {0, st(tokens, x.l.strides[0]), st(d, x.l.strides[1])};
  xv.set(x, 3, x_shape, x_strides);
  const int64_t wt_shape[3] = {1, d, e};
  const int64_t wt_strides[3] = {0, st(d, w.l.strides[1]), st(e, w.l.strides[0])};
  wv.set(w, 3, wt_shape, wt_strides);
  const int64_t l_shape[3] = {1, tokens, e};
  const int64_t l_strides[3] = {0, st(tokens, e), st(e, 1)};
  lv.set(logits, x.l.device, logits_dtype, 3, l_shape, l_strides);
  auto gemm = entry(t, t.backend->iface->gemm, "gemm");
  call(t, gemm(&ex, xv.get(), wv.get(), nullptr, nullptr, lv.get(), 1.0f, 0.0f), "router gemm");
  View rows;
  const int64_t row_strides[2] = {e, 1};
  rows.set(logits, x.l.device, logits_dtype, 2, l_shape + 1, row_strides);
  auto fn = entry(t, t.backend->iface->moe_gate, "moe_gate");
  call(t, fn(&ex, &p, rows.get(), bias, ids, weights, flags), "moe_gate");
}

void moe_gate_config_init(dsk_moe_gate_config* config) {
  *config = dsk_moe_gate_config{};
  config->struct_size = sizeof(dsk_moe_gate_config);
  config->num_experts = 256;
  config->top_k = 8;
  config->n_group = 8;
  config->topk_group = 4;
  config->score_func = DSK_MOE_SCORE_SIGMOID;
  config->group_rule = DSK_MOE_GROUP_AUTO;
  config->renormalize = 1;
  config->routed_scaling_factor = 2.5f;
  config->score_dtype = DSK_DTYPE_F32;
}

dsk_moe_gate_params moe_gate_params(const dsk_moe_gate_config& c, bool has_bias) {
  check_arg(c.num_experts >= 1, "config->num_experts = {}, expected >= 1", c.num_experts);
  check_arg(c.n_group >= 1 && c.num_experts % c.n_group == 0,
            "config->n_group = {}, expected a divisor of config->num_experts = {}", c.n_group,
            c.num_experts);
  check_arg(c.topk_group >= 1 && c.topk_group <= c.n_group,
            "config->topk_group = {}, expected 1..{} (config->n_group)", c.topk_group, c.n_group);
  const int32_t per_group = c.num_experts / c.n_group;
  const int64_t capacity = static_cast<int64_t>(c.topk_group) * per_group;
  check_arg(c.top_k >= 1 && c.top_k <= capacity,
            "config->top_k = {}, expected 1..{} (topk_group * num_experts / n_group)", c.top_k,
            capacity);
  check_arg(
      c.score_func == DSK_MOE_SCORE_SOFTMAX || c.score_func == DSK_MOE_SCORE_SIGMOID ||
          c.score_func == DSK_MOE_SCORE_NONE,
      "config->score_func = {}, expected DSK_MOE_SCORE_SOFTMAX (0), _SIGMOID (1) or _NONE (2)",
      c.score_func);
  check_arg(c.group_rule == DSK_MOE_GROUP_AUTO || c.group_rule == DSK_MOE_GROUP_MAX ||
                c.group_rule == DSK_MOE_GROUP_TOP2SUM,
            "config->group_rule = {}, expected DSK_MOE_GROUP_AUTO (0), _MAX (1) or _TOP2SUM (2)",
            c.group_rule);
  const bool top2sum =
      c.group_rule == DSK_MOE_GROUP_TOP2SUM || (c.group_rule == DSK_MOE_GROUP_AUTO && has_bias);
  check_arg(!top2sum || c.n_group == 1 || per_group >= 2,
            "config->n_group = {} leaves {} expert per group, but the group rule is the top-2 sum "
            "(DSK_MOE_GROUP_TOP2SUM{}), which needs >= 2; use DSK_MOE_GROUP_MAX",
            c.n_group, per_group, c.group_rule == DSK_MOE_GROUP_AUTO ? ", AUTO with a bias" : "");
  check_arg(c.renormalize == 0 || c.renormalize == 1, "config->renormalize = {}, expected 0 or 1",
            c.renormalize);
  check_arg(std::isfinite(c.routed_scaling_factor),
            "config->routed_scaling_factor = {}, expected a finite value", c.routed_scaling_factor);
  check_arg(c.score_dtype == DSK_DTYPE_F32 || c.score_dtype == DSK_DTYPE_BF16,
            "config->score_dtype = {}, expected DSK_DTYPE_F32 ({}) or DSK_DTYPE_BF16 ({})",
            c.score_dtype, DSK_DTYPE_F32, DSK_DTYPE_BF16);
  dsk_moe_gate_params p{};
  p.num_experts = c.num_experts;
  p.top_k = c.top_k;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.score_func = c.score_func;
  p.top2sum = top2sum ? 1 : 0;
  p.renormalize = c.renormalize;
  p.score_bf16 = c.score_dtype == DSK_DTYPE_BF16 ? 1 : 0;
  p.scale = c.routed_scaling_factor;
  return p;
}

void moe_gate(dsk_context& ctx, const dsk_moe_gate_config& config, const DLTensor* logits_t,
              const DLTensor* bias_t, const DLTensor* ids_t, const DLTensor* weights_t,
              const DLTensor* flags_t) {
  const dsk_moe_gate_params p = moe_gate_params(config, bias_t != nullptr);
  const Arg logits = input(logits_t, "logits");
  check_ndim(logits, 2);
  check_float(logits);
  check_arg(logits.l.shape[1] == config.num_experts,
            "logits.shape[1] = {}, expected config->num_experts = {}", logits.l.shape[1],
            config.num_experts);
  const int64_t tokens = logits.l.shape[0];
  const GateArgs a =
      check_gate_outputs(config, bias_t, ids_t, weights_t, flags_t, tokens, {&logits});
  const Target t = target(ctx, {&logits, &a.bias, &a.ids, &a.weights, &a.flags});
  if (tokens == 0) return;
  View lv;
  as_is(logits, lv);
  run_gate(t, t.exec, p, lv.get(), a);
}

void moe_gate_router(dsk_context& ctx, const dsk_moe_gate_config& config, const DLTensor* x_t,
                     const DLTensor* w_t, const DLTensor* bias_t, const DLTensor* ids_t,
                     const DLTensor* weights_t, const DLTensor* flags_t) {
  const dsk_moe_gate_params p = moe_gate_params(config, bias_t != nullptr);
  const Arg x = input(x_t, "x");
  const Arg w = input(w_t, "w");
  check_ndim(x, 2);
  check_float(x);
  check_ndim(w, 2);
  check_same_dtype(x, w);
  const int64_t tokens = x.l.shape[0];
  const int64_t d = x.l.shape[1];
  const int64_t w_shape[2] = {config.num_experts, d};
  check_shape(w, w_shape, 2, "[E, D]: config->num_experts, then x.shape[1]");
  const GateArgs a =
      check_gate_outputs(config, bias_t, ids_t, weights_t, flags_t, tokens, {&x, &w});
  const Target t = target(ctx, {&x, &w, &a.bias, &a.ids, &a.weights, &a.flags});
  if (tokens == 0) return;

  Scratch scratch(ctx, t, align_up(router_logits_bytes(p, tokens)));
  View bv, iv, wv, fv;
  as_is(a.bias, bv);
  as_is(a.ids, iv);
  as_is(a.weights, wv);
  as_is(a.flags, fv);
  router_gate(t, scratch.exec(), p, x, w, scratch.take(router_logits_bytes(p, tokens)), bv.get(),
              iv.get(), wv.get(), fv.get());
  scratch.release();
}

}  // namespace ops
}  // namespace dsk
