// safetensors_writer.h - writes a .safetensors file: an 8-byte little-endian header length, the
// JSON header (padded with spaces to a multiple of 8 bytes, as the reference writer does, so every
// tensor starts 8-byte aligned), then the tensors' bytes back to back.
#ifndef DSK_EXAMPLES_DEEPSEEK_SAFETENSORS_WRITER_H_
#define DSK_EXAMPLES_DEEPSEEK_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deepseek {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // safetensors dtype string: "F32", "BF16", "F8_E4M3"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // row-major little-endian data
};

// Writes `entries` in order to `path` (replacing it). Throws std::runtime_error on I/O errors or
// when an entry's byte count does not match its shape and dtype.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_SAFETENSORS_WRITER_H_
