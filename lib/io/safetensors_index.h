// safetensors_index.h - a sharded checkpoint's index (model.safetensors.index.json).
#ifndef DSK_LIB_IO_SAFETENSORS_INDEX_H_
#define DSK_LIB_IO_SAFETENSORS_INDEX_H_

#include <string>
#include <utility>
#include <vector>

namespace dsk {
namespace io {

struct ShardIndex {
  // Tensor name -> shard path (the index's directory joined with the name the index gives),
  // sorted by tensor name.
  std::vector<std::pair<std::string, std::string>> weight_map;
  std::vector<std::string> shards;  // the distinct shard paths, sorted
};

// Reads and validates the index at `path`: a JSON object whose "weight_map" maps tensor names to
// shard file names relative to the index's directory (not absolute, no ".." component). Other
// keys are ignored. Throws DSK_ERR_IO or DSK_ERR_INVALID_ARGUMENT naming `path` and the entry.
ShardIndex read_shard_index(const std::string& path);

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_SAFETENSORS_INDEX_H_
