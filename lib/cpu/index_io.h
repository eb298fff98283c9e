// index_io.h - reading int32/int64 index tensors (ids, positions) element by element on the CPU.
#ifndef DSK_LIB_CPU_INDEX_IO_H_
#define DSK_LIB_CPU_INDEX_IO_H_

#include <stdint.h>

#include <cstring>

#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {

// The index at p, of dtype DSK_DTYPE_INT32 or DSK_DTYPE_INT64 (p may be unaligned).
inline int64_t load_index(int32_t dtype_id, const char* p) {
  if (dtype_id == DSK_DTYPE_INT32) {
    int32_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  int64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_INDEX_IO_H_
