// op_common.h - argument checking and dispatch shared by the core ops (dsk_ops.h).
//
// Each op's libdsk side (lib/ops/<op>.cpp) validates its tensors with these helpers, brings them
// into the normalized 2-D/3-D form its backend entry expects (lib/core/backend_iface.h) and calls
// the entry of the backend that owns the tensors' device.
#ifndef DSK_LIB_OPS_OP_COMMON_H_
#define DSK_LIB_OPS_OP_COMMON_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/registry.h"

namespace dsk {
namespace ops {

// A validated tensor argument: its layout plus the name messages use.
struct Arg {
  Layout l;
  const char* name = "";
  bool present = false;  // false for an optional argument passed as NULL
};

// Required input / output: non-NULL and valid (see check_tensor), else DSK_ERR_INVALID_ARGUMENT.
Arg input(const DLTensor* t, const char* name);
Arg output(const DLTensor* t, const char* name);
// Optional forms: NULL gives an Arg with present == false.
Arg optional_input(const DLTensor* t, const char* name);
Arg optional_output(const DLTensor* t, const char* name);

// The backend, device and stream that run an op over `args` (absent ones are skipped): all must be
// on one device, which must be the context's device when it is a CUDA device.
struct Target {
  const Backend* backend = nullptr;
  dsk_exec exec{};
};
Target target(const dsk_context& ctx, std::initializer_list<const Arg*> args);
// The same for a list built at run time (ops with many optional arguments).
Target target(const dsk_context& ctx, const std::vector<const Arg*>& args);

// The backend's entry `fn` for op `op`, or DSK_ERR_UNSUPPORTED when the backend lacks it.
template <typename Fn>
Fn entry(const Target& t, Fn fn, const char* op) {
  if (fn == nullptr) {
    fail(DSK_ERR_UNSUPPORTED, "the {} backend does not implement {}", t.backend->name, op);
  }
  return fn;
}

// Runs a backend call and turns a failure into dsk::Error with the backend's message.
void call(const Target& t, dsk_status status, const char* op);

// dtype checks; messages name the argument and list what is accepted.
bool is_float(const Arg& a) noexcept;  // F32, F16, BF16
void check_float(const Arg& a);
void check_dtype(const Arg& a, int32_t dtype_id);
void check_index(const Arg& a);  // INT32 or INT64
void check_same_dtype(const Arg& a, const Arg& b);

// Shape checks.
void check_ndim(const Arg& a, int32_t ndim);
// a.shape[dim] == size (dim < 0 counts from the end); `rule` says where size comes from.
void check_dim(const Arg& a, int32_t dim, int64_t size, const char* rule);
void check_same_shape(const Arg& a, const Arg& b);

// True when a and b describe exactly the same elements (same data, dtype, shape and strides).
bool same_view(const Arg& a, const Arg& b) noexcept;
// Rejects any overlap between the memory spans of `out` and `in` (both present); when
// allow_same_view, an exact alias (same_view) is accepted.
void check_no_overlap(const Arg& out, const Arg& in, bool allow_same_view = false);

// A DLTensor over an Arg's memory with a shape/strides of its own (up to 4 dims), built by the
// reshaping helpers below. Not copyable: the DLTensor points into the object.
class View {
 public:
  View() = default;
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  // NULL for an absent argument.
  const DLTensor* get() const { return present_ ? &dl_ : nullptr; }
  int64_t shape(int32_t i) const { return shape_[i]; }
  int64_t stride(int32_t i) const { return strides_[i]; }

  // Internal: set by the helpers.
  void set(const Arg& a, int32_t ndim, const int64_t* shape, const int64_t* strides);
  // A window at `data` (inside a validated argument on `device`) with a dtype of its own, e.g. a
  // row block of a weight or scratch memory; ndim <= 4.
  void set(char* data, DLDevice device, int32_t dtype_id, int32_t ndim, const int64_t* shape,
           const int64_t* strides);

 private:
  DLTensor dl_{};
  int64_t shape_[4] = {};
  int64_t strides_[4] = {};
  bool present_ = false;
};

// [..., N] as rows [R, N] (R = product of the leading dims, 1 for a 1-D tensor). The leading dims
// must merge into one stride (true for any view that slices only the last dimension); otherwise
// DSK_ERR_INVALID_ARGUMENT naming the argument. An absent Arg gives an absent View.
void as_rows(const Arg& a, View& out);
// [..., M, N] as [R, M, N], merging the dims before the last two the same way.
void as_batches(const Arg& a, View& out);
// The Arg's own shape and strides (ndim <= 4).
void as_is(const Arg& a, View& out);
// Number of rows as_rows would give (product of all but the last dim).
int64_t rows_of(const Arg& a) noexcept;
// Leading dims (all but the last `trailing`) of a and b are equal, else an error naming both.
void check_same_leading(const Arg& a, const Arg& b, int32_t trailing);

// Helpers several ops share (appended with the ops of dsk_ops.h).

// "[d0, d1, ...]" for messages.
std::string shape_text(const int64_t* shape, int32_t ndim);
std::string shape_text(const Arg& a);
// check_float for each present argument, in order.
void check_float(std::initializer_list<const Arg*> args);
// The last dim of `a`, which must have at least one ("{a} is a scalar, expected at least one
// dimension {form}"; form like "[..., N]").
int64_t last_dim(const Arg& a, const char* form);
// `a` has exactly the shape shape[0..ndim), else "{a} has shape [..], expected [..] ({rule})".
void check_shape(const Arg& a, const int64_t* shape, int32_t ndim, const char* rule);
// All dims of `a` merged into one: *size = numel and the single stride (0 when no dim steps).
// DSK_ERR_INVALID_ARGUMENT naming `a` when its dims do not form one stride; no check when empty.
void as_flat(const Arg& a, int64_t* size, int64_t* stride);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_OP_COMMON_H_
