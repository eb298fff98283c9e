// safetensors_test_util.h - writes small safetensors files by hand (header JSON and data bytes
// assembled here, not by the library under test) into a temporary directory.
#ifndef DSK_TESTS_CAPI_SAFETENSORS_TEST_UTIL_H_
#define DSK_TESTS_CAPI_SAFETENSORS_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace st_test {

using Bytes = std::vector<unsigned char>;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "dsk_st_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline void write_text(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}

// A JSON string literal (names may hold quotes, backslashes, control and non-ASCII characters).
inline std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The 8-byte little-endian length, the header text and the data bytes, as one file.
inline Bytes file_bytes(const std::string& header, const Bytes& data,
                        uint64_t length_field = UINT64_MAX) {
  const uint64_t n = length_field == UINT64_MAX ? header.size() : length_field;
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T>
Bytes bytes_of(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  Bytes data;
};

// A well-formed file: tensors laid out in the given order, header padded with spaces to a
// multiple of `align` bytes (the reference writer uses 8; 1 leaves data misaligned).
struct File {
  std::vector<Tensor> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
  size_t align = 8;

  std::string header() const {
    std::string h = "{";
    if (!metadata.empty()) {
      h += "\"__metadata__\":{";
      for (size_t i = 0; i < metadata.size(); ++i) {
        h += (i ? "," : "") + quote(metadata[i].first) + ":" + quote(metadata[i].second);
      }
      h += "}";
    }
    size_t offset = 0;
    for (const Tensor& t : tensors) {
      if (h.size() > 1) h += ",";
      h += quote(t.name) + ":{\"dtype\":" + quote(t.dtype) + ",\"shape\":[";
      for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
      h += "],\"data_offsets\":[" + std::to_string(offset) + "," +
           std::to_string(offset + t.data.size()) + "]}";
      offset += t.data.size();
    }
    h += "}";
    while ((8 + h.size()) % align != 0) h += ' ';
    return h;
  }
  Bytes data() const {
    Bytes d;
    for (const Tensor& t : tensors) d.insert(d.end(), t.data.begin(), t.data.end());
    return d;
  }
  Bytes bytes() const { return file_bytes(header(), data()); }
  void write(const std::string& path) const { write_file(path, bytes()); }
};

// A handle closed at scope exit.
struct Handle {
  dsk_safetensors* st = nullptr;
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { dsk_safetensors_close(st); }
  dsk_status open(const std::string& path) {
    dsk_safetensors_close(st);
    st = nullptr;
    return dsk_safetensors_open(path.c_str(), &st);
  }
  operator const dsk_safetensors*() const { return st; }
};

inline std::vector<std::string> names(const dsk_safetensors* st) {
  int64_t n = -1;
  REQUIRE(dsk_safetensors_count(st, &n) == DSK_OK);
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    const char* name = nullptr;
    REQUIRE(dsk_safetensors_name(st, i, &name) == DSK_OK);
    out.emplace_back(name);
  }
  return out;
}

// The info of tensor `name`, which must exist.
inline dsk_safetensors_info info(const dsk_safetensors* st, const std::string& name) {
  dsk_safetensors_info out;
  REQUIRE(dsk_safetensors_info_init(&out) == DSK_OK);
  REQUIRE(dsk_safetensors_tensor_info(st, name.c_str(), &out) == DSK_OK);
  return out;
}

// The view of tensor `name`, which must exist and have a view.
inline DLTensor view(const dsk_safetensors* st, const std::string& name) {
  DLTensor out{};
  REQUIRE(dsk_safetensors_tensor(st, name.c_str(), &out) == DSK_OK);
  return out;
}

// The metadata value of `key`, which must exist, and the number of keys.
inline std::string metadata(const dsk_safetensors* st, const char* key) {
  const char* value = nullptr;
  REQUIRE(dsk_safetensors_metadata(st, key, &value) == DSK_OK);
  return value;
}
inline int64_t metadata_count(const dsk_safetensors* st) {
  int64_t n = -1;
  REQUIRE(dsk_safetensors_metadata_count(st, &n) == DSK_OK);
  return n;
}

// The bytes a view covers (row-major, any dtype of whole bytes).
inline Bytes view_bytes(const DLTensor& v) {
  int64_t n = 1;
  for (int32_t i = 0; i < v.ndim; ++i) n *= v.shape[i];
  const size_t bytes = static_cast<size_t>(n) * v.dtype.bits / 8;
  const auto* p = static_cast<const unsigned char*>(v.data);
  return Bytes(p, p + bytes);
}

}  // namespace st_test

#endif  // DSK_TESTS_CAPI_SAFETENSORS_TEST_UTIL_H_
