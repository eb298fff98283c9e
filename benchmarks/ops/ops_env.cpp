// The OpsEnv helpers shared by both ops benchmark programs.
#include "ops_bench.h"

namespace dsk::bench {
namespace {

DLDataType dtype_of(int32_t id) {
  DLDataType t{};
  dsk::check(dsk_dtype_from_id(id, &t));
  return t;
}

}  // namespace

dsk::Tensor OpsEnv::tensor(std::vector<int64_t> shape, int32_t dtype_id) const {
  return dsk::Tensor::empty(*ctx, shape, dtype_of(dtype_id));
}

dsk::Tensor OpsEnv::random(std::vector<int64_t> shape, int32_t dtype_id, float lo, float hi) const {
  dsk::Tensor t = tensor(std::move(shape), dtype_id);
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.distribution = DSK_RANDOM_UNIFORM;
  p.a = lo;
  p.b = hi;
  p.seed = 1234;
  dsk::check(dsk_fill_random(ctx->get(), &t.dl(), &p));
  return t;
}

dsk::Tensor OpsEnv::indices(const void* values, int64_t count, int32_t dtype_id) const {
  int64_t shape[1] = {count};
  DLTensor src{};
  src.data = const_cast<void*>(values);
  src.device = DLDevice{kDLCPU, 0};
  src.ndim = 1;
  src.dtype = DLDataType{kDLInt, static_cast<uint8_t>(dtype_id == DSK_DTYPE_INT64 ? 64 : 32), 1};
  src.shape = shape;
  dsk::Tensor t = tensor({count}, dtype_id);
  dsk::check(dsk_copy(ctx->get(), &src, t));
  return t;
}

dsk::Tensor OpsEnv::int32s(const std::vector<int32_t>& values) const {
  return indices(values.data(), static_cast<int64_t>(values.size()), DSK_DTYPE_INT32);
}

dsk::Tensor OpsEnv::int64s(const std::vector<int64_t>& values) const {
  return indices(values.data(), static_cast<int64_t>(values.size()), DSK_DTYPE_INT64);
}

benchmark::internal::Benchmark* OpsEnv::add(const std::string& name,
                                            std::function<void(benchmark::State&)> fn) const {
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name.c_str(), std::move(fn));
  if (backend == DSK_BACKEND_CUDA) {
    b->UseManualTime()->Unit(benchmark::kMicrosecond);
  } else {
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  return b;
}

void report(benchmark::State& state, const OpsEnv& env, double seconds, double bytes,
            double flops) {
  if (bytes > 0) report_bytes(state, static_cast<int64_t>(bytes), seconds, env.peak_gbps);
  if (flops > 0) report_flops(state, flops, seconds, env.peak_tflops);
}

}  // namespace dsk::bench
