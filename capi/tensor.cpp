// Tensors: create, reference counting, accessors, views, copies, fills, DLPack.
#include "capi/guard.h"
#include "core/context.h"
#include "core/dlpack.h"
#include "core/layout.h"
#include "core/tensor_ops.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_tensor.h"

namespace {

void check_out(void* out) {
  dsk::check_arg(out != nullptr, "out is NULL, expected a pointer to write the result to");
}

void check_tensor_handle(const dsk_tensor* t, const char* name) {
  dsk::check_arg(t != nullptr, "{} is NULL, expected a dsk_tensor", name);
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_tensor_create(dsk_context* ctx, int32_t ndim, const int64_t* shape,
                                     DLDataType dtype, dsk_tensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    dsk::check_context(ctx);
    *out = dsk::tensor_create(*ctx, ndim, shape, dtype);
  });
}

DSK_API void dsk_tensor_retain(dsk_tensor* tensor) {
  if (tensor != nullptr) tensor->refs.fetch_add(1, std::memory_order_relaxed);
}

DSK_API void dsk_tensor_release(dsk_tensor* tensor) {
  if (tensor != nullptr && tensor->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete tensor;
  }
}

DSK_API const DLTensor* dsk_tensor_dltensor(const dsk_tensor* tensor) {
  return tensor != nullptr ? &tensor->dl : nullptr;
}

DSK_API int64_t dsk_tensor_numel(const dsk_tensor* tensor) {
  if (tensor == nullptr) return 0;
  int64_t n = 1;
  for (int32_t i = 0; i < tensor->dl.ndim; ++i) n *= tensor->shape[i];
  return n;
}

DSK_API int64_t dsk_tensor_nbytes(const dsk_tensor* tensor) {
  return dsk_tensor_numel(tensor) *
         static_cast<int64_t>(dsk_dtype_size(tensor != nullptr ? tensor->dl.dtype : DLDataType{}));
}

DSK_API int32_t dsk_tensor_is_contiguous(const dsk_tensor* tensor) {
  if (tensor == nullptr) return 0;
  return dsk::is_row_major(tensor->dl.ndim, tensor->shape, tensor->strides) ? 1 : 0;
}

DSK_API int32_t dsk_tensor_is_read_only(const dsk_tensor* tensor) {
  return tensor != nullptr && tensor->read_only ? 1 : 0;
}

DSK_API dsk_status dsk_tensor_view(dsk_tensor* base, int32_t ndim, const int64_t* shape,
                                   const int64_t* strides, int64_t element_offset,
                                   dsk_tensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    check_tensor_handle(base, "base");
    *out = dsk::tensor_view(*base, ndim, shape, strides, element_offset);
  });
}

DSK_API dsk_status dsk_copy(dsk_context* ctx, const DLTensor* src, const DLTensor* dst) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::copy(*ctx, src, dst);
  });
}

DSK_API dsk_status dsk_tensor_clone(dsk_context* ctx, const DLTensor* src, DLDataType dtype,
                                    dsk_tensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    dsk::check_context(ctx);
    *out = dsk::tensor_clone(*ctx, src, dtype);
  });
}

DSK_API dsk_status dsk_fill(dsk_context* ctx, const DLTensor* dst, double value) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::fill(*ctx, dst, value);
  });
}

DSK_API dsk_status dsk_random_params_init(dsk_random_params* params) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(params != nullptr, "params is NULL, expected a dsk_random_params");
    *params = dsk_random_params{};
    params->struct_size = sizeof(*params);
    params->distribution = DSK_RANDOM_UNIFORM;
    params->a = 0.0;
    params->b = 1.0;
  });
}

DSK_API dsk_status dsk_fill_random(dsk_context* ctx, const DLTensor* dst,
                                   const dsk_random_params* params) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk_random_params p{};
    dsk_random_params_init(&p);
    dsk::read_versioned(params, &p, sizeof(dsk_random_params), "params");
    dsk::fill_random(*ctx, dst, p);
  });
}

DSK_API dsk_status dsk_tensor_to_dlpack_versioned(dsk_tensor* tensor,
                                                  DLManagedTensorVersioned** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    check_tensor_handle(tensor, "tensor");
    *out = dsk::export_versioned(*tensor);
  });
}

DSK_API dsk_status dsk_tensor_to_dlpack(dsk_tensor* tensor, DLManagedTensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    check_tensor_handle(tensor, "tensor");
    *out = dsk::export_legacy(*tensor);
  });
}

DSK_API dsk_status dsk_tensor_from_dlpack_versioned(DLManagedTensorVersioned* managed,
                                                    dsk_tensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    *out = dsk::import_versioned(managed);
  });
}

DSK_API dsk_status dsk_tensor_from_dlpack(DLManagedTensor* managed, dsk_tensor** out) {
  return dsk::capi_call(__func__, [&] {
    check_out(out);
    *out = nullptr;
    *out = dsk::import_legacy(managed);
  });
}

DSK_API dsk_status dsk_dltensor_validate(const DLTensor* tensor, const char* name) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_tensor(tensor, name != nullptr ? name : "tensor", dsk::Access::kRead);
  });
}

}  // extern "C"
