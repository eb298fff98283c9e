// embedding.h - libdsk side of dsk_embedding: validation, normalization (ids [...] -> [T],
// out [..., D] -> [T, D]) and dispatch to the backend's embedding entry.
#ifndef DSK_LIB_OPS_EMBEDDING_H_
#define DSK_LIB_OPS_EMBEDDING_H_

#include "dsk/dsk_context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

// out[..., :] = table[ids[...], :]; see dsk_ops.h. Throws dsk::Error on invalid arguments (ids out
// of range included) or a backend failure.
void embedding(dsk_context& ctx, const DLTensor* table, const DLTensor* ids, const DLTensor* out);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_EMBEDDING_H_
