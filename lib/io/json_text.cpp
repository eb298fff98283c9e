#include "io/json_text.h"

#include <cstring>
#include <unordered_set>
#include <vector>

#include "core/error.h"

namespace dsk {
namespace io {

namespace {

constexpr size_t kMaxDepth = 64;

using Json = nlohmann::json;

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is the useful part.
std::string without_exception_tag(const char* text) {
  std::string s = text;
  if (!s.empty() && s[0] == '[') {
    size_t end = s.find("] ");
    if (end != std::string::npos) s.erase(0, end + 2);
  }
  return s;
}

// A first, DOM-free pass over the text: nlohmann's DOM keeps the last of two equal keys without a
// word (and its callback parser, which could see them, rescans the parent object at every closing
// brace: quadratic in the number of tensors), so repeated keys and the nesting depth are checked
// here, in linear time, before the DOM is built.
class KeyChecker : public nlohmann::json_sax<Json> {
 public:
  std::string error;  // empty while the text is fine

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (keys_.back().insert(k).second) return true;
    error = fmt::format("repeats the key '{}' in one object", clip(k));
    return false;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = "is not valid UTF-8 JSON: " + without_exception_tag(e.what());
    return false;
  }

 private:
  bool open() {
    if (keys_.size() >= kMaxDepth) {
      error = fmt::format("nests JSON deeper than {} levels", kMaxDepth);
      return false;
    }
    keys_.emplace_back();  // arrays get an unused set, which keeps the stack simple
    return true;
  }
  bool close() {
    keys_.pop_back();
    return true;
  }

  std::vector<std::unordered_set<std::string>> keys_;
};

}  // namespace

Json parse_json_object(const unsigned char* text, size_t size, const std::string& what) {
  // nlohmann's lexer takes a NUL byte for the end of the input and would accept `{} \0 junk`;
  // JSON allows no raw NUL anywhere, and the reference implementation refuses such headers.
  if (const void* nul = std::memchr(text, 0, size)) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{} is not valid UTF-8 JSON: a NUL byte at offset {}", what,
         static_cast<const unsigned char*>(nul) - text);
  }
  KeyChecker checker;
  if (!Json::sax_parse(text, text + size, &checker) || !checker.error.empty()) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{} {}", what,
         checker.error.empty() ? std::string("is not valid UTF-8 JSON") : checker.error);
  }
  Json root = Json::parse(text, text + size);
  if (!root.is_object()) {
    fail(DSK_ERR_INVALID_ARGUMENT, "{} is {}, expected a JSON object", what, json_kind(root));
  }
  return root;
}

std::string clip(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

const char* json_kind(const Json& value) noexcept {
  switch (value.type()) {
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::null:
      return "null";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a floating-point number";
    default:
      return "an unexpected JSON value";
  }
}

bool json_to_u64(const Json& value, uint64_t max, uint64_t* out) noexcept {
  uint64_t v = 0;
  if (value.is_number_unsigned()) {
    v = value.get<uint64_t>();
  } else if (value.is_number_integer()) {
    const auto s = value.get<int64_t>();
    if (s < 0) return false;
    v = static_cast<uint64_t>(s);
  } else {
    return false;
  }
  if (v > max) return false;
  *out = v;
  return true;
}

}  // namespace io
}  // namespace dsk
