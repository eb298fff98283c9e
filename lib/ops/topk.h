// topk.h - libdsk side of dsk_topk and dsk_argmax: validation, normalization to rows [R, N] and
// dispatch to the backend's topk entry (argmax is top-k with k = 1 and no values).
#ifndef DSK_LIB_OPS_TOPK_H_
#define DSK_LIB_OPS_TOPK_H_

#include <stdint.h>

#include "dsk/dsk_context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

// The k largest of each row of x [..., N] into indices [..., k] (and values [..., k] or NULL);
// see dsk_ops.h. Throws dsk::Error on invalid arguments or a backend failure.
void topk(dsk_context& ctx, const DLTensor* x, int32_t k, const DLTensor* values,
          const DLTensor* indices);

// The index of the largest of each row of x [..., N] into indices [...].
void argmax(dsk_context& ctx, const DLTensor* x, const DLTensor* indices);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_TOPK_H_
