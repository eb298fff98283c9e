// swiglu.h - libdsk side of dsk_swiglu and dsk_swiglu_fused: validation, normalization to rows,
// dispatch to the backend's swiglu entry.
#ifndef DSK_LIB_OPS_SWIGLU_H_
#define DSK_LIB_OPS_SWIGLU_H_

#include "core/context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

void swiglu(const dsk_context& ctx, const DLTensor* gate, const DLTensor* up, const DLTensor* y);
// gate_up [..., 2I]: gate = [..., :I], up = [..., I:] (two views of one tensor).
void swiglu_fused(const dsk_context& ctx, const DLTensor* gate_up, const DLTensor* y);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_SWIGLU_H_
