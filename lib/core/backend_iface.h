// backend_iface.h - the table of functions a backend module provides to libdsk.
//
// Plain C types only: the CUDA module is a separate shared object (libdsk-cuda.so) and this table
// is the whole contract between it and libdsk. libdsk checks api_version and struct_size before
// using a table, so a stale module is refused (logged), never called. Not a public header.
#ifndef DSK_LIB_CORE_BACKEND_IFACE_H_
#define DSK_LIB_CORE_BACKEND_IFACE_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_backend.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_status.h"
#include "dsk/dsk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Bump whenever a field of dsk_backend_iface changes meaning or position.
#define DSK_BACKEND_IFACE_VERSION 2

// Directions for dsk_backend_iface::memcpy.
#define DSK_MEMCPY_HOST_TO_DEVICE 1
#define DSK_MEMCPY_DEVICE_TO_HOST 2
#define DSK_MEMCPY_DEVICE_TO_DEVICE 3

// Where an op runs and the scratch memory it may use. workspace is the context's device workspace
// (may be NULL/0); ops needing more scratch allocate stream-ordered memory themselves.
typedef struct dsk_exec {
  int32_t device;
  void* stream;
  void* workspace;
  size_t workspace_bytes;
} dsk_exec;

// Every function returning dsk_status leaves a message for last_error() on failure. All tensor
// arguments have already been validated by libdsk (supported dtype, ndim <= 8, lanes 1, no
// overflow, dst not overlapping itself) and live on `device` of this backend; they may still have
// NULL strides (row-major), a nonzero byte_offset and any alignment. `stream` is the context's
// stream (NULL = default stream).
typedef struct dsk_backend_iface {
  uint32_t api_version;  // DSK_BACKEND_IFACE_VERSION
  uint32_t struct_size;  // sizeof(dsk_backend_iface)
  const char* name;      // "cuda"

  // Message of the last failure on the calling thread ("" if none).
  const char* (*last_error)(void);

  int32_t (*device_count)(void);
  // Fills every field of *props except struct_size (which libdsk set to sizeof).
  dsk_status (*device_props)(int32_t device, dsk_device_props* props);

  // Device memory, aligned to at least 256 bytes. bytes may be 0 (then *ptr may be NULL).
  // Must return DSK_ERR_OUT_OF_MEMORY when the device is out of memory.
  dsk_status (*malloc)(int32_t device, size_t bytes, void* stream, void** ptr);
  // free must accept NULL (a no-op).
  void (*free)(int32_t device, void* ptr, void* stream);

  // Copies bytes between host memory and device memory (or within the device) in stream order.
  // Returns only when host memory involved may be reused/read (the stream is synchronized for
  // DEVICE_TO_HOST; HOST_TO_DEVICE may return once the source has been consumed).
  dsk_status (*memcpy)(int32_t device, void* dst, const void* src, size_t bytes, int32_t direction,
                       void* stream);

  dsk_status (*synchronize)(int32_t device, void* stream);

  // Element-wise strided copy with dtype conversion (lib/common/convert.h rules); src and dst have
  // equal shapes and are both on `device`.
  dsk_status (*copy)(int32_t device, const DLTensor* src, const DLTensor* dst, void* stream);

  // Sets every element of dst to value (store_from_f64 rules of lib/common/convert.h).
  dsk_status (*fill)(int32_t device, const DLTensor* dst, double value, void* stream);

  // Seeded random fill; identical values to the CPU reference (lib/common/random_value.h).
  dsk_status (*fill_random)(int32_t device, const DLTensor* dst, const dsk_random_params* params,
                            void* stream);

  // ---- Core ops (dsk_ops.h). libdsk has validated shapes, dtypes, devices and overlaps and has
  // normalized the arguments as each entry states; a backend may leave an entry NULL, which
  // libdsk reports as DSK_ERR_UNSUPPORTED. Tensors are 2-D/3-D views with explicit strides.

  // D[b] = alpha * A[b] @ B[b] + beta * C[b] + bias for A [B, M, K], B [B, K, N], C/D [B, M, N]
  // (transposes already applied as stride swaps; a broadcast operand has batch stride 0). c is
  // NULL when beta is 0; c may equal d (same data and strides). bias is [N] (stride any) or NULL.
  dsk_status (*gemm)(const dsk_exec* ex, const DLTensor* a, const DLTensor* b, const DLTensor* c,
                     const DLTensor* bias, const DLTensor* d, float alpha, float beta);

  // FP8 block quantization with DSK_FP8_BLOCK tiles: x/q [M, K], act scales [M, ceil(K/128)],
  // weight scales [ceil(M/128), ceil(K/128)]. is_weight selects 128x128 blocks.
  dsk_status (*quant_fp8)(const dsk_exec* ex, const DLTensor* x, const DLTensor* q,
                          const DLTensor* scales, int32_t is_weight, uint32_t flags);
  dsk_status (*dequant_fp8)(const dsk_exec* ex, const DLTensor* q, const DLTensor* scales,
                            const DLTensor* x, int32_t is_weight);
  // y [M, N] = x [M, K] @ w [N, K]^T with block scales; x_scales NULL = quantize x (float dtype)
  // per 1x128 tile with `flags` first.
  dsk_status (*linear_fp8)(const dsk_exec* ex, const DLTensor* x, const DLTensor* x_scales,
                           const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                           uint32_t flags);
  // DSK_FP8_KERNEL_* that linear_fp8 runs on `device`, or -status (< 0) with a message for
  // last_error() when the device cannot be queried.
  int32_t (*linear_fp8_kernel)(int32_t device);

  // RMSNorm over rows [R, D]; residual/residual_out NULL for the plain form.
  dsk_status (*rmsnorm)(const dsk_exec* ex, const DLTensor* x, const DLTensor* residual,
                        const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                        float eps);
  // y [R, I] = silu(gate [R, I]) * up [R, I].
  dsk_status (*swiglu)(const dsk_exec* ex, const DLTensor* gate, const DLTensor* up,
                       const DLTensor* y);
  // x/y [T, H, D], positions [T] int32/int64, cos/sin [P, D/2] f32. Positions out of [0, P) give
  // DSK_ERR_INVALID_ARGUMENT.
  dsk_status (*rope)(const dsk_exec* ex, const DLTensor* x, const DLTensor* positions,
                     const DLTensor* cos, const DLTensor* sin, const DLTensor* y, int32_t layout);
  // Rows [R, N]: softmax (log_softmax when is_log) of x * inv_temperature.
  dsk_status (*softmax)(const dsk_exec* ex, const DLTensor* x, const DLTensor* y,
                        float inv_temperature, int32_t is_log);
  // Rows [R, N]: k largest, descending, ties to the lower index, NaN largest; values may be NULL.
  dsk_status (*topk)(const dsk_exec* ex, const DLTensor* x, int32_t k, const DLTensor* values,
                     const DLTensor* indices);
  // out [T, D] = table [V, D] rows at ids [T]; ids out of [0, V) give DSK_ERR_INVALID_ARGUMENT.
  dsk_status (*embedding)(const dsk_exec* ex, const DLTensor* table, const DLTensor* ids,
                          const DLTensor* out);
} dsk_backend_iface;

// Exported by a backend module (the only two symbols it exports):
//   int32_t dsk_backend_module_score(char* reason, size_t reason_size);
//     0 = unusable here (reason says why, NUL-terminated, truncated to reason_size), > 0 usable.
//   const dsk_backend_iface* dsk_backend_module_init(uint32_t api_version);
//     NULL when the module does not speak api_version.
typedef int32_t (*dsk_backend_module_score_fn)(char* reason, size_t reason_size);
typedef const dsk_backend_iface* (*dsk_backend_module_init_fn)(uint32_t api_version);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // DSK_LIB_CORE_BACKEND_IFACE_H_
