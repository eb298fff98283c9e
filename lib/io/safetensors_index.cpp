#include "io/safetensors_index.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "dsk/dsk_safetensors.h"
#include "io/json_text.h"
#include "io/mapped_file.h"

namespace dsk {
namespace io {

namespace {

namespace fs = std::filesystem;

// Shards live next to the index: an absolute name or a ".." would let an index downloaded with a
// checkpoint make dsk open any file on the machine.
void check_shard_name(const std::string& path, const std::string& tensor,
                      const std::string& shard) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute() || p.has_root_path() ||
                 shard.find('\0') != std::string::npos;
  for (const fs::path& part : p) escapes = escapes || part == "..";
  if (escapes) {
    fail(DSK_ERR_INVALID_ARGUMENT,
         "{}: weight_map['{}'] is '{}', expected a file name relative to the index's directory "
         "(not absolute, no '..')",
         path, clip(tensor), clip(shard));
  }
}

}  // namespace

ShardIndex read_shard_index(const std::string& path) {
  const auto map = MappedFile::open(path);
  // An index lists one line per tensor: the header limit is generous for it too.
  if (map->size() > DSK_SAFETENSORS_MAX_HEADER_BYTES) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: the index is {} bytes, more than the limit of {}", path,
         map->size(), DSK_SAFETENSORS_MAX_HEADER_BYTES);
  }
  const nlohmann::json root = parse_json_object(map->data(), map->size(), path);
  auto wm = root.find("weight_map");
  if (wm == root.end()) {
    fail(DSK_ERR_INVALID_ARGUMENT,
         "{}: weight_map is missing, expected an index such as "
         "model.safetensors.index.json",
         path);
  }
  if (!wm->is_object()) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: weight_map is {}, expected an object", path,
         json_kind(*wm));
  }
  const fs::path dir = fs::path(path).parent_path();
  ShardIndex index;
  index.weight_map.reserve(wm->size());
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      fail(DSK_ERR_INVALID_ARGUMENT, "{}: weight_map['{}'] is {}, expected a file name", path,
           clip(tensor), json_kind(shard));
    }
    const auto& name = shard.get_ref<const std::string&>();
    check_shard_name(path, tensor, name);
    index.weight_map.emplace_back(tensor, (dir / name).lexically_normal().string());
    index.shards.push_back(index.weight_map.back().second);
  }
  std::sort(index.shards.begin(), index.shards.end());
  index.shards.erase(std::unique(index.shards.begin(), index.shards.end()), index.shards.end());
  return index;
}

}  // namespace io
}  // namespace dsk
