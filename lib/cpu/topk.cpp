// CPU reference of the topk entry: the k largest of each row [R, N], descending.
//
// Order (a total order, so the result is unique): values compared as f32 after conversion, NaN
// above every number (NaNs among themselves by index), -0.0 equal to +0.0, and equal values by the
// lower index first. Implemented with an ordered 32-bit key per value (order_key below, the same
// mapping the CUDA kernels use) compared descending, then the index ascending.
#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/convert.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

// Maps f32 to an unsigned key whose unsigned order is the selection order of values: every NaN
// becomes the largest key, -0.0 the key of +0.0, negatives are bit-flipped below the positives.
inline uint32_t order_key(float v) {
  uint32_t b = f32_bits(v);
  const uint32_t mag = b & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return 0xFFFFFFFFu;
  if (mag == 0) b = 0;
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

struct Entry {
  uint32_t key;
  int64_t index;
};

// a comes before b: larger key, or the same key and the lower index.
inline bool before(const Entry& a, const Entry& b) {
  return a.key != b.key ? a.key > b.key : a.index < b.index;
}

inline void store_index(int32_t id, int64_t index, char* p) {
  if (id == DSK_DTYPE_INT32) {
    const auto v = static_cast<int32_t>(index);
    std::memcpy(p, &v, sizeof(v));
  } else {
    std::memcpy(p, &index, sizeof(index));
  }
}

}  // namespace

dsk_status topk(const dsk_exec* /*ex*/, const DLTensor* x_t, int32_t k, const DLTensor* values_t,
                const DLTensor* indices_t) noexcept {
  return guarded([&] {
    const Layout x = check_tensor(x_t, "x", Access::kRead);
    const Layout ix = check_tensor(indices_t, "indices", Access::kRead);
    Layout vals;
    const bool has_values = values_t != nullptr;
    if (has_values) vals = check_tensor(values_t, "values", Access::kRead);
    const int64_t rows = x.shape[0];
    const int64_t n = x.shape[1];
    check_arg(
        x.ndim == 2 && ix.ndim == 2 && ix.shape[0] == rows && ix.shape[1] == k && k >= 1 && k <= n,
        "topk: expected x [R, N], indices [R, k] with 1 <= k <= N");
    check_arg(!has_values || (vals.ndim == 2 && vals.shape[0] == rows && vals.shape[1] == k),
              "topk: expected values [R, k]");
    if (rows == 0) return;
    const auto xe = static_cast<int64_t>(x.elem_size);
    const auto ie = static_cast<int64_t>(ix.elem_size);
    const auto ve = static_cast<int64_t>(vals.elem_size);
    std::vector<Entry> entries(k == 1 ? 0 : static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
      const char* xr = x.data + r * x.strides[0] * xe;
      const int64_t xs = x.strides[1] * xe;
      auto value_at = [&](int64_t j) { return load_as_f32(x.dtype_id, xr + j * xs); };
      char* ir = ix.data + r * ix.strides[0] * ie;
      char* vr = has_values ? vals.data + r * vals.strides[0] * ve : nullptr;
      auto emit = [&](int64_t i, int64_t index) {
        store_index(ix.dtype_id, index, ir + i * ix.strides[1] * ie);
        if (has_values)
          store_from_f32(vals.dtype_id, value_at(index), vr + i * vals.strides[1] * ve);
      };
      if (k == 1) {
        // argmax: one scan keeping the first of the largest keys.
        Entry best{order_key(value_at(0)), 0};
        for (int64_t j = 1; j < n; ++j) {
          const Entry e{order_key(value_at(j)), j};
          if (before(e, best)) best = e;
        }
        emit(0, best.index);
        continue;
      }
      Entry* e = entries.data();
      for (int64_t j = 0; j < n; ++j) e[j] = Entry{order_key(value_at(j)), j};
      if (k < n) {
        std::nth_element(e, e + k - 1, e + n, before);
        std::sort(e, e + k - 1, before);
      } else {
        std::sort(e, e + n, before);
      }
      for (int64_t i = 0; i < k; ++i) emit(i, e[i].index);
    }
  });
}

}  // namespace cpu
}  // namespace dsk
