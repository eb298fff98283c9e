// safetensors.h - the definition behind the opaque dsk_safetensors handle: the mapped files of one
// checkpoint and its tensors sorted by name, all validated when opened and immutable afterwards.
#ifndef DSK_LIB_IO_SAFETENSORS_H_
#define DSK_LIB_IO_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_safetensors.h"
#include "io/safetensors_file.h"

struct dsk_safetensors {
  struct Entry {
    const dsk::io::SafetensorsFile* file;
    const dsk::io::TensorRecord* record;
  };
  std::vector<dsk::io::SafetensorsFile> files;                // sorted by path
  std::vector<Entry> tensors;                                 // sorted by name
  std::vector<std::pair<std::string, std::string>> metadata;  // merged, sorted by key
};

namespace dsk {
namespace io {

// Opens `path` as dsk_safetensors_open describes; throws dsk::Error.
dsk_safetensors* open_safetensors(const std::string& path);

// The position of tensor `name` in st.tensors; throws DSK_ERR_NOT_FOUND naming it.
int64_t find_tensor(const dsk_safetensors& st, const std::string& name);

// The CPU view of a tensor; throws DSK_ERR_UNSUPPORTED for a type a DLTensor cannot describe.
DLTensor tensor_view(const dsk_safetensors::Entry& e);

// The info struct of a tensor (full size; the C layer copies what the caller's struct holds).
dsk_safetensors_info tensor_info(const dsk_safetensors::Entry& e);

// An owning read-only DLPack export that keeps the tensor's file mapped.
DLManagedTensorVersioned* export_tensor(const dsk_safetensors::Entry& e);

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_SAFETENSORS_H_
