// gemm.h - libdsk side of dsk_gemm and dsk_linear: validation, normalization to the backend's
// 3-D strided form (transposes as stride swaps, broadcast batch = stride 0) and dispatch to the
// backend's gemm entry.
#ifndef DSK_LIB_OPS_GEMM_H_
#define DSK_LIB_OPS_GEMM_H_

#include <stdint.h>

#include "dsk/dsk_context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

// D = alpha * op(A) @ op(B) + beta * C; see dsk_ops.h. Throws dsk::Error on invalid arguments or
// a backend failure.
void gemm(dsk_context& ctx, const DLTensor* a, const DLTensor* b, const DLTensor* c,
          const DLTensor* d, int32_t trans_a, int32_t trans_b, float alpha, float beta);

// y = x @ w^T + bias; see dsk_ops.h.
void linear(dsk_context& ctx, const DLTensor* x, const DLTensor* w, const DLTensor* bias,
            const DLTensor* y);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_GEMM_H_
