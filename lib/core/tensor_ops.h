// tensor_ops.h - tensor creation, views, copies and fills behind the C API (validated here).
#ifndef DSK_LIB_CORE_TENSOR_OPS_H_
#define DSK_LIB_CORE_TENSOR_OPS_H_

#include "core/context.h"
#include "core/tensor.h"

namespace dsk {

dsk_tensor* tensor_create(dsk_context& ctx, int32_t ndim, const int64_t* shape, DLDataType dtype);
dsk_tensor* tensor_view(dsk_tensor& base, int32_t ndim, const int64_t* shape,
                        const int64_t* strides, int64_t element_offset);
void copy(dsk_context& ctx, const DLTensor* src, const DLTensor* dst);
dsk_tensor* tensor_clone(dsk_context& ctx, const DLTensor* src, DLDataType dtype);
void fill(dsk_context& ctx, const DLTensor* dst, double value);
void fill_random(dsk_context& ctx, const DLTensor* dst, const dsk_random_params& params);

}  // namespace dsk

#endif  // DSK_LIB_CORE_TENSOR_OPS_H_
