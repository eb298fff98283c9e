#include "core/layout.h"

#include "common/convert.h"
#include "core/dtype_info.h"
#include "core/error.h"
#include "dsk/dsk_backend.h"
#include "dsk/dsk_dtype.h"

namespace dsk {

namespace {

// No address space holds more (x86-64 and AArch64 user space are at most 2^57 and 2^52 bytes):
// a tensor whose strides span more cannot describe real memory, whatever its data pointer.
constexpr int64_t kMaxSpanBytes = int64_t{1} << 56;

}  // namespace

int32_t backend_of_device_type(int32_t device_type) noexcept {
  switch (device_type) {
    case kDLCPU:
    case kDLCUDAHost:
      return DSK_BACKEND_CPU;
    case kDLCUDA:
    case kDLCUDAManaged:
      return DSK_BACKEND_CUDA;
    default:
      return 0;
  }
}

std::string device_string(DLDevice device) {
  switch (static_cast<int32_t>(device.device_type)) {
    case kDLCPU:
      return "cpu";
    case kDLCUDAHost:
      return "cuda_host";
    case kDLCUDA:
      return fmt::format("cuda:{}", device.device_id);
    case kDLCUDAManaged:
      return fmt::format("cuda_managed:{}", device.device_id);
    default:
      return fmt::format("device_type {}", static_cast<int32_t>(device.device_type));
  }
}

void row_major_strides(int32_t ndim, const int64_t* shape, int64_t* strides) noexcept {
  int64_t step = 1;
  for (int32_t i = ndim - 1; i >= 0; --i) {
    strides[i] = step;
    step *= shape[i] > 0 ? shape[i] : 1;
  }
}

bool is_row_major(int32_t ndim, const int64_t* shape, const int64_t* strides) noexcept {
  int64_t step = 1;
  for (int32_t i = ndim - 1; i >= 0; --i) {
    if (shape[i] == 0) return true;  // empty: any strides describe the same (no) elements
    if (shape[i] != 1 && strides[i] != step) return false;
    step *= shape[i];
  }
  return true;
}

bool self_overlaps(int32_t ndim, const int64_t* shape, const int64_t* strides) noexcept {
  // Dims sorted by stride must each step past everything the smaller dims reach. This is exact for
  // every layout produced by slicing/permuting a compact tensor; exotic interleavings that happen
  // not to collide are conservatively reported as overlapping.
  int32_t order[DSK_MAX_NDIM];
  int32_t n = 0;
  for (int32_t i = 0; i < ndim; ++i) {
    if (shape[i] == 0) return false;
    if (shape[i] > 1) order[n++] = i;
  }
  // Insertion sort: at most 8 entries (and std::sort trips GCC 12's -Warray-bounds here).
  for (int32_t i = 1; i < n; ++i) {
    for (int32_t j = i; j > 0 && strides[order[j]] < strides[order[j - 1]]; --j) {
      int32_t tmp = order[j];
      order[j] = order[j - 1];
      order[j - 1] = tmp;
    }
  }
  int64_t reach = 0;  // largest offset addressed by the dims visited so far
  for (int32_t k = 0; k < n; ++k) {
    int32_t d = order[k];
    if (strides[d] <= reach) return true;
    reach += (shape[d] - 1) * strides[d];
  }
  return false;
}

static bool mul_overflows(int64_t a, int64_t b, int64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
static bool add_overflows(int64_t a, int64_t b, int64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

int64_t check_shape(int32_t ndim, const int64_t* shape, size_t elem_size, const char* name) {
  check_arg(ndim >= 0 && ndim <= DSK_MAX_NDIM, "{}: ndim = {}, expected 0 <= ndim <= {}", name,
            ndim, DSK_MAX_NDIM);
  check_arg(ndim == 0 || shape != nullptr, "{}: shape is NULL, expected {} sizes", name, ndim);
  int64_t numel = 1;
  for (int32_t i = 0; i < ndim; ++i) {
    check_arg(shape[i] >= 0, "{}: shape[{}] = {}, expected >= 0", name, i, shape[i]);
    check_arg(!mul_overflows(numel, shape[i], &numel),
              "{}: shape overflows int64 at dim {}, expected a product of sizes below 2^63", name,
              i);
  }
  int64_t bytes = 0;
  check_arg(!mul_overflows(numel, static_cast<int64_t>(elem_size), &bytes),
            "{}: {} elements of {} bytes overflow int64, expected fewer elements", name, numel,
            elem_size);
  return numel;
}

bool ranges_intersect(const void* a, size_t a_bytes, const void* b, size_t b_bytes) noexcept {
  if (a_bytes == 0 || b_bytes == 0) return false;
  auto pa = reinterpret_cast<uintptr_t>(a);
  auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

Layout check_tensor(const DLTensor* t, const char* name, Access access) {
  check_arg(t != nullptr, "{} is NULL, expected a DLTensor", name);
  Layout l;
  l.dtype_id = checked_dtype_id(t->dtype, fmt::format("{}.dtype", name).c_str());
  l.elem_size = dtype_id_size(l.dtype_id);
  l.device = t->device;
  l.backend = backend_of_device_type(static_cast<int32_t>(t->device.device_type));
  check_arg(
      l.backend != 0,
      "{}: device type {} is not supported, expected kDLCPU (1), kDLCUDA (2), kDLCUDAHost (3) "
      "or kDLCUDAManaged (13)",
      name, static_cast<int32_t>(t->device.device_type));
  check_arg(t->device.device_id >= 0, "{}: device_id = {}, expected >= 0", name,
            t->device.device_id);
  // Host memory has one device; another id would make equal pointers look like different memory.
  check_arg(l.backend != DSK_BACKEND_CPU || t->device.device_id == 0,
            "{}: device_id = {} for host memory, expected 0", name, t->device.device_id);
  l.ndim = t->ndim;
  l.numel = check_shape(t->ndim, t->shape, l.elem_size, name);
  for (int32_t i = 0; i < l.ndim; ++i) l.shape[i] = t->shape[i];
  if (t->strides == nullptr) {
    row_major_strides(l.ndim, l.shape, l.strides);
  } else {
    for (int32_t i = 0; i < l.ndim; ++i) {
      check_arg(t->strides[i] >= 0, "{}: strides[{}] = {}, expected >= 0", name, i, t->strides[i]);
      // A size-1 dim is never stepped along, so its stride is meaningless (DLPack producers put
      // anything there); zero keeps every offset computation within the tensor's span.
      l.strides[i] = l.shape[i] == 1 ? 0 : t->strides[i];
    }
  }
  if (l.numel > 0) {
    int64_t last = 0;
    for (int32_t i = 0; i < l.ndim; ++i) {
      int64_t step = 0;
      check_arg(
          !mul_overflows(l.shape[i] - 1, l.strides[i], &step) && !add_overflows(last, step, &last),
          "{}: strides[{}] = {} reach past int64, expected strides that address memory", name, i,
          l.strides[i]);
    }
    int64_t span_bytes = 0;
    check_arg(!add_overflows(last, 1, &l.span) &&
                  !mul_overflows(l.span, static_cast<int64_t>(l.elem_size), &span_bytes) &&
                  span_bytes <= kMaxSpanBytes,
              "{}: the strides span more than 2^56 bytes, expected strides that address memory",
              name);
    check_arg(t->data != nullptr, "{}: data is NULL for a tensor with {} elements", name, l.numel);
    // The addressed bytes [data + byte_offset, + span_bytes) must exist in the address space.
    const auto base = reinterpret_cast<uintptr_t>(t->data);
    check_arg(t->byte_offset <= static_cast<uint64_t>(INT64_MAX) &&
                  t->byte_offset <= UINTPTR_MAX - base &&
                  static_cast<uint64_t>(span_bytes) <= UINTPTR_MAX - base - t->byte_offset,
              "{}: byte_offset = {} with {} bytes of elements runs past the address space, "
              "expected an offset inside the buffer",
              name, t->byte_offset, span_bytes);
    if (access == Access::kWrite) {
      check_arg(!self_overlaps(l.ndim, l.shape, l.strides),
                "{}: strides make distinct indices address the same element, expected a "
                "non-overlapping output",
                name);
    }
  }
  l.contiguous = is_row_major(l.ndim, l.shape, l.strides);
  l.data = static_cast<char*>(t->data) + t->byte_offset;
  return l;
}

}  // namespace dsk
