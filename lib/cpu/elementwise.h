// elementwise.h - CPU reference implementations of the tensor plumbing ops (copy, fill, random).
// Arguments are validated by the caller (lib/core); these only compute.
#ifndef DSK_LIB_CPU_ELEMENTWISE_H_
#define DSK_LIB_CPU_ELEMENTWISE_H_

#include "core/layout.h"
#include "dsk/dsk_tensor.h"

namespace dsk {
namespace cpu {

void copy(const Layout& src, const Layout& dst);
void fill(const Layout& dst, double value);
void fill_random(const Layout& dst, const dsk_random_params& params);

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_ELEMENTWISE_H_
