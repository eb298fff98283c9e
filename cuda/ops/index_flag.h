// index_flag.h - the range check of ops that index with device data (embedding ids, RoPE
// positions): kernels lower a stream-ordered flag with atomicMin to the smallest position of an
// out-of-range index (the position is then independent of timing); the host reads it back, which
// synchronizes the stream as dsk_ops.h states, and on failure reads the offending index to name it.
#ifndef DSK_CUDA_OPS_INDEX_FLAG_H_
#define DSK_CUDA_OPS_INDEX_FLAG_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/error.h"
#include "cuda/stream_temp.h"

namespace dsk {
namespace cuda {

class IndexFlag {
 public:
  explicit IndexFlag(cudaStream_t stream) : temp_(stream), stream_(stream) {}

  // Allocates the flag and sets it to "no bad index" (all ones).
  dsk_status init() {
    DSK_RETURN_IF_FAILED(temp_.alloc(sizeof(unsigned long long)));
    DSK_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(temp_.get(), 0xFF, sizeof(unsigned long long), stream_));
    return DSK_OK;
  }
  unsigned long long* get() const { return reinterpret_cast<unsigned long long*>(temp_.get()); }

  // After the kernels: copies the flag to the host and synchronizes the stream. *position is the
  // smallest flagged position, or -1 when every index was in range.
  dsk_status read(int64_t* position) {
    unsigned long long bad = ~0ull;
    DSK_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(&bad, temp_.get(), sizeof(bad), cudaMemcpyDeviceToHost, stream_));
    DSK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    *position = bad == ~0ull ? -1 : static_cast<int64_t>(bad);
    return DSK_OK;
  }

 private:
  StreamTemp temp_;
  cudaStream_t stream_;
};

// Reads the int32 (elem_size 4) or int64 index at device address p on `stream` and waits for it
// (error path only; never the legacy default stream, which may be another device's or block on
// unrelated streams).
inline dsk_status read_device_index(const char* p, int32_t elem_size, cudaStream_t stream,
                                    int64_t* value) {
  if (elem_size == 4) {
    int32_t v32 = 0;
    DSK_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(&v32, p, sizeof(v32), cudaMemcpyDeviceToHost, stream));
    DSK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    *value = v32;
  } else {
    DSK_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(value, p, sizeof(*value), cudaMemcpyDeviceToHost, stream));
    DSK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  }
  return DSK_OK;
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_INDEX_FLAG_H_
