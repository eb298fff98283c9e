// precision.cpp - the dtype plan of each --dtype (see precision.h).
#include "precision.h"

#include <dsk/dsk.h>

#include <stdexcept>

namespace deepseek {

Precision make_precision(const std::string& name) {
  if (name == "f32") return {name, DSK_DTYPE_F32, DSK_DTYPE_F32, DSK_DTYPE_F16, false, 0};
  if (name == "bf16") return {name, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, false, 0};
  if (name == "fp8") return {name, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, true, 0};
  throw std::runtime_error("--dtype " + name + ": expected f32, bf16 or fp8");
}

}  // namespace deepseek
