// MoE load statistics, the auxiliary-loss-free bias update and the expert-parallel layout
// (dsk_moe.h): argument checks and dispatch to the backend's entries.
#include <cmath>

#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "ops/moe.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {

void moe_load_accumulate(dsk_context& ctx, const DLTensor* ids_t, int32_t expert_begin,
                         const DLTensor* load_t) {
  const Arg ids = input(ids_t, "ids");
  const Arg load = output(load_t, "load");
  check_ndim(ids, 2);
  check_index(ids);
  check_ndim(load, 1);
  check_dtype(load, DSK_DTYPE_INT64);
  check_arg(load.l.shape[0] >= 1, "load.shape[0] (E) = {}, expected >= 1", load.l.shape[0]);
  check_arg(expert_begin >= 0, "expert_begin = {}, expected >= 0", expert_begin);
  check_no_overlap(load, ids);
  const Target t = target(ctx, {&ids, &load});
  if (ids.l.numel == 0) return;
  View iv, lv;
  as_is(ids, iv);
  as_is(load, lv);
  auto fn = entry(t, t.backend->iface->moe_load_accumulate, "moe_load_accumulate");
  call(t, fn(&t.exec, iv.get(), expert_begin, lv.get()), "moe_load_accumulate");
}

void moe_bias_update(dsk_context& ctx, const DLTensor* load_t, const DLTensor* bias_t,
                     float gamma) {
  const Arg load = input(load_t, "load");
  const Arg bias = output(bias_t, "bias");
  check_ndim(load, 1);
  check_arg(load.l.dtype_id == DSK_DTYPE_INT64 || load.l.dtype_id == DSK_DTYPE_F32,
            "load.dtype is {}, expected int64 or f32", dtype_id_name(load.l.dtype_id));
  check_arg(load.l.shape[0] >= 1, "load.shape[0] (E) = {}, expected >= 1", load.l.shape[0]);
  check_dtype(bias, DSK_DTYPE_F32);
  check_shape(bias, load.l.shape, 1, "[E] like load");
  check_arg(std::isfinite(gamma) && gamma >= 0.0f, "gamma = {}, expected a finite value >= 0",
            gamma);
  check_no_overlap(bias, load);
  const Target t = target(ctx, {&load, &bias});
  View lv, bv;
  as_is(load, lv);
  as_is(bias, bv);
  auto fn = entry(t, t.backend->iface->moe_bias_update, "moe_bias_update");
  call(t, fn(&t.exec, lv.get(), bv.get(), gamma), "moe_bias_update");
}

void moe_ep_layout(dsk_context& ctx, const DLTensor* ids_t, int32_t num_experts, int32_t num_ranks,
                   const DLTensor* per_rank_t, const DLTensor* per_expert_t,
                   const DLTensor* in_rank_t) {
  const Arg ids = input(ids_t, "ids");
  const Arg per_rank = output(per_rank_t, "tokens_per_rank");
  const Arg per_expert = output(per_expert_t, "tokens_per_expert");
  const Arg in_rank = output(in_rank_t, "is_token_in_rank");
  check_ndim(ids, 2);
  check_index(ids);
  check_arg(num_experts >= 1, "num_experts = {}, expected >= 1", num_experts);
  check_arg(num_ranks >= 1 && num_experts % num_ranks == 0,
            "num_ranks = {}, expected a divisor of num_experts = {} (contiguous expert ranges)",
            num_ranks, num_experts);
  check_dtype(per_rank, DSK_DTYPE_INT32);
  const int64_t r_shape[1] = {num_ranks};
  check_shape(per_rank, r_shape, 1, "[R] (num_ranks)");
  check_dtype(per_expert, DSK_DTYPE_INT32);
  const int64_t e_shape[1] = {num_experts};
  check_shape(per_expert, e_shape, 1, "[E] (num_experts)");
  check_arg(in_rank.l.dtype_id == DSK_DTYPE_BOOL || in_rank.l.dtype_id == DSK_DTYPE_UINT8,
            "is_token_in_rank.dtype is {}, expected bool or uint8",
            dtype_id_name(in_rank.l.dtype_id));
  const int64_t m_shape[2] = {ids.l.shape[0], num_ranks};
  check_shape(in_rank, m_shape, 2, "[T, R]: ids.shape[0], then num_ranks");
  for (const Arg* o : {&per_rank, &per_expert, &in_rank}) check_no_overlap(*o, ids);
  check_no_overlap(per_expert, per_rank);
  check_no_overlap(in_rank, per_rank);
  check_no_overlap(in_rank, per_expert);
  const Target t = target(ctx, {&ids, &per_rank, &per_expert, &in_rank});
  View iv, rv, ev, mv;
  as_is(ids, iv);
  as_is(per_rank, rv);
  as_is(per_expert, ev);
  as_is(in_rank, mv);
  auto fn = entry(t, t.backend->iface->moe_ep_layout, "moe_ep_layout");
  call(t, fn(&t.exec, iv.get(), num_experts, num_ranks, rv.get(), ev.get(), mv.get()),
       "moe_ep_layout");
}

}  // namespace ops
}  // namespace dsk
