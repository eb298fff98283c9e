// CPU reference of the embedding entry: out [T, D] = table [V, D] rows at ids [T].
//
// Every id is checked before anything is written, so a bad id leaves out untouched. Rows are
// copied with the shared conversion runs (lib/common/convert.h rules; a plain copy when the dtypes
// are equal and both rows are contiguous).
#include <stdint.h>

#include <cstring>

#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/convert_run.h"
#include "cpu/index_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
dsk_status embedding(const dsk_exec* /*ex*/, const DLTensor* table_t, const DLTensor* ids_t,
                     const DLTensor* out_t) noexcept {
  return guarded([&] {
    const Layout table = check_tensor(table_t, "table", Access::kRead);
    const Layout ids = check_tensor(ids_t, "ids", Access::kRead);
    const Layout out = check_tensor(out_t, "out", Access::kWrite);
    check_arg(table.ndim == 2 && ids.ndim == 1 && out.ndim == 2 && out.shape[0] == ids.shape[0] &&
                  out.shape[1] == table.shape[1],
              "embedding: expected table [V, D], ids [T], out [T, D]");
    const int64_t v = table.shape[0];
    const int64_t d = table.shape[1];
    const int64_t count = ids.shape[0];
    const auto id_step = ids.strides[0] * static_cast<int64_t>(ids.elem_size);
    for (int64_t t = 0; t < count; ++t) {
      const int64_t id = load_index(ids.dtype_id, ids.data + t * id_step);
      check_arg(id >= 0 && id < v,
                "ids[{}] = {} (flat index in row-major order), expected an id in [0, {}) "
                "(table.shape[0])",
                t, id, v);
    }
    if (d == 0) return;
    const auto te = static_cast<int64_t>(table.elem_size);
    const auto oe = static_cast<int64_t>(out.elem_size);
    const bool plain =
        table.dtype_id == out.dtype_id && table.strides[1] == 1 && out.strides[1] == 1;
    const ConvertRun convert = convert_run(table.dtype_id, out.dtype_id);
    // Rows are independent: split over threads (cpu/parallel.h), which changes no result.
    parallel_for(count, min_rows_per_thread(d), [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t id = load_index(ids.dtype_id, ids.data + t * id_step);
        const char* src = table.data + id * table.strides[0] * te;
        char* dst = out.data + t * out.strides[0] * oe;
        if (plain) {
          std::memcpy(dst, src, static_cast<size_t>(d * te));
        } else {
          convert(src, table.strides[1] * te, dst, out.strides[1] * oe, d);
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
