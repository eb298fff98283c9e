// safetensors_writer.cpp - the format of https://github.com/huggingface/safetensors.
#include "safetensors_writer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace deepseek {
namespace {

int64_t element_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "BF16" || dtype == "F16") return 2;
  if (dtype == "F8_E4M3" || dtype == "U8") return 1;
  if (dtype == "I64" || dtype == "F64") return 8;
  throw std::runtime_error("write_safetensors: unknown dtype " + dtype);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    int64_t n = element_size(e.dtype);
    for (int64_t s : e.shape) n *= s;
    if (static_cast<uint64_t>(n) != e.bytes.size()) {
      throw std::runtime_error("write_safetensors: " + e.name + " has " +
                               std::to_string(e.bytes.size()) + " bytes, its shape needs " +
                               std::to_string(n));
    }
    header[e.name] = {{"dtype", e.dtype},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("write_safetensors: cannot create " + path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(text.size() >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const SafetensorsEntry& e : entries) {
    out.write(reinterpret_cast<const char*>(e.bytes.data()),
              static_cast<std::streamsize>(e.bytes.size()));
  }
  out.close();
  if (!out) throw std::runtime_error("write_safetensors: writing " + path + " failed");
}

}  // namespace deepseek
