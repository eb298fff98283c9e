// MLA attention (dsk_mla.h): the softmax scale, the decode plan and run, cache append and
// prefill — argument checks and dispatch to the backend's mla_* entries. Values held in index
// tensors (block tables, seqlens, slots, cu_seqlens) are checked by the backends, because on a
// device they can only be read there without synchronizing.
#include "ops/mla.h"

#include <cmath>
#include <memory>

#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

constexpr int64_t kMaxKvHeads = 8;
constexpr int64_t kPageMultiple = 16;

void check_half(const Arg& a) {
  check_arg(a.l.dtype_id == DSK_DTYPE_BF16 || a.l.dtype_id == DSK_DTYPE_F16,
            "{}.dtype is {}, expected bf16 or f16", a.name, dtype_id_name(a.l.dtype_id));
}

// The innermost dimension has stride 1 (vector loads of whole rows).
void check_last_contiguous(const Arg& a) {
  if (a.l.ndim == 0) return;
  const int32_t last = a.l.ndim - 1;
  check_arg(a.l.shape[last] <= 1 || a.l.strides[last] == 1,
            "{}.strides[{}] = {}, expected 1 (the last dimension must be contiguous)", a.name, last,
            a.l.strides[last]);
}

void check_scale(float softmax_scale) {
  check_arg(std::isfinite(softmax_scale) && softmax_scale > 0.0f,
            "softmax_scale = {}, expected a finite value > 0", softmax_scale);
}

void check_causal(int32_t causal) {
  check_arg(causal == 0 || causal == 1, "causal = {}, expected 0 or 1", causal);
}

void check_page_size(const Arg& kv_cache) {
  const int64_t page = kv_cache.l.shape[1];
  check_arg(page >= kPageMultiple && page % kPageMultiple == 0,
            "{}.shape[1] (page_size) = {}, expected a positive multiple of {}", kv_cache.name, page,
            kPageMultiple);
}

void check_kv_heads(const Arg& kv_cache, int64_t h_q, const char* heads_of) {
  const int64_t h_kv = kv_cache.l.shape[2];
  check_arg(h_kv >= 1 && h_kv <= kMaxKvHeads, "{}.shape[2] (h_kv) = {}, expected 1..{}",
            kv_cache.name, h_kv, kMaxKvHeads);
  check_arg(h_q % h_kv == 0, "{} (h_q) = {} is not a multiple of {}.shape[2] (h_kv) = {}", heads_of,
            h_q, kv_cache.name, h_kv);
}

// Everything the decode tensors must satisfy, plan or run.
struct DecodeArgs {
  Arg q, kv, bt, seqlens, out, lse;
};

DecodeArgs check_decode(const DLTensor* q_t, const DLTensor* kv_t, const DLTensor* bt_t,
                        const DLTensor* seqlens_t, const DLTensor* out_t, const DLTensor* lse_t) {
  DecodeArgs a{input(q_t, "q"),
               input(kv_t, "kv_cache"),
               input(bt_t, "block_table"),
               input(seqlens_t, "cache_seqlens"),
               output(out_t, "out"),
               optional_output(lse_t, "lse")};
  check_ndim(a.q, 4);
  check_half(a.q);
  check_ndim(a.kv, 4);
  check_arg(a.kv.l.dtype_id == a.q.l.dtype_id, "kv_cache.dtype is {}, expected q's dtype {}",
            dtype_id_name(a.kv.l.dtype_id), dtype_id_name(a.q.l.dtype_id));
  check_ndim(a.bt, 2);
  check_dtype(a.bt, DSK_DTYPE_INT32);
  check_ndim(a.seqlens, 1);
  check_dtype(a.seqlens, DSK_DTYPE_INT32);
  check_ndim(a.out, 4);
  check_arg(a.out.l.dtype_id == a.q.l.dtype_id, "out.dtype is {}, expected q's dtype {}",
            dtype_id_name(a.out.l.dtype_id), dtype_id_name(a.q.l.dtype_id));

  const int64_t b = a.q.l.shape[0];
  const int64_t s = a.q.l.shape[1];
  const int64_t h_q = a.q.l.shape[2];
  const int64_t d = a.q.l.shape[3];
  check_arg(d >= 1, "q.shape[3] (D) = {}, expected >= 1", d);
  check_arg(a.kv.l.shape[3] == d, "kv_cache.shape[3] = {}, expected q.shape[3] (D) = {}",
            a.kv.l.shape[3], d);
  check_page_size(a.kv);
  check_arg(h_q >= 1, "q.shape[2] (h_q) = {}, expected >= 1", h_q);
  check_kv_heads(a.kv, h_q, "q.shape[2]");
  check_arg(a.bt.l.shape[0] == b, "block_table.shape[0] = {}, expected the batch q.shape[0] = {}",
            a.bt.l.shape[0], b);
  check_arg(a.seqlens.l.shape[0] == b,
            "cache_seqlens.shape[0] = {}, expected the batch q.shape[0] = {}", a.seqlens.l.shape[0],
            b);
  const int64_t dv = a.out.l.shape[3];
  check_arg(dv >= 1 && dv <= d, "out.shape[3] (Dv) = {}, expected 1..{} (q.shape[3])", dv, d);
  const int64_t out_shape[4] = {b, s, h_q, dv};
  check_shape(a.out, out_shape, 4, "[B, S, h_q] of q, then Dv");
  if (a.lse.present) {
    check_dtype(a.lse, DSK_DTYPE_F32);
    const int64_t lse_shape[3] = {b, h_q, s};
    check_shape(a.lse, lse_shape, 3, "[B, h_q, S] from q");
  }
  check_last_contiguous(a.q);
  check_last_contiguous(a.kv);
  check_last_contiguous(a.out);
  for (const Arg* in : {&a.q, &a.kv, &a.bt, &a.seqlens}) {
    check_no_overlap(a.out, *in);
    if (a.lse.present) check_no_overlap(a.lse, *in);
  }
  if (a.lse.present) check_no_overlap(a.lse, a.out);
  return a;
}

dsk_mla_decode_shape shape_of(const DecodeArgs& a) {
  dsk_mla_decode_shape s{};
  s.batch = a.q.l.shape[0];
  s.s_q = a.q.l.shape[1];
  s.h_q = a.q.l.shape[2];
  s.h_kv = a.kv.l.shape[2];
  s.head_dim = a.q.l.shape[3];
  s.head_dim_v = a.out.l.shape[3];
  s.page_size = a.kv.l.shape[1];
  s.max_pages = a.bt.l.shape[1];
  s.dtype_id = a.q.l.dtype_id;
  return s;
}

// Names the first field in which the run's shapes differ from the plan's.
void check_matches_plan(const dsk_mla_decode_shape& plan, const dsk_mla_decode_shape& run) {
  struct Field {
    const char* what;
    int64_t plan;
    int64_t run;
  };
  const Field fields[] = {
      {"q.shape[0] (batch)", plan.batch, run.batch},
      {"q.shape[1] (s_q)", plan.s_q, run.s_q},
      {"q.shape[2] (h_q)", plan.h_q, run.h_q},
      {"kv_cache.shape[2] (h_kv)", plan.h_kv, run.h_kv},
      {"q.shape[3] (D)", plan.head_dim, run.head_dim},
      {"out.shape[3] (Dv)", plan.head_dim_v, run.head_dim_v},
      {"kv_cache.shape[1] (page_size)", plan.page_size, run.page_size},
      {"block_table.shape[1] (max_pages)", plan.max_pages, run.max_pages},
  };
  for (const Field& f : fields) {
    check_arg(f.plan == f.run, "{} = {}, expected {} as in the plan", f.what, f.run, f.plan);
  }
  check_arg(plan.dtype_id == run.dtype_id, "q.dtype is {}, expected {} as in the plan",
            dtype_id_name(run.dtype_id), dtype_id_name(plan.dtype_id));
}

}  // namespace

float mla_softmax_scale(int64_t qk_head_dim, double rope_factor, double mscale, int32_t use_yarn) {
  check_arg(qk_head_dim >= 1, "qk_head_dim = {}, expected >= 1", qk_head_dim);
  check_arg(std::isfinite(rope_factor) && rope_factor > 0.0,
            "rope_factor = {}, expected a finite value > 0", rope_factor);
  check_arg(std::isfinite(mscale), "mscale = {}, expected a finite value", mscale);
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim));
  if (use_yarn != 0 && rope_factor > 1.0) {
    const double m = 0.1 * mscale * std::log(rope_factor) + 1.0;
    scale *= m * m;
  }
  return static_cast<float>(scale);
}

dsk_mla_decode_plan* mla_decode_plan_create(dsk_context& ctx, const DLTensor* q,
                                            const DLTensor* kv_cache, const DLTensor* block_table,
                                            const DLTensor* cache_seqlens, const DLTensor* out) {
  const DecodeArgs a = check_decode(q, kv_cache, block_table, cache_seqlens, out, nullptr);
  const Target t = target(ctx, {&a.q, &a.kv, &a.bt, &a.seqlens, &a.out});
  auto plan = std::make_unique<dsk_mla_decode_plan>();
  plan->backend = t.backend;
  plan->backend_kind = t.backend->kind;
  plan->device = t.exec.device;
  plan->shape = shape_of(a);
  auto fn = entry(t, t.backend->iface->mla_decode_plan, "mla_decode_plan");
  call(t, fn(t.exec.device, &plan->shape, &plan->work), "mla_decode_plan");
  if (plan->work.num_splits < 1) {
    fail(DSK_ERR_INTERNAL, "the {} backend planned {} splits, expected at least 1", t.backend->name,
         plan->work.num_splits);
  }
  return plan.release();
}

void mla_decode_run(dsk_context& ctx, const dsk_mla_decode_plan& plan, const DLTensor* q_t,
                    const DLTensor* kv_t, const DLTensor* bt_t, const DLTensor* seqlens_t,
                    float softmax_scale, int32_t causal, const DLTensor* out_t,
                    const DLTensor* lse_t) {
  const DecodeArgs a = check_decode(q_t, kv_t, bt_t, seqlens_t, out_t, lse_t);
  check_scale(softmax_scale);
  check_causal(causal);
  const Target t = target(ctx, {&a.q, &a.kv, &a.bt, &a.seqlens, &a.out, &a.lse});
  check_arg(t.backend->kind == plan.backend_kind && t.exec.device == plan.device,
            "the tensors are on the {} backend (device {}), expected the plan's {} backend "
            "(device {})",
            t.backend->name, t.exec.device, plan.backend->name, plan.device);
  check_matches_plan(plan.shape, shape_of(a));
  if (plan.shape.batch == 0 || plan.shape.s_q == 0) return;
  View q, kv, bt, seqlens, out, lse;
  as_is(a.q, q);
  as_is(a.kv, kv);
  as_is(a.bt, bt);
  as_is(a.seqlens, seqlens);
  as_is(a.out, out);
  as_is(a.lse, lse);
  auto fn = entry(t, t.backend->iface->mla_decode, "mla_decode");
  call(t,
       fn(&t.exec, q.get(), kv.get(), bt.get(), seqlens.get(), out.get(), lse.get(), softmax_scale,
          causal, &plan.work),
       "mla_decode");
}

void mla_cache_append(dsk_context& ctx, const DLTensor* c_kv_t, const DLTensor* k_pe_t,
                      const DLTensor* slots_t, const DLTensor* kv_t) {
  const Arg c_kv = input(c_kv_t, "c_kv");
  const Arg k_pe = input(k_pe_t, "k_pe");
  const Arg slots = input(slots_t, "slot_mapping");
  const Arg kv = output(kv_t, "kv_cache");
  check_float({&c_kv, &k_pe});
  check_ndim(kv, 4);
  check_half(kv);
  check_page_size(kv);
  check_last_contiguous(kv);
  check_ndim(slots, 1);
  check_dtype(slots, DSK_DTYPE_INT64);
  const int64_t h_kv = kv.l.shape[2];
  check_arg(h_kv >= 1 && h_kv <= kMaxKvHeads, "kv_cache.shape[2] (h_kv) = {}, expected 1..{}", h_kv,
            kMaxKvHeads);
  check_arg(c_kv.l.ndim == 2 || c_kv.l.ndim == 3,
            "c_kv has {} dimensions, expected [T, h_kv, Dv] or [T, Dv]", c_kv.l.ndim);
  check_arg(k_pe.l.ndim == c_kv.l.ndim, "k_pe has {} dimensions, expected {} like c_kv",
            k_pe.l.ndim, c_kv.l.ndim);
  const int64_t tokens = slots.l.shape[0];
  const int64_t d = kv.l.shape[3];
  const int64_t dv = c_kv.l.shape[c_kv.l.ndim - 1];
  check_arg(dv >= 1 && dv <= d, "c_kv.shape[-1] (Dv) = {}, expected 1..{} (kv_cache.shape[3])", dv,
            d);
  if (c_kv.l.ndim == 2) {
    check_arg(h_kv == 1, "c_kv is [T, Dv], which needs kv_cache.shape[2] (h_kv) = 1, got {}", h_kv);
    const int64_t c_shape[2] = {tokens, dv};
    check_shape(c_kv, c_shape, 2, "[T, Dv] with T = slot_mapping.shape[0]");
    const int64_t p_shape[2] = {tokens, d - dv};
    check_shape(k_pe, p_shape, 2, "[T, D - Dv]");
  } else {
    const int64_t c_shape[3] = {tokens, h_kv, dv};
    check_shape(c_kv, c_shape, 3, "[T, h_kv, Dv] with T = slot_mapping.shape[0]");
    const int64_t p_shape[3] = {tokens, h_kv, d - dv};
    check_shape(k_pe, p_shape, 3, "[T, h_kv, D - Dv]");
  }
  for (const Arg* in : {&c_kv, &k_pe, &slots}) check_no_overlap(kv, *in);
  const Target t = target(ctx, {&c_kv, &k_pe, &slots, &kv});
  if (tokens == 0) return;
  // [T, Dv] inputs as [T, 1, Dv].
  View cv, pv, sv, kvv;
  const int64_t c3[3] = {tokens, h_kv, dv};
  const int64_t p3[3] = {tokens, h_kv, d - dv};
  if (c_kv.l.ndim == 2) {
    const int64_t cs[3] = {c_kv.l.strides[0], 0, c_kv.l.strides[1]};
    const int64_t ps[3] = {k_pe.l.strides[0], 0, k_pe.l.strides[1]};
    cv.set(c_kv, 3, c3, cs);
    pv.set(k_pe, 3, p3, ps);
  } else {
    as_is(c_kv, cv);
    as_is(k_pe, pv);
  }
  as_is(slots, sv);
  as_is(kv, kvv);
  auto fn = entry(t, t.backend->iface->mla_cache_append, "mla_cache_append");
  call(t, fn(&t.exec, cv.get(), pv.get(), sv.get(), kvv.get()), "mla_cache_append");
}

void mla_prefill(dsk_context& ctx, const DLTensor* q_t, const DLTensor* k_t, const DLTensor* v_t,
                 const DLTensor* cu_q_t, const DLTensor* cu_k_t, float softmax_scale,
                 int32_t causal, const DLTensor* out_t, const DLTensor* lse_t) {
  const Arg q = input(q_t, "q");
  const Arg k = input(k_t, "k");
  const Arg v = input(v_t, "v");
  const Arg cu_q = input(cu_q_t, "cu_seqlens_q");
  const Arg cu_k = optional_input(cu_k_t, "cu_seqlens_k");
  const Arg out = output(out_t, "out");
  const Arg lse = optional_output(lse_t, "lse");
  check_scale(softmax_scale);
  check_causal(causal);
  for (const Arg* a : {&q, &k, &v, &out}) check_ndim(*a, 3);
  check_half(q);
  for (const Arg* a : {&k, &v, &out}) {
    check_arg(a->l.dtype_id == q.l.dtype_id, "{}.dtype is {}, expected q's dtype {}", a->name,
              dtype_id_name(a->l.dtype_id), dtype_id_name(q.l.dtype_id));
  }
  const int64_t tq = q.l.shape[0];
  const int64_t h = q.l.shape[1];
  const int64_t dqk = q.l.shape[2];
  const int64_t tk = k.l.shape[0];
  const int64_t hk = k.l.shape[1];
  const int64_t dv = v.l.shape[2];
  check_arg(h >= 1, "q.shape[1] (H) = {}, expected >= 1", h);
  check_arg(dqk >= 1, "q.shape[2] (Dqk) = {}, expected >= 1", dqk);
  check_arg(dv >= 1, "v.shape[2] (Dv) = {}, expected >= 1", dv);
  check_arg(hk >= 1 && h % hk == 0, "k.shape[1] (Hk) = {}, expected a divisor of q.shape[1] = {}",
            hk, h);
  const int64_t k_shape[3] = {tk, hk, dqk};
  check_shape(k, k_shape, 3, "[Tk, Hk, Dqk] with Dqk = q.shape[2]");
  const int64_t v_shape[3] = {tk, hk, dv};
  check_shape(v, v_shape, 3, "[Tk, Hk, Dv] with Tk, Hk from k");
  const int64_t out_shape[3] = {tq, h, dv};
  check_shape(out, out_shape, 3, "[Tq, H] of q, then Dv of v");
  check_ndim(cu_q, 1);
  check_dtype(cu_q, DSK_DTYPE_INT32);
  check_arg(cu_q.l.shape[0] >= 1, "cu_seqlens_q.shape[0] = 0, expected B + 1 >= 1");
  if (cu_k.present) {
    check_ndim(cu_k, 1);
    check_dtype(cu_k, DSK_DTYPE_INT32);
    check_arg(cu_k.l.shape[0] == cu_q.l.shape[0],
              "cu_seqlens_k.shape[0] = {}, expected cu_seqlens_q.shape[0] = {} (B + 1)",
              cu_k.l.shape[0], cu_q.l.shape[0]);
  } else {
    check_arg(tk == tq,
              "k.shape[0] (Tk) = {} differs from q.shape[0] (Tq) = {}, which needs "
              "cu_seqlens_k (NULL means the query lengths)",
              tk, tq);
  }
  if (lse.present) {
    check_dtype(lse, DSK_DTYPE_F32);
    const int64_t lse_shape[2] = {h, tq};
    check_shape(lse, lse_shape, 2, "[H, Tq] from q");
  }
  for (const Arg* in : {&q, &k, &v, &cu_q, &cu_k}) {
    if (!in->present) continue;
    check_no_overlap(out, *in);
    if (lse.present) check_no_overlap(lse, *in);
  }
  if (lse.present) check_no_overlap(lse, out);
  const Target t = target(ctx, {&q, &k, &v, &cu_q, &cu_k, &out, &lse});
  if (tq == 0) return;
  View qv, kv, vv, cqv, ckv, ov, lv;
  as_is(q, qv);
  as_is(k, kv);
  as_is(v, vv);
  as_is(cu_q, cqv);
  as_is(cu_k.present ? cu_k : cu_q, ckv);
  as_is(out, ov);
  as_is(lse, lv);
  auto fn = entry(t, t.backend->iface->mla_prefill, "mla_prefill");
  call(t,
       fn(&t.exec, qv.get(), kv.get(), vv.get(), cqv.get(), ckv.get(), ov.get(), lv.get(),
          softmax_scale, causal),
       "mla_prefill");
}

}  // namespace ops
}  // namespace dsk
