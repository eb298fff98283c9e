#include "ops/op_common.h"

#include <cstring>

#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace ops {
namespace {

Arg make_arg(const DLTensor* t, const char* name, Access access) {
  Arg a;
  a.l = check_tensor(t, name, access);
  a.name = name;
  a.present = true;
  return a;
}

// An optional argument passed as NULL.
Arg absent(const char* name) {
  Arg a;
  a.name = name;
  return a;
}

// Merges dims [0, count) of `a` into one (size, stride); false when they do not form one stride.
bool merge_leading(const Arg& a, int32_t count, int64_t* size, int64_t* stride) {
  // No rows at all: nothing is ever addressed, so any strides merge.
  for (int32_t i = 0; i < count; ++i) {
    if (a.l.shape[i] == 0) {
      *size = 0;
      *stride = 0;
      return true;
    }
  }
  int64_t n = 1;
  int64_t st = 0;
  bool have = false;
  // Walk from the innermost leading dim outwards; size-1 dims never step.
  for (int32_t i = count - 1; i >= 0; --i) {
    if (a.l.shape[i] == 1) continue;
    if (!have) {
      st = a.l.strides[i];
      have = true;
    } else if (a.l.strides[i] != st * n) {
      return false;
    }
    n *= a.l.shape[i];
  }
  *size = n;
  *stride = have ? st : 0;
  return true;
}

void merge_or_fail(const Arg& a, int32_t count, int64_t* size, int64_t* stride) {
  check_arg(merge_leading(a, count, size, stride),
            "{}: the leading dimensions of shape {} cannot be merged into one stride, expected a "
            "view that slices only its trailing dimensions (make it contiguous first)",
            a.name, shape_text(a));
}

}  // namespace

Arg input(const DLTensor* t, const char* name) { return make_arg(t, name, Access::kRead); }
Arg output(const DLTensor* t, const char* name) { return make_arg(t, name, Access::kWrite); }

Arg optional_input(const DLTensor* t, const char* name) {
  return t == nullptr ? absent(name) : input(t, name);
}

Arg optional_output(const DLTensor* t, const char* name) {
  return t == nullptr ? absent(name) : output(t, name);
}

namespace {

// Every present argument on one device; the backend, device and stream of the first.
Target target_of(const dsk_context& ctx, const Arg* const* args, size_t count) {
  const Arg* first = nullptr;
  for (size_t i = 0; i < count; ++i) {
    const Arg* a = args[i];
    if (!a->present) continue;
    if (first == nullptr) {
      first = a;
      continue;
    }
    bool same =
        a->l.backend == first->l.backend &&
        (a->l.backend == DSK_BACKEND_CPU || a->l.device.device_id == first->l.device.device_id);
    check_arg(same, "{} is on {}, expected the device of {} ({})", a->name,
              device_string(a->l.device), first->name, device_string(first->l.device));
  }
  check_arg(first != nullptr, "no tensor arguments, expected at least one");
  ExecTarget et = exec_target(ctx, first->l, first->name);
  Target t;
  t.backend = &et.backend;
  t.exec.device = et.device;
  t.exec.stream = et.stream;
  if (et.backend.kind == ctx.backend->kind) {
    t.exec.workspace = ctx.workspace;
    t.exec.workspace_bytes = ctx.workspace_bytes;
  }
  return t;
}

}  // namespace

Target target(const dsk_context& ctx, std::initializer_list<const Arg*> args) {
  return target_of(ctx, args.begin(), args.size());
}

Target target(const dsk_context& ctx, const std::vector<const Arg*>& args) {
  return target_of(ctx, args.data(), args.size());
}

void call(const Target& t, dsk_status status, const char* op) {
  check_backend_call(*t.backend, status, op);
}

bool is_float(const Arg& a) noexcept {
  return a.l.dtype_id == DSK_DTYPE_F32 || a.l.dtype_id == DSK_DTYPE_F16 ||
         a.l.dtype_id == DSK_DTYPE_BF16;
}

void check_float(const Arg& a) {
  check_arg(is_float(a), "{}.dtype is {}, expected f32, f16 or bf16", a.name,
            dtype_id_name(a.l.dtype_id));
}

void check_dtype(const Arg& a, int32_t dtype_id) {
  check_arg(a.l.dtype_id == dtype_id, "{}.dtype is {}, expected {}", a.name,
            dtype_id_name(a.l.dtype_id), dtype_id_name(dtype_id));
}

void check_index(const Arg& a) {
  check_arg(a.l.dtype_id == DSK_DTYPE_INT32 || a.l.dtype_id == DSK_DTYPE_INT64,
            "{}.dtype is {}, expected int32 or int64", a.name, dtype_id_name(a.l.dtype_id));
}

void check_same_dtype(const Arg& a, const Arg& b) {
  check_arg(a.l.dtype_id == b.l.dtype_id, "{}.dtype is {} but {}.dtype is {}, expected the same",
            b.name, dtype_id_name(b.l.dtype_id), a.name, dtype_id_name(a.l.dtype_id));
}

void check_ndim(const Arg& a, int32_t ndim) {
  check_arg(a.l.ndim == ndim, "{} has {} dimensions (shape {}), expected {}", a.name, a.l.ndim,
            shape_text(a), ndim);
}

void check_dim(const Arg& a, int32_t dim, int64_t size, const char* rule) {
  int32_t d = dim < 0 ? a.l.ndim + dim : dim;
  check_arg(d >= 0 && d < a.l.ndim, "{} has shape {}, expected a dimension {}", a.name,
            shape_text(a), dim);
  check_arg(a.l.shape[d] == size, "{}.shape[{}] = {} (shape {}), expected {} ({})", a.name, d,
            a.l.shape[d], shape_text(a), size, rule);
}

void check_same_shape(const Arg& a, const Arg& b) {
  bool same = a.l.ndim == b.l.ndim;
  for (int32_t i = 0; same && i < a.l.ndim; ++i) same = a.l.shape[i] == b.l.shape[i];
  check_arg(same, "{} has shape {}, expected the shape of {} {}", b.name, shape_text(b), a.name,
            shape_text(a));
}

void check_same_leading(const Arg& a, const Arg& b, int32_t trailing) {
  int32_t na = a.l.ndim - trailing;
  int32_t nb = b.l.ndim - trailing;
  bool same = na >= 0 && na == nb;
  for (int32_t i = 0; same && i < na; ++i) same = a.l.shape[i] == b.l.shape[i];
  check_arg(same, "{} has shape {}, expected the leading dimensions of {} {}", b.name,
            shape_text(b), a.name, shape_text(a));
}

bool same_view(const Arg& a, const Arg& b) noexcept {
  if (a.l.data != b.l.data || a.l.dtype_id != b.l.dtype_id || a.l.ndim != b.l.ndim) return false;
  if (a.l.device.device_type != b.l.device.device_type) return false;
  for (int32_t i = 0; i < a.l.ndim; ++i) {
    if (a.l.shape[i] != b.l.shape[i] || a.l.strides[i] != b.l.strides[i]) return false;
  }
  return true;
}

void check_no_overlap(const Arg& out, const Arg& in, bool allow_same_view) {
  if (!out.present || !in.present || out.l.numel == 0 || in.l.numel == 0) return;
  if (allow_same_view && same_view(out, in)) return;
  bool overlap = ranges_intersect(out.l.data, static_cast<size_t>(out.l.span) * out.l.elem_size,
                                  in.l.data, static_cast<size_t>(in.l.span) * in.l.elem_size);
  check_arg(!overlap, "{} overlaps {}, expected separate memory{}", out.name, in.name,
            allow_same_view ? " or exactly the same view (in place)" : "");
}

void View::set(const Arg& a, int32_t ndim, const int64_t* shape, const int64_t* strides) {
  present_ = a.present;
  if (!present_) return;
  set(a.l.data, a.l.device, a.l.dtype_id, ndim, shape, strides);
}

void View::set(char* data, DLDevice device, int32_t dtype_id, int32_t ndim, const int64_t* shape,
               const int64_t* strides) {
  present_ = true;
  for (int32_t i = 0; i < ndim; ++i) {
    shape_[i] = shape[i];
    strides_[i] = strides[i];
  }
  dl_ = DLTensor{};
  dl_.data = data;
  dl_.device = device;
  dl_.ndim = ndim;
  dl_.dtype = dtype_of_id(dtype_id);
  dl_.shape = shape_;
  dl_.strides = strides_;
  dl_.byte_offset = 0;
}

void as_rows(const Arg& a, View& out) {
  if (!a.present) {
    out.set(a, 0, nullptr, nullptr);
    return;
  }
  check_arg(a.l.ndim >= 1, "{} is a scalar, expected at least one dimension", a.name);
  int64_t shape[2];
  int64_t strides[2];
  merge_or_fail(a, a.l.ndim - 1, &shape[0], &strides[0]);
  shape[1] = a.l.shape[a.l.ndim - 1];
  strides[1] = a.l.strides[a.l.ndim - 1];
  out.set(a, 2, shape, strides);
}

void as_batches(const Arg& a, View& out) {
  check_arg(a.l.ndim >= 2, "{} has {} dimensions, expected at least 2", a.name, a.l.ndim);
  int64_t shape[3];
  int64_t strides[3];
  merge_or_fail(a, a.l.ndim - 2, &shape[0], &strides[0]);
  for (int32_t i = 0; i < 2; ++i) {
    shape[1 + i] = a.l.shape[a.l.ndim - 2 + i];
    strides[1 + i] = a.l.strides[a.l.ndim - 2 + i];
  }
  out.set(a, 3, shape, strides);
}

void as_is(const Arg& a, View& out) {
  check_arg(!a.present || a.l.ndim <= 4, "{} has {} dimensions, expected at most 4", a.name,
            a.l.ndim);
  out.set(a, a.l.ndim, a.l.shape, a.l.strides);
}

int64_t rows_of(const Arg& a) noexcept {
  int64_t n = 1;
  for (int32_t i = 0; i + 1 < a.l.ndim; ++i) n *= a.l.shape[i];
  return n;
}

std::string shape_text(const int64_t* shape, int32_t ndim) {
  std::string s = "[";
  for (int32_t i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shape_text(const Arg& a) { return shape_text(a.l.shape, a.l.ndim); }

void check_float(std::initializer_list<const Arg*> args) {
  for (const Arg* a : args) {
    if (a->present) check_float(*a);
  }
}

int64_t last_dim(const Arg& a, const char* form) {
  check_arg(a.l.ndim >= 1, "{} is a scalar, expected at least one dimension {}", a.name, form);
  return a.l.shape[a.l.ndim - 1];
}

void check_shape(const Arg& a, const int64_t* shape, int32_t ndim, const char* rule) {
  bool same = a.l.ndim == ndim;
  for (int32_t i = 0; same && i < ndim; ++i) same = a.l.shape[i] == shape[i];
  check_arg(same, "{} has shape {}, expected {} ({})", a.name, shape_text(a),
            shape_text(shape, ndim), rule);
}

void as_flat(const Arg& a, int64_t* size, int64_t* stride) {
  *size = a.l.numel;
  *stride = 0;
  if (a.l.numel == 0) return;
  check_arg(merge_leading(a, a.l.ndim, size, stride),
            "{}: the dimensions of shape {} cannot be merged into one stride, expected a view "
            "that slices only its trailing dimensions (make it contiguous first)",
            a.name, shape_text(a));
}

}  // namespace ops
}  // namespace dsk
