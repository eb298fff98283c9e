// The whole MoE layer (dsk_moe_forward): plan checks and sizes, then router GEMM + gate ->
// dispatch -> permute -> routed experts -> shared experts -> combine, every intermediate in one
// scratch block (the context's workspace when it is large enough).
#include <climits>
#include <memory>

#include "common/convert.h"
#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"
#include "ops/moe.h"
#include "ops/moe_experts.h"
#include "ops/moe_scratch.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

int64_t blocks(int64_t n) { return (n + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK; }

// The layer's tensors, checked against each other (and, at run time, against the plan).
struct LayerArgs {
  Arg x, router_w, out;
  Experts routed;
  Experts shared;
  bool has_shared = false;
};

LayerArgs check_layer(const dsk_moe_gate_config& config, const DLTensor* x_t,
                      const DLTensor* router_t, const dsk_moe_expert_weights& experts,
                      const dsk_moe_expert_weights* shared, const DLTensor* out_t) {
  LayerArgs a;
  a.x = input(x_t, "x");
  a.router_w = input(router_t, "router_w");
  a.out = output(out_t, "out");
  check_ndim(a.x, 2);
  check_float(a.x);
  const int64_t tokens = a.x.l.shape[0];
  const int64_t d = a.x.l.shape[1];
  check_arg(d >= 1, "x.shape[1] (D) = {}, expected >= 1", d);
  check_ndim(a.router_w, 2);
  check_same_dtype(a.x, a.router_w);
  const int64_t r_shape[2] = {config.num_experts, d};
  check_shape(a.router_w, r_shape, 2, "[E, D]: config->num_experts, then x.shape[1]");
  check_arg(tokens <= INT32_MAX / config.top_k,
            "x.shape[0] * config->top_k = {} * {} exceeds the int32 row numbers of the dispatch",
            tokens, config.top_k);
  a.routed = check_experts(experts, true, "experts");
  check_arg(a.routed.num == config.num_experts,
            "experts->w1.shape[0] = {}, expected config->num_experts = {}", a.routed.num,
            config.num_experts);
  check_arg(a.routed.hidden == d, "experts->w1.shape[2] = {}, expected D = {} (x.shape[1])",
            a.routed.hidden, d);
  check_arg(a.routed.fp8 || a.routed.dtype_id == a.x.l.dtype_id,
            "experts->w1.dtype is {}, expected x's dtype {} (or fp8_e4m3fn)",
            dtype_id_name(a.routed.dtype_id), dtype_id_name(a.x.l.dtype_id));
  if (shared != nullptr) {
    a.has_shared = true;
    a.shared = check_experts(*shared, false, "shared");
    check_arg(a.shared.hidden == d, "shared->w1.shape[1] = {}, expected D = {} (x.shape[1])",
              a.shared.hidden, d);
    check_arg(a.shared.fp8 || a.shared.dtype_id == a.x.l.dtype_id,
              "shared->w1.dtype is {}, expected x's dtype {} (or fp8_e4m3fn)",
              dtype_id_name(a.shared.dtype_id), dtype_id_name(a.x.l.dtype_id));
  }
  check_ndim(a.out, 2);
  check_float(a.out);
  check_shape(a.out, a.x.l.shape, 2, "[T, D] like x");
  std::initializer_list<const Arg*> ins = {&a.x, &a.router_w};
  for (const Arg* in : ins) check_no_overlap(a.out, *in);
  for (const Arg& w : a.routed.args) {
    if (w.present) check_no_overlap(a.out, w);
  }
  if (a.has_shared) {
    for (const Arg& w : a.shared.args) {
      if (w.present) check_no_overlap(a.out, w);
    }
  }
  return a;
}

// The device of every tensor of the layer (all expert weights included) plus `more`.
Target layer_target(dsk_context& ctx, const LayerArgs& a, std::initializer_list<const Arg*> more) {
  const Experts& r = a.routed;
  const Experts& s = a.shared;  // absent Args when there are no shared experts
  const Target t = target(
      ctx, {&a.x, &a.router_w, &a.out, &r.args[0], &r.args[1], &r.args[2], &r.args[3], &r.args[4],
            &r.args[5], &s.args[0], &s.args[1], &s.args[2], &s.args[3], &s.args[4], &s.args[5]});
  for (const Arg* m : more) {
    if (m->present) target(ctx, {&a.x, m});
  }
  return t;
}

// The scratch pieces of a run, in take() order.
struct Sizes {
  size_t logits, ids, weights, counts, offsets, sorted, dest, xp, xp_scales, yexp, routed, staged,
      shared_out, shared, tail;
  size_t total() const {
    return logits + ids + weights + counts + offsets + sorted + dest + xp + xp_scales + yexp +
           routed + staged + shared_out + shared + tail;
  }
};

Sizes sizes_of(const dsk_moe_plan& p, const Experts& routed, const Experts* shared) {
  dsk_moe_gate_params gp{};
  gp.num_experts = p.config.num_experts;
  gp.score_bf16 = p.config.score_dtype == DSK_DTYPE_BF16 ? 1 : 0;
  const size_t t = static_cast<size_t>(p.tokens);
  const size_t k = static_cast<size_t>(p.config.top_k);
  const size_t e = static_cast<size_t>(p.config.num_experts);
  const size_t d = static_cast<size_t>(p.hidden);
  const size_t tk = t * k;
  const bool fp8 = p.expert_dtype == DSK_DTYPE_FP8_E4M3FN;
  const size_t x_elem = fp8 ? 1 : dtype_id_size(p.x_dtype);
  const size_t out_elem = dtype_id_size(p.out_dtype);
  Sizes s{};
  s.logits = align_up(router_logits_bytes(gp, p.tokens));
  s.ids = align_up(tk * 4);
  s.weights = align_up(tk * 4);
  s.counts = align_up(e * 4);
  s.offsets = align_up((e + 1) * 4);
  s.sorted = align_up(tk * 4);
  s.dest = align_up(tk * 4);
  s.xp = align_up(tk * d * x_elem);
  s.xp_scales = fp8 ? align_up(tk * static_cast<size_t>(blocks(p.hidden)) * 4) : 0;
  s.yexp = align_up(tk * d * out_elem);
  s.routed = experts_scratch_bytes(routed, p.tokens * p.config.top_k, p.out_dtype);
  s.staged = align_up((e + 1) * 4);
  s.shared_out = shared != nullptr ? align_up(t * d * out_elem) : 0;
  s.shared = shared != nullptr ? experts_scratch_bytes(*shared, p.tokens, p.out_dtype) : 0;
  // Room the backends take from the workspace tail before they would allocate: the grouped GEMM's
  // pointer arrays, and the CUDA dispatch's radix sort (keys, values, boundaries and CUB's
  // temporary storage, about 2 x 8 bytes per assignment plus a fixed part).
  s.tail = align_up(4 * 8 * (e + 1)) + 3 * align_up(4 * (e + 1)) + 4 * align_up(4 * tk) +
           align_up(16 * tk) + (size_t{1} << 20);
  return s;
}

void set_contiguous(View& v, char* data, const Arg& like, int32_t dtype_id, int64_t d0,
                    int64_t d1) {
  const int64_t shape[2] = {d0, d1};
  const int64_t strides[2] = {d1, 1};
  v.set(data, like.l.device, dtype_id, 2, shape, strides);
}

void set_vector(View& v, char* data, const Arg& like, int64_t n) {
  const int64_t shape[1] = {n};
  const int64_t strides[1] = {1};
  v.set(data, like.l.device, DSK_DTYPE_INT32, 1, shape, strides);
}

}  // namespace

dsk_moe_plan* moe_plan_create(dsk_context& ctx, const dsk_moe_gate_config& config,
                              const DLTensor* x, const DLTensor* router_w,
                              const dsk_moe_expert_weights& experts,
                              const dsk_moe_expert_weights* shared, const DLTensor* out) {
  moe_gate_params(config, /*has_bias=*/false);
  const LayerArgs a = check_layer(config, x, router_w, experts, shared, out);
  const Target t = layer_target(ctx, a, {});
  auto plan = std::make_unique<dsk_moe_plan>();
  plan->backend = t.backend;
  plan->backend_kind = t.backend->kind;
  plan->device = t.exec.device;
  plan->config = config;
  plan->tokens = a.x.l.shape[0];
  plan->hidden = a.x.l.shape[1];
  plan->inter = a.routed.inter;
  plan->shared_inter = a.has_shared ? a.shared.inter : 0;
  plan->x_dtype = a.x.l.dtype_id;
  plan->out_dtype = a.out.l.dtype_id;
  plan->expert_dtype = a.routed.dtype_id;
  plan->shared_dtype = a.has_shared ? a.shared.dtype_id : 0;
  plan->workspace_bytes = sizes_of(*plan, a.routed, a.has_shared ? &a.shared : nullptr).total();
  return plan.release();
}

void moe_forward_run(dsk_context& ctx, const dsk_moe_plan& plan, const DLTensor* x_t,
                     const DLTensor* router_t, const DLTensor* bias_t,
                     const dsk_moe_expert_weights& experts, const dsk_moe_expert_weights* shared,
                     const DLTensor* out_t, const DLTensor* ids_t, const DLTensor* weights_t) {
  const dsk_moe_gate_config& config = plan.config;
  const dsk_moe_gate_params gp = moe_gate_params(config, bias_t != nullptr);
  const LayerArgs a = check_layer(config, x_t, router_t, experts, shared, out_t);
  const int64_t tokens = a.x.l.shape[0];
  const int64_t d = a.x.l.shape[1];
  const int64_t k = config.top_k;
  const int64_t e = config.num_experts;
  check_arg(tokens == plan.tokens && d == plan.hidden,
            "x has shape {}, expected the plan's [{}, {}]", shape_text(a.x), plan.tokens,
            plan.hidden);
  check_arg(a.x.l.dtype_id == plan.x_dtype && a.out.l.dtype_id == plan.out_dtype,
            "x.dtype {} and out.dtype {}, expected the plan's {} and {}",
            dtype_id_name(a.x.l.dtype_id), dtype_id_name(a.out.l.dtype_id),
            dtype_id_name(plan.x_dtype), dtype_id_name(plan.out_dtype));
  check_arg(a.routed.inter == plan.inter && a.routed.dtype_id == plan.expert_dtype,
            "experts: I = {} and dtype {}, expected the plan's I = {} and {}", a.routed.inter,
            dtype_id_name(a.routed.dtype_id), plan.inter, dtype_id_name(plan.expert_dtype));
  check_arg(a.has_shared == (plan.shared_inter > 0), "shared is {}, expected {} as at plan time",
            a.has_shared ? "given" : "NULL", plan.shared_inter > 0 ? "shared experts" : "NULL");
  if (a.has_shared) {
    check_arg(a.shared.inter == plan.shared_inter && a.shared.dtype_id == plan.shared_dtype,
              "shared: I = {} and dtype {}, expected the plan's I = {} and {}", a.shared.inter,
              dtype_id_name(a.shared.dtype_id), plan.shared_inter,
              dtype_id_name(plan.shared_dtype));
  }
  const Arg bias = optional_input(bias_t, "bias");
  const Arg ids = optional_output(ids_t, "ids");
  const Arg weights = optional_output(weights_t, "weights");
  const int64_t tk_shape[2] = {tokens, k};
  if (bias.present) {
    check_dtype(bias, DSK_DTYPE_F32);
    const int64_t shape[1] = {e};
    check_shape(bias, shape, 1, "[E] (config->num_experts)");
  }
  if (ids.present) {
    check_index(ids);
    check_shape(ids, tk_shape, 2, "[T, k]");
  }
  if (weights.present) {
    check_dtype(weights, DSK_DTYPE_F32);
    check_shape(weights, tk_shape, 2, "[T, k]");
  }
  for (const Arg* o : {&ids, &weights}) {
    if (!o->present) continue;
    for (const Arg* in : {&a.x, &a.router_w, &bias, &a.out}) {
      if (in->present) check_no_overlap(*o, *in);
    }
  }
  for (const Arg* o : {&ids, &weights}) {
    for (const Experts* ex : {&a.routed, &a.shared}) {
      for (const Arg& w : ex->args) check_no_overlap(*o, w);  // absent Args are skipped
    }
  }
  if (ids.present && weights.present) check_no_overlap(weights, ids);
  if (bias.present) check_no_overlap(a.out, bias);
  const Target t = layer_target(ctx, a, {&bias, &ids, &weights});
  check_arg(t.backend->kind == plan.backend_kind && t.exec.device == plan.device,
            "the tensors are on {} device {}, expected the plan's device", t.backend->name,
            t.exec.device);
  if (tokens == 0) return;

  const Sizes s = sizes_of(plan, a.routed, a.has_shared ? &a.shared : nullptr);
  // s.tail is never taken: it stays in the exec's workspace for the backends' own temporaries.
  Scratch scratch(ctx, t, s.total() - s.tail);
  const dsk_exec& ex = scratch.exec();
  const bool fp8 = a.routed.fp8;
  const int32_t xp_dtype = fp8 ? DSK_DTYPE_FP8_E4M3FN : a.x.l.dtype_id;
  const int64_t rows = tokens * k;

  char* logits = scratch.take(s.logits);
  char* ids_data = scratch.take(s.ids);
  char* weights_data = scratch.take(s.weights);
  View iv, wv;
  if (ids.present) {
    as_is(ids, iv);
  } else {
    set_contiguous(iv, ids_data, a.x, DSK_DTYPE_INT32, tokens, k);
  }
  if (weights.present) {
    as_is(weights, wv);
  } else {
    set_contiguous(wv, weights_data, a.x, DSK_DTYPE_F32, tokens, k);
  }
  View bv;
  as_is(bias, bv);
  router_gate(t, ex, gp, a.x, a.router_w, logits, bv.get(), iv.get(), wv.get(), nullptr);

  // Expert order (packed: block size 1).
  View cv, ov, sv, dv;
  set_vector(cv, scratch.take(s.counts), a.x, e);
  char* offsets_data = scratch.take(s.offsets);
  set_vector(ov, offsets_data, a.x, e + 1);
  set_vector(sv, scratch.take(s.sorted), a.x, rows);
  set_contiguous(dv, scratch.take(s.dest), a.x, DSK_DTYPE_INT32, tokens, k);
  auto dispatch = entry(t, t.backend->iface->moe_dispatch, "moe_dispatch");
  call(t,
       dispatch(&ex, iv.get(), static_cast<int32_t>(e), 0, 1, cv.get(), ov.get(), sv.get(), nullptr,
                dv.get()),
       "moe_dispatch");

  // Rows in expert order, quantized per 1 x 128 tile for fp8 experts.
  const Rows xp = contiguous_rows(scratch.take(s.xp), a.x.l.device, xp_dtype, rows, d);
  Rows xp_scales;
  View xv, xpv, xsv;
  as_is(a.x, xv);
  set_contiguous(xpv, xp.data, a.x, xp_dtype, rows, d);
  if (fp8) {
    xp_scales =
        contiguous_rows(scratch.take(s.xp_scales), a.x.l.device, DSK_DTYPE_F32, rows, blocks(d));
    set_contiguous(xsv, xp_scales.data, a.x, DSK_DTYPE_F32, rows, blocks(d));
  }
  auto permute = entry(t, t.backend->iface->moe_permute, "moe_permute");
  call(t, permute(&ex, xv.get(), sv.get(), static_cast<int32_t>(k), xpv.get(), xsv.get(), 0u),
       "moe_permute");

  // Routed experts over their segments (the row counts reach the host here).
  const Rows yexp = contiguous_rows(scratch.take(s.yexp), a.x.l.device, a.out.l.dtype_id, rows, d);
  Arg offsets_arg;
  offsets_arg.present = true;
  offsets_arg.name = "offsets";
  offsets_arg.l.ndim = 1;
  offsets_arg.l.shape[0] = e + 1;
  offsets_arg.l.strides[0] = 1;
  offsets_arg.l.dtype_id = DSK_DTYPE_INT32;
  offsets_arg.l.elem_size = 4;
  offsets_arg.l.data = offsets_data;
  offsets_arg.l.device = a.x.l.device;
  offsets_arg.l.backend = a.x.l.backend;
  // read_offsets stages device offsets through scratch; the routed experts' pieces follow.
  const std::vector<int64_t> host = read_offsets(t, scratch, offsets_arg, rows);
  run_experts(t, scratch, a.routed, xp, xp_scales, host, yexp);

  // Shared experts on every token, then the weighted sum.
  View shv;
  if (a.has_shared) {
    const Rows shared_out =
        contiguous_rows(scratch.take(s.shared_out), a.x.l.device, a.out.l.dtype_id, tokens, d);
    run_experts(t, scratch, a.shared, rows_of_arg(a.x), Rows{}, {0, tokens}, shared_out);
    set_contiguous(shv, shared_out.data, a.x, a.out.l.dtype_id, tokens, d);
  }
  View yv, outv;
  set_contiguous(yv, yexp.data, a.x, a.out.l.dtype_id, rows, d);
  as_is(a.out, outv);
  auto combine = entry(t, t.backend->iface->moe_combine, "moe_combine");
  call(t, combine(&ex, yv.get(), dv.get(), wv.get(), shv.get(), outv.get()), "moe_combine");
  scratch.release();
}

}  // namespace ops
}  // namespace dsk
