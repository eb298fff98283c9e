#include "ops/embedding.h"

#include "ops/op_common.h"

namespace dsk {
namespace ops {

void embedding(dsk_context& ctx, const DLTensor* table_t, const DLTensor* ids_t,
               const DLTensor* out_t) {
  const Arg table = input(table_t, "table");
  const Arg ids = input(ids_t, "ids");
  const Arg out = output(out_t, "out");
  check_float(table);
  check_ndim(table, 2);
  check_index(ids);
  check_float(out);
  check_arg(ids.l.ndim < DSK_MAX_NDIM, "ids has {} dimensions, expected at most {} (out adds one)",
            ids.l.ndim, DSK_MAX_NDIM - 1);
  const int64_t d = table.l.shape[1];
  int64_t want[DSK_MAX_NDIM] = {};
  for (int32_t i = 0; i < ids.l.ndim; ++i) want[i] = ids.l.shape[i];
  want[ids.l.ndim] = d;
  check_shape(out, want, ids.l.ndim + 1, "the shape of ids, then table.shape[1]");
  check_no_overlap(out, table);
  check_no_overlap(out, ids);
  const Target t = target(ctx, {&table, &ids, &out});
  // ids [...] as [T]: all of its dims merge into one stride (row-major order, as out's rows).
  int64_t count = 0;
  int64_t stride = 0;
  as_flat(ids, &count, &stride);
  const int64_t ids_shape[1] = {count};
  const int64_t ids_strides[1] = {stride};
  View iv;
  iv.set(ids, 1, ids_shape, ids_strides);
  View tv;
  View ov;
  as_is(table, tv);
  as_rows(out, ov);
  if (count == 0) return;
  auto fn = entry(t, t.backend->iface->embedding, "embedding");
  call(t, fn(&t.exec, tv.get(), iv.get(), ov.get()), "embedding");
}

}  // namespace ops
}  // namespace dsk
