// ops_bench.h - what the core-op benchmarks (benchmarks/ops/bench_*.cpp) share.
//
// The same op files build two programs: dsk_bench_ops runs them on the CPU backend with wall-clock
// loops, dsk_bench_ops_cuda on a CUDA device with event timing and an L2 flush. Each op file
// defines one register_*_benchmarks function (declared below) that registers its cases through
// env.run, which hides the difference.
#ifndef DSK_BENCHMARKS_COMMON_OPS_BENCH_H_
#define DSK_BENCHMARKS_COMMON_OPS_BENCH_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <dsk/dsk.hpp>
#include <functional>
#include <vector>

#include "bench_util.h"

namespace dsk::bench {

// Token counts of the grid, and DeepSeek-V3's linear shapes (out, in).
inline const std::vector<int64_t> kTokenCounts = {1, 16, 128, 1024, 4096};

struct LinearShape {
  const char* name;
  int64_t out;
  int64_t in;
};
inline const std::vector<LinearShape> kV3Linears = {
    {"wq_a", 1536, 7168},      {"wkv_a", 576, 7168},       {"wq_b", 24576, 1536},
    {"wo", 7168, 16384},       {"expert_w13", 4096, 7168}, {"expert_w2", 7168, 2048},
    {"lm_head", 129280, 7168},
};
constexpr int64_t kV3Dim = 7168;
constexpr int64_t kV3Heads = 128;
constexpr int64_t kV3RopeDim = 64;

struct OpsEnv {
  dsk::Context* ctx = nullptr;  // on the benchmarked device
  int32_t backend = DSK_BACKEND_CPU;
  double peak_gbps = 0.0;    // 0 when unknown
  double peak_tflops = 0.0;  // 0 when unknown (DSK_<BACKEND>_PEAK_TFLOPS)
  // Runs the benchmark loop over `op` and returns the loop's seconds (wall time on the CPU, the
  // sum of event-timed iterations on CUDA). A failing status marks the benchmark failed.
  std::function<double(benchmark::State&, const std::function<dsk_status()>&)> run;
  // Tensors on the benchmarked device (uninitialized, or filled with dsk_fill_random).
  dsk::Tensor tensor(std::vector<int64_t> shape, int32_t dtype_id) const;
  dsk::Tensor random(std::vector<int64_t> shape, int32_t dtype_id, float lo = -1.0f,
                     float hi = 1.0f) const;
  // An int32 [n] tensor on the benchmarked device holding `values` (ids, positions).
  dsk::Tensor int32s(const std::vector<int32_t>& values) const;
  dsk::Tensor int64s(const std::vector<int64_t>& values) const;
  // A 1-D int32/int64 tensor (dtype_id) on the env's device holding count host values.
  dsk::Tensor indices(const void* values, int64_t count, int32_t dtype_id) const;
  // Registers `fn` under `name` with the right timing mode for this backend.
  benchmark::internal::Benchmark* add(const std::string& name,
                                      std::function<void(benchmark::State&)> fn) const;
};

// Reports bytes and flops of one iteration over `seconds` (from env.run).
void report(benchmark::State& state, const OpsEnv& env, double seconds, double bytes, double flops);

// The bandwidth a memory-bound op's bytes are compared with, in GB/s: on CUDA env.peak_gbps (the
// device's memory bandwidth); on the CPU, DSK_CPU_PEAK_GBPS when set, else a memcpy of 256 MiB
// split over the benchmark's threads (DSK_NUM_THREADS, else one per core), measured once, best
// of 5, counting bytes read + written as a copy moves them (the convention of STREAM's Copy and
// of dsk_bench_tensor's copy/f32, so an op's bytes read + written compare with it directly).
// 0 when unknown.
double copy_gbps(const OpsEnv& env);

// Adds floor_us (the time of `bytes` at copy_gbps), pct_of_copy (100 * floor_us / measured us
// per call; 100 means the op moves its bytes at copy speed) and copy_gbps. The CPU loops run
// warm: data that fits the last-level cache can pass 100.
void report_copy_floor(benchmark::State& state, const OpsEnv& env, double seconds, double bytes);

// Runs a case's body; a dsk::Error (or anything else) thrown while setting up marks it failed.
void guarded_case(benchmark::State& state, const std::function<void()>& body);

// One untimed call (library handles, first-touch page faults, lazily created scratch), then the
// timed loop; -1 when the warm-up call failed (the case is then marked failed).
double timed(benchmark::State& state, const OpsEnv& env, const std::function<dsk_status()>& op);

// One per op family (benchmarks/ops/bench_<family>.cpp).
void register_gemm_benchmarks(const OpsEnv& env);
void register_fp8_benchmarks(const OpsEnv& env);
void register_norm_benchmarks(const OpsEnv& env);     // RMSNorm, RoPE, SwiGLU
void register_softmax_benchmarks(const OpsEnv& env);  // softmax, top-k, embedding
void register_mla_benchmarks(const OpsEnv& env);      // MLA decode, prefill, append, absorb
void register_moe_benchmarks(const OpsEnv& env);      // MoE gate, dispatch/permute/combine, layer
// Token sampling (dsk_sample) and speculative verification.
void register_sampling_benchmarks(const OpsEnv& env);

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_OPS_BENCH_H_
