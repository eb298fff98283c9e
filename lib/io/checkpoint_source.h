// checkpoint_source.h - what a path given to dsk_safetensors_open stands for.
#ifndef DSK_LIB_IO_CHECKPOINT_SOURCE_H_
#define DSK_LIB_IO_CHECKPOINT_SOURCE_H_

#include <string>
#include <vector>

namespace dsk {
namespace io {

struct CheckpointSource {
  std::string index;               // a shard index to read, or empty
  std::vector<std::string> files;  // otherwise these .safetensors files, sorted
};

// A ".json" file is an index and any other file a .safetensors file. A directory stands for its
// model.safetensors.index.json, else its only *.safetensors.index.json, else all its *.safetensors
// files. Throws DSK_ERR_IO (unreadable directory), DSK_ERR_INVALID_ARGUMENT (several indexes) or
// DSK_ERR_NOT_FOUND (nothing to open in the directory). A path that does not exist is left to
// the caller's open, which names the system's reason.
CheckpointSource resolve_checkpoint(const std::string& path);

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_CHECKPOINT_SOURCE_H_
