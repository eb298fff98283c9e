// convert_run.h - converting copies of one strided row of elements, specialized per dtype pair.
//
// convert_element() switches on both dtypes for every element; instantiating it with constant
// dtype ids lets the compiler fold both switches away, which makes the CPU copy several times
// faster without a second copy of the conversion rules.
#ifndef DSK_LIB_CPU_CONVERT_RUN_H_
#define DSK_LIB_CPU_CONVERT_RUN_H_

#include <stdint.h>

namespace dsk {
namespace cpu {

// Converts n elements from src (stepping src_step bytes) to dst (stepping dst_step bytes).
using ConvertRun = void (*)(const char* src, int64_t src_step, char* dst, int64_t dst_step,
                            int64_t n);

// The run for a pair of valid DSK_DTYPE_* ids.
ConvertRun convert_run(int32_t src_id, int32_t dst_id) noexcept;

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_CONVERT_RUN_H_
