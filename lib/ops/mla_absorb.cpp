// MLA weight absorption and latent decompression (dsk_mla.h) as per-head strided-batched GEMMs on
// the backend's gemm entry: wkv_b [H * (dn + dv), Dc] is read in place through strides (W_UK[h]
// and W_UV[h] are row blocks of it), so no weight is copied unless it must change dtype.
//
// An fp8 wkv_b with block scales goes to the backend's gemm_fp8_weight entry where it has one (the
// CPU): each weight is dequantized as the GEMM reads it, so a decode step no longer converts the
// whole weight (at DeepSeek-V3's sizes 16.8 M values per layer) to multiply it by a few tokens.
// Otherwise a weight whose dtype differs from the activations' (fp8, or another float type) is
// dequantized/converted exactly to f32 in scratch — the context workspace when it is large enough,
// else memory allocated for the call — and the activations with it. Either way the GEMMs multiply
// the exact w = q * scale in f32 with the same bits (an f32 weight is read in place, only the
// activations converted). (DeepSeek-V3's reference rounds the dequantized weight to bf16 first; dsk
// keeps the header's "f32 products, one rounding" rule instead.)
#include <stdint.h>

#include "common/convert.h"
#include "core/context.h"
#include "core/dtype_info.h"
#include "core/storage.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"
#include "ops/mla.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

// `v` as a window of `l`'s memory at `data` (the shape and strides listed, up to 3 dims).
void window(View& v, char* data, const Layout& l, int32_t dtype_id,
            std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides) {
  v.set(data, l.device, dtype_id, static_cast<int32_t>(shape.size()), shape.begin(),
        strides.begin());
}

// `v` as [heads, tokens, last] over a [tokens, heads, last] tensor with element strides `st`.
void heads_first(View& v, char* data, const Layout& l, int32_t dtype_id, const int64_t* st,
                 int64_t heads, int64_t tokens, int64_t last) {
  window(v, data, l, dtype_id, {heads, tokens, last}, {st[1], st[0], st[2]});
}

// wkv_b and its optional scales, checked: [rows, Dc] with rows = heads * per_head.
struct Weight {
  Arg w;
  Arg scale;
  int64_t rows = 0;
  int64_t dc = 0;
  int64_t per_head = 0;
};

Weight check_weight(const DLTensor* w_t, const DLTensor* scale_t, int64_t heads,
                    const char* heads_of) {
  Weight w{input(w_t, "wkv_b"), optional_input(scale_t, "wkv_b_scale")};
  check_ndim(w.w, 2);
  w.rows = w.w.l.shape[0];
  w.dc = w.w.l.shape[1];
  const bool fp8 = w.w.l.dtype_id == DSK_DTYPE_FP8_E4M3FN;
  check_arg(fp8 || is_float(w.w), "wkv_b.dtype is {}, expected f32, f16, bf16 or fp8_e4m3fn",
            dtype_id_name(w.w.l.dtype_id));
  if (fp8) {
    check_arg(w.scale.present,
              "wkv_b_scale is NULL, expected the 128 x 128 block scales of the "
              "fp8 wkv_b");
    check_dtype(w.scale, DSK_DTYPE_F32);
    const int64_t shape[2] = {(w.rows + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK,
                              (w.dc + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK};
    check_shape(w.scale, shape, 2, "[ceil(rows / 128), ceil(Dc / 128)] of wkv_b");
  } else {
    check_arg(!w.scale.present,
              "wkv_b_scale is given for a {} wkv_b, expected NULL (scales "
              "belong to fp8 weights)",
              dtype_id_name(w.w.l.dtype_id));
  }
  check_arg(heads >= 1, "{} (H) = {}, expected >= 1", heads_of, heads);
  check_arg(w.rows % heads == 0,
            "wkv_b.shape[0] = {} is not a multiple of {} (H) = {}, expected H * (dn + dv) rows",
            w.rows, heads_of, heads);
  w.per_head = w.rows / heads;
  return w;
}

// The backend multiplies by an fp8 wkv_b in place (gemm_fp8_weight).
bool backend_reads_fp8(const Target& t, const Weight& w) {
  return w.w.l.dtype_id == DSK_DTYPE_FP8_E4M3FN && t.backend->iface->gemm_fp8_weight != nullptr;
}

// The GEMM operands: wkv_b and the activations as the argument themselves when their dtypes match
// or when the backend reads the fp8 weight in place, else both in f32 scratch (the weight
// dequantized or converted exactly, w = q * scale, so the products stay f32 and only the output is
// rounded).
struct Operands {
  int32_t dtype_id = 0;  // of both operands as the GEMMs read them (fp8_in_place: the activations')
  bool fp8_in_place = false;  // w is unused: fp8_batched_gemm reads wkv_b itself
  char* w = nullptr;
  int64_t w_s0 = 0;  // row stride, elements
  int64_t w_s1 = 0;
  char* x = nullptr;
  int64_t x_strides[3] = {};  // of the activations' own dims
  StoragePtr owned;           // scratch allocated for this call
  bool in_workspace = false;  // scratch is the context workspace
};

Operands operands(dsk_context& ctx, const Target& t, const Weight& w, const Arg& x) {
  Operands o;
  o.fp8_in_place = backend_reads_fp8(t, w);
  if (o.fp8_in_place || w.w.l.dtype_id == x.l.dtype_id) {
    o.dtype_id = x.l.dtype_id;
    o.w = w.w.l.data;
    o.w_s0 = w.w.l.strides[0];
    o.w_s1 = w.w.l.strides[1];
    o.x = x.l.data;
    for (int32_t i = 0; i < x.l.ndim; ++i) o.x_strides[i] = x.l.strides[i];
    return o;
  }
  o.dtype_id = DSK_DTYPE_F32;
  // An f32 weight (with activations of another dtype) is read in place; only what is not f32 is
  // converted.
  const bool convert_w = w.w.l.dtype_id != DSK_DTYPE_F32;
  const bool convert_x = x.l.dtype_id != DSK_DTYPE_F32;
  const size_t w_bytes =
      convert_w ? static_cast<size_t>(w.rows) * static_cast<size_t>(w.dc) * sizeof(float) : 0;
  // The activations follow the weight at a 256-byte boundary.
  const size_t x_offset = (w_bytes + 255) / 256 * 256;
  const size_t bytes = x_offset + (convert_x ? static_cast<size_t>(x.l.numel) * sizeof(float) : 0);
  char* scratch = nullptr;
  if (t.exec.workspace != nullptr && t.exec.workspace_bytes >= bytes) {
    scratch = static_cast<char*>(t.exec.workspace);
    o.in_workspace = true;
  } else {
    o.owned = t.backend->kind == DSK_BACKEND_CPU ? allocate_host(bytes) : allocate(ctx, bytes);
    scratch = static_cast<char*>(o.owned->data);
  }
  if (!convert_w) {
    o.w = w.w.l.data;
    o.w_s0 = w.w.l.strides[0];
    o.w_s1 = w.w.l.strides[1];
  } else {
    o.w = scratch;
    o.w_s0 = w.dc;
    o.w_s1 = 1;
    View wdst;
    window(wdst, o.w, w.w.l, DSK_DTYPE_F32, {w.rows, w.dc}, {w.dc, 1});
    View wsrc;
    window(wsrc, w.w.l.data, w.w.l, w.w.l.dtype_id, {w.rows, w.dc},
           {w.w.l.strides[0], w.w.l.strides[1]});
    if (w.w.l.dtype_id == DSK_DTYPE_FP8_E4M3FN) {
      View sc;
      window(sc, w.scale.l.data, w.scale.l, DSK_DTYPE_F32, {w.scale.l.shape[0], w.scale.l.shape[1]},
             {w.scale.l.strides[0], w.scale.l.strides[1]});
      auto fn = entry(t, t.backend->iface->dequant_fp8, "dequant_fp8");
      call(t, fn(&t.exec, wsrc.get(), sc.get(), wdst.get(), 1), "dequant_fp8 of wkv_b");
    } else {
      call(t, t.backend->iface->copy(t.exec.device, wsrc.get(), wdst.get(), t.exec.stream),
           "conversion of wkv_b");
    }
  }
  if (!convert_x) {
    o.x = x.l.data;
    for (int32_t i = 0; i < x.l.ndim; ++i) o.x_strides[i] = x.l.strides[i];
    return o;
  }
  o.x = scratch + x_offset;
  row_major_strides(x.l.ndim, x.l.shape, o.x_strides);
  View src;
  View dst;
  as_is(x, src);
  dst.set(o.x, x.l.device, DSK_DTYPE_F32, x.l.ndim, x.l.shape, o.x_strides);
  call(t, t.backend->iface->copy(t.exec.device, src.get(), dst.get(), t.exec.stream),
       "conversion of the activations to f32");
  return o;
}

// Scratch must outlive the GEMMs reading it: memory from an allocator hook may be reused as soon
// as it is freed, so a device call waits for its work before releasing it.
void release(dsk_context& ctx, const Target& t, Operands& o) {
  if (o.owned && t.backend->kind != DSK_BACKEND_CPU && ctx.has_allocator) {
    call(t, t.backend->iface->synchronize(t.exec.device, t.exec.stream), "synchronize");
  }
  o.owned.reset();
}

// D[h] = A[h] @ B[h] for every head, with the gemm entry (alpha 1, beta 0, no bias). The exec
// hides the workspace when the scratch occupies it.
void batched_gemm(const Target& t, const Operands& o, const DLTensor* a, const DLTensor* b,
                  const DLTensor* d) {
  dsk_exec ex = t.exec;
  if (o.in_workspace) {
    ex.workspace = nullptr;
    ex.workspace_bytes = 0;
  }
  auto fn = entry(t, t.backend->iface->gemm, "gemm");
  call(t, fn(&ex, a, b, nullptr, nullptr, d, 1.0f, 0.0f), "gemm");
}

// D[h] = A[h] @ B[h] for every head with B[h] the `rows` rows of the fp8 wkv_b from row
// row0 + h * per_head: [rows, Dc] when k_is_row, else its transpose [Dc, rows].
void fp8_batched_gemm(const Target& t, const Weight& w, const DLTensor* a, int64_t row0,
                      int64_t rows, bool k_is_row, const DLTensor* d) {
  const int64_t heads = w.rows / w.per_head;
  const int64_t s0 = w.w.l.strides[0];
  const int64_t s1 = w.w.l.strides[1];
  View b;
  if (k_is_row) {
    window(b, w.w.l.data + row0 * s0, w.w.l, DSK_DTYPE_FP8_E4M3FN, {heads, rows, w.dc},
           {w.per_head * s0, s0, s1});
  } else {
    window(b, w.w.l.data + row0 * s0, w.w.l, DSK_DTYPE_FP8_E4M3FN, {heads, w.dc, rows},
           {w.per_head * s0, s1, s0});
  }
  View sc;
  window(sc, w.scale.l.data, w.scale.l, DSK_DTYPE_F32, {w.scale.l.shape[0], w.scale.l.shape[1]},
         {w.scale.l.strides[0], w.scale.l.strides[1]});
  call(t,
       t.backend->iface->gemm_fp8_weight(&t.exec, a, b.get(), sc.get(), row0, w.per_head,
                                         k_is_row ? 1 : 0, d),
       "gemm_fp8_weight");
}

void check_activation(const Arg& a) {
  check_ndim(a, 3);
  check_float(a);
}

}  // namespace

void mla_absorb_q(dsk_context& ctx, const DLTensor* q_nope_t, const DLTensor* wkv_b,
                  const DLTensor* wkv_b_scale, const DLTensor* q_latent_t) {
  const Arg q = input(q_nope_t, "q_nope");
  const Arg ql = output(q_latent_t, "q_latent");
  check_activation(q);
  check_activation(ql);
  const int64_t tokens = q.l.shape[0];
  const int64_t heads = q.l.shape[1];
  const int64_t dn = q.l.shape[2];
  const Weight w = check_weight(wkv_b, wkv_b_scale, heads, "q_nope.shape[1]");
  check_arg(dn >= 1 && dn < w.per_head,
            "q_nope.shape[2] (dn) = {}, expected 1..{} (wkv_b has {} rows per head: dn + dv)", dn,
            w.per_head - 1, w.per_head);
  const int64_t want[3] = {tokens, heads, w.dc};
  check_shape(ql, want, 3, "[T, H] of q_nope, then wkv_b.shape[1] (Dc)");
  for (const Arg* in : {&q, &w.w, &w.scale}) {
    if (in->present) check_no_overlap(ql, *in);
  }
  const Target t = target(ctx, {&q, &w.w, &w.scale, &ql});
  if (tokens == 0) return;
  Operands opd = operands(ctx, t, w, q);
  View a;
  heads_first(a, opd.x, q.l, opd.dtype_id, opd.x_strides, heads, tokens, dn);
  View d;
  heads_first(d, ql.l.data, ql.l, ql.l.dtype_id, ql.l.strides, heads, tokens, w.dc);
  if (opd.fp8_in_place) {
    fp8_batched_gemm(t, w, a.get(), 0, dn, true, d.get());
  } else {
    View b;
    window(b, opd.w, w.w.l, opd.dtype_id, {heads, dn, w.dc},
           {w.per_head * opd.w_s0, opd.w_s0, opd.w_s1});
    batched_gemm(t, opd, a.get(), b.get(), d.get());
  }
  release(ctx, t, opd);
}

void mla_absorb_out(dsk_context& ctx, const DLTensor* o_latent_t, const DLTensor* wkv_b,
                    const DLTensor* wkv_b_scale, const DLTensor* o_t) {
  const Arg ol = input(o_latent_t, "o_latent");
  const Arg o = output(o_t, "o");
  check_activation(ol);
  check_activation(o);
  const int64_t tokens = ol.l.shape[0];
  const int64_t heads = ol.l.shape[1];
  const Weight w = check_weight(wkv_b, wkv_b_scale, heads, "o_latent.shape[1]");
  check_arg(ol.l.shape[2] == w.dc, "o_latent.shape[2] = {}, expected wkv_b.shape[1] (Dc) = {}",
            ol.l.shape[2], w.dc);
  const int64_t dv = o.l.shape[2];
  check_arg(dv >= 1 && dv < w.per_head,
            "o.shape[2] (dv) = {}, expected 1..{} (wkv_b has {} rows per head: dn + dv)", dv,
            w.per_head - 1, w.per_head);
  const int64_t dn = w.per_head - dv;
  const int64_t want[3] = {tokens, heads, dv};
  check_shape(o, want, 3, "[T, H] of o_latent, then dv");
  for (const Arg* in : {&ol, &w.w, &w.scale}) {
    if (in->present) check_no_overlap(o, *in);
  }
  const Target t = target(ctx, {&ol, &w.w, &w.scale, &o});
  if (tokens == 0) return;
  Operands opd = operands(ctx, t, w, ol);
  View a;
  heads_first(a, opd.x, ol.l, opd.dtype_id, opd.x_strides, heads, tokens, w.dc);
  View d;
  heads_first(d, o.l.data, o.l, o.l.dtype_id, o.l.strides, heads, tokens, dv);
  if (opd.fp8_in_place) {
    fp8_batched_gemm(t, w, a.get(), dn, dv, false, d.get());
  } else {
    // W_UV[h]^T: element (c, j) is wkv_b[h * per_head + dn + j, c].
    const auto es = static_cast<int64_t>(dtype_id_size(opd.dtype_id));
    View b;
    window(b, opd.w + dn * opd.w_s0 * es, w.w.l, opd.dtype_id, {heads, w.dc, dv},
           {w.per_head * opd.w_s0, opd.w_s1, opd.w_s0});
    batched_gemm(t, opd, a.get(), b.get(), d.get());
  }
  release(ctx, t, opd);
}

void mla_decompress_kv(dsk_context& ctx, const DLTensor* c_kv_t, const DLTensor* k_pe_t,
                       const DLTensor* wkv_b, const DLTensor* wkv_b_scale, const DLTensor* k_t,
                       const DLTensor* v_t) {
  const Arg c = input(c_kv_t, "c_kv");
  const Arg pe = optional_input(k_pe_t, "k_pe");
  const Arg k = output(k_t, "k");
  const Arg v = output(v_t, "v");
  check_ndim(c, 2);
  check_float(c);
  if (pe.present) {
    check_ndim(pe, 2);
    check_float(pe);
  }
  check_activation(k);
  check_activation(v);
  const int64_t tokens = c.l.shape[0];
  const int64_t heads = k.l.shape[1];
  const Weight w = check_weight(wkv_b, wkv_b_scale, heads, "k.shape[1]");
  check_arg(c.l.shape[1] == w.dc, "c_kv.shape[1] = {}, expected wkv_b.shape[1] (Dc) = {}",
            c.l.shape[1], w.dc);
  const int64_t dr = pe.present ? pe.l.shape[1] : 0;
  if (pe.present) {
    check_arg(pe.l.shape[0] == tokens, "k_pe.shape[0] = {}, expected c_kv.shape[0] (T) = {}",
              pe.l.shape[0], tokens);
  }
  const int64_t dv = v.l.shape[2];
  check_arg(dv >= 1 && dv < w.per_head,
            "v.shape[2] (dv) = {}, expected 1..{} (wkv_b has {} rows per head: dn + dv)", dv,
            w.per_head - 1, w.per_head);
  const int64_t dn = w.per_head - dv;
  const int64_t k_want[3] = {tokens, heads, dn + dr};
  check_shape(k, k_want, 3,
              pe.present ? "[T, H, dn + Dr] with dn = rows per head - dv, Dr = k_pe.shape[1]"
                         : "[T, H, dn] with dn = rows per head - dv");
  const int64_t v_want[3] = {tokens, heads, dv};
  check_shape(v, v_want, 3, "[T] of c_kv, H of k, dv");
  for (const Arg* in : {&c, &pe, &w.w, &w.scale}) {
    if (!in->present) continue;
    check_no_overlap(k, *in);
    check_no_overlap(v, *in);
  }
  check_no_overlap(k, v);
  const Target t = target(ctx, {&c, &pe, &w.w, &w.scale, &k, &v});
  if (tokens == 0) return;
  View dk;
  heads_first(dk, k.l.data, k.l, k.l.dtype_id, k.l.strides, heads, tokens, dn);
  View dvw;
  heads_first(dvw, v.l.data, v.l, v.l.dtype_id, v.l.strides, heads, tokens, dv);
  Operands opd = operands(ctx, t, w, c);
  // The latent is shared by every head: batch stride 0.
  View a;
  window(a, opd.x, c.l, opd.dtype_id, {heads, tokens, w.dc},
         {0, opd.x_strides[0], opd.x_strides[1]});
  if (opd.fp8_in_place) {
    fp8_batched_gemm(t, w, a.get(), 0, dn, false, dk.get());
    fp8_batched_gemm(t, w, a.get(), dn, dv, false, dvw.get());
  } else {
    const auto es = static_cast<int64_t>(dtype_id_size(opd.dtype_id));
    View bk;
    window(bk, opd.w, w.w.l, opd.dtype_id, {heads, w.dc, dn},
           {w.per_head * opd.w_s0, opd.w_s1, opd.w_s0});
    batched_gemm(t, opd, a.get(), bk.get(), dk.get());
    View bv;
    window(bv, opd.w + dn * opd.w_s0 * es, w.w.l, opd.dtype_id, {heads, w.dc, dv},
           {w.per_head * opd.w_s0, opd.w_s1, opd.w_s0});
    batched_gemm(t, opd, a.get(), bv.get(), dvw.get());
  }
  if (pe.present && dr > 0) {
    // k[t, h, dn:] = k_pe[t, :] for every head (source head stride 0).
    View src;
    window(src, pe.l.data, pe.l, pe.l.dtype_id, {tokens, heads, dr},
           {pe.l.strides[0], 0, pe.l.strides[1]});
    View dst;
    window(dst, k.l.data + dn * k.l.strides[2] * static_cast<int64_t>(k.l.elem_size), k.l,
           k.l.dtype_id, {tokens, heads, dr}, {k.l.strides[0], k.l.strides[1], k.l.strides[2]});
    call(t, t.backend->iface->copy(t.exec.device, src.get(), dst.get(), t.exec.stream),
         "copy of k_pe");
  }
  release(ctx, t, opd);
}

}  // namespace ops
}  // namespace dsk
