// Embedding gather out [T, D] = table [V, D] rows at ids [T] (launch_embedding in
// softmax_kernels.h).
//
// One block per id (grid-stride over ids). Each block reads its id; an id outside [0, V) is not
// gathered and lowers a device flag to the smallest such position (atomicMin, so the position
// reported does not depend on timing). The host reads the flag back after the kernel, which
// synchronizes the stream, as dsk_ops.h states, and then reads the offending id to name it.
// Values move with the shared conversion rules (convert_element: a raw copy for equal dtypes,
// else f32 in between, rounded once), so results equal the CPU reference bit for bit. Equal
// dtypes with contiguous, 16-byte aligned rows move 16 bytes per thread.
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/convert.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/index_flag.h"
#include "cuda/ops/softmax_kernels.h"

namespace dsk {
namespace cuda {
namespace {

constexpr unsigned kThreads = 256;

struct EmbeddingArgs {
  const char* table;
  int64_t v;
  int64_t d;
  int64_t t_row;  // strides in elements
  int64_t t_col;
  int32_t t_id;
  const char* ids;
  int64_t count;
  int64_t id_stride;
  int32_t id64;
  char* out;
  int64_t o_row;
  int64_t o_col;
  int32_t o_id;
  unsigned long long* bad;  // smallest position of an out-of-range id (initially all ones)
};

// The id at position t, or -1 after flagging it when it is out of range.
__device__ __forceinline__ int64_t checked_id(const EmbeddingArgs& a, int64_t t) {
  int64_t id;
  const char* p = a.ids + t * a.id_stride * (a.id64 ? 8 : 4);
  if (a.id64) {
    memcpy(&id, p, 8);
  } else {
    int32_t v;
    memcpy(&v, p, 4);
    id = v;
  }
  if (id < 0 || id >= a.v) {
    if (threadIdx.x == 0) atomicMin(a.bad, static_cast<unsigned long long>(t));
    return -1;
  }
  return id;
}

// Element-wise gather. TID/OID as in elem_io.cuh (0: run-time dtypes, any alignment).
template <int32_t TID, int32_t OID>
__global__ void embedding_kernel(EmbeddingArgs a) {
  for (int64_t t = blockIdx.x; t < a.count; t += gridDim.x) {
    const int64_t id = checked_id(a, t);
    if (id < 0) continue;
    for (int64_t j = threadIdx.x; j < a.d; j += blockDim.x) {
      const int64_t src = id * a.t_row + j * a.t_col;
      const int64_t dst = t * a.o_row + j * a.o_col;
      if constexpr (TID == 0) {
        convert_element(a.t_id, a.table + src * static_cast<int64_t>(dtype_id_size(a.t_id)), a.o_id,
                        a.out + dst * static_cast<int64_t>(dtype_id_size(a.o_id)));
      } else if constexpr (TID == OID) {
        if constexpr (TID == DSK_DTYPE_F32) {
          reinterpret_cast<uint32_t*>(a.out)[dst] = reinterpret_cast<const uint32_t*>(a.table)[src];
        } else {
          reinterpret_cast<uint16_t*>(a.out)[dst] = reinterpret_cast<const uint16_t*>(a.table)[src];
        }
      } else {
        store_elem<OID>(a.out, dst, load_elem<TID>(a.table, src, a.t_id), a.o_id);
      }
    }
  }
}

// Equal dtypes, contiguous rows, 16-byte aligned row starts: `words` uint4 per row.
__global__ void embedding_vec_kernel(EmbeddingArgs a, int64_t words, int64_t t_row_words,
                                     int64_t o_row_words) {
  const uint4* table = reinterpret_cast<const uint4*>(a.table);
  uint4* out = reinterpret_cast<uint4*>(a.out);
  for (int64_t t = blockIdx.x; t < a.count; t += gridDim.x) {
    const int64_t id = checked_id(a, t);
    if (id < 0) continue;
    for (int64_t w = threadIdx.x; w < words; w += blockDim.x) {
      out[t * o_row_words + w] = table[id * t_row_words + w];
    }
  }
}

template <int32_t TID>
void launch_out(int32_t o_id, const EmbeddingArgs& a, unsigned blocks, cudaStream_t stream) {
  switch (o_id) {
    case DSK_DTYPE_F16:
      embedding_kernel<TID, DSK_DTYPE_F16><<<blocks, kThreads, 0, stream>>>(a);
      break;
    case DSK_DTYPE_BF16:
      embedding_kernel<TID, DSK_DTYPE_BF16><<<blocks, kThreads, 0, stream>>>(a);
      break;
    default:
      embedding_kernel<TID, DSK_DTYPE_F32><<<blocks, kThreads, 0, stream>>>(a);
      break;
  }
}

void launch_gather(const EmbeddingArgs& a, const TensorInfo& table, const TensorInfo& out,
                   unsigned blocks, cudaStream_t stream) {
  const int64_t es = table.elem_size;
  const int64_t row_bytes = a.d * es;
  if (table.dtype_id == out.dtype_id && a.t_col == 1 && a.o_col == 1 && row_bytes % 16 == 0 &&
      (a.t_row * es) % 16 == 0 && (a.o_row * es) % 16 == 0 && is_aligned(table.data, 16) &&
      is_aligned(out.data, 16)) {
    embedding_vec_kernel<<<blocks, kThreads, 0, stream>>>(a, row_bytes / 16, a.t_row * es / 16,
                                                          a.o_row * es / 16);
    return;
  }
  if (!is_aligned(table.data, static_cast<size_t>(table.elem_size)) ||
      !is_aligned(out.data, static_cast<size_t>(out.elem_size))) {
    embedding_kernel<0, 0><<<blocks, kThreads, 0, stream>>>(a);
    return;
  }
  switch (table.dtype_id) {
    case DSK_DTYPE_F16:
      launch_out<DSK_DTYPE_F16>(out.dtype_id, a, blocks, stream);
      break;
    case DSK_DTYPE_BF16:
      launch_out<DSK_DTYPE_BF16>(out.dtype_id, a, blocks, stream);
      break;
    default:
      launch_out<DSK_DTYPE_F32>(out.dtype_id, a, blocks, stream);
      break;
  }
}

}  // namespace

dsk_status launch_embedding(const TensorInfo& table, const TensorInfo& ids, const TensorInfo& out,
                            cudaStream_t stream) noexcept {
  if (!dtype_id_is_float(table.dtype_id) || table.elem_size < 2 ||
      !dtype_id_is_float(out.dtype_id) || out.elem_size < 2 ||
      (ids.dtype_id != DSK_DTYPE_INT32 && ids.dtype_id != DSK_DTYPE_INT64)) {
    return fail(DSK_ERR_UNSUPPORTED, "embedding: unsupported dtypes");
  }
  EmbeddingArgs a{};
  a.table = table.data;
  a.v = table.shape[0];
  a.d = table.shape[1];
  a.t_row = table.strides[0];
  a.t_col = table.strides[1];
  a.t_id = table.dtype_id;
  a.ids = ids.data;
  a.count = ids.shape[0];
  a.id_stride = ids.strides[0];
  a.id64 = ids.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  a.out = out.data;
  a.o_row = out.strides[0];
  a.o_col = out.strides[1];
  a.o_id = out.dtype_id;
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  const int64_t cap = static_cast<int64_t>(sms) * 16;
  const auto blocks = static_cast<unsigned>(a.count < cap ? a.count : cap);

  IndexFlag flag(stream);
  DSK_RETURN_IF_FAILED(flag.init());
  a.bad = flag.get();
  launch_gather(a, table, out, blocks, stream);
  DSK_RETURN_IF_FAILED(check_launch("embedding"));
  int64_t position = -1;
  DSK_RETURN_IF_FAILED(flag.read(&position));
  if (position < 0) return DSK_OK;
  int64_t value = 0;
  DSK_RETURN_IF_FAILED(read_device_index(ids.data + position * ids.strides[0] * ids.elem_size,
                                         ids.elem_size, stream, &value));
  return fail(DSK_ERR_INVALID_ARGUMENT,
              "ids[%lld] = %lld (flat index in row-major order), expected an id in [0, %lld) "
              "(table.shape[0])",
              static_cast<long long>(position), static_cast<long long>(value),
              static_cast<long long>(a.v));
}

}  // namespace cuda
}  // namespace dsk
