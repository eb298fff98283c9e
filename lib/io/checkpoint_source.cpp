#include "io/checkpoint_source.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/mapped_file.h"

namespace dsk {
namespace io {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

CheckpointSource resolve_directory(const std::string& path) {
  const fs::path dir(path);
  std::error_code ec;
  const fs::path preferred = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(preferred, ec)) return {preferred.string(), {}};
  std::vector<std::string> indexes;
  std::vector<std::string> files;
  fs::directory_iterator it(dir, ec);
  if (ec) fail_io(path, "list the directory", ec.value());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    // is_regular_file follows symbolic links, which is how the Hugging Face cache lays files out.
    std::error_code entry_ec;
    if (!fs::is_regular_file(it->path(), entry_ec)) continue;
    const std::string name = it->path().filename().string();
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(it->path().string());
    if (ends_with(name, ".safetensors")) files.push_back(it->path().string());
  }
  if (ec) fail_io(path, "list the directory", ec.value());
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());
  if (indexes.size() == 1) return {indexes[0], {}};
  if (indexes.size() > 1) {
    std::string names;
    for (const std::string& i : indexes) names += (names.empty() ? "" : ", ") + i;
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: the directory holds several shard indexes ({}); open one",
         path, names);
  }
  if (files.empty()) {
    fail(DSK_ERR_NOT_FOUND, "{}: the directory holds no *.safetensors file", path);
  }
  return {std::string(), std::move(files)};
}

}  // namespace

CheckpointSource resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return resolve_directory(path);
  if (ends_with(path, ".json")) return {path, {}};
  return {std::string(), {path}};
}

}  // namespace io
}  // namespace dsk
