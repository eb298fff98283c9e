#include "core/tensor_ops.h"

#include <cfloat>
#include <cmath>
#include <memory>

#include "common/convert.h"
#include "core/dtype_info.h"
#include "core/error.h"

namespace dsk {
namespace {

// A compact row-major DLTensor over `data` with like's shape, on `device`.
DLTensor contiguous_dl(void* data, DLDevice device, const Layout& like, DLDataType dtype,
                       int64_t* strides) {
  DLTensor t{};
  t.data = data;
  t.device = device;
  t.ndim = like.ndim;
  t.dtype = dtype;
  t.shape = const_cast<int64_t*>(like.shape);
  row_major_strides(like.ndim, like.shape, strides);
  t.strides = strides;
  return t;
}

DLDataType dtype_of(const DLTensor* t) { return t->dtype; }

const DLDevice kHost{kDLCPU, 0};

size_t span_bytes(const Layout& l) { return static_cast<size_t>(l.span) * l.elem_size; }

// Host <-> CUDA copy. Host-side conversion and re-striding happen on the CPU; the device side is
// either one memcpy (contiguous) or a memcpy into a contiguous temporary plus a device copy.
void copy_across(dsk_context& ctx, const DLTensor* src_t, const Layout& src, const DLTensor* dst_t,
                 const Layout& dst) {
  const Backend& cpu = backend(DSK_BACKEND_CPU);
  const Backend& gpu = *ctx.backend;
  const int32_t dev = ctx.device_id;
  const size_t bytes = static_cast<size_t>(dst.numel) * dst.elem_size;
  int64_t strides[DSK_MAX_NDIM];
  if (dst.backend == DSK_BACKEND_CUDA) {
    // Host -> device. Stage on the host in dst's dtype unless src is already that.
    StoragePtr staging;
    const void* host = src.data;
    if (!(src.contiguous && src.dtype_id == dst.dtype_id)) {
      staging = allocate_host(bytes);
      DLTensor s = contiguous_dl(staging->data, kHost, dst, dtype_of(dst_t), strides);
      check_backend_call(cpu, cpu.iface->copy(0, src_t, &s, nullptr), "staging copy");
      host = staging->data;
    }
    if (dst.contiguous) {
      check_backend_call(
          gpu, gpu.iface->memcpy(dev, dst.data, host, bytes, DSK_MEMCPY_HOST_TO_DEVICE, ctx.stream),
          "host-to-device copy");
      return;
    }
    StoragePtr tmp = allocate(ctx, bytes);
    check_backend_call(
        gpu, gpu.iface->memcpy(dev, tmp->data, host, bytes, DSK_MEMCPY_HOST_TO_DEVICE, ctx.stream),
        "host-to-device copy");
    DLTensor t = contiguous_dl(tmp->data, dst.device, dst, dtype_of(dst_t), strides);
    check_backend_call(gpu, gpu.iface->copy(dev, &t, dst_t, ctx.stream), "device copy");
    // The temporary may come from the user's allocator hook, whose free need not wait for the
    // kernel reading it: finish the copy before `tmp` is released.
    check_backend_call(gpu, gpu.iface->synchronize(dev, ctx.stream), "synchronize");
    return;
  }
  // Device -> host. Make the device side contiguous (in src's dtype), bring it over, then
  // convert/re-stride on the host.
  const size_t src_bytes = static_cast<size_t>(src.numel) * src.elem_size;
  StoragePtr tmp;
  const void* device_src = src.data;
  if (!src.contiguous) {
    tmp = allocate(ctx, src_bytes);
    DLTensor t = contiguous_dl(tmp->data, src.device, src, dtype_of(src_t), strides);
    check_backend_call(gpu, gpu.iface->copy(dev, src_t, &t, ctx.stream), "device copy");
    device_src = tmp->data;
  }
  if (dst.contiguous && src.dtype_id == dst.dtype_id) {
    check_backend_call(
        gpu,
        gpu.iface->memcpy(dev, dst.data, device_src, bytes, DSK_MEMCPY_DEVICE_TO_HOST, ctx.stream),
        "device-to-host copy");
    return;
  }
  StoragePtr staging = allocate_host(src_bytes);
  check_backend_call(gpu,
                     gpu.iface->memcpy(dev, staging->data, device_src, src_bytes,
                                       DSK_MEMCPY_DEVICE_TO_HOST, ctx.stream),
                     "device-to-host copy");
  DLTensor s = contiguous_dl(staging->data, kHost, src, dtype_of(src_t), strides);
  check_backend_call(cpu, cpu.iface->copy(0, &s, dst_t, nullptr), "host copy");
}

}  // namespace

dsk_tensor* tensor_create(dsk_context& ctx, int32_t ndim, const int64_t* shape, DLDataType dtype) {
  int32_t id = checked_dtype_id(dtype, "dtype");
  size_t elem = dtype_id_size(id);
  int64_t numel = check_shape(ndim, shape, elem, "shape");
  StoragePtr storage = allocate(ctx, static_cast<size_t>(numel) * elem);
  void* data = storage->data;
  return make_tensor(std::move(storage), data, ndim, shape, nullptr, dtype, false);
}

dsk_tensor* tensor_view(dsk_tensor& base, int32_t ndim, const int64_t* shape,
                        const int64_t* strides, int64_t element_offset) {
  const size_t elem = dtype_id_size(dtype_id_of(base.dl.dtype));
  int64_t numel = check_shape(ndim, shape, elem, "shape");
  check_arg(element_offset >= 0, "element_offset = {}, expected >= 0", element_offset);
  int64_t filled[DSK_MAX_NDIM];
  if (strides == nullptr) {
    row_major_strides(ndim, shape, filled);
  } else {
    for (int32_t i = 0; i < ndim; ++i) {
      check_arg(strides[i] >= 0, "strides[{}] = {}, expected >= 0", i, strides[i]);
      filled[i] = strides[i];
    }
  }
  const Storage& st = *base.storage;
  const int64_t base_elems =
      (static_cast<char*>(base.dl.data) - static_cast<char*>(st.data)) / static_cast<int64_t>(elem);
  const int64_t capacity = static_cast<int64_t>(st.bytes / elem);
  // Last element addressed (relative to the storage start); overflow means out of range.
  int64_t last = 0;
  bool overflow = __builtin_add_overflow(base_elems, element_offset, &last);
  if (numel > 0) {
    for (int32_t i = 0; i < ndim && !overflow; ++i) {
      int64_t step = 0;
      overflow = __builtin_mul_overflow(shape[i] - 1, filled[i], &step) ||
                 __builtin_add_overflow(last, step, &last);
    }
    check_arg(!overflow && last < capacity,
              "the view reaches past the {} elements of its storage, expected every element "
              "inside the storage",
              capacity);
    check_arg(!self_overlaps(ndim, shape, filled),
              "strides make distinct indices address the same element, expected a "
              "non-overlapping view");
  } else {
    check_arg(!overflow && last <= capacity,
              "element_offset = {} is past the storage ({} elements)", element_offset, capacity);
  }
  void* data = static_cast<char*>(base.dl.data) + element_offset * static_cast<int64_t>(elem);
  return make_tensor(base.storage, data, ndim, shape, filled, base.dl.dtype, base.read_only);
}

void copy(dsk_context& ctx, const DLTensor* src_t, const DLTensor* dst_t) {
  Layout src = check_tensor(src_t, "src", Access::kRead);
  Layout dst = check_tensor(dst_t, "dst", Access::kWrite);
  check_arg(src.ndim == dst.ndim, "src.ndim = {} but dst.ndim = {}, expected equal shapes",
            src.ndim, dst.ndim);
  for (int32_t i = 0; i < src.ndim; ++i) {
    check_arg(src.shape[i] == dst.shape[i],
              "src.shape[{}] = {} but dst.shape[{}] = {}, expected "
              "equal shapes",
              i, src.shape[i], i, dst.shape[i]);
  }
  if (dst.numel == 0) return;
  // Host memory is one address space and CUDA pointers are unique across devices (unified
  // addressing), so byte ranges of the same backend are comparable whatever the device ids say.
  // Comparing whole spans is conservative: interleaved but disjoint views are refused too.
  if (src.backend == dst.backend) {
    check_arg(!ranges_intersect(src.data, span_bytes(src), dst.data, span_bytes(dst)),
              "src and dst overlap in memory, expected distinct buffers");
  }
  if (src.backend == dst.backend) {
    ExecTarget t = exec_target(ctx, src, "src");
    exec_target(ctx, dst, "dst");
    check_backend_call(t.backend, t.backend.iface->copy(t.device, src_t, dst_t, t.stream), "copy");
    return;
  }
  check_arg(ctx.backend->kind == DSK_BACKEND_CUDA,
            "copy between src on {} and dst on {} needs a CUDA context, but ctx is a CPU context",
            device_string(src.device), device_string(dst.device));
  exec_target(ctx, src, "src");
  exec_target(ctx, dst, "dst");
  copy_across(ctx, src_t, src, dst_t, dst);
}

dsk_tensor* tensor_clone(dsk_context& ctx, const DLTensor* src, DLDataType dtype) {
  Layout l = check_tensor(src, "src", Access::kRead);
  dsk_tensor* out = tensor_create(ctx, l.ndim, l.shape, dtype);
  try {
    copy(ctx, src, &out->dl);
  } catch (...) {
    delete out;
    throw;
  }
  return out;
}

void fill(dsk_context& ctx, const DLTensor* dst_t, double value) {
  Layout dst = check_tensor(dst_t, "dst", Access::kWrite);
  ExecTarget t = exec_target(ctx, dst, "dst");
  check_backend_call(t.backend, t.backend.iface->fill(t.device, dst_t, value, t.stream), "fill");
}

void fill_random(dsk_context& ctx, const DLTensor* dst_t, const dsk_random_params& params) {
  Layout dst = check_tensor(dst_t, "dst", Access::kWrite);
  check_arg(dtype_id_is_float(dst.dtype_id),
            "dst has dtype {}, expected a floating dtype (f32, f16, bf16, fp8_e4m3fn, fp8_e5m2)",
            dtype_id_name(dst.dtype_id));
  check_arg(params.distribution == DSK_RANDOM_UNIFORM || params.distribution == DSK_RANDOM_NORMAL,
            "params->distribution = {}, expected DSK_RANDOM_UNIFORM (1) or DSK_RANDOM_NORMAL (2)",
            params.distribution);
  // The formula runs in f32: parameters must be finite there (and a deviation non-negative).
  auto finite_f32 = [](double v) { return std::isfinite(v) && std::fabs(v) <= FLT_MAX; };
  check_arg(finite_f32(params.a) && finite_f32(params.b),
            "params->a = {}, params->b = {}, expected finite values within the f32 range", params.a,
            params.b);
  check_arg(params.distribution != DSK_RANDOM_NORMAL || params.b >= 0.0,
            "params->b = {} is a negative standard deviation, expected >= 0", params.b);
  ExecTarget t = exec_target(ctx, dst, "dst");
  check_backend_call(t.backend, t.backend.iface->fill_random(t.device, dst_t, &params, t.stream),
                     "fill_random");
}

}  // namespace dsk
