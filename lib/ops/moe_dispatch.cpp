// MoE dispatch, permute and combine (dsk_moe.h): argument checks and dispatch to the backend's
// moe_dispatch / moe_permute / moe_combine entries. Index values inside sorted_rows and dest are
// checked by the backends (on a device they can only be read there without synchronizing).
#include <climits>

#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"
#include "ops/moe.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

// ids [T, k] int32/int64 with T * k (the padding sentinel) in the int32 range.
void check_ids(const Arg& ids) {
  check_ndim(ids, 2);
  check_index(ids);
  check_arg(ids.l.shape[1] >= 1, "ids.shape[1] (k) = {}, expected >= 1", ids.l.shape[1]);
  check_arg(ids.l.shape[0] <= INT32_MAX / ids.l.shape[1],
            "ids has shape {}: T * k = {} assignments, expected at most {} (int32 row numbers)",
            shape_text(ids), ids.l.shape[0] * ids.l.shape[1], INT32_MAX);
}

void check_vector(const Arg& a, int32_t dtype_id, int64_t size, const char* rule) {
  check_dtype(a, dtype_id);
  const int64_t shape[1] = {size};
  check_shape(a, shape, 1, rule);
}

void check_outputs_apart(std::initializer_list<const Arg*> outs,
                         std::initializer_list<const Arg*> ins) {
  for (const Arg* o : outs) {
    if (!o->present) continue;
    for (const Arg* i : ins) {
      if (i->present) check_no_overlap(*o, *i);
    }
    for (const Arg* o2 : outs) {
      if (o2 == o) break;
      if (o2->present) check_no_overlap(*o, *o2);
    }
  }
}

}  // namespace

int64_t moe_dispatch_capacity(int64_t num_tokens, int32_t top_k, int32_t num_experts,
                              int32_t block_size) {
  check_arg(num_tokens >= 0, "num_tokens = {}, expected >= 0", num_tokens);
  check_arg(top_k >= 1, "top_k = {}, expected >= 1", top_k);
  check_arg(num_experts >= 1, "num_experts = {}, expected >= 1", num_experts);
  check_arg(block_size >= 1, "block_size = {}, expected >= 1", block_size);
  check_arg(num_tokens <= INT64_MAX / top_k, "num_tokens * top_k = {} * {} overflows int64",
            num_tokens, top_k);
  const int64_t assignments = num_tokens * top_k;
  const int64_t padded_experts = assignments < num_experts ? assignments : num_experts;
  const int64_t pad = block_size - 1;
  check_arg(pad == 0 || padded_experts <= (INT64_MAX - assignments) / pad,
            "the capacity for num_tokens = {}, top_k = {}, num_experts = {}, block_size = {} "
            "overflows int64",
            num_tokens, top_k, num_experts, block_size);
  return assignments + padded_experts * pad;
}

void moe_dispatch(dsk_context& ctx, const DLTensor* ids_t, int32_t num_experts,
                  int32_t expert_begin, int32_t block_size, const DLTensor* counts_t,
                  const DLTensor* offsets_t, const DLTensor* sorted_t, const DLTensor* blocks_t,
                  const DLTensor* dest_t) {
  const Arg ids = input(ids_t, "ids");
  const Arg counts = output(counts_t, "counts");
  const Arg offsets = output(offsets_t, "offsets");
  const Arg sorted = output(sorted_t, "sorted_rows");
  const Arg blocks = optional_output(blocks_t, "block_experts");
  const Arg dest = optional_output(dest_t, "dest");
  check_ids(ids);
  check_arg(num_experts >= 1, "num_experts = {}, expected >= 1", num_experts);
  check_arg(expert_begin >= 0, "expert_begin = {}, expected >= 0", expert_begin);
  check_arg(block_size >= 1 && block_size <= 4096, "block_size = {}, expected 1..4096", block_size);
  const int64_t tokens = ids.l.shape[0];
  const int64_t k = ids.l.shape[1];
  check_vector(counts, DSK_DTYPE_INT32, num_experts, "[E] (num_experts)");
  check_vector(offsets, DSK_DTYPE_INT32, int64_t{num_experts} + 1, "[E + 1] (num_experts + 1)");
  check_ndim(sorted, 1);
  check_dtype(sorted, DSK_DTYPE_INT32);
  const int64_t needed =
      moe_dispatch_capacity(tokens, static_cast<int32_t>(k), num_experts, block_size);
  const int64_t capacity = sorted.l.shape[0];
  check_arg(capacity >= needed && capacity <= INT32_MAX,
            "sorted_rows.shape[0] = {}, expected {}..{} (dsk_moe_dispatch_capacity(T = {}, k = {}, "
            "E = {}, block_size = {}) up to the int32 range)",
            capacity, needed, INT32_MAX, tokens, k, num_experts, block_size);
  if (blocks.present) {
    check_vector(blocks, DSK_DTYPE_INT32, (capacity + block_size - 1) / block_size,
                 "[ceil(capacity / block_size)]");
  }
  if (dest.present) {
    check_dtype(dest, DSK_DTYPE_INT32);
    check_shape(dest, ids.l.shape, 2, "[T, k] like ids");
  }
  check_outputs_apart({&counts, &offsets, &sorted, &blocks, &dest}, {&ids});
  const Target t = target(ctx, {&ids, &counts, &offsets, &sorted, &blocks, &dest});
  View iv, cv, ov, sv, bv, dv;
  as_is(ids, iv);
  as_is(counts, cv);
  as_is(offsets, ov);
  as_is(sorted, sv);
  as_is(blocks, bv);
  as_is(dest, dv);
  auto fn = entry(t, t.backend->iface->moe_dispatch, "moe_dispatch");
  call(t,
       fn(&t.exec, iv.get(), num_experts, expert_begin, block_size, cv.get(), ov.get(), sv.get(),
          bv.get(), dv.get()),
       "moe_dispatch");
}

void moe_permute(dsk_context& ctx, const DLTensor* x_t, const DLTensor* sorted_t, int32_t top_k,
                 const DLTensor* out_t, const DLTensor* scales_t, uint32_t flags) {
  const Arg x = input(x_t, "x");
  const Arg sorted = input(sorted_t, "sorted_rows");
  const Arg out = output(out_t, "out");
  const Arg scales = optional_output(scales_t, "out_scales");
  check_ndim(x, 2);
  check_float(x);
  check_ndim(sorted, 1);
  check_dtype(sorted, DSK_DTYPE_INT32);
  check_arg(top_k >= 1, "top_k = {}, expected >= 1", top_k);
  check_arg(x.l.shape[0] <= INT32_MAX / top_k,
            "x.shape[0] * top_k = {} * {} exceeds the int32 row numbers of sorted_rows",
            x.l.shape[0], top_k);
  const int64_t rows = sorted.l.shape[0];
  const int64_t d = x.l.shape[1];
  check_ndim(out, 2);
  const int64_t out_shape[2] = {rows, d};
  check_shape(out, out_shape, 2, "[R, D]: sorted_rows.shape[0], then x.shape[1]");
  if (out.l.dtype_id == DSK_DTYPE_FP8_E4M3FN) {
    check_arg(scales.present,
              "out_scales is NULL but out is fp8_e4m3fn, expected [R, ceil(D / 128)] f32 scales");
    check_dtype(scales, DSK_DTYPE_F32);
    const int64_t s_shape[2] = {rows, (d + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK};
    check_shape(scales, s_shape, 2, "[R, ceil(D / 128)]");
    check_arg((flags & ~DSK_QUANT_SCALE_POW2) == 0,
              "flags = {}, expected 0 or DSK_QUANT_SCALE_POW2", flags);
  } else {
    check_arg(is_float(out), "out.dtype is {}, expected f32, f16, bf16 or fp8_e4m3fn",
              dtype_id_name(out.l.dtype_id));
    check_arg(!scales.present, "out_scales is given but out is {}, expected NULL for float out",
              dtype_id_name(out.l.dtype_id));
    check_arg(flags == 0, "flags = {}, expected 0 for a float out", flags);
  }
  check_outputs_apart({&out, &scales}, {&x, &sorted});
  const Target t = target(ctx, {&x, &sorted, &out, &scales});
  if (rows == 0) return;
  View xv, sv, ov, scv;
  as_is(x, xv);
  as_is(sorted, sv);
  as_is(out, ov);
  as_is(scales, scv);
  auto fn = entry(t, t.backend->iface->moe_permute, "moe_permute");
  call(t, fn(&t.exec, xv.get(), sv.get(), top_k, ov.get(), scv.get(), flags), "moe_permute");
}

void moe_combine(dsk_context& ctx, const DLTensor* y_t, const DLTensor* dest_t,
                 const DLTensor* weights_t, const DLTensor* shared_t, const DLTensor* out_t) {
  const Arg y = input(y_t, "y");
  const Arg dest = input(dest_t, "dest");
  const Arg weights = input(weights_t, "weights");
  const Arg shared = optional_input(shared_t, "shared");
  const Arg out = output(out_t, "out");
  check_ndim(y, 2);
  check_float(y);
  check_ndim(dest, 2);
  check_dtype(dest, DSK_DTYPE_INT32);
  check_dtype(weights, DSK_DTYPE_F32);
  check_shape(weights, dest.l.shape, 2, "[T, k] like dest");
  const int64_t tokens = dest.l.shape[0];
  check_arg(dest.l.shape[1] >= 1, "dest.shape[1] (k) = {}, expected >= 1", dest.l.shape[1]);
  check_ndim(out, 2);
  check_float(out);
  const int64_t out_shape[2] = {tokens, y.l.shape[1]};
  check_shape(out, out_shape, 2, "[T, D]: dest.shape[0], then y.shape[1]");
  if (shared.present) {
    check_float(shared);
    check_shape(shared, out_shape, 2, "[T, D] like out");
    check_no_overlap(out, shared, /*allow_same_view=*/true);
  }
  check_outputs_apart({&out}, {&y, &dest, &weights});
  const Target t = target(ctx, {&y, &dest, &weights, &shared, &out});
  if (out.l.numel == 0) return;
  View yv, dv, wv, shv, ov;
  as_is(y, yv);
  as_is(dest, dv);
  as_is(weights, wv);
  as_is(shared, shv);
  as_is(out, ov);
  auto fn = entry(t, t.backend->iface->moe_combine, "moe_combine");
  call(t, fn(&t.exec, yv.get(), dv.get(), wv.get(), shv.get(), ov.get()), "moe_combine");
}

}  // namespace ops
}  // namespace dsk
