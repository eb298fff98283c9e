// cuda_util.cpp - see cuda_util.h. Compiled as C++ against the CUDA runtime API.
#include "cuda_util.h"

#include <cuda_runtime_api.h>

#include <stdexcept>

#include "cuda_check.h"

namespace dsk::bench {

int cuda_device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // Clear the sticky "last error" so later runtime calls are not blamed for this one.
    (void)cudaGetLastError();
    if (why != nullptr) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    return 0;
  }
  if (count == 0 && why != nullptr) *why = "the CUDA runtime sees no device";
  return count;
}

std::size_t cuda_l2_bytes(int device) {
  int bytes = 0;
  cuda_check(cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, device),
             "cudaDeviceGetAttribute(cudaDevAttrL2CacheSize)");
  return bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
}

CudaStream::CudaStream(int device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = stream;
}

CudaStream::~CudaStream() {
  if (stream_ != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

PinnedBuffer::PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
  cuda_check(cudaMallocHost(&data_, bytes), "cudaMallocHost");
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) (void)cudaFreeHost(data_);
}

}  // namespace dsk::bench
