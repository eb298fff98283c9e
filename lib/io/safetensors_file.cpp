#include "io/safetensors_file.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/error.h"
#include "dsk/dsk_safetensors.h"
#include "io/json_text.h"

namespace dsk {
namespace io {

namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxDim = static_cast<uint64_t>(INT64_MAX);

template <typename... Args>
[[noreturn]] void bad_tensor(const std::string& path, const std::string& name,
                             fmt::format_string<Args...> format, Args&&... args) {
  fail(DSK_ERR_INVALID_ARGUMENT, "{}: tensor '{}': {}", path, clip(name),
       fmt::format(format, std::forward<Args>(args)...));
}

// A JSON value for a message, cut short: a hostile header can put megabytes in one field.
std::string short_dump(const Json& v) { return clip(v.dump(), 64); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size() && s.size() < 200; ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (s.size() < 200 ? "]" : ", ...]");
}

const Json& field(const std::string& path, const std::string& name, const Json& entry,
                  const char* key) {
  auto it = entry.find(key);
  if (it == entry.end()) bad_tensor(path, name, "{} is missing", key);
  return *it;
}

const SafetensorsDtype* read_dtype(const std::string& path, const std::string& name,
                                   const Json& entry) {
  const Json& v = field(path, name, entry, "dtype");
  if (!v.is_string()) {
    bad_tensor(path, name, "dtype is {}, expected a string such as \"BF16\"", json_kind(v));
  }
  const auto& text = v.get_ref<const std::string&>();
  const SafetensorsDtype* d = find_safetensors_dtype(text);
  if (d == nullptr) {
    bad_tensor(path, name, "dtype '{}' is not a safetensors dtype (one of {})", clip(text, 32),
               safetensors_dtype_names());
  }
  return d;
}

std::vector<int64_t> read_shape(const std::string& path, const std::string& name,
                                const Json& entry) {
  const Json& v = field(path, name, entry, "shape");
  if (!v.is_array()) bad_tensor(path, name, "shape is {}, expected an array", json_kind(v));
  std::vector<int64_t> shape;
  shape.reserve(std::max<size_t>(v.size(), 1));
  for (size_t i = 0; i < v.size(); ++i) {
    uint64_t d = 0;
    if (!json_to_u64(v[i], kMaxDim, &d)) {
      bad_tensor(path, name, "shape[{}] is {}, expected an integer in [0, 2^63)", i,
                 short_dump(v[i]));
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

void read_offsets(const std::string& path, const std::string& name, const Json& entry,
                  uint64_t data_size, TensorRecord& t) {
  const Json& v = field(path, name, entry, "data_offsets");
  uint64_t o[2] = {0, 0};
  if (!v.is_array() || v.size() != 2 || !json_to_u64(v[0], UINT64_MAX, &o[0]) ||
      !json_to_u64(v[1], UINT64_MAX, &o[1])) {
    bad_tensor(path, name, "data_offsets is {}, expected [begin, end] with integers >= 0",
               short_dump(v));
  }
  if (o[0] > o[1]) {
    bad_tensor(path, name, "data_offsets [{}, {}) begins after it ends", o[0], o[1]);
  }
  if (o[1] > data_size) {
    bad_tensor(path, name, "data_offsets [{}, {}) end {} is past the data section's {} bytes", o[0],
               o[1], o[1], data_size);
  }
  t.begin = o[0];
  t.end = o[1];
}

// The byte size the shape and dtype imply must be exactly the bytes the offsets give.
void check_size(const std::string& path, const TensorRecord& t) {
  uint64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d != 0 && numel > kMaxDim / static_cast<uint64_t>(d)) {
      bad_tensor(path, t.name, "shape {} has more than 2^63 elements", shape_text(t.shape));
    }
    numel *= static_cast<uint64_t>(d);
  }
  if (numel > UINT64_MAX / t.dtype->bits) {
    bad_tensor(path, t.name, "shape {} of {} overflows 64-bit byte offsets", shape_text(t.shape),
               t.dtype->name);
  }
  const uint64_t bits = numel * t.dtype->bits;
  if (bits % 8 != 0) {
    bad_tensor(path, t.name, "shape {} of {} is {} bits, not a whole number of bytes",
               shape_text(t.shape), t.dtype->name, bits);
  }
  if (bits / 8 != t.end - t.begin) {
    bad_tensor(path, t.name, "shape {} of {} is {} bytes but data_offsets [{}, {}) hold {}",
               shape_text(t.shape), t.dtype->name, bits / 8, t.begin, t.end, t.end - t.begin);
  }
}

TensorRecord read_tensor(const std::string& path, const std::string& name, const Json& entry,
                         uint64_t data_size) {
  if (!entry.is_object()) {
    bad_tensor(path, name, "the entry is {}, expected an object with dtype, shape, data_offsets",
               json_kind(entry));
  }
  TensorRecord t;
  t.name = name;
  t.dtype = read_dtype(path, name, entry);
  t.shape = read_shape(path, name, entry);
  read_offsets(path, name, entry, data_size, t);
  check_size(path, t);
  return t;
}

std::vector<std::pair<std::string, std::string>> read_metadata(const std::string& path,
                                                               const Json& m) {
  if (!m.is_object()) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: __metadata__ is {}, expected an object of strings", path,
         json_kind(m));
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, value] : m.items()) {
    if (key.find('\0') != std::string::npos ||
        (value.is_string() &&
         value.get_ref<const std::string&>().find('\0') != std::string::npos)) {
      fail(DSK_ERR_INVALID_ARGUMENT,
           "{}: __metadata__ holds a NUL character (\\u0000), which C strings cannot carry", path);
    }
    if (!value.is_string()) {
      fail(DSK_ERR_INVALID_ARGUMENT, "{}: __metadata__['{}'] is {}, expected a string", path,
           clip(key), json_kind(value));
    }
    out.emplace_back(key, value.get<std::string>());
  }
  return out;  // nlohmann objects iterate in key order
}

// The format requires the tensors to tile the data section: sorted by offset, each starts where
// the previous one ended, from byte 0 to the last byte of the file.
void check_coverage(const std::string& path, const std::vector<TensorRecord>& tensors,
                    uint64_t data_size) {
  std::vector<const TensorRecord*> order;
  order.reserve(tensors.size());
  for (const TensorRecord& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorRecord* a, const TensorRecord* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorRecord* prev = nullptr;
  for (const TensorRecord* t : order) {
    if (t->begin < covered) {
      fail(DSK_ERR_INVALID_ARGUMENT, "{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", path,
           clip(prev->name), prev->begin, prev->end, clip(t->name), t->begin, t->end);
    }
    if (t->begin > covered) {
      fail(DSK_ERR_INVALID_ARGUMENT,
           "{}: bytes [{}, {}) of the data section, before tensor '{}', belong to no tensor", path,
           covered, t->begin, clip(t->name));
    }
    covered = t->end;
    prev = t;
  }
  if (covered != data_size) {
    fail(DSK_ERR_INVALID_ARGUMENT,
         "{}: bytes [{}, {}) at the end of the data section belong to no tensor", path, covered,
         data_size);
  }
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const TensorRecord* SafetensorsFile::find(const std::string& name) const noexcept {
  auto it =
      std::lower_bound(tensors.begin(), tensors.end(), name,
                       [](const TensorRecord& t, const std::string& n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

SafetensorsFile read_safetensors_file(const std::string& path) {
  SafetensorsFile f;
  f.map = MappedFile::open(path);
  const unsigned char* bytes = f.map->data();
  const uint64_t size = f.map->size();
  if (size < 8) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: the file is {} bytes, too short for the 8-byte header size",
         path, size);
  }
  const uint64_t header = read_le64(bytes);
  if (header > DSK_SAFETENSORS_MAX_HEADER_BYTES) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{}: the header size {} exceeds the limit of {} bytes", path,
         header, DSK_SAFETENSORS_MAX_HEADER_BYTES);
  }
  if (header > size - 8) {
    fail(DSK_ERR_INVALID_ARGUMENT,
         "{}: the header size {} exceeds the {} bytes that follow it (truncated file?)", path,
         header, size - 8);
  }
  f.data_offset = 8 + header;
  const uint64_t data_size = size - f.data_offset;
  const Json root = parse_json_object(bytes + 8, header, path + ": the header");
  f.tensors.reserve(root.size());
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      f.metadata = read_metadata(path, value);
    } else {
      // The C API names tensors with NUL-terminated strings.
      if (key.find('\0') != std::string::npos) {
        fail(DSK_ERR_INVALID_ARGUMENT,
             "{}: a tensor name holds a NUL character (\\u0000), which C strings cannot carry",
             path);
      }
      f.tensors.push_back(read_tensor(path, key, value, data_size));
    }
  }
  check_coverage(path, f.tensors, data_size);
  return f;
}

}  // namespace io
}  // namespace dsk
