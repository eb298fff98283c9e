// The FP8 block quantization family on CUDA: quant_fp8 / dequant_fp8 (kernels in fp8_kernels.cu)
// and linear_fp8, which runs one of two kernels:
//
// - DSK_FP8_KERNEL_BLOCK_SCALED: cuBLASLt's FP8 GEMM with DeepSeek-style block scales (cuBLAS
//   12.9+, Hopper). In cuBLASLt's column-major terms y^T [N, M] = w [N, K] . x^T [K, M] in the
//   "TN" layout FP8 requires: A = w (K x N, lda, transposed), B = x (K x M, ldb), D = y^T (N x M,
//   ldd = y's row stride). Scale layouts (cuBLAS docs, "scaling factors layouts"; PyTorch
//   pull 166752 spells them out):
//     A, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F: scale of block (nb, kb) at
//       kb + nb * round_up(ceil(K / 128), 4)   (K-block index contiguous, rows padded to 4);
//     B, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F: scale of tile (m, kb) at m + kb * M_pad
//       (token index contiguous; M_pad = round_up(M, 4), see run_block_scaled).
//   x is quantized on the fly straight into that layout; given scales are repacked into it.
// - DSK_FP8_KERNEL_DEQUANT_GEMM: both operands dequantized to bf16 temporaries, then the CUDA
//   backend's bf16 GEMM (gemm entry). Used before sm_90, with cuBLASLt < 12.9, when the heuristic
//   finds no block-scaled algorithm for a shape, or when DSK_FP8_GEMM=dequant.
//
// Temporaries are stream-ordered (cudaMallocAsync / cudaFreeAsync on the context's stream).
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <atomic>

#include "common/fp8_block.h"
#include "cuda/backend.h"
#include "cuda/blas.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/fp8_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {
namespace {

constexpr size_t kMinLtVersion = 120900;  // block-scaling modes arrived in cuBLAS 12.9
constexpr int kMaxDevices = 64;

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

enum class GemmMode { kAuto, kDequant, kInvalid };

// DSK_FP8_GEMM: unset, "" or "auto" = choose; "dequant" = always the dequantize-then-GEMM kernel
// (benchmarks, comparisons). Read at every call, case-insensitive, surrounding spaces ignored.
GemmMode gemm_mode(const char** value) {
  const char* v = getenv("DSK_FP8_GEMM");
  *value = v != nullptr ? v : "";
  if (v == nullptr) return GemmMode::kAuto;
  while (*v == ' ' || *v == '\t') ++v;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) --n;
  if (n == 0) return GemmMode::kAuto;
  if (n == 4 && strncasecmp(v, "auto", 4) == 0) return GemmMode::kAuto;
  if (n == 7 && strncasecmp(v, "dequant", 7) == 0) return GemmMode::kDequant;
  return GemmMode::kInvalid;
}

dsk_status check_mode(GemmMode* mode) {
  const char* value = nullptr;
  *mode = gemm_mode(&value);
  if (*mode == GemmMode::kInvalid) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "DSK_FP8_GEMM=%s is not one of auto, dequant", value);
  }
  return DSK_OK;
}

cudaDataType_t lt_type(int32_t dtype) {
  switch (dtype) {
    case DSK_DTYPE_F16:
      return CUDA_R_16F;
    case DSK_DTYPE_BF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

// Descriptors and the chosen algorithm of one block-scaled matmul.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;
  cublasLtMatrixLayout_t b = nullptr;
  cublasLtMatrixLayout_t d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  bool found = false;
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

// Builds the plan for D [n, m] (ldd) = A^T . B with A = w (k x n, lda) and B = x (k x m, ldb), both
// e4m3 with 128x128 (A) and 1x128 (B) f32 scales. plan->found is false when cuBLASLt has no
// algorithm for it (then the caller falls back); other failures are errors.
dsk_status make_plan(cublasLtHandle_t lt, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                     int64_t ldd, cudaDataType_t out, const void* a, const void* b, const void* d,
                     const void* a_scale, const void* b_scale, LtPlan* plan) {
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA,
                                                            &trans_a, sizeof(trans_a)));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                            &trans_b, sizeof(trans_b)));
  const cublasLtMatmulMatrixScale_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  const cublasLtMatmulMatrixScale_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof(a_mode)));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof(b_mode)));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof(a_scale)));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof(b_scale)));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &plan->a, CUDA_R_8F_E4M3, static_cast<uint64_t>(k), static_cast<uint64_t>(n), lda));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &plan->b, CUDA_R_8F_E4M3, static_cast<uint64_t>(k), static_cast<uint64_t>(m), ldb));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->d, out, static_cast<uint64_t>(n),
                                                        static_cast<uint64_t>(m), ldd));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&plan->pref));
  DSK_RETURN_IF_FAILED(set_lt_preferences(plan->pref, kLtMaxWorkspaceBytes, a, b, d, d));
  int returned = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
      lt, plan->op, plan->a, plan->b, plan->d, plan->d, plan->pref, 1, &plan->heuristic, &returned);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    plan->found = false;  // this shape or layout is not covered: fall back
    return DSK_OK;
  }
  if (st != CUBLAS_STATUS_SUCCESS) return blas_failure(st, "cublasLtMatmulAlgoGetHeuristic");
  plan->found = returned > 0 && plan->heuristic.state == CUBLAS_STATUS_SUCCESS;
  return DSK_OK;
}

// Whether `device` (current) has the block-scaled FP8 GEMM: compute capability 9.x or newer,
// cuBLASLt >= 12.9, and a heuristic answer for a plain 256^3 problem. Cached per device.
std::atomic<int> g_native[kMaxDevices];  // 0 unknown, 1 yes, 2 no

dsk_status native_available(int32_t device, bool* available) {
  if (device < 0 || device >= kMaxDevices) {
    *available = false;
    return DSK_OK;
  }
  const int cached = g_native[device].load(std::memory_order_acquire);
  if (cached != 0) {
    *available = cached == 1;
    return DSK_OK;
  }
  int major = 0;
  DSK_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  bool ok = major >= 9 && lt_version() >= kMinLtVersion;
  if (ok) {
    BlasHandles h;
    DSK_RETURN_IF_FAILED(blas_handles(device, &h));
    // The heuristic needs scale pointers but reads nothing: any device address serves.
    LtPlan plan;
    DSK_RETURN_IF_FAILED(make_plan(h.lt, 256, 256, 256, 256, 256, 256, CUDA_R_16BF, h.probe,
                                   h.probe, h.probe, h.probe, h.probe, &plan));
    ok = plan.found;
  }
  g_native[device].store(ok ? 1 : 2, std::memory_order_release);
  *available = ok;
  return DSK_OK;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16u == 0; }

// Row stride usable as a leading dimension for a [rows, cols] matrix with unit column stride,
// or 0 when the matrix does not qualify (a single row may carry any stride).
int64_t usable_ld(const Fp8Mat& mat, int64_t elem, int64_t align_elems) {
  if (mat.cols > 1 && mat.s1 != 1) return 0;
  if (!aligned16(mat.data)) return 0;
  if (mat.rows <= 1) return round_up(mat.cols, align_elems);
  if (mat.s0 < mat.cols || (mat.s0 * elem) % 16 != 0) return 0;
  return mat.s0;
}

DLDataType dl_type(int32_t dtype) {
  DLDataType t{};
  t.lanes = 1;
  switch (dtype) {
    case DSK_DTYPE_F16:
      t.code = kDLFloat;
      t.bits = 16;
      break;
    case DSK_DTYPE_BF16:
      t.code = kDLBfloat;
      t.bits = 16;
      break;
    case DSK_DTYPE_FP8_E4M3FN:
      t.code = kDLFloat8_e4m3fn;
      t.bits = 8;
      break;
    default:
      t.code = kDLFloat;
      t.bits = 32;
      break;
  }
  return t;
}

// A DLTensor [rows, cols] over `mat` (for the backend's copy and gemm entries), optionally 3-D
// [1, rows, cols] with batch stride 0.
struct DlView {
  int64_t shape[3];
  int64_t strides[3];
  DLTensor dl{};
  DlView(const Fp8Mat& mat, int32_t device, bool batched) {
    const DLDataType t = dl_type(mat.dtype);
    const int32_t off = batched ? 1 : 0;
    shape[0] = 1;
    strides[0] = 0;
    shape[off] = mat.rows;
    shape[off + 1] = mat.cols;
    strides[off] = mat.s0;
    strides[off + 1] = mat.s1;
    dl.data = mat.data;
    dl.device = DLDevice{kDLCUDA, device};
    dl.ndim = batched ? 3 : 2;
    dl.dtype = t;
    dl.shape = shape;
    dl.strides = strides;
    dl.byte_offset = 0;
  }
};

// y = x . w^T through cuBLASLt's block-scaled FP8 GEMM. *ran is false (and nothing was queued)
// when cuBLASLt has no algorithm for this problem.
//
// The token count is padded to m_pad = round_up(M, 4) for cuBLASLt: the VEC128 scale tensor of B
// must have its outer (token) dimension padded to a multiple of 4 (cuBLAS docs, "scaling factors
// layouts"; PyTorch and DeepGEMM-style callers pad M likewise), and with M itself a multiple of 4
// the scale stride M and round_up(M, 4) coincide, so the layout is right whichever cuBLAS assumes.
// The padding tokens of B and their scales are zeroed and the padding columns of D are never read.
dsk_status run_block_scaled(const dsk_exec* ex, const Fp8Mat& x, const Fp8Mat* xs, const Fp8Mat& w,
                            const Fp8Mat& ws, const Fp8Mat& y, bool pow2, bool* ran) {
  *ran = false;
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  const int32_t device = ex->device;
  const int64_t m = x.rows;
  const int64_t m_pad = round_up(m, 4);
  const bool padded = m_pad != m;
  const int64_t k = x.cols;
  const int64_t n = w.rows;
  const int64_t kb_n = fp8::blocks(k);
  const int64_t nb_n = fp8::blocks(n);
  const int64_t y_elem = static_cast<int64_t>(dtype_id_size(y.dtype));

  // Layouts first, so that nothing is queued when cuBLASLt turns the problem down.
  // A = w: used in place when K-contiguous with a 16-byte leading dimension, else copied.
  StreamTemp w_tmp(stream);
  Fp8Mat a = w;
  int64_t lda = usable_ld(w, 1, 16);
  const bool w_direct = lda != 0;
  if (!w_direct) {
    lda = round_up(k, 16);
    DSK_RETURN_IF_FAILED(w_tmp.alloc(static_cast<size_t>(n * lda)));
    a = Fp8Mat{w_tmp.get(), DSK_DTYPE_FP8_E4M3FN, n, k, lda, 1};
  }
  // A's scales repacked: (nb, kb) at kb + nb * round_up(kb_n, 4); the padding is zeroed.
  const int64_t ws_ld = round_up(kb_n, 4);
  StreamTemp ws_tmp(stream);
  DSK_RETURN_IF_FAILED(ws_tmp.alloc(static_cast<size_t>(nb_n * ws_ld * 4)));
  // B = x (quantized here, or used in place / copied like w) and its scales (m, kb) at
  // m + kb * m_pad.
  StreamTemp x_tmp(stream);
  Fp8Mat b = x;
  int64_t ldb = xs != nullptr && !padded ? usable_ld(x, 1, 16) : 0;
  const bool x_direct = ldb != 0;
  if (!x_direct) {
    ldb = round_up(k, 16);
    DSK_RETURN_IF_FAILED(x_tmp.alloc(static_cast<size_t>(m_pad * ldb)));
    b = Fp8Mat{x_tmp.get(), DSK_DTYPE_FP8_E4M3FN, m, k, ldb, 1};
  }
  StreamTemp xs_tmp(stream);
  DSK_RETURN_IF_FAILED(xs_tmp.alloc(static_cast<size_t>(m_pad * kb_n * 4)));
  const Fp8Mat xs_mat{xs_tmp.get(), DSK_DTYPE_F32, m, kb_n, 1, m_pad};
  // D = y^T in place when N-contiguous with a 16-byte leading dimension, else a temporary.
  StreamTemp y_tmp(stream);
  Fp8Mat d = y;
  int64_t ldd = padded ? 0 : usable_ld(y, y_elem, 16 / y_elem);
  const bool y_direct = ldd != 0;
  if (!y_direct) {
    ldd = round_up(n, 16 / y_elem);
    DSK_RETURN_IF_FAILED(y_tmp.alloc(static_cast<size_t>(m_pad * ldd * y_elem)));
    d = Fp8Mat{y_tmp.get(), y.dtype, m, n, ldd, 1};
  }

  BlasHandles h;
  DSK_RETURN_IF_FAILED(blas_handles(device, &h));
  LtPlan plan;
  DSK_RETURN_IF_FAILED(make_plan(h.lt, m_pad, n, k, lda, ldb, ldd, lt_type(y.dtype), a.data, b.data,
                                 d.data, ws_tmp.get(), xs_tmp.get(), &plan));
  if (!plan.found) return DSK_OK;  // the temporaries are freed in stream order, unused

  if (!w_direct) {
    DlView src(w, device, false);
    DlView dst(a, device, false);
    DSK_RETURN_IF_FAILED(copy(device, &src.dl, &dst.dl, ex->stream));
  }
  DSK_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(ws_tmp.get(), 0, static_cast<size_t>(nb_n * ws_ld * 4), stream));
  DSK_RETURN_IF_FAILED(
      launch_f32_copy2d(ws, Fp8Mat{ws_tmp.get(), DSK_DTYPE_F32, nb_n, kb_n, ws_ld, 1}, stream));
  if (padded) {
    DSK_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(b.data + m * ldb, 0, static_cast<size_t>((m_pad - m) * ldb), stream));
    DSK_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(xs_tmp.get(), 0, static_cast<size_t>(m_pad * kb_n * 4), stream));
  }
  if (xs == nullptr) {
    DSK_RETURN_IF_FAILED(launch_fp8_quant(x, b, xs_mat, false, pow2, stream));
  } else {
    if (!x_direct) {
      DlView src(x, device, false);
      DlView dst(b, device, false);
      DSK_RETURN_IF_FAILED(copy(device, &src.dl, &dst.dl, ex->stream));
    }
    DSK_RETURN_IF_FAILED(launch_f32_copy2d(*xs, xs_mat, stream));
  }
  const float alpha = 1.0f;
  const float beta = 0.0f;
  // Stream-ordered workspace of what the chosen algorithm needs: concurrent streams never share it.
  StreamTemp workspace_temp(stream);
  DSK_RETURN_IF_FAILED(workspace_temp.alloc(plan.heuristic.workspaceSize));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
      h.lt, plan.op, &alpha, a.data, plan.a, b.data, plan.b, &beta, d.data, plan.d, d.data, plan.d,
      &plan.heuristic.algo, workspace_temp.get(), plan.heuristic.workspaceSize, stream));
  if (!y_direct) {
    DlView src(d, device, false);
    DlView dst(y, device, false);
    DSK_RETURN_IF_FAILED(copy(device, &src.dl, &dst.dl, ex->stream));
  }
  *ran = true;
  return DSK_OK;
}

// y = dequant(x) . dequant(w)^T with bf16 operands through the backend's GEMM. w is dequantized in
// chunks of rows (multiples of 128) to bound the temporary.
dsk_status run_dequant_gemm(const dsk_exec* ex, const Fp8Mat& x, const Fp8Mat* xs, const Fp8Mat& w,
                            const Fp8Mat& ws, const Fp8Mat& y, bool pow2) {
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  const int32_t device = ex->device;
  const int64_t m = x.rows;
  const int64_t k = x.cols;
  const int64_t n = w.rows;
  const int64_t kb_n = fp8::blocks(k);
  StreamTemp xb_tmp(stream);
  DSK_RETURN_IF_FAILED(xb_tmp.alloc(static_cast<size_t>(m * k * 2)));
  const Fp8Mat xb{xb_tmp.get(), DSK_DTYPE_BF16, m, k, k, 1};
  if (xs != nullptr) {
    DSK_RETURN_IF_FAILED(launch_fp8_dequant(x, *xs, xb, false, stream));
  } else {
    StreamTemp q_tmp(stream);
    StreamTemp s_tmp(stream);
    DSK_RETURN_IF_FAILED(q_tmp.alloc(static_cast<size_t>(m * k)));
    DSK_RETURN_IF_FAILED(s_tmp.alloc(static_cast<size_t>(m * kb_n * 4)));
    const Fp8Mat q{q_tmp.get(), DSK_DTYPE_FP8_E4M3FN, m, k, k, 1};
    const Fp8Mat s{s_tmp.get(), DSK_DTYPE_F32, m, kb_n, kb_n, 1};
    DSK_RETURN_IF_FAILED(launch_fp8_quant(x, q, s, false, pow2, stream));
    DSK_RETURN_IF_FAILED(launch_fp8_dequant(q, s, xb, false, stream));
  }
  // About 256 MiB of bf16 weight per chunk.
  const int64_t budget = int64_t{128} << 20;
  int64_t chunk = budget / k / fp8::kBlock * fp8::kBlock;
  if (chunk < fp8::kBlock) chunk = fp8::kBlock;
  if (chunk > n) chunk = n;
  StreamTemp wb_tmp(stream);
  DSK_RETURN_IF_FAILED(wb_tmp.alloc(static_cast<size_t>(chunk * k * 2)));
  const int64_t y_elem = static_cast<int64_t>(dtype_id_size(y.dtype));
  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t nc = n - n0 < chunk ? n - n0 : chunk;
    const Fp8Mat w_chunk{w.data + n0 * w.s0, w.dtype, nc, k, w.s0, w.s1};
    const Fp8Mat ws_chunk{ws.data + (n0 / fp8::kBlock) * ws.s0 * 4,
                          DSK_DTYPE_F32,
                          fp8::blocks(nc),
                          kb_n,
                          ws.s0,
                          ws.s1};
    const Fp8Mat wb{wb_tmp.get(), DSK_DTYPE_BF16, nc, k, k, 1};
    DSK_RETURN_IF_FAILED(launch_fp8_dequant(w_chunk, ws_chunk, wb, true, stream));
    // A = x_bf16 [M, K]; B = w_chunk^T [K, nc] (strides 1, K); D = y[:, n0:n0+nc].
    DlView a(xb, device, true);
    DlView b(Fp8Mat{wb.data, DSK_DTYPE_BF16, k, nc, 1, k}, device, true);
    DlView d(Fp8Mat{y.data + n0 * y.s1 * y_elem, y.dtype, m, nc, y.s0, y.s1}, device, true);
    DSK_RETURN_IF_FAILED(gemm(ex, &a.dl, &b.dl, nullptr, nullptr, &d.dl, 1.0f, 0.0f));
  }
  return DSK_OK;
}

}  // namespace

dsk_status quant_fp8(const dsk_exec* ex, const DLTensor* x, const DLTensor* q,
                     const DLTensor* scales, int32_t is_weight, uint32_t flags) noexcept {
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_fp8_quant(fp8_mat(x), fp8_mat(q), fp8_mat(scales), is_weight != 0,
                          (flags & DSK_QUANT_SCALE_POW2) != 0u,
                          static_cast<cudaStream_t>(ex->stream));
}

dsk_status dequant_fp8(const dsk_exec* ex, const DLTensor* q, const DLTensor* scales,
                       const DLTensor* x, int32_t is_weight) noexcept {
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_fp8_dequant(fp8_mat(q), fp8_mat(scales), fp8_mat(x), is_weight != 0,
                            static_cast<cudaStream_t>(ex->stream));
}

dsk_status linear_fp8(const dsk_exec* ex, const DLTensor* x, const DLTensor* x_scales,
                      const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                      uint32_t flags) noexcept {
  try {
    DeviceGuard guard;
    DSK_RETURN_IF_FAILED(guard.set(ex->device));
    GemmMode mode = GemmMode::kAuto;
    DSK_RETURN_IF_FAILED(check_mode(&mode));
    const Fp8Mat xm = fp8_mat(x);
    Fp8Mat xsm{};
    const Fp8Mat* xs = nullptr;
    if (x_scales != nullptr) {
      xsm = fp8_mat(x_scales);
      xs = &xsm;
    }
    const Fp8Mat wm = fp8_mat(w);
    const Fp8Mat wsm = fp8_mat(w_scales);
    const Fp8Mat ym = fp8_mat(y);
    const bool pow2 = (flags & DSK_QUANT_SCALE_POW2) != 0u;
    if (mode == GemmMode::kAuto) {
      bool native = false;
      DSK_RETURN_IF_FAILED(native_available(ex->device, &native));
      if (native) {
        bool ran = false;
        DSK_RETURN_IF_FAILED(run_block_scaled(ex, xm, xs, wm, wsm, ym, pow2, &ran));
        if (ran) return DSK_OK;
      }
    }
    return run_dequant_gemm(ex, xm, xs, wm, wsm, ym, pow2);
  } catch (...) {
    return fail(DSK_ERR_INTERNAL, "linear_fp8: unexpected exception");
  }
}

// DSK_FP8_KERNEL_* for `device`, or -status on failure (message in last_error()).
int32_t linear_fp8_kernel(int32_t device) noexcept {
  GemmMode mode = GemmMode::kAuto;
  dsk_status st = check_mode(&mode);
  if (st != DSK_OK) return -st;
  if (mode == GemmMode::kDequant) return DSK_FP8_KERNEL_DEQUANT_GEMM;
  DeviceGuard guard;
  st = guard.set(device);
  if (st != DSK_OK) return -st;
  bool native = false;
  st = native_available(device, &native);
  if (st != DSK_OK) return -st;
  return native ? DSK_FP8_KERNEL_BLOCK_SCALED : DSK_FP8_KERNEL_DEQUANT_GEMM;
}

}  // namespace cuda
}  // namespace dsk
