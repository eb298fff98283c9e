// The CPU backend's function table: the same interface the CUDA module provides, so that core
// dispatch never special-cases the CPU.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/layout.h"
#include "core/registry.h"
#include "cpu/backend_guard.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

// A fixed buffer: recording an error must not allocate (it runs while out of memory, inside
// noexcept functions).
thread_local char t_cpu_error[512] = "";

}  // namespace

void set_error(const char* message) noexcept {
  std::strncpy(t_cpu_error, message, sizeof(t_cpu_error) - 1);
  t_cpu_error[sizeof(t_cpu_error) - 1] = '\0';
}

const char* last_error() noexcept { return t_cpu_error; }

}  // namespace cpu

namespace {

const char* cpu_last_error() { return cpu::last_error(); }

int32_t cpu_device_count() { return 1; }

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "cpu";
}

dsk_status cpu_device_props(int32_t device, dsk_device_props* props) {
  return cpu::guarded([&] {
    check_arg(device == 0, "device_id = {}, expected 0 for the CPU backend", device);
    props->backend = DSK_BACKEND_CPU;
    props->device_id = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES);
    long page_size = sysconf(_SC_PAGE_SIZE);
    props->multiprocessor_count = cores > 0 ? static_cast<int32_t>(cores) : 1;
    props->total_memory_bytes =
        pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
                                   : 0;
    std::string name = cpu_model_name();
    std::strncpy(props->name, name.c_str(), sizeof(props->name) - 1);
    props->name[sizeof(props->name) - 1] = '\0';
  });
}

dsk_status cpu_malloc(int32_t, size_t bytes, void*, void** ptr) {
  *ptr = nullptr;
  if (bytes == 0) return DSK_OK;
  *ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (*ptr == nullptr) {
    cpu::set_error("out of host memory");
    return DSK_ERR_OUT_OF_MEMORY;
  }
  return DSK_OK;
}

void cpu_free(int32_t, void* ptr, void*) { std::free(ptr); }

dsk_status cpu_memcpy(int32_t, void* dst, const void* src, size_t bytes, int32_t, void*) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return DSK_OK;
}

dsk_status cpu_synchronize(int32_t, void*) { return DSK_OK; }

dsk_status cpu_copy(int32_t, const DLTensor* src, const DLTensor* dst, void*) {
  return cpu::guarded([&] {
    cpu::copy(check_tensor(src, "src", Access::kRead), check_tensor(dst, "dst", Access::kWrite));
  });
}

dsk_status cpu_fill(int32_t, const DLTensor* dst, double value, void*) {
  return cpu::guarded([&] { cpu::fill(check_tensor(dst, "dst", Access::kWrite), value); });
}

dsk_status cpu_fill_random(int32_t, const DLTensor* dst, const dsk_random_params* params, void*) {
  return cpu::guarded([&] { cpu::fill_random(check_tensor(dst, "dst", Access::kWrite), *params); });
}

int32_t cpu_linear_fp8_kernel(int32_t) { return DSK_FP8_KERNEL_CPU_REFERENCE; }

const dsk_backend_iface kCpuIface = {
    DSK_BACKEND_IFACE_VERSION,
    sizeof(dsk_backend_iface),
    "cpu",
    cpu_last_error,
    cpu_device_count,
    cpu_device_props,
    cpu_malloc,
    cpu_free,
    cpu_memcpy,
    cpu_synchronize,
    cpu_copy,
    cpu_fill,
    cpu_fill_random,
    cpu::gemm,
    cpu::quant_fp8,
    cpu::dequant_fp8,
    cpu::linear_fp8,
    cpu_linear_fp8_kernel,
    cpu::gemm_fp8_weight_view,
    cpu::rmsnorm,
    cpu::swiglu,
    cpu::rope,
    cpu::softmax,
    cpu::topk,
    cpu::embedding,
    cpu::mla_decode_plan,
    cpu::mla_decode,
    cpu::mla_cache_append,
    cpu::mla_prefill,
    cpu::moe_gate,
    cpu::moe_dispatch,
    cpu::moe_permute,
    cpu::moe_combine,
    cpu::moe_grouped_gemm,
    cpu::moe_load_accumulate,
    cpu::moe_bias_update,
    cpu::moe_ep_layout,
    cpu::sample,
    cpu::sampling_transform,
    cpu::speculative_verify,
};

}  // namespace

const dsk_backend_iface* cpu_backend_iface() noexcept { return &kCpuIface; }

}  // namespace dsk
