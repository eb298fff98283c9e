// Safetensors checkpoints (dsk_safetensors.h). Parsing and validation live in lib/io/.
#include "io/safetensors.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "capi/guard.h"
#include "core/error.h"
#include "dsk/dsk_safetensors.h"

namespace {

void check_handle(const dsk_safetensors* st) {
  dsk::check_arg(st != nullptr, "st is NULL, expected a handle from dsk_safetensors_open");
}

void check_name(const char* name, const char* what) {
  dsk::check_arg(name != nullptr, "{} is NULL, expected a NUL-terminated UTF-8 string", what);
}

const dsk_safetensors::Entry& entry(const dsk_safetensors* st, const char* name) {
  check_handle(st);
  check_name(name, "name");
  return st->tensors[static_cast<size_t>(dsk::io::find_tensor(*st, name))];
}

// The handle's two sorted lists (tensors, metadata) are listed the same way: a count, then the
// string of entry `index`.
template <typename T>
void list_count(const dsk_safetensors* st, std::vector<T> dsk_safetensors::*list, int64_t* count) {
  check_handle(st);
  dsk::check_arg(count != nullptr, "count is NULL, expected a pointer to an int64_t");
  *count = static_cast<int64_t>((st->*list).size());
}

template <typename T, typename Text>
void list_entry(const dsk_safetensors* st, std::vector<T> dsk_safetensors::*list, int64_t index,
                const char** out, const char* out_name, Text text) {
  check_handle(st);
  dsk::check_arg(out != nullptr, "{} is NULL, expected a pointer to a const char*", out_name);
  const size_t n = (st->*list).size();
  dsk::check_arg(index >= 0 && static_cast<uint64_t>(index) < n,
                 "index = {}, expected 0 <= index < {}", index, n);
  *out = text((st->*list)[static_cast<size_t>(index)]);
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_safetensors_open(const char* path, dsk_safetensors** out) {
  if (out != nullptr) *out = nullptr;
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected a pointer to receive the handle");
    check_name(path, "path");
    *out = dsk::io::open_safetensors(path);
  });
}

DSK_API void dsk_safetensors_close(dsk_safetensors* st) { delete st; }

DSK_API dsk_status dsk_safetensors_count(const dsk_safetensors* st, int64_t* count) {
  return dsk::capi_call(__func__, [&] { list_count(st, &dsk_safetensors::tensors, count); });
}

DSK_API dsk_status dsk_safetensors_name(const dsk_safetensors* st, int64_t index,
                                        const char** name) {
  return dsk::capi_call(__func__, [&] {
    list_entry(st, &dsk_safetensors::tensors, index, name, "name",
               [](const dsk_safetensors::Entry& e) { return e.record->name.c_str(); });
  });
}

DSK_API dsk_status dsk_safetensors_find(const dsk_safetensors* st, const char* name,
                                        int64_t* index) {
  if (index != nullptr) *index = -1;
  return dsk::capi_call(__func__, [&] {
    check_handle(st);
    check_name(name, "name");
    dsk::check_arg(index != nullptr, "index is NULL, expected a pointer to an int64_t");
    *index = dsk::io::find_tensor(*st, name);
  });
}

DSK_API dsk_status dsk_safetensors_tensor(const dsk_safetensors* st, const char* name,
                                          DLTensor* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected a DLTensor to fill");
    *out = dsk::io::tensor_view(entry(st, name));
  });
}

DSK_API dsk_status dsk_safetensors_info_init(dsk_safetensors_info* info) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(info != nullptr, "info is NULL, expected a dsk_safetensors_info");
    *info = dsk_safetensors_info{};
    info->struct_size = sizeof(*info);
  });
}

DSK_API dsk_status dsk_safetensors_tensor_info(const dsk_safetensors* st, const char* name,
                                               dsk_safetensors_info* info) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(info != nullptr,
                   "info is NULL, expected a struct from dsk_safetensors_info_init");
    const dsk_safetensors::Entry& e = entry(st, name);
    dsk::write_versioned(dsk::io::tensor_info(e), info, sizeof(dsk_safetensors_info), "info");
  });
}

DSK_API dsk_status dsk_safetensors_to_dlpack(const dsk_safetensors* st, const char* name,
                                             DLManagedTensorVersioned** out) {
  if (out != nullptr) *out = nullptr;
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected a pointer to receive the tensor");
    *out = dsk::io::export_tensor(entry(st, name));
  });
}

DSK_API dsk_status dsk_safetensors_metadata(const dsk_safetensors* st, const char* key,
                                            const char** value) {
  return dsk::capi_call(__func__, [&] {
    check_handle(st);
    check_name(key, "key");
    dsk::check_arg(value != nullptr, "value is NULL, expected a pointer to a const char*");
    const auto it = std::lower_bound(
        st->metadata.begin(), st->metadata.end(), key,
        [](const std::pair<std::string, std::string>& kv, const char* k) { return kv.first < k; });
    if (it == st->metadata.end() || it->first != key) {
      dsk::fail(DSK_ERR_NOT_FOUND, "no metadata key '{}' (the checkpoint has {})", key,
                st->metadata.size());
    }
    *value = it->second.c_str();
  });
}

DSK_API dsk_status dsk_safetensors_metadata_count(const dsk_safetensors* st, int64_t* count) {
  return dsk::capi_call(__func__, [&] { list_count(st, &dsk_safetensors::metadata, count); });
}

DSK_API dsk_status dsk_safetensors_metadata_key(const dsk_safetensors* st, int64_t index,
                                                const char** key) {
  return dsk::capi_call(__func__, [&] {
    list_entry(st, &dsk_safetensors::metadata, index, key, "key",
               [](const std::pair<std::string, std::string>& kv) { return kv.first.c_str(); });
  });
}

}  // extern "C"
