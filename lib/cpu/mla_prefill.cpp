// CPU reference of the MLA prefill (MHA form, dsk_mla.h dsk_mla_prefill): variable-length
// attention over B requests packed along the token dimension, causal or not, out + lse.
//
// Math (the contract CUDA is measured against): for query j of a request with n_q queries and n_k
// keys, the visible keys are 0 .. n_k - n_q + j when causal (none when negative), all n_k when not;
// s = (q . k) * scale in f32; out = sum_t exp(s_t - m) v_t / sum_t exp(s_t - m) with m the running
// maximum, accumulated in f32 and rounded once to out's dtype; lse = m + ln(sum_t exp(s_t - m)).
// A query without visible keys gets out = 0 and lse = -inf.
//
// Work: one item per (request, head, tile of kBlockM queries), computed flash-attention style over
// tiles of kBlockN keys with an online softmax. The items are independent and each is computed the
// same way whichever thread takes it, so the results do not depend on the thread count (threads
// pull items from a shared counter, heaviest first, only for load balance).
//
// Inside an item everything is f32: Q^T [Dqk, 64] is built once, every key tile is widened to f32
// rows, S^T = K Q^T and O += P V are register-blocked micro-kernels over GCC vector extensions
// (vectorized along queries and along Dv, so no sum is reassociated), and exp is a polynomial
// (exp_neg, below) evaluated lane-wise. The micro-kernels are compiled three times (AVX-512F,
// AVX2, baseline SSE2) and chosen at run time; every clone performs the same f32 operations in the
// same order (lib/ is built with -ffp-contract=off, so no FMA), hence gives the same bits.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/convert.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "cpu/vector_ext.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {
namespace {

constexpr int64_t kBlockM = 64;  // queries per item
constexpr int64_t kBlockN = 64;  // keys per tile

// GCC/Clang vector types of W floats / int32.
template <int W>
struct VecOf;
template <>
struct VecOf<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  typedef uint32_t U __attribute__((vector_size(16)));
};
template <>
struct VecOf<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  typedef uint32_t U __attribute__((vector_size(32)));
};
template <>
struct VecOf<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
  typedef uint32_t U __attribute__((vector_size(64)));
};

template <typename V>
DSK_VEC_INLINE V load_vec(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
DSK_VEC_INLINE void store_vec(void* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

// e^x lane-wise for x <= 0 (the only arguments the softmax produces): Cephes' expf, i.e.
// x = n ln2 + r with n = round(x / ln2) (Cody-Waite split of ln2), e^r by a degree-7 polynomial,
// times 2^n built from the exponent bits. x < -87 gives 0 (e^-87 < 2^-125 is below anything a
// probability sum can notice), -inf gives 0, NaN stays NaN. About 2 ulp; the same f32 steps in
// every clone.
template <int W>
DSK_VEC_INLINE typename VecOf<W>::F exp_neg(const typename VecOf<W>::F& x) {
  using F = typename VecOf<W>::F;
  using I = typename VecOf<W>::I;
  const F zero = F{} + 0.0f;
  const F lo = zero - 87.0f;
  const I small = x < lo;
  const I nan = x != x;
  const F xc = small ? lo : (nan ? zero : x);
  const F magic = zero + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const F t = xc * 1.44269504088896341f + magic;
  const F n = t - magic;
  F r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const F z = r * r;
  F y = zero + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r;
  y = y + 1.0f;
  // t's low mantissa bits hold n + 2^22 (n in [-126, 0]); 2^n = (n + 127) << 23.
  using U = typename VecOf<W>::U;
  const U e = (load_vec<U>(&t) - 0x4B400000u + 127u) << 23;
  const F scale = load_vec<F>(&e);
  const F res = y * scale;
  return small ? zero : (nan ? x : res);
}

// C[MR, NV * W] (+)= A[MR, k] * B[k, NV * W] in f32, one multiply and one add per term, terms
// added in increasing p. A(r, p) = a[r * ars + p * aks], B(p, c) = b[p * ldb + c],
// C(r, c) = c[r * ldc + c]; `accumulate` false starts from 0.
template <int W, int MR, int NV>
DSK_VEC_INLINE void micro(const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb,
                          int64_t k, float* c, int64_t ldc, bool accumulate) {
  using F = typename VecOf<W>::F;
  F acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      acc[r][v] = accumulate ? load_vec<F>(c + r * ldc + v * W) : F{};
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    F bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = load_vec<F>(b + p * ldb + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float av = a[r * ars + p * aks];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = acc[r][v] + bv[v] * av;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) store_vec(c + r * ldc + v * W, acc[r][v]);
  }
}

// C[MR, cols] (+)= A B for cols a multiple of W: full NV * W chunks, then single vectors.
template <int W, int MR, int NV>
DSK_VEC_INLINE void micro_cols(const float* a, int64_t ars, int64_t aks, const float* b,
                               int64_t ldb, int64_t k, float* c, int64_t ldc, int64_t cols,
                               bool accumulate) {
  int64_t c0 = 0;
  for (; c0 + NV * W <= cols; c0 += NV * W) {
    micro<W, MR, NV>(a, ars, aks, b + c0, ldb, k, c + c0, ldc, accumulate);
  }
  for (; c0 < cols; c0 += W) micro<W, MR, 1>(a, ars, aks, b + c0, ldb, k, c + c0, ldc, accumulate);
}

// A strided bf16/f16 tensor of rank 3 ([T, H, D]) as the kernels read it.
struct Half3 {
  const char* data = nullptr;
  int64_t st = 0, sh = 0, sd = 0;  // element strides
};

// Widens n elements (step `sd` elements) of a bf16/f16 row to f32 (exact).
template <int32_t DT>
DSK_VEC_INLINE void load_row(const char* src, int64_t sd, float* dst, int64_t n) {
  if (sd == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] = load_elem<DT>(src, i);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = load_elem<DT>(src, i * sd);
  }
}

struct Problem {
  int32_t dtype = 0;
  Half3 q, k, v;
  char* out = nullptr;
  int64_t out_st = 0, out_sh = 0, out_sd = 0;
  char* lse = nullptr;  // f32 [H, Tq] or NULL
  int64_t lse_sh = 0, lse_st = 0;
  int64_t group = 1;  // H / Hk
  int64_t dqk = 0, dv = 0, dvp = 0;
  float scale = 1.0f;
  bool causal = false;
};

struct Item {
  int64_t q_start, k_start;  // first token rows of the request
  int64_t n_q, n_k;
  int64_t head;
  int64_t q0;      // first query of the tile within the request
  int64_t kv_end;  // keys the tile's queries see, together (the cost measure)
};

// Per-thread scratch of one item (f32 unless noted).
struct Scratch {
  std::vector<float> qt;   // Q^T [dqk, kBlockM]
  std::vector<float> kf;   // K [kBlockN, dqk]
  std::vector<float> vf;   // V [kBlockN, dvp] (columns dv.. stay 0)
  std::vector<float> st;   // S^T then P^T [kBlockN, kBlockM]
  std::vector<float> o;    // O [kBlockM, dvp]
  std::vector<float> row;  // one q row / output row
  float m[kBlockM], l[kBlockM], mt[kBlockM], mu[kBlockM], alpha[kBlockM], lt[kBlockM];
  int32_t lim[kBlockM];

  explicit Scratch(const Problem& pr)
      : qt(static_cast<size_t>(pr.dqk * kBlockM)),
        kf(static_cast<size_t>(kBlockN * pr.dqk)),
        vf(static_cast<size_t>(kBlockN * pr.dvp)),
        st(static_cast<size_t>(kBlockN * kBlockM)),
        o(static_cast<size_t>(kBlockM * pr.dvp)),
        row(static_cast<size_t>(std::max(pr.dqk, pr.dvp))) {}
};

// Rounds an f32 row to out's dtype (round to nearest even, lib/common/convert.h).
template <int32_t DT>
DSK_VEC_INLINE void store_out_row(const Problem& pr, char* dst, const float* src) {
  for (int64_t c = 0; c < pr.dv; ++c) store_elem<DT>(dst, c * pr.out_sd, src[c]);
}

// One item: queries q0 .. q0 + mrows of one request and head.
template <int W, int MR, int NV, int32_t DT>
DSK_VEC_INLINE void run_item(const Problem& pr, const Item& it, Scratch& s) {
  using F = typename VecOf<W>::F;
  using I = typename VecOf<W>::I;
  const int64_t dqk = pr.dqk;
  const int64_t dvp = pr.dvp;
  const int64_t mrows = std::min(kBlockM, it.n_q - it.q0);
  const int64_t ncols = (mrows + W - 1) / W * W;     // query columns computed (<= kBlockM)
  const int64_t orows = (mrows + MR - 1) / MR * MR;  // output rows computed (<= ncols)
  const int64_t kvh = it.head / pr.group;
  float* qt = s.qt.data();
  float* kf = s.kf.data();
  float* vf = s.vf.data();
  float* st = s.st.data();
  float* o = s.o.data();
  float* row = s.row.data();
  const float neg_inf = -std::numeric_limits<float>::infinity();

  // Q^T, padding queries zero.
  for (int64_t i = 0; i < ncols; ++i) {
    if (i < mrows) {
      const char* src = pr.q.data + ((it.q_start + it.q0 + i) * pr.q.st + it.head * pr.q.sh) * 2;
      load_row<DT>(src, pr.q.sd, row, dqk);
    } else {
      std::fill(row, row + dqk, 0.0f);
    }
    for (int64_t d = 0; d < dqk; ++d) qt[d * kBlockM + i] = row[d];
  }
  for (int64_t i = 0; i < ncols; ++i) {
    s.m[i] = neg_inf;
    s.l[i] = 0.0f;
    // The last visible key of query i (int32: cu_seqlens are int32, so every count fits).
    s.lim[i] = static_cast<int32_t>(pr.causal ? it.n_k - it.n_q + it.q0 + i : it.n_k - 1);
  }
  std::fill(o, o + orows * dvp, 0.0f);

  for (int64_t kb = 0; kb < it.kv_end; kb += kBlockN) {
    const int64_t nk = std::min(kBlockN, it.kv_end - kb);
    const int64_t nkr = (nk + MR - 1) / MR * MR;
    for (int64_t j = 0; j < nk; ++j) {
      const int64_t tok = it.k_start + kb + j;
      load_row<DT>(pr.k.data + (tok * pr.k.st + kvh * pr.k.sh) * 2, pr.k.sd, kf + j * dqk, dqk);
      load_row<DT>(pr.v.data + (tok * pr.v.st + kvh * pr.v.sh) * 2, pr.v.sd, vf + j * dvp, pr.dv);
    }
    std::fill(kf + nk * dqk, kf + nkr * dqk, 0.0f);

    // S^T = K Q^T.
    for (int64_t j0 = 0; j0 < nkr; j0 += MR) {
      micro_cols<W, MR, NV>(kf + j0 * dqk, dqk, 1, qt, kBlockM, dqk, st + j0 * kBlockM, kBlockM,
                            ncols, false);
    }
    // Scale, mask (key index > the query's last visible key), tile maximum.
    for (int64_t i = 0; i < ncols; i += W) store_vec(s.mt + i, F{} + neg_inf);
    for (int64_t j = 0; j < nk; ++j) {
      float* sr = st + j * kBlockM;
      const I key = I{} + static_cast<int32_t>(kb + j);
      for (int64_t i = 0; i < ncols; i += W) {
        const F raw = load_vec<F>(sr + i);
        const I lim = load_vec<I>(s.lim + i);
        const F v = key <= lim ? raw * pr.scale : F{} + neg_inf;
        store_vec(sr + i, v);
        const F mt = load_vec<F>(s.mt + i);
        store_vec(s.mt + i, v > mt ? v : mt);
      }
    }
    // New running maximum; alpha = e^(m_old - m_new) rescales the old sums (0 from -inf).
    for (int64_t i = 0; i < ncols; i += W) {
      const F m = load_vec<F>(s.m + i);
      const F mt = load_vec<F>(s.mt + i);
      const F mn = mt > m ? mt : m;
      const F mu = mn == F{} + neg_inf ? F{} : mn;
      store_vec(s.alpha + i, exp_neg<W>(m - mu));
      store_vec(s.m + i, mn);
      store_vec(s.mu + i, mu);
      store_vec(s.lt + i, F{});
    }
    // P = e^(s - m), row sums in increasing key order.
    for (int64_t j = 0; j < nk; ++j) {
      float* sr = st + j * kBlockM;
      for (int64_t i = 0; i < ncols; i += W) {
        const F p = exp_neg<W>(load_vec<F>(sr + i) - load_vec<F>(s.mu + i));
        store_vec(sr + i, p);
        store_vec(s.lt + i, load_vec<F>(s.lt + i) + p);
      }
    }
    for (int64_t i = 0; i < ncols; i += W) {
      store_vec(s.l + i, load_vec<F>(s.l + i) * load_vec<F>(s.alpha + i) + load_vec<F>(s.lt + i));
    }
    // O = alpha O + P V.
    for (int64_t i = 0; i < orows; ++i) {
      const float a = s.alpha[i];
      if (a == 1.0f) continue;
      float* orow = o + i * dvp;
      for (int64_t c = 0; c < dvp; c += W) store_vec(orow + c, load_vec<F>(orow + c) * a);
    }
    for (int64_t i0 = 0; i0 < orows; i0 += MR) {
      micro_cols<W, MR, NV>(st + i0, 1, kBlockM, vf, dvp, nk, o + i0 * dvp, dvp, dvp, true);
    }
  }

  // out = O / l (0 without keys), lse = m + ln l (-inf without keys).
  for (int64_t i = 0; i < mrows; ++i) {
    const int64_t tok = it.q_start + it.q0 + i;
    const float l = s.l[i];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const float* orow = o + i * dvp;
    for (int64_t c = 0; c < pr.dv; ++c) row[c] = orow[c] * inv;
    store_out_row<DT>(pr, pr.out + (tok * pr.out_st + it.head * pr.out_sh) * 2, row);
    if (pr.lse != nullptr) {
      const float lse = l > 0.0f ? s.m[i] + std::log(l) : neg_inf;
      std::memcpy(pr.lse + (it.head * pr.lse_sh + tok * pr.lse_st) * 4, &lse, 4);
    }
  }
}

template <int W, int MR, int NV>
DSK_VEC_INLINE void run_item_any(const Problem& pr, const Item& it, Scratch& s) {
  if (pr.dtype == DSK_DTYPE_BF16) {
    run_item<W, MR, NV, DSK_DTYPE_BF16>(pr, it, s);
  } else {
    run_item<W, MR, NV, DSK_DTYPE_F16>(pr, it, s);
  }
}

using ItemFn = void (*)(const Problem&, const Item&, Scratch&);

// Baseline x86-64 (SSE2) or any other target: 4 x 8 register blocks.
void item_base(const Problem& pr, const Item& it, Scratch& s) { run_item_any<4, 4, 2>(pr, it, s); }

#if DSK_VEC_X86
// AVX2 (16 ymm): 4 x 16 blocks.
__attribute__((target("avx2"))) void item_avx2(const Problem& pr, const Item& it, Scratch& s) {
  run_item_any<8, 4, 2>(pr, it, s);
}
// AVX-512F (32 zmm): 4 x 64 blocks.
__attribute__((target("avx512f"))) void item_avx512(const Problem& pr, const Item& it, Scratch& s) {
  run_item_any<16, 4, 4>(pr, it, s);
}
#endif

ItemFn pick_item_fn() {
#if DSK_VEC_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return item_avx512;
  if (__builtin_cpu_supports("avx2")) return item_avx2;
#endif
  return item_base;
}

// The kernel clone for this machine; dims padded to its vector width.
struct Kernel {
  ItemFn fn;
  int64_t width;
};

Kernel kernel() {
  static const ItemFn fn = pick_item_fn();
#if DSK_VEC_X86
  const int64_t w = fn == item_avx512 ? 16 : (fn == item_avx2 ? 8 : 4);
#else
  const int64_t w = 4;
#endif
  return Kernel{fn, w};
}

// cu_seqlens[B + 1] int32 values, checked: 0 first, non-decreasing, at most `total`, `total` last.
std::vector<int64_t> read_cu(const Layout& cu, const char* name, int64_t total,
                             const char* total_name) {
  const int64_t n = cu.shape[0];
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int32_t x;
    std::memcpy(&x, cu.data + i * cu.strides[0] * 4, 4);
    v[static_cast<size_t>(i)] = x;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x = v[static_cast<size_t>(i)];
    if (i == 0) {
      check_arg(x == 0, "{}[0] = {}, expected 0", name, x);
      continue;
    }
    const int64_t prev = v[static_cast<size_t>(i - 1)];
    check_arg(x >= prev, "{}[{}] = {}, expected >= {}[{}] = {} (non-decreasing)", name, i, x, name,
              i - 1, prev);
    check_arg(x <= total, "{}[{}] = {}, expected at most {} ({})", name, i, x, total, total_name);
  }
  check_arg(v[static_cast<size_t>(n - 1)] == total, "{}[{}] = {}, expected {} ({})", name, n - 1,
            v[static_cast<size_t>(n - 1)], total, total_name);
  return v;
}

}  // namespace

dsk_status mla_prefill(const dsk_exec* /*ex*/, const DLTensor* q_t, const DLTensor* k_t,
                       const DLTensor* v_t, const DLTensor* cu_q_t, const DLTensor* cu_k_t,
                       const DLTensor* out_t, const DLTensor* lse_t, float scale,
                       int32_t causal) noexcept {
  return guarded([&] {
    const Layout q = check_tensor(q_t, "q", Access::kRead);
    const Layout k = check_tensor(k_t, "k", Access::kRead);
    const Layout v = check_tensor(v_t, "v", Access::kRead);
    const Layout cu_q = check_tensor(cu_q_t, "cu_seqlens_q", Access::kRead);
    const Layout cu_k =
        check_tensor(cu_k_t != nullptr ? cu_k_t : cu_q_t, "cu_seqlens_k", Access::kRead);
    const Layout out = check_tensor(out_t, "out", Access::kWrite);
    Layout lse;
    if (lse_t != nullptr) lse = check_tensor(lse_t, "lse", Access::kWrite);
    check_arg(q.ndim == 3 && k.ndim == 3 && v.ndim == 3 && out.ndim == 3 && cu_q.ndim == 1 &&
                  cu_k.ndim == 1 && cu_q.shape[0] >= 1 && cu_k.shape[0] == cu_q.shape[0],
              "mla_prefill: expected q [Tq, H, Dqk], k [Tk, Hk, Dqk], v [Tk, Hk, Dv], "
              "cu_seqlens [B + 1], out [Tq, H, Dv]");
    const int64_t tq = q.shape[0];
    const int64_t heads = q.shape[1];
    const int64_t dqk = q.shape[2];
    const int64_t tk = k.shape[0];
    const int64_t hk = k.shape[1];
    const int64_t dv = v.shape[2];
    check_arg(heads >= 1 && hk >= 1 && heads % hk == 0 && k.shape[2] == dqk && v.shape[0] == tk &&
                  v.shape[1] == hk && out.shape[0] == tq && out.shape[1] == heads &&
                  out.shape[2] == dv && dqk >= 1 && dv >= 1,
              "mla_prefill: q, k, v and out shapes disagree");
    check_arg((q.dtype_id == DSK_DTYPE_BF16 || q.dtype_id == DSK_DTYPE_F16) &&
                  k.dtype_id == q.dtype_id && v.dtype_id == q.dtype_id &&
                  out.dtype_id == q.dtype_id && cu_q.dtype_id == DSK_DTYPE_INT32 &&
                  cu_k.dtype_id == DSK_DTYPE_INT32,
              "mla_prefill: expected bf16 or f16 q, k, v, out of one dtype and int32 cu_seqlens");
    check_arg(lse_t == nullptr || (lse.ndim == 2 && lse.shape[0] == heads && lse.shape[1] == tq &&
                                   lse.dtype_id == DSK_DTYPE_F32),
              "mla_prefill: expected lse [H, Tq] f32");
    // Index data first: nothing is written when it is bad.
    const std::vector<int64_t> cq = read_cu(cu_q, "cu_seqlens_q", tq, "q.shape[0]");
    const std::vector<int64_t> ck = read_cu(cu_k, "cu_seqlens_k", tk, "k.shape[0]");
    const int64_t batch = cu_q.shape[0] - 1;

    const Kernel kern = kernel();
    Problem pr;
    pr.dtype = q.dtype_id;
    pr.q = Half3{q.data, q.strides[0], q.strides[1], q.strides[2]};
    pr.k = Half3{k.data, k.strides[0], k.strides[1], k.strides[2]};
    pr.v = Half3{v.data, v.strides[0], v.strides[1], v.strides[2]};
    pr.out = out.data;
    pr.out_st = out.strides[0];
    pr.out_sh = out.strides[1];
    pr.out_sd = out.strides[2];
    if (lse_t != nullptr) {
      pr.lse = lse.data;
      pr.lse_sh = lse.strides[0];
      pr.lse_st = lse.strides[1];
    }
    pr.group = heads / hk;
    pr.dqk = dqk;
    pr.dv = dv;
    pr.dvp = (dv + kern.width - 1) / kern.width * kern.width;
    pr.scale = scale;
    pr.causal = causal != 0;

    // Items, heaviest (most visible keys) first; ties keep (request, head, tile) order.
    std::vector<Item> items;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t n_q = cq[static_cast<size_t>(b + 1)] - cq[static_cast<size_t>(b)];
      const int64_t n_k = ck[static_cast<size_t>(b + 1)] - ck[static_cast<size_t>(b)];
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t q0 = 0; q0 < n_q; q0 += kBlockM) {
          const int64_t end = std::min(q0 + kBlockM, n_q);
          const int64_t kv_end =
              pr.causal ? std::min(std::max<int64_t>(n_k - n_q + end, 0), n_k) : n_k;
          items.push_back(Item{cq[static_cast<size_t>(b)], ck[static_cast<size_t>(b)], n_q, n_k, h,
                               q0, kv_end});
        }
      }
    }
    std::stable_sort(items.begin(), items.end(),
                     [](const Item& a, const Item& b) { return a.kv_end > b.kv_end; });
    const auto count = static_cast<int64_t>(items.size());
    if (count == 0) return;
    std::atomic<int64_t> next{0};
    const int64_t workers = std::min<int64_t>(configured_threads(), count);
    run_shares(workers, [&](int64_t) {
      Scratch s(pr);
      for (;;) {
        const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= count) break;
        kern.fn(pr, items[static_cast<size_t>(i)], s);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
