// cuda_timer.cpp - see cuda_timer.h. Compiled as C++ against the CUDA runtime API.
#include "cuda_timer.h"

#include <cuda_runtime_api.h>

#include <cstddef>

#include "cuda_check.h"
#include "cuda_util.h"

namespace dsk::bench {

struct CudaTimer::Impl {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  void* flush = nullptr;
  std::size_t flush_bytes = 0;

  ~Impl() {
    if (flush != nullptr) (void)cudaFree(flush);
    if (stop != nullptr) (void)cudaEventDestroy(stop);
    if (start != nullptr) (void)cudaEventDestroy(start);
  }
};

CudaTimer::CudaTimer(int device, void* stream, bool flush_l2) : impl_(std::make_unique<Impl>()) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  impl_->stream = static_cast<cudaStream_t>(stream);
  // Default flags: timing events (cudaEventDisableTiming would make elapsed time unavailable).
  cuda_check(cudaEventCreate(&impl_->start), "cudaEventCreate");
  cuda_check(cudaEventCreate(&impl_->stop), "cudaEventCreate");
  if (flush_l2) {
    // Twice the L2 size: with any replacement policy, writing that much evicts what was there.
    impl_->flush_bytes = 2 * cuda_l2_bytes(device);
    if (impl_->flush_bytes > 0) {
      cuda_check(cudaMalloc(&impl_->flush, impl_->flush_bytes), "cudaMalloc(L2 flush buffer)");
    }
  }
}

CudaTimer::~CudaTimer() = default;

bool CudaTimer::flushes_l2() const { return impl_->flush != nullptr; }

void CudaTimer::start() {
  if (impl_->flush != nullptr) {
    cuda_check(cudaMemsetAsync(impl_->flush, 0, impl_->flush_bytes, impl_->stream),
               "cudaMemsetAsync(L2 flush)");
  }
  cuda_check(cudaEventRecord(impl_->start, impl_->stream), "cudaEventRecord(start)");
}

double CudaTimer::stop() {
  cuda_check(cudaEventRecord(impl_->stop, impl_->stream), "cudaEventRecord(stop)");
  cuda_check(cudaEventSynchronize(impl_->stop), "cudaEventSynchronize(stop)");
  float ms = 0.0f;
  cuda_check(cudaEventElapsedTime(&ms, impl_->start, impl_->stop), "cudaEventElapsedTime");
  return static_cast<double>(ms) * 1e-3;
}

}  // namespace dsk::bench
