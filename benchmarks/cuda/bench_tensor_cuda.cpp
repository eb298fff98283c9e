// dsk_bench_tensor_cuda - the tensor cases of dsk_bench_tensor on a CUDA device, plus host<->device
// copies, timed with CUDA events on the context's stream.
//
// Usage: dsk_bench_tensor_cuda [--l2_flush=true|false] [Google Benchmark flags]
// The L2 cache is flushed before every timed iteration by default, so device-side figures are HBM
// figures at every size; %peak compares them with the device's theoretical memory bandwidth
// (dsk_device_props.memory_bandwidth_gbps, or DSK_CUDA_PEAK_GBPS). Without a usable CUDA device
// the program says why and exits 0 without running anything: machines without a GPU build and run
// it too.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "bench_util.h"
#include "cuda_main.h"
#include "cuda_timer.h"
#include "cuda_util.h"
#include "tensor_cases.h"

namespace {

constexpr int kDevice = 0;

// What the benchmarks share: created once in main, after the device check.
struct Env {
  dsk::Context* device = nullptr;  // CUDA context on the timed stream
  dsk::Context* host = nullptr;    // CPU context for pageable host tensors
  dsk::bench::CudaTimer* timer = nullptr;
  double peak_gbps = 0.0;
};

void run_case(benchmark::State& state, const Env& env, const dsk::bench::TensorCase& c) {
  std::unique_ptr<dsk::bench::TensorOp> op;
  try {
    op = std::make_unique<dsk::bench::TensorOp>(*env.device, c, state.range(0));
  } catch (const std::exception& e) {
    dsk::bench::fail(state, std::string("setup failed: ") + e.what());
    return;
  }
  const double seconds = env.timer->run(state, [&op] { return (*op)(); });
  dsk::bench::report_bytes(state, op->bytes(), seconds, env.peak_gbps);
  dsk::bench::report_items(state, op->items());
}

enum class HostMemory { kPageable, kPinned };
enum class Direction { kHostToDevice, kDeviceToHost };

struct TransferCase {
  const char* name;
  Direction direction;
  HostMemory memory;
  int32_t host_dtype;
  int32_t device_dtype;
};

constexpr TransferCase kTransferCases[] = {
    {"h2d/f32_pageable", Direction::kHostToDevice, HostMemory::kPageable, DSK_DTYPE_F32,
     DSK_DTYPE_F32},
    {"h2d/f32_pinned", Direction::kHostToDevice, HostMemory::kPinned, DSK_DTYPE_F32, DSK_DTYPE_F32},
    {"d2h/f32_pageable", Direction::kDeviceToHost, HostMemory::kPageable, DSK_DTYPE_F32,
     DSK_DTYPE_F32},
    {"d2h/f32_pinned", Direction::kDeviceToHost, HostMemory::kPinned, DSK_DTYPE_F32, DSK_DTYPE_F32},
    {"h2d/f32_to_bf16_pinned", Direction::kHostToDevice, HostMemory::kPinned, DSK_DTYPE_F32,
     DSK_DTYPE_BF16},
};

// A 1-D host tensor in page-locked memory. dsk allocates only pageable host tensors, so this one is
// described by hand as a borrowed DLTensor on kDLCUDAHost, the way a caller owning pinned buffers
// would pass them.
class PinnedTensor {
 public:
  PinnedTensor(int64_t n, DLDataType dtype)
      : buffer_(static_cast<std::size_t>(n) * dsk_dtype_size(dtype)), shape_{n}, strides_{1} {
    dl_.data = buffer_.data();
    dl_.device = DLDevice{kDLCUDAHost, 0};
    dl_.ndim = 1;
    dl_.dtype = dtype;
    dl_.shape = shape_;
    dl_.strides = strides_;
    dl_.byte_offset = 0;
    // Real values rather than whatever the allocator left, in case a converting copy cares.
    std::memset(buffer_.data(), 0, buffer_.size());
  }
  const DLTensor* dl() const { return &dl_; }

 private:
  dsk::bench::PinnedBuffer buffer_;
  int64_t shape_[1];
  int64_t strides_[1];
  DLTensor dl_{};
};

void run_transfer(benchmark::State& state, const Env& env, const TransferCase& c) {
  const int64_t n = state.range(0);
  const DLDataType host_dtype = dsk::dtype(c.host_dtype);
  dsk::Tensor device_tensor;
  dsk::Tensor pageable;
  std::unique_ptr<PinnedTensor> pinned;
  const DLTensor* host = nullptr;
  try {
    device_tensor = dsk::Tensor::empty(*env.device, {n}, dsk::dtype(c.device_dtype));
    dsk::fill(*env.device, device_tensor, 0.5);
    if (c.memory == HostMemory::kPinned) {
      pinned = std::make_unique<PinnedTensor>(n, host_dtype);
      host = pinned->dl();
    } else {
      pageable = dsk::Tensor::empty(*env.host, {n}, host_dtype);
      dsk::fill(*env.host, pageable, 0.5);
      host = pageable;
    }
  } catch (const std::exception& e) {
    dsk::bench::fail(state, std::string("setup failed: ") + e.what());
    return;
  }
  const DLTensor* src = c.direction == Direction::kHostToDevice ? host : device_tensor;
  const DLTensor* dst = c.direction == Direction::kHostToDevice ? device_tensor : host;
  dsk_context* ctx = env.device->get();
  const auto op = [ctx, src, dst] { return dsk_copy(ctx, src, dst); };
  if (!dsk::bench::check_status(state, op(), "warm-up dsk_copy") ||
      !dsk::bench::check_status(state, dsk_context_synchronize(ctx), "dsk_context_synchronize")) {
    return;
  }
  const double seconds = env.timer->run(state, op);
  // Bytes of the host-side tensor: what crosses the link when the conversion (if any) runs on the
  // device. The link's peak is not known to dsk, so no %peak.
  dsk::bench::report_bytes(state, n * static_cast<int64_t>(dsk_dtype_size(host_dtype)), seconds,
                           0.0);
  dsk::bench::report_items(state, n);
}

}  // namespace

int main(int argc, char** argv) {
  bool flush_l2 = true;
  if (!dsk::bench::parse_l2_flush("dsk_bench_tensor_cuda", &argc, argv, &flush_l2)) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::string unusable = dsk::bench::cuda_unusable_reason();
  if (!unusable.empty()) {
    std::printf("dsk_bench_tensor_cuda: no usable CUDA device (%s); no benchmarks run\n",
                unusable.c_str());
    return 0;
  }

  // Everything below needs a working device: a failure now is an error, not "no GPU here".
  std::unique_ptr<dsk::bench::CudaStream> stream;
  std::unique_ptr<dsk::Context> device;
  std::unique_ptr<dsk::Context> host;
  std::unique_ptr<dsk::bench::CudaTimer> timer;
  try {
    stream = std::make_unique<dsk::bench::CudaStream>(kDevice);
    device = std::make_unique<dsk::Context>(DSK_BACKEND_CUDA, kDevice, stream->get());
    host = std::make_unique<dsk::Context>(DSK_BACKEND_CPU);
    timer = std::make_unique<dsk::bench::CudaTimer>(kDevice, stream->get(), flush_l2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk_bench_tensor_cuda: setup failed: %s\n", e.what());
    return 1;
  }

  Env env;
  env.device = device.get();
  env.host = host.get();
  env.timer = timer.get();
  env.peak_gbps = dsk::bench::peak_memory_gbps(DSK_BACKEND_CUDA, kDevice);
  dsk::bench::add_device_context(DSK_BACKEND_CUDA, kDevice, env.peak_gbps);
  benchmark::AddCustomContext("dsk_l2_flush", timer->flushes_l2() ? "on" : "off");

  for (const dsk::bench::TensorCase& c : dsk::bench::kTensorCases) {
    benchmark::RegisterBenchmark(c.name,
                                 [&env, c](benchmark::State& state) { run_case(state, env, c); })
        ->Apply(dsk::bench::tensor_sizes)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const TransferCase& c : kTransferCases) {
    benchmark::RegisterBenchmark(
        c.name, [&env, c](benchmark::State& state) { run_transfer(state, env, c); })
        ->Apply(dsk::bench::tensor_sizes)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }

  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return dsk::bench::exit_code(ran);
}
