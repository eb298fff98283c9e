// safetensors_dtype.h - the dtype strings of the safetensors format and their DLPack and dsk types.
#ifndef DSK_LIB_IO_SAFETENSORS_DTYPE_H_
#define DSK_LIB_IO_SAFETENSORS_DTYPE_H_

#include <cstdint>
#include <string>

#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace io {

struct SafetensorsDtype {
  const char* name;  // as written in headers: "BF16", "F8_E4M3", ...
  uint32_t bits;     // per element; F4 and F6 pack their elements across byte boundaries
  DLDataType dl;     // bits == 0 when no DLTensor can describe the type (the packed ones)
  int32_t dsk_id;    // DSK_DTYPE_*, 0 when dsk has no such type
};

// The entry for a header's dtype string, nullptr for a string the format does not define.
const SafetensorsDtype* find_safetensors_dtype(const std::string& name) noexcept;

// Every dtype string the format defines, comma-separated, for messages.
std::string safetensors_dtype_names();

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_SAFETENSORS_DTYPE_H_
