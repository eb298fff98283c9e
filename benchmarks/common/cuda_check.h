// cuda_check.h - turns CUDA runtime errors into exceptions. Private to the common/*.cpp files:
// it includes the CUDA headers, which benchmark sources need not see.
#ifndef DSK_BENCHMARKS_COMMON_CUDA_CHECK_H_
#define DSK_BENCHMARKS_COMMON_CUDA_CHECK_H_

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace dsk::bench {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorName(err) + ": " +
                             cudaGetErrorString(err));
  }
}

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_CUDA_CHECK_H_
