#include "core/dlpack.h"

#include <memory>

#include "core/error.h"
#include "core/layout.h"

namespace dsk {
namespace {

// One allocation holds the managed struct and the shape/strides it points to, so the deleter
// frees everything at once. `owner` is a reference on the exported tensor.
template <typename Managed>
struct ExportHolder {
  Managed managed{};
  int64_t shape[DSK_MAX_NDIM] = {};
  int64_t strides[DSK_MAX_NDIM] = {};
  dsk_tensor* owner = nullptr;
};

void drop_reference(dsk_tensor* t) {
  if (t != nullptr && t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t;
}

template <typename Managed>
ExportHolder<Managed>* make_holder(dsk_tensor& t) {
  auto* h = new ExportHolder<Managed>();
  for (int32_t i = 0; i < t.dl.ndim; ++i) {
    h->shape[i] = t.shape[i];
    h->strides[i] = t.strides[i];
  }
  h->managed.dl_tensor = t.dl;
  h->managed.dl_tensor.shape = h->shape;
  h->managed.dl_tensor.strides = h->strides;
  h->managed.manager_ctx = h;
  t.refs.fetch_add(1, std::memory_order_relaxed);
  h->owner = &t;
  return h;
}

template <typename Managed>
void delete_export(Managed* self) {
  if (self == nullptr) return;
  auto* h = static_cast<ExportHolder<Managed>*>(self->manager_ctx);
  drop_reference(h->owner);
  delete h;
}

template <typename Managed>
dsk_tensor* import_managed(Managed* m, bool read_only) {
  Layout l = check_tensor(&m->dl_tensor, "managed->dl_tensor", Access::kRead);
  auto storage = std::make_shared<Storage>();
  // The storage begins at the first element; its size is the span the layout addresses, which is
  // what views of the import may reach.
  storage->data = l.data;
  storage->bytes = static_cast<size_t>(l.span) * l.elem_size;
  storage->device = l.device;
  dsk_tensor* t =
      make_tensor(storage, l.data, l.ndim, l.shape, l.strides, m->dl_tensor.dtype, read_only);
  // Only now, when nothing can fail any more, does dsk take ownership.
  storage->release = [m] {
    if (m->deleter != nullptr) m->deleter(m);
  };
  return t;
}

}  // namespace

DLManagedTensorVersioned* export_versioned(dsk_tensor& t) {
  auto* h = make_holder<DLManagedTensorVersioned>(t);
  h->managed.version.major = DLPACK_MAJOR_VERSION;
  h->managed.version.minor = DLPACK_MINOR_VERSION;
  h->managed.flags = t.read_only ? DLPACK_FLAG_BITMASK_READ_ONLY : 0;
  h->managed.deleter = delete_export<DLManagedTensorVersioned>;
  return &h->managed;
}

DLManagedTensor* export_legacy(dsk_tensor& t) {
  // The legacy struct has no flags: a consumer would take the memory as writable.
  if (t.read_only) {
    fail(DSK_ERR_UNSUPPORTED,
         "tensor is read-only and the legacy DLManagedTensor cannot say so, expected "
         "dsk_tensor_to_dlpack_versioned");
  }
  auto* h = make_holder<DLManagedTensor>(t);
  h->managed.deleter = delete_export<DLManagedTensor>;
  return &h->managed;
}

dsk_tensor* import_versioned(DLManagedTensorVersioned* m) {
  check_arg(m != nullptr, "managed is NULL, expected a DLManagedTensorVersioned");
  if (m->version.major != DLPACK_MAJOR_VERSION) {
    fail(DSK_ERR_VERSION_MISMATCH, "managed->version.major = {}, expected {}", m->version.major,
         DLPACK_MAJOR_VERSION);
  }
  return import_managed(m, (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
}

dsk_tensor* import_legacy(DLManagedTensor* m) {
  check_arg(m != nullptr, "managed is NULL, expected a DLManagedTensor");
  return import_managed(m, false);
}

}  // namespace dsk
