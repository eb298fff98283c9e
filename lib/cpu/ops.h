// ops.h - the CPU reference implementations behind the op entries of the backend table
// (lib/core/backend_iface.h states each entry's contract). One file per op family in lib/cpu/.
#ifndef DSK_LIB_CPU_OPS_H_
#define DSK_LIB_CPU_OPS_H_

#include "core/backend_op_decls.h"

namespace dsk {
namespace cpu {

DSK_BACKEND_OP_DECLS

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_OPS_H_
