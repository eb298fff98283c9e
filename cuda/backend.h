// backend.h - the functions behind the CUDA module's dsk_backend_iface table (module.cpp).
//
// Each one follows the contract written next to its field in lib/core/backend_iface.h: arguments
// were validated by libdsk, `device` is a valid CUDA ordinal, `stream` is a cudaStream_t or NULL
// (legacy default stream), work is queued on that stream, and a failure leaves a message for
// last_error(). All are callable from any thread and make `device` current only while they run.
#ifndef DSK_CUDA_BACKEND_H_
#define DSK_CUDA_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_status.h"
#include "dsk/dsk_tensor.h"

namespace dsk {
namespace cuda {

// memory.cpp
dsk_status malloc_device(int32_t device, size_t bytes, void* stream, void** ptr) noexcept;
void free_device(int32_t device, void* ptr, void* stream) noexcept;
dsk_status memcpy_device(int32_t device, void* dst, const void* src, size_t bytes,
                         int32_t direction, void* stream) noexcept;
dsk_status synchronize(int32_t device, void* stream) noexcept;

// ops/copy.cu, ops/fill.cu, ops/fill_random.cu
dsk_status copy(int32_t device, const DLTensor* src, const DLTensor* dst, void* stream) noexcept;
dsk_status fill(int32_t device, const DLTensor* dst, double value, void* stream) noexcept;
dsk_status fill_random(int32_t device, const DLTensor* dst, const dsk_random_params* params,
                       void* stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_BACKEND_H_
