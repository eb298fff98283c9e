// json_text.h - strict JSON reading for safetensors headers and shard indexes (nlohmann/json).
//
// Internal only: nlohmann/json stays out of the installed headers and of libdsk's link interface.
#ifndef DSK_LIB_IO_JSON_TEXT_H_
#define DSK_LIB_IO_JSON_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace dsk {
namespace io {

// Parses `size` bytes of UTF-8 JSON whose top level must be an object. nlohmann/json would keep
// the last of two equal keys without a word, and a header naming one tensor twice is ambiguous, so
// a key repeated in any object is an error; so is nesting deeper than 64 levels (no safetensors
// file needs more than 3). Linear time: a SAX pass checks keys, then the DOM is built. Throws
// DSK_ERR_INVALID_ARGUMENT with messages starting with `what`
// ("model.safetensors: the header").
nlohmann::json parse_json_object(const unsigned char* text, size_t size, const std::string& what);

// `text` cut to at most `max` bytes (on a UTF-8 character boundary, with "..." appended when
// cut): names and values from a file go into messages, and a hostile file can make them huge.
std::string clip(const std::string& text, size_t max = 200);

// "an object", "a string", ... for messages about a value of the wrong type.
const char* json_kind(const nlohmann::json& value) noexcept;

// Stores `value` in *out when it is a JSON integer in [0, max] (2.0 and 1e3 are not integers).
bool json_to_u64(const nlohmann::json& value, uint64_t max, uint64_t* out) noexcept;

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_JSON_TEXT_H_
