// dsk_safetensors: reading well-formed files, views, info, metadata, DLPack export, arguments.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "safetensors_test_util.h"
#include "test_util.h"

using dsk_test::expect_error;
using st_test::Bytes;
using st_test::bytes_of;
using st_test::Handle;
using st_test::TempDir;

namespace {

uint16_t bf16_bits(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);  // exact for the values used here
}

// Six tensors of different dtypes and ranks, plus metadata, in a deliberately unsorted layout.
st_test::File sample_file() {
  st_test::File f;
  f.metadata = {{"format", "pt"}, {"note", "\"quoted\" \xc3\xa9"}};
  f.tensors.push_back({"d", "F64", {2}, bytes_of<double>({0.25, -1e300})});
  f.tensors.push_back({"scalar", "I64", {}, bytes_of<int64_t>({-7})});
  f.tensors.push_back({"w.weight", "F32", {2, 3}, bytes_of<float>({0, 1, 2, 3, 4, 5})});
  f.tensors.push_back({"q", "F8_E4M3", {4}, Bytes{0x38, 0xb8, 0x7e, 0x00}});
  f.tensors.push_back(
      {"b.bias", "BF16", {3}, bytes_of<uint16_t>({bf16_bits(1.5f), bf16_bits(-2), 0})});
  f.tensors.push_back({"empty", "F16", {0, 4}, {}});
  return f;
}

}  // namespace

TEST_CASE("safetensors: one file gives sorted names, exact views, info and metadata") {
  TempDir dir;
  const st_test::File f = sample_file();
  const std::string path = dir / "model.safetensors";
  f.write(path);
  Handle h;
  REQUIRE(h.open(path) == DSK_OK);
  CHECK(st_test::names(h) ==
        std::vector<std::string>{"b.bias", "d", "empty", "q", "scalar", "w.weight"});

  for (const st_test::Tensor& t : f.tensors) {
    CAPTURE(t.name);
    const DLTensor v = st_test::view(h, t.name);
    CHECK(v.device.device_type == kDLCPU);
    CHECK(v.device.device_id == 0);
    CHECK(v.strides == nullptr);
    CHECK(v.byte_offset == 0);
    CHECK(v.shape != nullptr);
    REQUIRE(v.ndim == static_cast<int32_t>(t.shape.size()));
    CHECK(std::vector<int64_t>(v.shape, v.shape + v.ndim) == t.shape);
    CHECK(st_test::view_bytes(v) == t.data);
    // The 8-byte-padded header and this layout keep every view aligned for its dtype.
    CHECK(reinterpret_cast<uintptr_t>(v.data) % (v.dtype.bits / 8) == 0);

    const dsk_safetensors_info info = st_test::info(h, t.name);
    CHECK(std::string(info.name) == t.name);
    CHECK(std::string(info.dtype) == t.dtype);
    CHECK(std::string(info.file) == path);
    CHECK(info.ndim == v.ndim);
    CHECK(info.shape == v.shape);
    CHECK(info.nbytes == t.data.size());
    const Bytes whole = f.bytes();
    CHECK(Bytes(whole.begin() + static_cast<long>(info.file_offset),
                whole.begin() + static_cast<long>(info.file_offset + info.nbytes)) == t.data);

    int64_t index = -1;
    REQUIRE(dsk_safetensors_find(h, t.name.c_str(), &index) == DSK_OK);
    const char* back = nullptr;
    REQUIRE(dsk_safetensors_name(h, index, &back) == DSK_OK);
    CHECK(std::string(back) == t.name);
  }

  const DLTensor w = st_test::view(h, "w.weight");
  CHECK(w.dtype.code == kDLFloat);
  CHECK(w.dtype.bits == 32);
  CHECK(w.dtype.lanes == 1);
  CHECK(static_cast<const float*>(w.data)[4] == 4.0f);
  const DLTensor q = st_test::view(h, "q");
  CHECK(q.dtype.code == kDLFloat8_e4m3fn);
  const DLTensor b = st_test::view(h, "b.bias");
  CHECK(b.dtype.code == kDLBfloat);

  CHECK(st_test::info(h, "q").dtype_id == DSK_DTYPE_FP8_E4M3FN);
  CHECK(st_test::info(h, "d").dtype_id == 0);  // f64 has a DLPack code but is not a dsk dtype

  CHECK(st_test::metadata(h, "format") == "pt");
  CHECK(st_test::metadata(h, "note") == "\"quoted\" \xc3\xa9");
  REQUIRE(st_test::metadata_count(h) == 2);
  const char* value = nullptr;
  const char* key = nullptr;
  REQUIRE(dsk_safetensors_metadata_key(h, 1, &key) == DSK_OK);
  CHECK(std::string(key) == "note");
  expect_error(dsk_safetensors_metadata(h, "absent", &value), DSK_ERR_NOT_FOUND,
               {"dsk_safetensors_metadata", "'absent'"});
}

TEST_CASE("safetensors: every format dtype maps to its DLPack type") {
  struct Case {
    const char* dtype;
    uint8_t code;
    uint8_t bits;
    int32_t dsk_id;
  };
  const Case cases[] = {
      {"BOOL", kDLBool, 8, DSK_DTYPE_BOOL},
      {"U8", kDLUInt, 8, DSK_DTYPE_UINT8},
      {"I8", kDLInt, 8, 0},
      {"F8_E5M2", kDLFloat8_e5m2, 8, DSK_DTYPE_FP8_E5M2},
      {"F8_E8M0", kDLFloat8_e8m0fnu, 8, 0},
      {"I16", kDLInt, 16, 0},
      {"U16", kDLUInt, 16, 0},
      {"F16", kDLFloat, 16, DSK_DTYPE_F16},
      {"I32", kDLInt, 32, DSK_DTYPE_INT32},
      {"U32", kDLUInt, 32, 0},
      {"C64", kDLComplex, 64, 0},
      {"I64", kDLInt, 64, DSK_DTYPE_INT64},
      {"U64", kDLUInt, 64, 0},
  };
  TempDir dir;
  st_test::File f;
  for (const Case& c : cases) {
    f.tensors.push_back({std::string("t_") + c.dtype, c.dtype, {3}, Bytes(3 * c.bits / 8, 7)});
  }
  f.write(dir / "all.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "all.safetensors") == DSK_OK);
  for (const Case& c : cases) {
    CAPTURE(c.dtype);
    const std::string name = std::string("t_") + c.dtype;
    const DLTensor v = st_test::view(h, name);
    CHECK(v.dtype.code == c.code);
    CHECK(v.dtype.bits == c.bits);
    CHECK(v.dtype.lanes == 1);
    const dsk_safetensors_info info = st_test::info(h, name);
    CHECK(info.dtype_id == c.dsk_id);
  }
}

TEST_CASE("safetensors: packed F4 opens, is described by info, and has no view") {
  TempDir dir;
  st_test::File f;
  f.tensors.push_back({"packed", "F4", {2, 3}, Bytes{0x12, 0x34, 0x56}});
  f.tensors.push_back({"six", "F6_E2M3", {4}, Bytes{1, 2, 3}});
  f.write(dir / "fp4.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "fp4.safetensors") == DSK_OK);
  const dsk_safetensors_info info = st_test::info(h, "packed");
  CHECK(info.nbytes == 3);
  CHECK(std::string(info.dtype) == "F4");
  DLTensor v{};
  expect_error(dsk_safetensors_tensor(h, "packed", &v), DSK_ERR_UNSUPPORTED,
               {"dsk_safetensors_tensor", "'packed'", "F4"});
  DLManagedTensorVersioned* m = nullptr;
  expect_error(dsk_safetensors_to_dlpack(h, "six", &m), DSK_ERR_UNSUPPORTED, {"F6_E2M3"});
  CHECK(m == nullptr);
}

TEST_CASE("safetensors: views are op inputs; misaligned data is read correctly by clone") {
  TempDir dir;
  st_test::File f;
  f.align = 1;                                        // no header padding
  f.tensors.push_back({"odd", "U8", {1}, Bytes{9}});  // pushes the next tensor off alignment
  f.tensors.push_back({"x", "F32", {2, 2}, bytes_of<float>({1.5f, -2, 3, 1e-3f})});
  f.tensors.push_back({"y", "BF16", {2}, bytes_of<uint16_t>({bf16_bits(0.5f), bf16_bits(8)})});
  f.write(dir / "m.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "m.safetensors") == DSK_OK);
  const DLTensor x = st_test::view(h, "x");
  const dsk_safetensors_info info = st_test::info(h, "x");
  CHECK(reinterpret_cast<uintptr_t>(x.data) % 4 == info.file_offset % 4);

  dsk_test::CpuContext ctx;
  dsk_tensor* copy = nullptr;
  REQUIRE(dsk_tensor_clone(ctx, &x, dsk_test::dtype(DSK_DTYPE_F32), &copy) == DSK_OK);
  dsk_test::Owned c(copy);
  CHECK(std::vector<float>(c.data<float>(), c.data<float>() + 4) ==
        std::vector<float>{1.5f, -2, 3, 1e-3f});
  const DLTensor y = st_test::view(h, "y");
  REQUIRE(dsk_tensor_clone(ctx, &y, dsk_test::dtype(DSK_DTYPE_F32), &copy) == DSK_OK);
  dsk_test::Owned d(copy);
  CHECK(d.data<float>()[0] == 0.5f);
  CHECK(d.data<float>()[1] == 8.0f);
}

TEST_CASE("safetensors: an aligned view is an op input as it is") {
  TempDir dir;
  sample_file().write(dir / "model.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "model.safetensors") == DSK_OK);
  const DLTensor w = st_test::view(h, "w.weight");
  REQUIRE(dsk_dltensor_validate(&w, "w") == DSK_OK);
  dsk_test::CpuContext ctx;
  dsk_tensor* out = nullptr;
  REQUIRE(dsk_tensor_create(ctx, 2, w.shape, dsk_test::dtype(DSK_DTYPE_F32), &out) == DSK_OK);
  dsk_test::Owned o(out);
  REQUIRE(dsk_softmax(ctx, &w, o.dl(), 1.0f) == DSK_OK);
  const float e = std::exp(1.0f);
  const float den = 1 + e + e * e;  // row [0, 1, 2]
  CHECK(o.data<float>()[0] == doctest::Approx(1 / den).epsilon(1e-6));
  CHECK(o.data<float>()[5] == doctest::Approx(e * e / den).epsilon(1e-6));
}

TEST_CASE("safetensors: a DLPack export outlives the handle and imports read-only") {
  TempDir dir;
  sample_file().write(dir / "model.safetensors");
  DLManagedTensorVersioned* m = nullptr;
  DLManagedTensorVersioned* f64 = nullptr;
  {
    Handle h;
    REQUIRE(h.open(dir / "model.safetensors") == DSK_OK);
    REQUIRE(dsk_safetensors_to_dlpack(h, "w.weight", &m) == DSK_OK);
    REQUIRE(dsk_safetensors_to_dlpack(h, "d", &f64) == DSK_OK);
  }
  REQUIRE(m != nullptr);
  CHECK(m->version.major == DLPACK_MAJOR_VERSION);
  CHECK(m->version.minor == DLPACK_MINOR_VERSION);
  CHECK((m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
  CHECK(m->dl_tensor.ndim == 2);
  CHECK(m->dl_tensor.shape[1] == 3);
  CHECK(static_cast<const float*>(m->dl_tensor.data)[5] == 5.0f);  // still mapped
  dsk_tensor* t = nullptr;
  REQUIRE(dsk_tensor_from_dlpack_versioned(m, &t) == DSK_OK);
  dsk_test::Owned owned(t);
  CHECK(dsk_tensor_is_read_only(t) == 1);
  CHECK(owned.data<float>()[2] == 2.0f);

  // f64 is no dsk dtype: dsk refuses the import and the caller still owns the export.
  expect_error(dsk_tensor_from_dlpack_versioned(f64, &t), DSK_ERR_INVALID_ARGUMENT, {"dtype"});
  CHECK(static_cast<const double*>(f64->dl_tensor.data)[0] == 0.25);
  f64->deleter(f64);
}

TEST_CASE("safetensors: unicode names, an empty file and zero-size tensors") {
  TempDir dir;
  st_test::File f;
  const std::string han = "\xe5\xb1\x82.\xe6\x9d\x83\xe9\x87\x8d";  // 层.权重
  const std::string emoji = "\xf0\x9f\x98\x80";
  f.tensors.push_back({han, "U8", {2}, Bytes{1, 2}});
  f.tensors.push_back({emoji, "U8", {1}, Bytes{3}});
  f.tensors.push_back({"z", "U8", {1}, Bytes{4}});
  f.tensors.push_back({"\"q\\", "U8", {0}, {}});
  f.write(dir / "u.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "u.safetensors") == DSK_OK);
  // Byte order, i.e. code point order: '"' < 'z' < U+5C42 < U+1F600.
  CHECK(st_test::names(h) == std::vector<std::string>{"\"q\\", "z", han, emoji});
  CHECK(st_test::view_bytes(st_test::view(h, han)) == Bytes{1, 2});
  CHECK(st_test::view(h, "\"q\\").shape[0] == 0);

  st_test::File empty;
  empty.write(dir / "empty.safetensors");
  REQUIRE(h.open(dir / "empty.safetensors") == DSK_OK);
  int64_t n = -1;
  REQUIRE(dsk_safetensors_count(h, &n) == DSK_OK);
  CHECK(n == 0);
  const char* value = nullptr;
  expect_error(dsk_safetensors_metadata(h, "format", &value), DSK_ERR_NOT_FOUND, {"'format'"});
}

TEST_CASE("safetensors: arguments are checked and named") {
  TempDir dir;
  sample_file().write(dir / "model.safetensors");
  Handle h;
  REQUIRE(h.open(dir / "model.safetensors") == DSK_OK);
  dsk_safetensors* out = reinterpret_cast<dsk_safetensors*>(&out);
  expect_error(dsk_safetensors_open(nullptr, &out), DSK_ERR_INVALID_ARGUMENT, {"path is NULL"});
  CHECK(out == nullptr);
  expect_error(dsk_safetensors_open("x", nullptr), DSK_ERR_INVALID_ARGUMENT, {"out is NULL"});
  int64_t n = 0;
  expect_error(dsk_safetensors_count(nullptr, &n), DSK_ERR_INVALID_ARGUMENT, {"st is NULL"});
  expect_error(dsk_safetensors_count(h, nullptr), DSK_ERR_INVALID_ARGUMENT, {"count is NULL"});
  const char* name = nullptr;
  expect_error(dsk_safetensors_name(h, 6, &name), DSK_ERR_INVALID_ARGUMENT,
               {"index = 6", "0 <= index < 6"});
  expect_error(dsk_safetensors_name(h, -1, &name), DSK_ERR_INVALID_ARGUMENT, {"index = -1"});
  expect_error(dsk_safetensors_name(h, 0, nullptr), DSK_ERR_INVALID_ARGUMENT, {"name is NULL"});
  int64_t index = 5;
  expect_error(dsk_safetensors_find(h, "nope", &index), DSK_ERR_NOT_FOUND,
               {"dsk_safetensors_find", "no tensor named 'nope'"});
  CHECK(index == -1);
  expect_error(dsk_safetensors_find(h, nullptr, &index), DSK_ERR_INVALID_ARGUMENT,
               {"name is NULL"});
  DLTensor v{};
  expect_error(dsk_safetensors_tensor(h, "w.weight", nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"out is NULL"});
  expect_error(dsk_safetensors_tensor(h, "W.weight", &v), DSK_ERR_NOT_FOUND, {"'W.weight'"});
  expect_error(dsk_safetensors_tensor(nullptr, "w.weight", &v), DSK_ERR_INVALID_ARGUMENT,
               {"st is NULL"});
  dsk_safetensors_info info;
  expect_error(dsk_safetensors_info_init(nullptr), DSK_ERR_INVALID_ARGUMENT, {"info is NULL"});
  dsk_safetensors_info_init(&info);
  info.struct_size = 8;
  expect_error(dsk_safetensors_tensor_info(h, "d", &info), DSK_ERR_VERSION_MISMATCH,
               {"info->struct_size = 8"});
  expect_error(dsk_safetensors_tensor_info(h, "d", nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"info is NULL"});
  DLManagedTensorVersioned* m = nullptr;
  expect_error(dsk_safetensors_to_dlpack(h, "nope", &m), DSK_ERR_NOT_FOUND, {"'nope'"});
  expect_error(dsk_safetensors_to_dlpack(h, "d", nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"out is NULL"});
  const char* value = nullptr;
  expect_error(dsk_safetensors_metadata(h, nullptr, &value), DSK_ERR_INVALID_ARGUMENT,
               {"key is NULL"});
  expect_error(dsk_safetensors_metadata(h, "format", nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"value is NULL"});
  expect_error(dsk_safetensors_metadata_key(h, 2, &value), DSK_ERR_INVALID_ARGUMENT, {"index = 2"});
  expect_error(dsk_safetensors_metadata_count(h, nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"count is NULL"});
  dsk_safetensors_close(nullptr);
  CHECK(std::string(dsk_status_string(DSK_ERR_IO)) == "i/o error");
  CHECK(std::string(dsk_status_string(DSK_ERR_NOT_FOUND)) == "not found");
}
