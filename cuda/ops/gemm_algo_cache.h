// gemm_algo_cache.h - the cuBLASLt algorithms chosen for GEMM problems, remembered per process.
//
// cublasLtMatmulAlgoGetHeuristic costs tens of microseconds per call, more than a whole
// decode-sized GEMM (H100: a 1-token absorb_q took 58-80 us, almost all of it setup). The choice
// depends only on the problem's description (device, types, operations, shapes, leading
// dimensions, batch and batch strides, pointer alignments, epilogue), so it is looked up by that
// description and the heuristic runs once per distinct problem, as cuBLAS recommends.
#ifndef DSK_CUDA_OPS_GEMM_ALGO_CACHE_H_
#define DSK_CUDA_OPS_GEMM_ALGO_CACHE_H_

#include <cublasLt.h>
#include <stddef.h>
#include <stdint.h>

#include <array>

namespace dsk {
namespace cuda {

// Every value that can change cuBLASLt's choice, in a fixed order (see lt_matmul in gemm.cpp).
using LtAlgoKey = std::array<int64_t, 32>;

struct LtAlgo {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
};

// True and *out filled when `key` was stored before.
bool lt_algo_lookup(const LtAlgoKey& key, LtAlgo* out) noexcept;
// Remembers the algorithm for `key` (the cache is bounded; when full it starts over).
void lt_algo_store(const LtAlgoKey& key, const LtAlgo& algo) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_GEMM_ALGO_CACHE_H_
