// softmax.h - libdsk side of dsk_softmax and dsk_log_softmax: validation, normalization to rows
// [R, N] and dispatch to the backend's softmax entry.
#ifndef DSK_LIB_OPS_SOFTMAX_H_
#define DSK_LIB_OPS_SOFTMAX_H_

#include "dsk/dsk_context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

// y = softmax(x / temperature) (log_softmax when is_log) over the last dimension; see dsk_ops.h.
// Throws dsk::Error on invalid arguments or a backend failure.
void softmax(dsk_context& ctx, const DLTensor* x, const DLTensor* y, float temperature,
             bool is_log);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_SOFTMAX_H_
