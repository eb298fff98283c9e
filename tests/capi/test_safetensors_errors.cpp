// dsk_safetensors: every malformed or truncated file is a clear error, never a crash.
#include <cstring>
#include <string>
#include <vector>

#include "safetensors_test_util.h"
#include "test_util.h"

using dsk_test::expect_error;
using st_test::Bytes;
using st_test::Handle;
using st_test::TempDir;

namespace {

// Writes `header` followed by `data` and expects open to fail with `status` and every fragment
// (the file name is always expected too).
void expect_bad(const std::string& header, const Bytes& data, dsk_status status,
                std::initializer_list<const char*> fragments) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  st_test::write_file(path, st_test::file_bytes(header, data));
  Handle h;
  const dsk_status s = h.open(path);
  CHECK(h.st == nullptr);
  expect_error(s, status, fragments);
  expect_error(s, status, {"dsk_safetensors_open", "bad.safetensors"});
}

void expect_invalid(const std::string& header, std::initializer_list<const char*> fragments,
                    const Bytes& data = Bytes(16, 0)) {
  expect_bad(header, data, DSK_ERR_INVALID_ARGUMENT, fragments);
}

}  // namespace

TEST_CASE("safetensors: files too short or with impossible header sizes") {
  TempDir dir;
  Handle h;
  for (size_t n : {0, 1, 7}) {
    CAPTURE(n);
    st_test::write_file(dir / "short.safetensors", Bytes(n, 0));
    expect_error(h.open(dir / "short.safetensors"), DSK_ERR_INVALID_ARGUMENT,
                 {"short.safetensors", std::to_string(n).c_str(), "too short"});
  }
  // The length field claims more than the file holds, or more than the 100 MB cap.
  for (uint64_t n : {uint64_t{3}, uint64_t{1} << 20, uint64_t{DSK_SAFETENSORS_MAX_HEADER_BYTES}}) {
    CAPTURE(n);
    st_test::write_file(dir / "len.safetensors", st_test::file_bytes("{}", {}, n));
    expect_error(h.open(dir / "len.safetensors"), DSK_ERR_INVALID_ARGUMENT,
                 {"len.safetensors", "header size", "bytes that follow it"});
  }
  for (uint64_t n :
       {uint64_t{DSK_SAFETENSORS_MAX_HEADER_BYTES} + 1, uint64_t{1} << 40, UINT64_MAX - 1}) {
    CAPTURE(n);
    st_test::write_file(dir / "huge.safetensors", st_test::file_bytes("{}", {}, n));
    expect_error(h.open(dir / "huge.safetensors"), DSK_ERR_INVALID_ARGUMENT,
                 {"huge.safetensors", "exceeds the limit of 100000000 bytes"});
  }
}

TEST_CASE("safetensors: the header must be a UTF-8 JSON object without repeated keys") {
  expect_invalid("hello", {"the header is not valid UTF-8 JSON"});
  expect_invalid("", {"not valid UTF-8 JSON"});
  expect_invalid("{} trailing", {"not valid UTF-8 JSON"});
  expect_invalid("{\"a\xff\":1}", {"not valid UTF-8 JSON"});
  expect_invalid(std::string("{\"a\":1}\0", 8), {"not valid UTF-8 JSON"});
  expect_invalid("[]", {"the header is an array, expected a JSON object"});
  expect_invalid("42", {"is an integer, expected a JSON object"});
  expect_invalid(
      "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
      "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
      {"repeats the key 'x'"}, Bytes(2, 0));
  expect_invalid("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", {"repeats the key 'k'"}, {});
  std::string deep = "{\"x\":" + std::string(100, '[') + std::string(100, ']') + "}";
  expect_invalid(deep, {"deeper than 64 levels"});
  std::string very_deep = "{\"x\":" + std::string(200000, '[');
  expect_invalid(very_deep, {"deeper than 64 levels"});
}

TEST_CASE("safetensors: each tensor field is checked and named") {
  const std::string u8 = "\"dtype\":\"U8\"";
  auto entry = [](const std::string& body) { return "{\"t.w\":{" + body + "}}"; };
  expect_invalid("{\"t.w\":3}", {"tensor 't.w'", "the entry is an integer, expected an object"});
  expect_invalid(entry("\"shape\":[16],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "dtype is missing"});
  expect_invalid(entry("\"dtype\":5,\"shape\":[16],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "dtype is an integer, expected a string"});
  expect_invalid(entry("\"dtype\":\"F128\",\"shape\":[16],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "dtype 'F128' is not a safetensors dtype", "BF16"});
  expect_invalid(entry("\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]"), {"dtype 'f32'"});
  expect_invalid(entry(u8 + ",\"data_offsets\":[0,16]"), {"tensor 't.w'", "shape is missing"});
  expect_invalid(entry(u8 + ",\"shape\":16,\"data_offsets\":[0,16]"),
                 {"shape is an integer, expected an array"});
  expect_invalid(entry(u8 + ",\"shape\":[4,-4],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "shape[1] is -4", "[0, 2^63)"});
  expect_invalid(entry(u8 + ",\"shape\":[4.0,4],\"data_offsets\":[0,16]"), {"shape[0] is 4.0"});
  expect_invalid(entry(u8 + ",\"shape\":[\"4\"],\"data_offsets\":[0,16]"), {"shape[0] is \"4\""});
  expect_invalid(entry(u8 + ",\"shape\":[9223372036854775808],\"data_offsets\":[0,16]"),
                 {"shape[0] is 9223372036854775808"});
  expect_invalid(entry(u8 + ",\"shape\":[16]"), {"tensor 't.w'", "data_offsets is missing"});
  expect_invalid(entry(u8 + ",\"shape\":[16],\"data_offsets\":[0]"),
                 {"data_offsets is [0], expected [begin, end]"});
  expect_invalid(entry(u8 + ",\"shape\":[16],\"data_offsets\":[0,16,32]"),
                 {"data_offsets is [0,16,32]"});
  expect_invalid(entry(u8 + ",\"shape\":[16],\"data_offsets\":[-1,15]"), {"data_offsets is"});
  expect_invalid(entry(u8 + ",\"shape\":[16],\"data_offsets\":{\"a\":1}"), {"data_offsets is"});
  expect_invalid(entry(u8 + ",\"shape\":[0],\"data_offsets\":[16,0]"),
                 {"tensor 't.w'", "data_offsets [16, 0) begins after it ends"});
  expect_invalid(entry(u8 + ",\"shape\":[10],\"data_offsets\":[10,20]"),
                 {"tensor 't.w'", "data_offsets [10, 20) end 20 is past the data section's 16"});
  expect_invalid(entry(u8 + ",\"shape\":[4],\"data_offsets\":[0,18446744073709551615]"),
                 {"end 18446744073709551615 is past"});
  expect_invalid(
      entry("\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]"),
      {"tensor 't.w'", "shape [2, 3] of F32 is 24 bytes but data_offsets [0, 16) hold 16"});
  expect_invalid(entry(u8 + ",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "has more than 2^63 elements"});
  expect_invalid(entry("\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "of F64 overflows 64-bit byte offsets"});
  expect_invalid(entry("\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,16]"),
                 {"tensor 't.w'", "shape [3] of F4 is 12 bits, not a whole number of bytes"});
  // Names and values from the file are clipped in messages: a hostile header can make them huge.
  const std::string huge(100000, 'n');
  expect_invalid(
      "{\"" + huge + "\":{\"dtype\":\"" + huge + "\",\"shape\":[16],\"data_offsets\":[0,16]}}",
      {"tensor 'nnnn", "...': dtype 'nnnn", "...' is not a safetensors dtype"});
  CHECK(std::string(dsk_last_error_message()).size() < 1000);
  // Other keys of an entry are ignored, as in the reference implementation.
  TempDir dir;
  st_test::write_file(dir / "extra.safetensors",
                      st_test::file_bytes(entry(u8 + ",\"shape\":[16],\"data_offsets\":[0,16],"
                                                     "\"extra\":{\"a\":[1]}"),
                                          Bytes(16, 0)));
  Handle h;
  CHECK(h.open(dir / "extra.safetensors") == DSK_OK);
}

TEST_CASE("safetensors: tensors must tile the data section exactly") {
  auto t = [](const char* name, int begin, int end) {
    return std::string("\"") + name + "\":{\"dtype\":\"U8\",\"shape\":[" +
           std::to_string(end - begin) + "],\"data_offsets\":[" + std::to_string(begin) + "," +
           std::to_string(end) + "]}";
  };
  expect_invalid("{" + t("a", 0, 10) + "," + t("b", 8, 16) + "}",
                 {"tensors 'a' [0, 10) and 'b' [8, 16) overlap"});
  expect_invalid("{" + t("a", 0, 16) + "," + t("b", 0, 16) + "}", {"overlap"});
  expect_invalid("{" + t("a", 0, 16) + "," + t("z", 4, 4) + "}",
                 {"tensors 'a' [0, 16) and 'z' [4, 4) overlap"});
  expect_invalid("{" + t("a", 0, 4) + "," + t("b", 8, 16) + "}",
                 {"bytes [4, 8) of the data section, before tensor 'b', belong to no tensor"});
  expect_invalid("{" + t("b", 2, 16) + "}", {"bytes [0, 2)", "before tensor 'b'"});
  expect_invalid("{" + t("a", 0, 12) + "}",
                 {"bytes [12, 16) at the end of the data section belong to no tensor"});
  expect_invalid("{}", {"bytes [0, 16) at the end"});
  // Zero-size tensors at a boundary are fine, in any name order.
  TempDir dir;
  st_test::write_file(dir / "ok.safetensors",
                      st_test::file_bytes("{" + t("z", 8, 16) + "," + t("m", 8, 8) + "," +
                                              t("a", 0, 8) + "," + t("e", 16, 16) + "}",
                                          Bytes(16, 0)));
  Handle h;
  CHECK(h.open(dir / "ok.safetensors") == DSK_OK);
}

TEST_CASE("safetensors: __metadata__ maps strings to strings") {
  expect_invalid("{\"__metadata__\":[\"pt\"]}", {"__metadata__ is an array, expected an object"},
                 {});
  expect_invalid("{\"__metadata__\":{\"format\":\"pt\",\"step\":3}}",
                 {"__metadata__['step'] is an integer, expected a string"}, {});
  expect_invalid("{\"__metadata__\":{\"format\":\"p\\u0000t\"}}",
                 {"__metadata__ holds a NUL character"}, {});
}

TEST_CASE("safetensors: names must be C strings") {
  expect_invalid("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]}}",
                 {"a tensor name holds a NUL character"});
  // Escaped non-ASCII names are fine and come back as UTF-8.
  TempDir dir;
  st_test::write_file(
      dir / "esc.safetensors",
      st_test::file_bytes("{\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],"
                          "\"data_offsets\":[0,1]}}",
                          Bytes{1}));
  Handle h;
  REQUIRE(h.open(dir / "esc.safetensors") == DSK_OK);
  CHECK(st_test::names(h) == std::vector<std::string>{"\xc3\xa9\xf0\x9f\x98\x80"});
  expect_invalid("{\"\\ud83d\":1}", {"not valid UTF-8 JSON"});
}

TEST_CASE("safetensors: a file truncated at any length is refused cleanly") {
  st_test::File f;
  f.metadata = {{"format", "pt"}};
  f.tensors.push_back({"a", "F32", {2}, st_test::bytes_of<float>({1, 2})});
  f.tensors.push_back({"b", "BF16", {3}, Bytes(6, 0x3f)});
  f.tensors.push_back({"c", "U8", {5}, Bytes{1, 2, 3, 4, 5}});
  const Bytes whole = f.bytes();
  TempDir dir;
  const std::string path = dir / "cut.safetensors";
  Handle h;
  st_test::write_file(path, whole);
  REQUIRE(h.open(path) == DSK_OK);
  for (size_t k = 0; k < whole.size(); ++k) {
    CAPTURE(k);
    st_test::write_file(path, Bytes(whole.begin(), whole.begin() + static_cast<long>(k)));
    const dsk_status s = h.open(path);
    CHECK(s == DSK_ERR_INVALID_ARGUMENT);
    CHECK(h.st == nullptr);
    CHECK(std::string(dsk_last_error_message()).find("cut.safetensors") != std::string::npos);
  }
  // Bytes appended after the last tensor are refused as well.
  Bytes longer = whole;
  longer.push_back(0);
  st_test::write_file(path, longer);
  expect_error(h.open(path), DSK_ERR_INVALID_ARGUMENT, {"at the end of the data section"});
}

TEST_CASE("safetensors: paths that cannot be read are I/O errors naming the path") {
  TempDir dir;
  Handle h;
  expect_error(h.open(dir / "missing.safetensors"), DSK_ERR_IO,
               {"missing.safetensors", "cannot open", "No such file"});
  expect_error(h.open(dir / "missing.json"), DSK_ERR_IO, {"missing.json", "cannot open"});
  expect_error(h.open(dir.path.string()), DSK_ERR_NOT_FOUND,
               {"dsk_safetensors_open", "holds no *.safetensors file"});
  expect_error(h.open("/dev/null"), DSK_ERR_IO, {"/dev/null", "not a regular file"});
}
