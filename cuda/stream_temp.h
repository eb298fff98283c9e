// stream_temp.h - stream-ordered temporaries for CUDA ops.
//
// Scratch memory inside an op comes from cudaMallocAsync on the context's stream and goes back with
// cudaFreeAsync on the same stream when the owner leaves scope, i.e. after every kernel already
// queued on that stream that uses it: no synchronization, and the pool makes it cheap
// (docs/ARCHITECTURE.md, "Core ops").
#ifndef DSK_CUDA_STREAM_TEMP_H_
#define DSK_CUDA_STREAM_TEMP_H_

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "cuda/error.h"

namespace dsk {
namespace cuda {

class StreamTemp {
 public:
  explicit StreamTemp(cudaStream_t stream) : stream_(stream) {}
  StreamTemp(const StreamTemp&) = delete;
  StreamTemp& operator=(const StreamTemp&) = delete;
  ~StreamTemp() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  // Allocates max(bytes, 1) bytes (a previous allocation of this object is released first).
  dsk_status alloc(size_t bytes) {
    if (ptr_ != nullptr) {
      cudaFreeAsync(ptr_, stream_);
      ptr_ = nullptr;
    }
    DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&ptr_, bytes > 0 ? bytes : 1, stream_));
    size_ = bytes;
    return DSK_OK;
  }
  char* get() const { return static_cast<char*>(ptr_); }
  size_t size() const { return size_; }

 private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_STREAM_TEMP_H_
