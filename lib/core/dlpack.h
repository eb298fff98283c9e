// dlpack.h - DLPack export and import of dsk tensors (ownership rules in dsk_tensor.h).
#ifndef DSK_LIB_CORE_DLPACK_H_
#define DSK_LIB_CORE_DLPACK_H_

#include "core/tensor.h"

namespace dsk {

DLManagedTensorVersioned* export_versioned(dsk_tensor& t);
DLManagedTensor* export_legacy(dsk_tensor& t);
dsk_tensor* import_versioned(DLManagedTensorVersioned* m);
dsk_tensor* import_legacy(DLManagedTensor* m);

}  // namespace dsk

#endif  // DSK_LIB_CORE_DLPACK_H_
