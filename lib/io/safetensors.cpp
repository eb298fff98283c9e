#include "io/safetensors.h"

#include <algorithm>
#include <map>
#include <memory>

#include "core/error.h"
#include "io/checkpoint_source.h"
#include "io/json_text.h"
#include "io/safetensors_index.h"

namespace dsk {
namespace io {

namespace {

// Reads every file; errors in a shard name the index that pointed there.
std::vector<SafetensorsFile> read_files(const std::vector<std::string>& paths,
                                        const std::string& index) {
  std::vector<SafetensorsFile> files;
  files.reserve(paths.size());
  for (const std::string& p : paths) {
    try {
      files.push_back(read_safetensors_file(p));
    } catch (const Error& e) {
      if (index.empty()) throw;
      throw Error(e.status(), fmt::format("{} (a shard named by {})", e.what(), index));
    }
  }
  return files;
}

// `files` were read in the order of index.shards.
void check_weight_map(const std::string& index_path, const ShardIndex& index,
                      const std::vector<SafetensorsFile>& files) {
  for (const auto& [tensor, shard] : index.weight_map) {
    const auto it = std::lower_bound(index.shards.begin(), index.shards.end(), shard);
    if (files[static_cast<size_t>(it - index.shards.begin())].find(tensor) == nullptr) {
      fail(DSK_ERR_INVALID_ARGUMENT,
           "{}: weight_map puts tensor '{}' in {}, which does not hold it", index_path,
           clip(tensor), shard);
    }
  }
}

void collect_tensors(dsk_safetensors& st) {
  size_t n = 0;
  for (const SafetensorsFile& f : st.files) n += f.tensors.size();
  st.tensors.reserve(n);
  for (const SafetensorsFile& f : st.files) {
    for (const TensorRecord& t : f.tensors) st.tensors.push_back({&f, &t});
  }
  std::sort(st.tensors.begin(), st.tensors.end(),
            [](const dsk_safetensors::Entry& a, const dsk_safetensors::Entry& b) {
              return a.record->name < b.record->name;
            });
  // Names are unique within a file (the JSON reader refuses repeated keys), so a repeat here
  // comes from two files.
  for (size_t i = 1; i < st.tensors.size(); ++i) {
    const dsk_safetensors::Entry& a = st.tensors[i - 1];
    const dsk_safetensors::Entry& b = st.tensors[i];
    if (a.record->name == b.record->name) {
      fail(DSK_ERR_INVALID_ARGUMENT, "tensor '{}' is in both {} and {}", clip(a.record->name),
           a.file->map->path(), b.file->map->path());
    }
  }
}

void merge_metadata(dsk_safetensors& st) {
  std::map<std::string, std::string> merged;
  for (const SafetensorsFile& f : st.files) {
    for (const auto& kv : f.metadata) merged.insert(kv);  // the first file's value stays
  }
  st.metadata.assign(merged.begin(), merged.end());
}

struct Export {
  DLManagedTensorVersioned managed{};
  std::shared_ptr<const MappedFile> map;  // keeps the data mapped after the handle closes
  std::vector<int64_t> shape;
};

void delete_export(DLManagedTensorVersioned* self) {
  if (self != nullptr) delete static_cast<Export*>(self->manager_ctx);
}

}  // namespace

dsk_safetensors* open_safetensors(const std::string& path) {
  const CheckpointSource source = resolve_checkpoint(path);
  auto st = std::make_unique<dsk_safetensors>();
  if (source.index.empty()) {
    st->files = read_files(source.files, std::string());
  } else {
    const ShardIndex index = read_shard_index(source.index);
    st->files = read_files(index.shards, source.index);
    check_weight_map(source.index, index, st->files);
  }
  collect_tensors(*st);
  merge_metadata(*st);
  return st.release();
}

int64_t find_tensor(const dsk_safetensors& st, const std::string& name) {
  const auto it = std::lower_bound(
      st.tensors.begin(), st.tensors.end(), name,
      [](const dsk_safetensors::Entry& e, const std::string& n) { return e.record->name < n; });
  if (it == st.tensors.end() || it->record->name != name) {
    fail(DSK_ERR_NOT_FOUND, "no tensor named '{}' (the checkpoint holds {})", clip(name),
         st.tensors.size());
  }
  return it - st.tensors.begin();
}

DLTensor tensor_view(const dsk_safetensors::Entry& e) {
  const TensorRecord& t = *e.record;
  if (t.dtype->dl.bits == 0) {
    fail(DSK_ERR_UNSUPPORTED,
         "tensor '{}' has dtype {}, packed sub-byte elements that a DLTensor cannot describe "
         "(dsk_safetensors_tensor_info gives its bytes)",
         clip(t.name), t.dtype->name);
  }
  DLTensor v{};
  // The mapping is PROT_READ; DLTensor has no const data pointer (dsk_safetensors.h says so).
  v.data = const_cast<unsigned char*>(e.file->map->data() + e.file->data_offset + t.begin);
  v.device = DLDevice{kDLCPU, 0};
  v.ndim = static_cast<int32_t>(t.shape.size());
  v.dtype = t.dtype->dl;
  v.shape = const_cast<int64_t*>(t.shape.data());
  v.strides = nullptr;
  v.byte_offset = 0;
  return v;
}

dsk_safetensors_info tensor_info(const dsk_safetensors::Entry& e) {
  const TensorRecord& t = *e.record;
  dsk_safetensors_info info{};
  info.struct_size = sizeof(info);
  info.ndim = static_cast<int32_t>(t.shape.size());
  info.dtype_id = t.dtype->dsk_id;
  info.name = t.name.c_str();
  info.dtype = t.dtype->name;
  info.shape = t.shape.data();
  info.file = e.file->map->path().c_str();
  info.file_offset = e.file->data_offset + t.begin;
  info.nbytes = t.end - t.begin;
  return info;
}

DLManagedTensorVersioned* export_tensor(const dsk_safetensors::Entry& e) {
  DLTensor view = tensor_view(e);
  auto x = std::make_unique<Export>();
  x->map = e.file->map;
  // A copy, since the handle's may go first; never empty-allocated (see TensorRecord::shape).
  x->shape.reserve(std::max<size_t>(e.record->shape.size(), 1));
  x->shape.assign(e.record->shape.begin(), e.record->shape.end());
  view.shape = x->shape.data();
  x->managed.version = DLPackVersion{DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION};
  x->managed.manager_ctx = x.get();
  x->managed.deleter = delete_export;
  x->managed.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
  x->managed.dl_tensor = view;
  return &x.release()->managed;
}

}  // namespace io
}  // namespace dsk
