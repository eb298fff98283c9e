// CUDA grouped GEMM of the MoE experts (dsk_backend_iface::moe_grouped_gemm):
//   y[offsets[g] .. offsets[g + 1]) = x[same rows] @ w[g]^T   for every non-empty group g.
//
// One cublasGemmGroupedBatchedEx call (cuBLAS >= 12.5) runs every non-empty group as a group of
// one problem, CUBLAS_COMPUTE_32F with x's dtype in and out (bf16, f16 or f32; a y of another
// dtype is left to the loop), when every problem fits it: K > 0,
// each matrix with a unit stride in one dim, dims and leading dims that fit an int, and every
// pointer and row pitch a multiple of 16 bytes (the pointers live in device memory, so cuBLAS
// cannot look at their alignment). Row-major tensors meet column-major cuBLAS through the usual
// transpose: y_g^T = w_g @ x_g^T when y has unit column stride, y_g = x_g @ w_g^T when it has unit
// row stride. The pointer arrays are built on the host and copied to the device (into the exec's
// workspace when it is large enough, else a stream-ordered temporary).
//
// Everything else (another y dtype, odd strides or alignment, one non-empty group, or a cuBLAS
// that answers NOT_SUPPORTED / ARCH_MISMATCH) runs the group loop libdsk would run itself: one
// dsk::cuda::gemm (cuBLASLt) per non-empty group, on views of the group's rows.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <vector>

#include "cuda/backend.h"
#include "cuda/blas.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"

#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120500
#  define DSK_HAVE_GROUPED_GEMM 1
#else
#  define DSK_HAVE_GROUPED_GEMM 0
#endif

namespace dsk {
namespace cuda {
namespace {

// A 2-D view ([rows, cols]) or one matrix of a 3-D tensor, with element strides.
struct View2 {
  DLTensor t{};
  int64_t shape[2] = {};
  int64_t strides[2] = {};
};

// Rows [r0, r0 + nr) of the 2-D tensor `src`.
void rows_of(const TensorInfo& src, const DLTensor* dl, int64_t r0, int64_t nr, View2* v) {
  v->t = *dl;
  v->shape[0] = nr;
  v->shape[1] = src.shape[1];
  v->strides[0] = src.strides[0];
  v->strides[1] = src.strides[1];
  v->t.data = src.data + r0 * src.strides[0] * src.elem_size;
  v->t.byte_offset = 0;
  v->t.ndim = 2;
  v->t.shape = v->shape;
  v->t.strides = v->strides;
}

// w[g]^T as [K, N] for w [G, N, K].
void transposed_matrix(const TensorInfo& src, const DLTensor* dl, int64_t g, View2* v) {
  v->t = *dl;
  v->shape[0] = src.shape[2];
  v->shape[1] = src.shape[1];
  v->strides[0] = src.strides[2];
  v->strides[1] = src.strides[1];
  v->t.data = src.data + g * src.strides[0] * src.elem_size;
  v->t.byte_offset = 0;
  v->t.ndim = 2;
  v->t.shape = v->shape;
  v->t.strides = v->strides;
}

// w[g] converted to x's dtype in `buf` (dense [N, K]), returned as [K, N] like transposed_matrix.
dsk_status widened_matrix(const dsk_exec* ex, const TensorInfo& wi, const DLTensor* w, int64_t g,
                          const DLTensor* x, char* buf, View2* v) {
  View2 src;
  src.t = *w;
  src.shape[0] = wi.shape[1];
  src.shape[1] = wi.shape[2];
  src.strides[0] = wi.strides[1];
  src.strides[1] = wi.strides[2];
  src.t.data = wi.data + g * wi.strides[0] * wi.elem_size;
  src.t.byte_offset = 0;
  src.t.ndim = 2;
  src.t.shape = src.shape;
  src.t.strides = src.strides;
  View2 dst = src;
  dst.t.dtype = x->dtype;
  dst.strides[0] = wi.shape[2];
  dst.strides[1] = 1;
  dst.t.data = buf;
  dst.t.shape = dst.shape;
  dst.t.strides = dst.strides;
  DSK_RETURN_IF_FAILED(copy(ex->device, &src.t, &dst.t, ex->stream));
  *v = dst;
  v->shape[0] = wi.shape[2];
  v->shape[1] = wi.shape[1];
  v->strides[0] = 1;
  v->strides[1] = wi.shape[2];
  v->t.shape = v->shape;
  v->t.strides = v->strides;
  return DSK_OK;
}

// The libdsk fallback: one GEMM per non-empty group. cuBLASLt takes one dtype for A and B, so
// weights of another dtype than x (bf16 weights against the f32 intermediates of an f32 y) are
// converted to x's dtype one expert at a time, exactly as the CPU widens them, into one
// stream-ordered temporary that every group reuses in stream order.
dsk_status group_loop(const dsk_exec* ex, const TensorInfo& xi, const DLTensor* x,
                      const TensorInfo& wi, const DLTensor* w, const TensorInfo& yi,
                      const DLTensor* y, const int64_t* offsets) {
  const int64_t groups = wi.shape[0];
  const bool widen = wi.dtype_id != xi.dtype_id;
  StreamTemp wide(static_cast<cudaStream_t>(ex->stream));
  if (widen) {
    DSK_RETURN_IF_FAILED(
        wide.alloc(static_cast<size_t>(wi.shape[1] * wi.shape[2] * xi.elem_size)));
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows <= 0) continue;
    View2 a, b, d;
    rows_of(xi, x, offsets[g], rows, &a);
    if (widen) {
      DSK_RETURN_IF_FAILED(widened_matrix(ex, wi, w, g, x, wide.get(), &b));
    } else {
      transposed_matrix(wi, w, g, &b);
    }
    rows_of(yi, y, offsets[g], rows, &d);
    DSK_RETURN_IF_FAILED(gemm(ex, &a.t, &b.t, nullptr, nullptr, &d.t, 1.0f, 0.0f));
  }
  return DSK_OK;
}

#if DSK_HAVE_GROUPED_GEMM

constexpr int kMaxDevices = 64;

// One cuBLAS handle per device, created on first use with the device current and kept for the
// life of the process (as cuda/blas.cpp keeps the cuBLASLt handles). A handle holds a stream and a
// workspace: calls set both under the slot's mutex, so threads never see each other's.
struct CublasSlot {
  std::once_flag once;
  dsk_status status = DSK_OK;
  char message[256] = "";
  cublasHandle_t handle = nullptr;
  std::mutex mutex;
};

CublasSlot g_cublas[kMaxDevices];

dsk_status create_handle(CublasSlot& s) {
  DSK_CUBLAS_RETURN_IF_ERROR(cublasCreate(&s.handle));
  // Split-K partial sums stay in f32 even for bf16/f16 outputs.
  DSK_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(
      s.handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                          CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  return DSK_OK;
}

dsk_status cublas_slot(int32_t device, CublasSlot** out) {
  if (device < 0 || device >= kMaxDevices) {
    return fail(DSK_ERR_UNSUPPORTED, "device %d: at most %d CUDA devices are supported", device,
                kMaxDevices);
  }
  CublasSlot& s = g_cublas[device];
  try {
    std::call_once(s.once, [&] {
      s.status = create_handle(s);
      if (s.status != DSK_OK) {
        const char* m = last_error();
        size_t i = 0;
        for (; m[i] != '\0' && i + 1 < sizeof(s.message); ++i) s.message[i] = m[i];
        s.message[i] = '\0';
      }
    });
  } catch (...) {
    return fail(DSK_ERR_INTERNAL, "creating the cuBLAS handle failed");
  }
  if (s.status != DSK_OK) return fail(s.status, "%s", s.message);
  *out = &s;
  return DSK_OK;
}

// A matrix Q [rows, cols] (element strides rs, cs) as cuBLAS's op(P) with P column-major:
// P = Q (op N) when Q's rows are unit-stride, P = Q^T (op T) when its columns are; `need_n` admits
// only the first (C). ld is P's leading dimension.
struct OpMat {
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1;
};

bool fit(int64_t rows, int64_t rs, int64_t cols, int64_t cs, bool need_n, OpMat* out) {
  // P = Q column-major: rows contiguous, columns `cs` apart.
  if (rs == 1 || rows == 1) {
    const int64_t ld = cols > 1 ? cs : std::max<int64_t>(rows, 1);
    if (ld >= std::max<int64_t>(rows, 1)) {
      *out = OpMat{CUBLAS_OP_N, ld};
      return true;
    }
  }
  if (need_n) return false;
  // P = Q^T column-major [cols, rows]: columns of Q contiguous, rows `rs` apart.
  if (cs == 1 || cols == 1) {
    const int64_t ld = rows > 1 ? rs : std::max<int64_t>(cols, 1);
    if (ld >= std::max<int64_t>(cols, 1)) {
      *out = OpMat{CUBLAS_OP_T, ld};
      return true;
    }
  }
  return false;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Arguments of one cublasGemmGroupedBatchedEx call, one group of one problem per expert.
struct GroupedCall {
  std::vector<cublasOperation_t> ta, tb;
  std::vector<int> m, n, k, lda, ldb, ldc, size;
  std::vector<float> alpha, beta;
  std::vector<const void*> ptrs;  // A pointers, then B, then C (3 * count)
  int count = 0;
};

// Fills `call` for every non-empty group; false when some problem does not fit the grouped call.
bool plan_grouped(const TensorInfo& xi, const TensorInfo& wi, const TensorInfo& yi,
                  const int64_t* offsets, GroupedCall* call) {
  const int64_t groups = wi.shape[0];
  const int64_t n = wi.shape[1];
  const int64_t k = wi.shape[2];
  const int64_t elem = xi.elem_size;
  const int64_t wsn = wi.strides[1], wsk = wi.strides[2];
  const int64_t xsr = xi.strides[0], xsc = xi.strides[1];
  const int64_t ysr = yi.strides[0], ysc = yi.strides[1];
  auto fits_int = [](int64_t v) { return v >= 0 && v <= INT_MAX; };
  std::vector<const void*> a_ptrs, b_ptrs, c_ptrs;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows <= 0) continue;
    const char* xg = xi.data + offsets[g] * xsr * elem;
    const char* wg = wi.data + g * wi.strides[0] * elem;
    const char* yg = yi.data + offsets[g] * ysr * elem;
    OpMat a, b, c;
    int64_t m_, n_;
    const void* ap;
    const void* bp;
    if (fit(n, ysc, rows, ysr, /*need_n=*/true, &c)) {
      // y_g^T [N, rows] = w_g [N, K] @ x_g^T [K, rows].
      if (!fit(n, wsn, k, wsk, false, &a) || !fit(k, xsc, rows, xsr, false, &b)) return false;
      m_ = n;
      n_ = rows;
      ap = wg;
      bp = xg;
    } else if (fit(rows, ysr, n, ysc, /*need_n=*/true, &c)) {
      // y_g [rows, N] = x_g [rows, K] @ w_g^T [K, N].
      if (!fit(rows, xsr, k, xsc, false, &a) || !fit(k, wsk, n, wsn, false, &b)) return false;
      m_ = rows;
      n_ = n;
      ap = xg;
      bp = wg;
    } else {
      return false;
    }
    if (!fits_int(m_) || !fits_int(n_) || !fits_int(k) || !fits_int(a.ld) || !fits_int(b.ld) ||
        !fits_int(c.ld)) {
      return false;
    }
    if (!aligned16(ap) || !aligned16(bp) || !aligned16(yg) || (a.ld * elem) % 16 != 0 ||
        (b.ld * elem) % 16 != 0 || (c.ld * elem) % 16 != 0) {
      return false;
    }
    call->ta.push_back(a.op);
    call->tb.push_back(b.op);
    call->m.push_back(static_cast<int>(m_));
    call->n.push_back(static_cast<int>(n_));
    call->k.push_back(static_cast<int>(k));
    call->lda.push_back(static_cast<int>(a.ld));
    call->ldb.push_back(static_cast<int>(b.ld));
    call->ldc.push_back(static_cast<int>(c.ld));
    call->size.push_back(1);
    call->alpha.push_back(1.0f);
    call->beta.push_back(0.0f);
    a_ptrs.push_back(ap);
    b_ptrs.push_back(bp);
    c_ptrs.push_back(yg);
  }
  if (a_ptrs.size() > static_cast<size_t>(INT_MAX)) return false;
  call->count = static_cast<int>(a_ptrs.size());
  call->ptrs = a_ptrs;
  call->ptrs.insert(call->ptrs.end(), b_ptrs.begin(), b_ptrs.end());
  call->ptrs.insert(call->ptrs.end(), c_ptrs.begin(), c_ptrs.end());
  return true;
}

cudaDataType_t cuda_type(int32_t dtype) {
  return dtype == DSK_DTYPE_F16 ? CUDA_R_16F : dtype == DSK_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Runs `call`. *refused is set (and nothing queued) when cuBLAS declines the problem as a whole.
dsk_status run_grouped(const dsk_exec* ex, int32_t dtype, const GroupedCall& call, bool* refused) {
  *refused = false;
  const cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
  CublasSlot* slot = nullptr;
  DSK_RETURN_IF_FAILED(cublas_slot(ex->device, &slot));
  // The device pointer arrays.
  const size_t ptr_bytes = call.ptrs.size() * sizeof(void*);
  StreamTemp ptr_temp(stream);
  void* dev_ptrs = nullptr;
  if (ex->workspace != nullptr && ex->workspace_bytes >= ptr_bytes &&
      reinterpret_cast<uintptr_t>(ex->workspace) % alignof(void*) == 0) {
    dev_ptrs = ex->workspace;
  } else {
    DSK_RETURN_IF_FAILED(ptr_temp.alloc(ptr_bytes));
    dev_ptrs = ptr_temp.get();
  }
  // memcpy_device returns once the host array has been consumed.
  DSK_RETURN_IF_FAILED(memcpy_device(ex->device, dev_ptrs, call.ptrs.data(), ptr_bytes,
                                     DSK_MEMCPY_HOST_TO_DEVICE, ex->stream));
  const void* const* a = static_cast<const void* const*>(dev_ptrs);
  const void* const* b = a + call.count;
  void* const* c = const_cast<void* const*>(b + call.count);
  // The handle's workspace: stream-ordered, of what cuBLAS recommends on Hopper.
  StreamTemp workspace(stream);
  DSK_RETURN_IF_FAILED(workspace.alloc(kLtMaxWorkspaceBytes));
  const cudaDataType_t type = cuda_type(dtype);
  std::lock_guard<std::mutex> lock(slot->mutex);
  DSK_CUBLAS_RETURN_IF_ERROR(cublasSetStream(slot->handle, stream));
  DSK_CUBLAS_RETURN_IF_ERROR(
      cublasSetWorkspace(slot->handle, workspace.get(), kLtMaxWorkspaceBytes));
  const cublasStatus_t st = cublasGemmGroupedBatchedEx(
      slot->handle, call.ta.data(), call.tb.data(), call.m.data(), call.n.data(), call.k.data(),
      call.alpha.data(), a, type, call.lda.data(), b, type, call.ldb.data(), call.beta.data(), c,
      type, call.ldc.data(), call.count, call.size.data(), CUBLAS_COMPUTE_32F);
  // A type combination or architecture this cuBLAS lacks: the loop instead. INVALID_VALUE is not
  // among these: it would mean wrong arguments, which must show up rather than hide behind the
  // slower path.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_ARCH_MISMATCH) {
    *refused = true;
    return DSK_OK;
  }
  if (st != CUBLAS_STATUS_SUCCESS) return blas_failure(st, "cublasGemmGroupedBatchedEx");
  return DSK_OK;
}

#endif  // DSK_HAVE_GROUPED_GEMM

}  // namespace

dsk_status moe_grouped_gemm(const dsk_exec* ex, const DLTensor* x, const DLTensor* w,
                            const int64_t* offsets, const DLTensor* y) noexcept {
  const TensorInfo xi = tensor_info(x);
  const TensorInfo wi = tensor_info(w);
  const TensorInfo yi = tensor_info(y);
  const int64_t groups = wi.shape[0];
  const int64_t n = wi.shape[1];
  const int64_t k = wi.shape[2];
  if (groups == 0 || n == 0) return DSK_OK;
  int64_t busy = 0;
  for (int64_t g = 0; g < groups; ++g) busy += offsets[g + 1] > offsets[g] ? 1 : 0;
  if (busy == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
#if DSK_HAVE_GROUPED_GEMM
  const int32_t dtype = xi.dtype_id;
  // One cudaDataType_t names A, B and C alike: x, w and y must share it.
  const bool types_ok =
      yi.dtype_id == dtype && wi.dtype_id == dtype &&
      (dtype == DSK_DTYPE_BF16 || dtype == DSK_DTYPE_F16 || dtype == DSK_DTYPE_F32);
  if (busy >= 2 && k > 0 && types_ok) {
    try {
      GroupedCall call;
      if (plan_grouped(xi, wi, yi, offsets, &call)) {
        bool refused = false;
        DSK_RETURN_IF_FAILED(run_grouped(ex, dtype, call, &refused));
        if (!refused) return DSK_OK;
      }
    } catch (...) {
      return fail(DSK_ERR_OUT_OF_MEMORY, "moe_grouped_gemm: out of host memory");
    }
  }
#endif
  return group_loop(ex, xi, x, wi, w, yi, y, offsets);
}

}  // namespace cuda
}  // namespace dsk
