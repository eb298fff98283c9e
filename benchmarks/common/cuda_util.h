// cuda_util.h - owning wrappers for the few CUDA runtime objects benchmarks create themselves.
//
// The header names no CUDA type, so benchmark sources compile without the CUDA headers; the
// implementation (cuda_util.cpp) is plain C++ linked to the CUDA runtime. All failures throw
// std::runtime_error naming the CUDA call and its error string.
#ifndef DSK_BENCHMARKS_COMMON_CUDA_UTIL_H_
#define DSK_BENCHMARKS_COMMON_CUDA_UTIL_H_

#include <cstddef>
#include <string>

namespace dsk::bench {

// Number of CUDA devices this process's CUDA runtime sees; 0 (with *why set) when none or no
// driver. Never throws, so a machine without a GPU can be told apart from a broken one.
int cuda_device_count(std::string* why);

// Size of device `device`'s L2 cache in bytes.
std::size_t cuda_l2_bytes(int device);

// A non-blocking stream on `device`: benchmark work never synchronizes with the legacy default
// stream, which other libraries in the process may be using.
class CudaStream {
 public:
  explicit CudaStream(int device);
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  // The cudaStream_t, as dsk_context_options.stream takes it.
  void* get() const { return stream_; }

 private:
  void* stream_ = nullptr;
};

// Page-locked host memory, the kind host<->device copies reach full link bandwidth with.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(std::size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return data_; }
  std::size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_CUDA_UTIL_H_
