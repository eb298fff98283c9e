/* dsk_tensor.h - owning tensors, views, copies, fills and DLPack exchange.
 *
 * A dsk_tensor is a reference-counted handle to (a view of) a storage buffer on one device. Ops
 * take borrowed `const DLTensor*` arguments, so any DLPack producer's tensor can be passed
 * directly; dsk_tensor_dltensor() gives the DLTensor of a dsk_tensor. Limits for every tensor dsk
 * accepts: ndim in [0, 8], non-negative sizes, lanes == 1, a supported dtype (dsk_dtype.h), a
 * device of type kDLCPU or kDLCUDAHost (host memory, device_id 0), kDLCUDA or kDLCUDAManaged,
 * non-negative strides (any stride on a size-1 dim), byte sizes that fit int64, strides that span
 * at most 2^56 bytes (more than any address space holds), and a byte_offset that keeps the
 * addressed bytes inside the address space (dsk cannot check that the memory is really there).
 * Elements need not be aligned to their size. Output tensors must not overlap themselves (no two
 * indices may address the same element).
 *
 * Reference counting: create/view/import functions return a tensor with one reference; retain adds
 * one, release drops one and frees the storage with the last reference (a view keeps its base's
 * storage alive). Retain and release are thread-safe; everything else follows context rules.
 */
#ifndef DSK_TENSOR_H_
#define DSK_TENSOR_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSK_MAX_NDIM 8

typedef struct dsk_tensor dsk_tensor;

/* Creates a contiguous row-major tensor of `shape` (ndim entries; NULL allowed when ndim == 0) and
 * `dtype` on the context's device. Contents are uninitialized. CPU storage is 64-byte aligned, CUDA
 * storage 256-byte aligned. Uses the context's allocator hook when it has one.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL ctx/out, ndim outside [0, 8], negative or overflowing
 * shape, unsupported dtype), DSK_ERR_OUT_OF_MEMORY. */
DSK_API dsk_status dsk_tensor_create(dsk_context* ctx, int32_t ndim, const int64_t* shape,
                                     DLDataType dtype, dsk_tensor** out);

/* Adds / drops one reference. release(NULL) is ignored. */
DSK_API void dsk_tensor_retain(dsk_tensor* tensor);
DSK_API void dsk_tensor_release(dsk_tensor* tensor);

/* The tensor as a DLTensor: data already includes any view offset (byte_offset is 0) and strides
 * are always filled. Valid while the caller holds a reference. NULL for a NULL tensor. */
DSK_API const DLTensor* dsk_tensor_dltensor(const dsk_tensor* tensor);

/* Number of elements (product of the shape; 1 for ndim 0) and bytes those elements span when
 * contiguous (numel * element size). 0 for NULL. */
DSK_API int64_t dsk_tensor_numel(const dsk_tensor* tensor);
DSK_API int64_t dsk_tensor_nbytes(const dsk_tensor* tensor);

/* 1 when the strides are those of a compact row-major layout (size-1 dims may have any stride). */
DSK_API int32_t dsk_tensor_is_contiguous(const dsk_tensor* tensor);

/* 1 when the tensor was imported from a DLPack producer that marked it read-only (views of it
 * inherit the mark, versioned exports carry it, legacy exports are refused). Ops take borrowed
 * DLTensors, which carry no such mark: passing a read-only tensor as an output is the caller's
 * error and is not detected. */
DSK_API int32_t dsk_tensor_is_read_only(const dsk_tensor* tensor);

/* Creates a view of `base`'s storage with another shape and element strides (strides == NULL means
 * row-major compact), starting `element_offset` elements after base's first element. Every element
 * of the view must lie inside base's storage, strides must be non-negative and must not make two
 * indices address one element. The view keeps the storage alive.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL, ndim, negative size/stride/offset, overlap, out of
 * range). */
DSK_API dsk_status dsk_tensor_view(dsk_tensor* base, int32_t ndim, const int64_t* shape,
                                   const int64_t* strides, int64_t element_offset,
                                   dsk_tensor** out);

/* Copies src into dst element by element (same shape, any strides, any supported dtypes with the
 * conversion rules of dsk_dtype.h). Host<->host copies work under any context; copies touching
 * CUDA memory need a CUDA context on that device (host<->device and device<->device on the
 * context's device; copies between two CUDA devices are not supported) and run on its stream,
 * returning when host memory involved may be reused or read. src may overlap itself (e.g. stride
 * 0 broadcasts); src and dst must not overlap each other: their whole address ranges are
 * compared, so even interleaved but disjoint views of one buffer are refused.
 * Errors: DSK_ERR_INVALID_ARGUMENT (shape/dtype/stride/device problems),
 * DSK_ERR_BACKEND_UNAVAILABLE, DSK_ERR_DEVICE_ERROR, DSK_ERR_OUT_OF_MEMORY (staging buffers). */
DSK_API dsk_status dsk_copy(dsk_context* ctx, const DLTensor* src, const DLTensor* dst);

/* Creates a new contiguous tensor on the context's device with src's shape and dtype `dtype`
 * (pass src's dtype to keep it) and copies src into it, under dsk_copy's rules: src may be in host
 * memory or on the context's CUDA device (a CPU context cannot read CUDA memory). */
DSK_API dsk_status dsk_tensor_clone(dsk_context* ctx, const DLTensor* src, DLDataType dtype,
                                    dsk_tensor** out);

/* Sets every element of dst to `value`, converted to dst's dtype by the rules of dsk_dtype.h
 * (through f32 for float types). dst must be on the context's device. */
DSK_API dsk_status dsk_fill(dsk_context* ctx, const DLTensor* dst, double value);

/* Random distributions for dsk_fill_random. */
#define DSK_RANDOM_UNIFORM 1 /* a + (b - a) * u, u uniform on the 2^-24 grid of [0, 1) */
#define DSK_RANDOM_NORMAL 2  /* mean a, standard deviation b (Box-Muller) */

/* Parameters for dsk_fill_random; initialize with dsk_random_params_init. */
typedef struct dsk_random_params {
  uint32_t struct_size;
  int32_t distribution; /* DSK_RANDOM_UNIFORM (default) or DSK_RANDOM_NORMAL */
  uint64_t seed;        /* Philox key */
  uint64_t offset;      /* Philox counter offset: fills with another offset draw fresh numbers */
  double a;             /* uniform: low (default 0); normal: mean (default 0) */
  double b;             /* uniform: high (default 1); normal: standard deviation (default 1) */
} dsk_random_params;

DSK_API dsk_status dsk_random_params_init(dsk_random_params* params);

/* Fills dst (floating dtypes only) with seeded random numbers. Element i in row-major order gets
 * the same value on every backend and for every dst stride layout:
 *   Philox4x32-10 with key (lo32(seed), hi32(seed)) and counter
 *   (lo32(j), hi32(j), lo32(offset), hi32(offset)), where j = i / 4 (uniform) or i / 2 (normal);
 *   uniform uses output word w = word[i % 4]: u = (w >> 8) * 2^-24 in [0, 1), and the value is
 *   a + (b - a) * u evaluated in f32 (a and b rounded to f32 first; the rounding can make the
 *   value equal b, so the range is [a, b] in general);
 *   normal uses words w0 = word[2 * (i % 2)], w1 = word[2 * (i % 2) + 1]:
 *   u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >> 8) * 2^-24, and the value is
 *   a + b * (sqrt(-2 * ln(u1)) * cos(2 pi u2)) evaluated in f32 in exactly that order, with dsk's
 *   own portable ln and cos (lib/common/detmath.h), so CPU and CUDA agree bit for bit;
 * then the f32 value is converted to dst's dtype. dst must be on the context's device (or in host
 * memory). a and b must be finite in f32 and, for the normal distribution, b >= 0.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL, non-float dtype, unknown distribution, a or b out of
 * range, bad tensor), DSK_ERR_VERSION_MISMATCH (struct_size too small). */
DSK_API dsk_status dsk_fill_random(dsk_context* ctx, const DLTensor* dst,
                                   const dsk_random_params* params);

/* DLPack export. The returned managed tensor holds a reference to `tensor`'s storage; call its
 * deleter exactly once (from any thread) to drop it. Strides are always filled and byte_offset is
 * 0. The versioned form sets version {1, 1} and DLPACK_FLAG_BITMASK_READ_ONLY for read-only
 * tensors. Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_OUT_OF_MEMORY, DSK_ERR_UNSUPPORTED
 * (legacy export of a read-only tensor: the legacy struct cannot mark it). */
DSK_API dsk_status dsk_tensor_to_dlpack_versioned(dsk_tensor* tensor,
                                                  DLManagedTensorVersioned** out);
DSK_API dsk_status dsk_tensor_to_dlpack(dsk_tensor* tensor, DLManagedTensor** out);

/* DLPack import, zero-copy. On success the new dsk_tensor owns `managed` and calls its deleter
 * exactly once, when the last reference (including views and re-exports) is released. On failure
 * nothing was taken: `managed` still belongs to the caller, who must call its deleter (the same
 * rule for every failure, including a major version mismatch, so capsule-based bindings never free
 * twice). NULL strides mean row-major; byte_offset is honoured; READ_ONLY is honoured.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL, ndim, shape, strides, lanes, dtype, device type),
 * DSK_ERR_VERSION_MISMATCH (versioned: major != 1), DSK_ERR_OUT_OF_MEMORY. */
DSK_API dsk_status dsk_tensor_from_dlpack_versioned(DLManagedTensorVersioned* managed,
                                                    dsk_tensor** out);
DSK_API dsk_status dsk_tensor_from_dlpack(DLManagedTensor* managed, dsk_tensor** out);

/* Checks that `tensor` is a DLTensor dsk accepts (the limits at the top of this file); `name` is
 * used in the message. Lets callers validate once before a batch of calls. */
DSK_API dsk_status dsk_dltensor_validate(const DLTensor* tensor, const char* name);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_TENSOR_H_ */
