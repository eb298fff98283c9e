// safetensors_file.h - one .safetensors file: its mapping and its validated header.
#ifndef DSK_LIB_IO_SAFETENSORS_FILE_H_
#define DSK_LIB_IO_SAFETENSORS_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.h"
#include "io/safetensors_dtype.h"

namespace dsk {
namespace io {

struct TensorRecord {
  std::string name;
  const SafetensorsDtype* dtype = nullptr;
  // Never empty-allocated: a 0-d tensor still gets capacity, so shape.data() is a valid pointer
  // for DLTensor consumers that read it regardless of ndim.
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // [begin, end) in the data section
  uint64_t end = 0;
};

struct SafetensorsFile {
  std::shared_ptr<const MappedFile> map;
  uint64_t data_offset = 0;           // where the data section starts: 8 + header length
  std::vector<TensorRecord> tensors;  // sorted by name
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", sorted by key

  // The record named `name`, nullptr when the file has none.
  const TensorRecord* find(const std::string& name) const noexcept;
};

// Maps `path` and validates its header as dsk_safetensors.h describes. Throws DSK_ERR_IO (the
// file cannot be read) or DSK_ERR_INVALID_ARGUMENT (malformed: the message names `path`, the
// tensor and the field).
SafetensorsFile read_safetensors_file(const std::string& path);

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_SAFETENSORS_FILE_H_
