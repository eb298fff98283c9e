// CUDA GEMM (dsk_backend_iface::gemm) on cuBLASLt with CUBLAS_COMPUTE_32F.
//
// Row-major tensors meet column-major cuBLASLt through the usual transpose trick: a matrix with
// unit column stride is the column-major transpose of itself, so D = A @ B is computed as
// D^T = B^T @ A^T when D is row-major, and directly when D is column-major. Each operand must
// have a unit stride in one of its two dims and a leading dimension that clears the other;
// A or B without one is first copied to a compact stream-ordered temporary (dsk::cuda::copy).
//
// One cuBLASLt call writes D directly when it can: A/B dtype with C/D dtype f32 or equal to it,
// C (if used) of D's dtype and in D's orientation, bias (if any) of D's dtype, contiguous and added
// along D^T's rows (the BIAS epilogue). Otherwise cuBLASLt writes alpha * A @ B into an f32
// temporary and gemm_epilogue.cu forms D = T + beta * C + bias, rounding once to D's dtype. Batches
// use strided batching, except that broadcast operands (batch stride 0) are run one batch per call.
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

#include <algorithm>

#include "common/convert.h"
#include "cuda/backend.h"
#include "cuda/blas.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/gemm_algo_cache.h"
#include "cuda/ops/gemm_epilogue.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {
namespace {

// A [batch, rows, cols] view (bias: [1, 1, n]).
struct Mat {
  char* data = nullptr;
  int32_t dtype = 0;
  DLDataType dl_dtype{};
  int64_t elem = 0;
  int64_t batch = 1, rows = 1, cols = 1;
  int64_t sb = 0, sr = 0, sc = 0;  // elements; 0 for size-1 dims
};

Mat mat_of(const DLTensor* t) {
  const TensorInfo info = tensor_info(t);
  Mat m;
  m.data = info.data;
  m.dtype = info.dtype_id;
  m.dl_dtype = t->dtype;
  m.elem = info.elem_size;
  int64_t* sizes[3] = {&m.batch, &m.rows, &m.cols};
  int64_t* strides[3] = {&m.sb, &m.sr, &m.sc};
  for (int32_t j = 2, i = info.ndim - 1; j >= 0 && i >= 0; --j, --i) {
    *sizes[j] = info.shape[i];
    *strides[j] = info.shape[i] == 1 ? 0 : info.strides[i];
  }
  return m;
}

cudaDataType_t cuda_type(int32_t dtype) {
  return dtype == DSK_DTYPE_F16 ? CUDA_R_16F : dtype == DSK_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

bool aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

// One matrix as cuBLASLt sees it: op(P) with P column-major [rows, cols], leading dimension ld.
struct LtMat {
  const char* ptr = nullptr;
  cudaDataType_t type = CUDA_R_32F;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 1;
  int64_t batch_stride = 0;
  cublasOperation_t op = CUBLAS_OP_N;
};

// P column-major [rows, cols] over a dim pair of Y: `rows` elements at stride `rs` (must be 1
// unless rows == 1), `cols` at stride `cs` (the leading dimension, which must clear rows).
bool fit_column_major(int64_t rows, int64_t rs, int64_t cols, int64_t cs, cublasOperation_t op,
                      LtMat* m) {
  if (rs != 1 && rows != 1) return false;
  const int64_t ld = cols > 1 ? cs : std::max<int64_t>(rows, 1);
  if (ld < std::max<int64_t>(rows, 1)) return false;
  m->rows = static_cast<uint64_t>(rows);
  m->cols = static_cast<uint64_t>(cols);
  m->ld = ld;
  m->op = op;
  return true;
}

// Describes Y = x (x^T when `transpose`) as op(P). With `need_n`, only op N is accepted (for C
// and D). False when neither dim of Y has a unit stride with a leading dim that clears the other.
bool describe(const Mat& x, bool transpose, bool need_n, LtMat* out) {
  if (!aligned(x.data, x.elem)) return false;
  const int64_t yr = transpose ? x.cols : x.rows;
  const int64_t yc = transpose ? x.rows : x.cols;
  const int64_t ysr = transpose ? x.sc : x.sr;
  const int64_t ysc = transpose ? x.sr : x.sc;
  LtMat m;
  m.ptr = x.data;
  m.type = cuda_type(x.dtype);
  m.batch_stride = x.sb;
  // Y column-major: P = Y, op N. Else Y row-major: P = Y^T, used transposed.
  const bool ok = fit_column_major(yr, ysr, yc, ysc, CUBLAS_OP_N, &m) ||
                  (!need_n && fit_column_major(yc, ysc, yr, ysr, CUBLAS_OP_T, &m));
  if (ok) *out = m;
  return ok;
}

// Copies x into a compact row-major temporary of its dtype (one batch when x broadcasts).
dsk_status materialize(int32_t device, cudaStream_t stream, Mat& x, StreamTemp& temp) {
  const int64_t batches = x.sb == 0 ? 1 : x.batch;
  const int64_t count = batches * x.rows * x.cols;
  DSK_RETURN_IF_FAILED(temp.alloc(static_cast<size_t>(count * x.elem)));
  int64_t shape[3] = {batches, x.rows, x.cols};
  int64_t src_strides[3] = {x.sb, x.sr, x.sc};
  int64_t dst_strides[3] = {x.rows * x.cols, x.cols, 1};
  DLTensor src{};
  src.data = x.data;
  src.device = DLDevice{kDLCUDA, device};
  src.ndim = 3;
  src.dtype = x.dl_dtype;
  src.shape = shape;
  src.strides = src_strides;
  DLTensor dst = src;
  dst.data = temp.get();
  dst.strides = dst_strides;
  DSK_RETURN_IF_FAILED(copy(device, &src, &dst, stream));
  x.data = temp.get();
  x.sr = x.rows == 1 ? 0 : x.cols;
  x.sc = x.cols == 1 ? 0 : 1;
  x.sb = batches == 1 ? 0 : x.rows * x.cols;
  return DSK_OK;
}

// RAII holders for cuBLASLt descriptors.
struct LtDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~LtDesc() {
    if (d != nullptr) cublasLtMatmulDescDestroy(d);
  }
};
struct LtLayout {
  cublasLtMatrixLayout_t l = nullptr;
  ~LtLayout() {
    if (l != nullptr) cublasLtMatrixLayoutDestroy(l);
  }
};
struct LtPref {
  cublasLtMatmulPreference_t p = nullptr;
  ~LtPref() {
    if (p != nullptr) cublasLtMatmulPreferenceDestroy(p);
  }
};

dsk_status make_layout(const LtMat& m, int64_t batch, LtLayout* out) {
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&out->l, m.type, m.rows, m.cols, m.ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    const int64_t stride = m.batch_stride;
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
        out->l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
        out->l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return DSK_OK;
}

// One cuBLASLt matmul: D_lt = alpha * op(a) @ op(b) + beta * C_lt (+ bias along D_lt's rows),
// over `batch` strided batches. c may equal d (then c's layout is d's).
dsk_status lt_matmul(int32_t device, cudaStream_t stream, const LtMat& a, const LtMat& b,
                     const LtMat& c, const LtMat& d, int64_t batch, const void* bias, float alpha,
                     float beta) {
  BlasHandles h;
  DSK_RETURN_IF_FAILED(blas_handles(device, &h));
  LtDesc desc;
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&desc.d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  DSK_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &a.op, sizeof(a.op)));
  DSK_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &b.op, sizeof(b.op)));
  if (bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                              &epilogue, sizeof(epilogue)));
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  LtLayout la, lb, lc, ld;
  DSK_RETURN_IF_FAILED(make_layout(a, batch, &la));
  DSK_RETURN_IF_FAILED(make_layout(b, batch, &lb));
  DSK_RETURN_IF_FAILED(make_layout(c, batch, &lc));
  DSK_RETURN_IF_FAILED(make_layout(d, batch, &ld));
  // Everything the heuristic's choice depends on (gemm_algo_cache.h).
  LtAlgoKey key{};
  size_t k = 0;
  key[k++] = device;
  key[k++] = batch;
  key[k++] = bias != nullptr ? pointer_alignment(bias) : 0;
  key[k++] = a.op;
  key[k++] = b.op;
  for (const LtMat* m : {&a, &b, &c, &d}) {
    key[k++] = m->type;
    key[k++] = static_cast<int64_t>(m->rows);
    key[k++] = static_cast<int64_t>(m->cols);
    key[k++] = m->ld;
    key[k++] = batch > 1 ? m->batch_stride : 0;
    key[k++] = pointer_alignment(m->ptr);
  }
  LtAlgo chosen;
  if (!lt_algo_lookup(key, &chosen)) {
    LtPref pref;
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref.p));
    DSK_RETURN_IF_FAILED(
        set_lt_preferences(pref.p, kLtMaxWorkspaceBytes, a.ptr, b.ptr, c.ptr, d.ptr));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(h.lt, desc.d, la.l, lb.l, lc.l, ld.l,
                                                              pref.p, 1, &result, &found));
    if (found == 0) {
      return fail(DSK_ERR_UNSUPPORTED, "gemm: cuBLASLt has no algorithm for this problem");
    }
    chosen.algo = result.algo;
    chosen.workspace_bytes = result.workspaceSize;
    lt_algo_store(key, chosen);
  }
  // Stream-ordered workspace of what the chosen algorithm needs: concurrent streams never share it.
  StreamTemp workspace_temp(stream);
  DSK_RETURN_IF_FAILED(workspace_temp.alloc(chosen.workspace_bytes));
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
      h.lt, desc.d, &alpha, a.ptr, la.l, b.ptr, lb.l, &beta, c.ptr, lc.l, const_cast<char*>(d.ptr),
      ld.l, &chosen.algo, workspace_temp.get(), chosen.workspace_bytes, stream));
  return DSK_OK;
}

struct Problem {
  Mat a, b, c, d, bias;
  bool has_c = false, has_bias = false;
  float alpha = 1.0f, beta = 0.0f;
  int64_t batch = 1, m = 0, n = 0, k = 0;
};

// Runs D_lt = alpha * A @ B (+ beta * C + bias when given) into the output `out`, which is D or
// an f32 temporary, batch by batch when an input broadcasts.
dsk_status run_lt(int32_t device, cudaStream_t stream, const Problem& p, const Mat& out,
                  bool with_c, bool with_bias) {
  // D^T = B^T @ A^T when the output is row-major, D = A @ B when column-major.
  LtMat dl;
  bool row_major = describe(out, /*transpose=*/true, /*need_n=*/true, &dl);
  if (!row_major && !describe(out, false, true, &dl)) {
    return fail(DSK_ERR_INTERNAL, "gemm: output without a unit stride reached cuBLASLt");
  }
  LtMat al, bl;
  const bool ok = row_major ? describe(p.b, true, false, &al) && describe(p.a, true, false, &bl)
                            : describe(p.a, false, false, &al) && describe(p.b, false, false, &bl);
  if (!ok) return fail(DSK_ERR_INTERNAL, "gemm: operand without a unit stride reached cuBLASLt");
  LtMat cl = dl;
  if (with_c && !describe(p.c, row_major, true, &cl)) {
    return fail(DSK_ERR_INTERNAL, "gemm: C in another orientation than D reached cuBLASLt");
  }
  const float beta = with_c ? p.beta : 0.0f;
  const void* bias = with_bias ? p.bias.data : nullptr;
  const bool broadcast = p.batch > 1 && (al.batch_stride == 0 || bl.batch_stride == 0 ||
                                         (with_c && cl.batch_stride == 0));
  if (!broadcast && p.batch <= INT32_MAX) {
    return lt_matmul(device, stream, al, bl, cl, dl, p.batch, bias, p.alpha, beta);
  }
  for (int64_t i = 0; i < p.batch; ++i) {
    LtMat ai = al, bi = bl, ci = cl, di = dl;
    ai.ptr += i * al.batch_stride * p.a.elem;
    bi.ptr += i * bl.batch_stride * p.b.elem;
    ci.ptr += i * cl.batch_stride * (with_c ? p.c.elem : out.elem);
    di.ptr += i * dl.batch_stride * out.elem;
    DSK_RETURN_IF_FAILED(lt_matmul(device, stream, ai, bi, ci, di, 1, bias, p.alpha, beta));
  }
  return DSK_OK;
}

dsk_status run(int32_t device, cudaStream_t stream, Problem& p) {
  GemmEpilogue e;
  if (p.has_c) {
    e.c = p.c.data;
    e.c_dtype = p.c.dtype;
    e.c_strides[0] = p.c.sb;
    e.c_strides[1] = p.c.sr;
    e.c_strides[2] = p.c.sc;
    e.beta = p.beta;
  }
  if (p.has_bias) {
    e.bias = p.bias.data;
    e.bias_dtype = p.bias.dtype;
    e.bias_stride = p.bias.sc;
  }
  e.d = p.d.data;
  e.d_dtype = p.d.dtype;
  e.d_strides[0] = p.d.sb;
  e.d_strides[1] = p.d.sr;
  e.d_strides[2] = p.d.sc;
  e.batch = p.batch;
  e.m = p.m;
  e.n = p.n;
  if (p.k == 0) return launch_gemm_epilogue(e, stream);  // D = beta * C + bias

  StreamTemp a_copy(stream), b_copy(stream);
  LtMat probe;
  if (!describe(p.a, false, false, &probe))
    DSK_RETURN_IF_FAILED(materialize(device, stream, p.a, a_copy));
  if (!describe(p.b, false, false, &probe))
    DSK_RETURN_IF_FAILED(materialize(device, stream, p.b, b_copy));

  // Direct: one cuBLASLt call writes D.
  const int32_t ab = p.a.dtype;
  const bool types_ok = p.d.dtype == DSK_DTYPE_F32 || p.d.dtype == ab;
  LtMat dl;
  const bool d_row = describe(p.d, true, true, &dl);
  const bool d_ok = d_row || describe(p.d, false, true, &dl);
  // cuBLASLt takes C in D's dtype (Ctype == Dtype for every non-FP8 A/B combination in the
  // cublasLtMatmul type table); another C dtype goes through the epilogue.
  const bool c_ok = !p.has_c || (p.c.dtype == p.d.dtype && describe(p.c, d_row, true, &probe));
  const bool bias_ok =
      !p.has_bias || (d_row && p.bias.dtype == p.d.dtype && (p.bias.sc == 1 || p.n == 1) &&
                      aligned(p.bias.data, 16) && p.batch == 1);
  if (types_ok && d_ok && c_ok && bias_ok) {
    return run_lt(device, stream, p, p.d, p.has_c, p.has_bias);
  }
  // Otherwise: T = alpha * A @ B in f32, then D = T + beta * C + bias.
  StreamTemp t(stream);
  DSK_RETURN_IF_FAILED(t.alloc(static_cast<size_t>(p.batch * p.m * p.n) * sizeof(float)));
  Mat tm;
  tm.data = t.get();
  tm.dtype = DSK_DTYPE_F32;
  tm.elem = 4;
  tm.batch = p.batch;
  tm.rows = p.m;
  tm.cols = p.n;
  tm.sb = p.batch == 1 ? 0 : p.m * p.n;
  tm.sr = p.m == 1 ? 0 : p.n;
  tm.sc = p.n == 1 ? 0 : 1;
  DSK_RETURN_IF_FAILED(run_lt(device, stream, p, tm, false, false));
  e.t = reinterpret_cast<const float*>(t.get());
  return launch_gemm_epilogue(e, stream);
}

}  // namespace

dsk_status gemm(const dsk_exec* ex, const DLTensor* a, const DLTensor* b, const DLTensor* c,
                const DLTensor* bias, const DLTensor* d, float alpha, float beta) noexcept {
  Problem p;
  p.a = mat_of(a);
  p.b = mat_of(b);
  p.d = mat_of(d);
  p.has_c = c != nullptr;
  if (p.has_c) p.c = mat_of(c);
  p.has_bias = bias != nullptr;
  if (p.has_bias) p.bias = mat_of(bias);
  p.alpha = alpha;
  p.beta = beta;
  p.batch = p.d.batch;
  p.m = p.d.rows;
  p.n = p.d.cols;
  p.k = p.a.cols;
  if (p.batch == 0 || p.m == 0 || p.n == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return run(ex->device, static_cast<cudaStream_t>(ex->stream), p);
}

}  // namespace cuda
}  // namespace dsk
