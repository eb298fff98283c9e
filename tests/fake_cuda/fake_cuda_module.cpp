// A stand-in for libdsk-cuda.so that keeps "device" memory in host RAM.
//
// It implements the backend table (lib/core/backend_iface.h) with the shared numerics of
// lib/common, so the CUDA test suite can run on machines without a GPU against everything on
// libdsk's side of the table: module discovery, dispatch, context/device checks, host<->device
// staging, temporaries, error propagation. It proves nothing about the real kernels; those run
// only on a GPU (scripts/gpu-check).
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/convert.h"
#include "common/random_value.h"
#include "core/backend_iface.h"
#include "cpu/strided_walk.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr int32_t kDevices = 2;

thread_local char t_error[256] = "";

dsk_status fail(dsk_status status, const char* message) {
  std::strncpy(t_error, message, sizeof(t_error) - 1);
  return status;
}

const char* last_error() { return t_error; }

int32_t device_count() { return kDevices; }

dsk_status device_props(int32_t device, dsk_device_props* p) {
  if (device < 0 || device >= kDevices) return fail(DSK_ERR_INVALID_ARGUMENT, "no such device");
  p->compute_capability_major = 9;
  p->compute_capability_minor = 0;
  p->multiprocessor_count = 132;
  p->memory_bus_width_bits = 5120;
  p->memory_clock_khz = 2619000;
  p->total_memory_bytes = UINT64_C(16) << 30;
  p->memory_bandwidth_gbps = 2.0 * 2619000.0 * 1e3 * 5120 / 8 / 1e9;
  std::strncpy(p->name, "dsk fake CUDA device (host memory, tests only)", sizeof(p->name) - 1);
  return DSK_OK;
}

dsk_status device_malloc(int32_t, size_t bytes, void*, void** ptr) {
  *ptr = nullptr;
  if (bytes == 0) return DSK_OK;
  if (bytes > (SIZE_MAX >> 1)) return fail(DSK_ERR_OUT_OF_MEMORY, "fake cudaMalloc: out of memory");
  *ptr = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *ptr != nullptr ? DSK_OK : fail(DSK_ERR_OUT_OF_MEMORY, "fake cudaMalloc: out of memory");
}

void device_free(int32_t, void* ptr, void*) { std::free(ptr); }

dsk_status device_memcpy(int32_t, void* dst, const void* src, size_t bytes, int32_t, void*) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return DSK_OK;
}

dsk_status synchronize(int32_t, void*) { return DSK_OK; }

struct View {
  char* data;
  int32_t id;
  int64_t size;
  int32_t ndim;
  int64_t shape[DSK_MAX_NDIM];
  int64_t strides[DSK_MAX_NDIM];
  int64_t numel;
};

View view_of(const DLTensor* t) {
  View v{};
  v.data = static_cast<char*>(t->data) + t->byte_offset;
  v.id = dsk::dtype_id_of(t->dtype);
  v.size = static_cast<int64_t>(dsk::dtype_id_size(v.id));
  v.ndim = t->ndim;
  v.numel = 1;
  int64_t step = 1;
  for (int32_t d = t->ndim - 1; d >= 0; --d) {
    v.shape[d] = t->shape[d];
    v.strides[d] = t->shape[d] == 1 ? 0 : (t->strides ? t->strides[d] : step);
    step *= t->shape[d] > 0 ? t->shape[d] : 1;
    v.numel *= t->shape[d];
  }
  return v;
}

dsk_status copy(int32_t, const DLTensor* src, const DLTensor* dst, void*) {
  const View s = view_of(src);
  const View d = view_of(dst);
  dsk::cpu::StridedWalk ws(s.ndim, s.shape, s.strides);
  dsk::cpu::StridedWalk wd(d.ndim, d.shape, d.strides);
  for (int64_t i = 0; i < d.numel; ++i, ws.next(), wd.next()) {
    dsk::convert_element(s.id, s.data + ws.offset() * s.size, d.id, d.data + wd.offset() * d.size);
  }
  return DSK_OK;
}

dsk_status fill(int32_t, const DLTensor* dst, double value, void*) {
  const View d = view_of(dst);
  unsigned char pattern[8];
  dsk::store_from_f64(d.id, value, pattern);
  dsk::cpu::StridedWalk w(d.ndim, d.shape, d.strides);
  for (int64_t i = 0; i < d.numel; ++i, w.next()) {
    std::memcpy(d.data + w.offset() * d.size, pattern, static_cast<size_t>(d.size));
  }
  return DSK_OK;
}

dsk_status fill_random(int32_t, const DLTensor* dst, const dsk_random_params* p, void*) {
  const View d = view_of(dst);
  const auto a = static_cast<float>(p->a);
  const auto b = static_cast<float>(p->b);
  dsk::cpu::StridedWalk w(d.ndim, d.shape, d.strides);
  for (int64_t i = 0; i < d.numel; ++i, w.next()) {
    const float v =
        dsk::random_value(p->distribution, p->seed, p->offset, a, b, static_cast<uint64_t>(i));
    dsk::store_from_f32(d.id, v, d.data + w.offset() * d.size);
  }
  return DSK_OK;
}

const dsk_backend_iface kTable = {
    DSK_BACKEND_IFACE_VERSION, sizeof(dsk_backend_iface), "cuda", last_error, device_count,
    device_props, device_malloc, device_free, device_memcpy, synchronize, copy, fill, fill_random,
    // No op kernels: libdsk must answer DSK_ERR_UNSUPPORTED for ops a module leaves out.
    nullptr,  // gemm
    nullptr,  // quant_fp8
    nullptr,  // dequant_fp8
    nullptr,  // linear_fp8
    nullptr,  // linear_fp8_kernel
    nullptr,  // gemm_fp8_weight
    nullptr,  // rmsnorm
    nullptr,  // swiglu
    nullptr,  // rope
    nullptr,  // softmax
    nullptr,  // topk
    nullptr,  // embedding
    nullptr,  // mla_decode_plan
    nullptr,  // mla_decode
    nullptr,  // mla_cache_append
    nullptr,  // mla_prefill
    nullptr,  // moe_gate
    nullptr,  // moe_dispatch
    nullptr,  // moe_permute
    nullptr,  // moe_combine
    nullptr,  // moe_grouped_gemm
    nullptr,  // moe_load_accumulate
    nullptr,  // moe_bias_update
    nullptr,  // moe_ep_layout
    nullptr,  // sample
    nullptr,  // sampling_transform
    nullptr,  // speculative_verify
};

}  // namespace

FAKE_EXPORT int32_t dsk_backend_module_score(char* reason, size_t reason_size) {
  if (reason_size > 0) reason[0] = '\0';
  return 1;
}

FAKE_EXPORT const dsk_backend_iface* dsk_backend_module_init(uint32_t api_version) {
  return api_version == DSK_BACKEND_IFACE_VERSION ? &kTable : nullptr;
}
