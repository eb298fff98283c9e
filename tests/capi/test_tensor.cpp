#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "test_util.h"

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::dtype;
using dsk_test::expect_error;
using dsk_test::make;
using dsk_test::Owned;

TEST_CASE("created tensors are contiguous, aligned and sized") {
  CpuContext ctx;
  Owned t(make(ctx, {3, 5, 7}, DSK_DTYPE_BF16));
  const DLTensor* dl = t.dl();
  CHECK(dl->ndim == 3);
  CHECK(dl->shape[2] == 7);
  CHECK(dl->strides[0] == 35);
  CHECK(dl->strides[1] == 7);
  CHECK(dl->strides[2] == 1);
  CHECK(dl->byte_offset == 0);
  CHECK(dl->device.device_type == kDLCPU);
  CHECK(reinterpret_cast<uintptr_t>(dl->data) % 64 == 0);
  CHECK(dsk_tensor_numel(t.t) == 105);
  CHECK(dsk_tensor_nbytes(t.t) == 210);
  CHECK(dsk_tensor_is_contiguous(t.t) == 1);
  CHECK(dsk_tensor_is_read_only(t.t) == 0);

  Owned scalar(make(ctx, {}, DSK_DTYPE_F32));
  CHECK(dsk_tensor_numel(scalar.t) == 1);
  Owned empty(make(ctx, {4, 0}, DSK_DTYPE_F32));
  CHECK(dsk_tensor_numel(empty.t) == 0);
  Owned eight(make(ctx, {1, 2, 1, 2, 1, 2, 1, 2}, DSK_DTYPE_INT64));
  CHECK(dsk_tensor_numel(eight.t) == 16);
  CHECK(dsk_tensor_numel(nullptr) == 0);
  CHECK(dsk_tensor_dltensor(nullptr) == nullptr);
}

TEST_CASE("tensor creation rejects bad shapes and dtypes") {
  CpuContext ctx;
  dsk_tensor* t = nullptr;
  const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  expect_error(dsk_tensor_create(ctx, 9, nine, dtype(DSK_DTYPE_F32), &t), DSK_ERR_INVALID_ARGUMENT,
               {"dsk_tensor_create", "ndim = 9", "0 <= ndim <= 8"});
  expect_error(dsk_tensor_create(ctx, -1, nine, dtype(DSK_DTYPE_F32), &t), DSK_ERR_INVALID_ARGUMENT,
               {"ndim = -1"});
  const int64_t negative[2] = {4, -2};
  expect_error(dsk_tensor_create(ctx, 2, negative, dtype(DSK_DTYPE_F32), &t),
               DSK_ERR_INVALID_ARGUMENT, {"shape[1] = -2", "expected >= 0"});
  const int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 4};
  expect_error(dsk_tensor_create(ctx, 3, huge, dtype(DSK_DTYPE_F32), &t), DSK_ERR_INVALID_ARGUMENT,
               {"overflows int64"});
  const int64_t bytes_overflow[1] = {INT64_C(1) << 62};
  expect_error(dsk_tensor_create(ctx, 1, bytes_overflow, dtype(DSK_DTYPE_F32), &t),
               DSK_ERR_INVALID_ARGUMENT, {"overflow int64"});
  const int64_t ok[1] = {4};
  expect_error(dsk_tensor_create(ctx, 1, ok, DLDataType{kDLFloat, 64, 1}, &t),
               DSK_ERR_INVALID_ARGUMENT, {"code 2, bits 64"});
  expect_error(dsk_tensor_create(ctx, 1, ok, DLDataType{kDLFloat, 32, 2}, &t),
               DSK_ERR_INVALID_ARGUMENT, {"lanes = 2"});
  expect_error(dsk_tensor_create(ctx, 1, nullptr, dtype(DSK_DTYPE_F32), &t),
               DSK_ERR_INVALID_ARGUMENT, {"shape is NULL"});
  expect_error(dsk_tensor_create(nullptr, 1, ok, dtype(DSK_DTYPE_F32), &t),
               DSK_ERR_INVALID_ARGUMENT, {"ctx is NULL"});
  expect_error(dsk_tensor_create(ctx, 1, ok, dtype(DSK_DTYPE_F32), nullptr),
               DSK_ERR_INVALID_ARGUMENT, {"out is NULL"});
  CHECK(t == nullptr);
}

TEST_CASE("allocation failure reports out of memory and leaks nothing") {
  CpuContext ctx;
  dsk_tensor* t = nullptr;
  const int64_t shape[1] = {INT64_C(1) << 60};  // 1 EiB of uint8
  expect_error(dsk_tensor_create(ctx, 1, shape, dtype(DSK_DTYPE_UINT8), &t), DSK_ERR_OUT_OF_MEMORY,
               {"out of host memory"});
  CHECK(t == nullptr);
  Owned fine(make(ctx, {8}, DSK_DTYPE_F32));  // the context still works
  CHECK(dsk_fill(ctx, fine.dl(), 2.0) == DSK_OK);
}

TEST_CASE("views slice and permute a storage, and keep it alive") {
  CpuContext ctx;
  dsk_tensor* base = make(ctx, {4, 6}, DSK_DTYPE_INT32);
  auto* v = static_cast<int32_t*>(dsk_tensor_dltensor(base)->data);
  for (int i = 0; i < 24; ++i) v[i] = i;

  const int64_t tshape[2] = {6, 4};
  const int64_t tstrides[2] = {1, 6};
  dsk_tensor* transposed = nullptr;
  REQUIRE(dsk_tensor_view(base, 2, tshape, tstrides, 0, &transposed) == DSK_OK);
  CHECK(dsk_tensor_is_contiguous(transposed) == 0);

  const int64_t cshape[2] = {2, 3};
  const int64_t cstrides[2] = {6, 2};
  dsk_tensor* corner = nullptr;  // rows 1..2, columns 1, 3, 5
  REQUIRE(dsk_tensor_view(base, 2, cshape, cstrides, 7, &corner) == DSK_OK);
  dsk_tensor_release(base);  // the views keep the storage

  CpuContext ctx2;
  Owned dense(make(ctx2, {2, 3}, DSK_DTYPE_INT32));
  REQUIRE(dsk_copy(ctx2, dsk_tensor_dltensor(corner), dense.dl()) == DSK_OK);
  const int32_t want[6] = {7, 9, 11, 13, 15, 17};
  CHECK(std::memcmp(dense.data<int32_t>(), want, sizeof(want)) == 0);

  Owned t_dense(make(ctx2, {6, 4}, DSK_DTYPE_INT32));
  REQUIRE(dsk_copy(ctx2, dsk_tensor_dltensor(transposed), t_dense.dl()) == DSK_OK);
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 4; ++c) CHECK(t_dense.data<int32_t>()[r * 4 + c] == c * 6 + r);
  }
  dsk_tensor_release(corner);
  dsk_tensor_release(transposed);
}

TEST_CASE("views are checked against their storage") {
  CpuContext ctx;
  Owned base(make(ctx, {4, 6}, DSK_DTYPE_F32));
  dsk_tensor* v = nullptr;
  const int64_t s24[1] = {24};
  const int64_t s25[1] = {25};
  CHECK(dsk_tensor_view(base.t, 1, s24, nullptr, 0, &v) == DSK_OK);
  dsk_tensor_release(v);
  expect_error(dsk_tensor_view(base.t, 1, s25, nullptr, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"dsk_tensor_view", "24 elements"});
  expect_error(dsk_tensor_view(base.t, 1, s24, nullptr, 1, &v), DSK_ERR_INVALID_ARGUMENT,
               {"inside the storage"});
  expect_error(dsk_tensor_view(base.t, 1, s24, nullptr, -1, &v), DSK_ERR_INVALID_ARGUMENT,
               {"element_offset = -1"});
  const int64_t shape2[2] = {2, 3};
  const int64_t overlap[2] = {2, 1};  // row 1 starts inside row 0
  expect_error(dsk_tensor_view(base.t, 2, shape2, overlap, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"same element"});
  const int64_t zero[2] = {0, 1};
  expect_error(dsk_tensor_view(base.t, 2, shape2, zero, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"same element"});
  const int64_t negative[2] = {-3, 1};
  expect_error(dsk_tensor_view(base.t, 2, shape2, negative, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"strides[0] = -3"});
  const int64_t far[2] = {INT64_C(1) << 62, 1};
  expect_error(dsk_tensor_view(base.t, 2, shape2, far, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"storage"});
  expect_error(dsk_tensor_view(nullptr, 1, s24, nullptr, 0, &v), DSK_ERR_INVALID_ARGUMENT,
               {"base is NULL"});
  CHECK(v == nullptr);
}

TEST_CASE("copy converts dtypes through strided layouts") {
  CpuContext ctx;
  std::vector<float> src(12);
  for (int i = 0; i < 12; ++i) src[i] = static_cast<float>(i) * 0.25f - 1.0f;
  // src viewed as its transpose (3x4 -> 4x3), written into a bf16 tensor.
  Borrowed s(src.data(), {4, 3}, DSK_DTYPE_F32, {1, 4});
  Owned dst(make(ctx, {4, 3}, DSK_DTYPE_BF16));
  REQUIRE(dsk_copy(ctx, &s, dst.dl()) == DSK_OK);
  std::vector<float> back(12);
  Borrowed b(back.data(), {4, 3}, DSK_DTYPE_F32);
  REQUIRE(dsk_copy(ctx, dst.dl(), &b) == DSK_OK);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 3; ++c) CHECK(back[r * 3 + c] == src[c * 4 + r]);  // exact in bf16
  }
  // A stride-0 source broadcasts.
  float one = 3.0f;
  Borrowed bcast(&one, {4, 3}, DSK_DTYPE_F32, {0, 0});
  REQUIRE(dsk_copy(ctx, &bcast, &b) == DSK_OK);
  for (float x : back) CHECK(x == 3.0f);
}

TEST_CASE("copy rejects mismatched or overlapping tensors") {
  CpuContext ctx;
  std::vector<float> a(12), c(12);
  Borrowed src(a.data(), {3, 4}, DSK_DTYPE_F32);
  Borrowed wrong(c.data(), {4, 3}, DSK_DTYPE_F32);
  expect_error(dsk_copy(ctx, &src, &wrong), DSK_ERR_INVALID_ARGUMENT,
               {"dsk_copy", "src.shape[0] = 3 but dst.shape[0] = 4"});
  Borrowed fewer(c.data(), {12}, DSK_DTYPE_F32);
  expect_error(dsk_copy(ctx, &src, &fewer), DSK_ERR_INVALID_ARGUMENT, {"src.ndim = 2"});
  Borrowed shifted(a.data() + 1, {3, 4}, DSK_DTYPE_F32);
  Borrowed smaller_src(a.data(), {2, 4}, DSK_DTYPE_F32);
  Borrowed smaller_dst(a.data() + 1, {2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_copy(ctx, &smaller_src, &smaller_dst), DSK_ERR_INVALID_ARGUMENT, {"overlap"});
  Borrowed self_overlap(c.data(), {3, 4}, DSK_DTYPE_F32, {0, 1});
  expect_error(dsk_copy(ctx, &src, &self_overlap), DSK_ERR_INVALID_ARGUMENT,
               {"dst", "non-overlapping output"});
  expect_error(dsk_copy(ctx, nullptr, &src), DSK_ERR_INVALID_ARGUMENT, {"src is NULL"});
  expect_error(dsk_copy(nullptr, &src, &wrong), DSK_ERR_INVALID_ARGUMENT, {"ctx is NULL"});

  Borrowed cuda_dst(c.data(), {3, 4}, DSK_DTYPE_F32);
  cuda_dst.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_copy(ctx, &src, &cuda_dst), DSK_ERR_INVALID_ARGUMENT,
               {"src on cpu and dst on cuda:0", "CUDA context"});
  Borrowed opencl(c.data(), {3, 4}, DSK_DTYPE_F32);
  opencl.dl.device = DLDevice{kDLOpenCL, 0};
  expect_error(dsk_copy(ctx, &src, &opencl), DSK_ERR_INVALID_ARGUMENT,
               {"dst: device type 4", "kDLCPU"});
  Borrowed no_data(nullptr, {3, 4}, DSK_DTYPE_F32);
  expect_error(dsk_copy(ctx, &src, &no_data), DSK_ERR_INVALID_ARGUMENT, {"data is NULL"});
  Borrowed negative(c.data(), {3, 4}, DSK_DTYPE_F32, {-4, 1});
  expect_error(dsk_copy(ctx, &negative, &fewer), DSK_ERR_INVALID_ARGUMENT, {"strides[0] = -4"});
  Borrowed huge_stride(c.data(), {3, 4}, DSK_DTYPE_F32, {INT64_C(1) << 62, 1});
  expect_error(dsk_copy(ctx, &huge_stride, &wrong), DSK_ERR_INVALID_ARGUMENT, {"int64"});
  Borrowed nine(c.data(), {1, 1, 1, 1, 1, 1, 1, 1, 1}, DSK_DTYPE_F32);
  expect_error(dsk_copy(ctx, &nine, &src), DSK_ERR_INVALID_ARGUMENT, {"ndim = 9"});
  Borrowed lanes(c.data(), {3, 4}, DSK_DTYPE_F32);
  lanes.dl.dtype.lanes = 4;
  expect_error(dsk_copy(ctx, &lanes, &src), DSK_ERR_INVALID_ARGUMENT, {"lanes = 4"});
  Borrowed byte_offset(c.data(), {3, 4}, DSK_DTYPE_F32);
  byte_offset.dl.device.device_id = -1;
  expect_error(dsk_copy(ctx, &byte_offset, &src), DSK_ERR_INVALID_ARGUMENT, {"device_id = -1"});
  (void)shifted;
}

TEST_CASE("fill converts the value per dtype") {
  CpuContext ctx;
  Owned f(make(ctx, {5}, DSK_DTYPE_FP8_E4M3FN));
  REQUIRE(dsk_fill(ctx, f.dl(), 1000.0) == DSK_OK);  // saturates
  for (int i = 0; i < 5; ++i) CHECK(f.data<uint8_t>()[i] == 0x7E);
  Owned i(make(ctx, {3}, DSK_DTYPE_INT32));
  REQUIRE(dsk_fill(ctx, i.dl(), -7.9) == DSK_OK);
  for (int k = 0; k < 3; ++k) CHECK(i.data<int32_t>()[k] == -7);
  Owned b(make(ctx, {2}, DSK_DTYPE_BF16));
  REQUIRE(dsk_fill(ctx, b.dl(), 1.0) == DSK_OK);
  CHECK(b.data<uint16_t>()[1] == 0x3F80);
  // A strided destination is written only where it points.
  std::vector<float> raw(8, -1.0f);
  Borrowed every_other(raw.data(), {4}, DSK_DTYPE_F32, {2});
  REQUIRE(dsk_fill(ctx, &every_other, 5.0) == DSK_OK);
  for (int k = 0; k < 8; ++k) CHECK(raw[k] == (k % 2 == 0 ? 5.0f : -1.0f));
  // DLPack allows any byte_offset: a misaligned destination is filled byte-wise.
  std::vector<unsigned char> bytes(4 * 6 + 1, 0xAA);
  Borrowed misaligned(bytes.data(), {2, 3}, DSK_DTYPE_F32);
  misaligned.dl.byte_offset = 1;
  REQUIRE(dsk_fill(ctx, &misaligned, -0.5) == DSK_OK);
  CHECK(bytes[0] == 0xAA);
  for (int k = 0; k < 6; ++k) {
    float v = 0;
    std::memcpy(&v, bytes.data() + 1 + 4 * k, 4);
    CHECK(v == -0.5f);
  }
  expect_error(dsk_fill(ctx, nullptr, 1.0), DSK_ERR_INVALID_ARGUMENT, {"dst is NULL"});
}

TEST_CASE("random fill is seeded, layout independent and distributed as documented") {
  CpuContext ctx;
  dsk_random_params p;
  REQUIRE(dsk_random_params_init(&p) == DSK_OK);
  CHECK(p.distribution == DSK_RANDOM_UNIFORM);
  CHECK(p.a == 0.0);
  CHECK(p.b == 1.0);
  p.seed = 1234;
  p.a = -2.0;
  p.b = 2.0;
  Owned x(make(ctx, {64, 64}, DSK_DTYPE_F32));
  Owned y(make(ctx, {64, 64}, DSK_DTYPE_F32));
  REQUIRE(dsk_fill_random(ctx, x.dl(), &p) == DSK_OK);
  REQUIRE(dsk_fill_random(ctx, y.dl(), &p) == DSK_OK);
  CHECK(std::memcmp(x.data<float>(), y.data<float>(), 64 * 64 * 4) == 0);
  double sum = 0;
  for (int i = 0; i < 4096; ++i) {
    float v = x.data<float>()[i];
    CHECK(v >= -2.0f);
    CHECK(v < 2.0f);
    sum += v;
  }
  CHECK(std::fabs(sum / 4096) < 5 * std::sqrt(16.0 / 12 / 4096));

  // Element i (row-major) gets the same value whatever the destination strides.
  std::vector<float> raw(64 * 64);
  Borrowed transposed(raw.data(), {64, 64}, DSK_DTYPE_F32, {1, 64});
  REQUIRE(dsk_fill_random(ctx, &transposed, &p) == DSK_OK);
  for (int r = 0; r < 64; ++r) {
    for (int c = 0; c < 64; ++c) CHECK(raw[c * 64 + r] == x.data<float>()[r * 64 + c]);
  }
  // Another offset draws other numbers; bf16 output is the rounded f32 stream.
  p.offset = 1;
  REQUIRE(dsk_fill_random(ctx, y.dl(), &p) == DSK_OK);
  CHECK(std::memcmp(x.data<float>(), y.data<float>(), 64 * 64 * 4) != 0);
  p.offset = 0;
  Owned h(make(ctx, {64, 64}, DSK_DTYPE_BF16));
  REQUIRE(dsk_fill_random(ctx, h.dl(), &p) == DSK_OK);
  std::vector<uint16_t> rounded(4096);
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_F32), x.data<float>(), dtype(DSK_DTYPE_BF16),
                           rounded.data(), 4096) == DSK_OK);
  CHECK(std::memcmp(rounded.data(), h.data<uint16_t>(), 4096 * 2) == 0);

  p.distribution = DSK_RANDOM_NORMAL;
  p.a = 1.0;
  p.b = 3.0;
  Owned n(make(ctx, {100000}, DSK_DTYPE_F32));
  REQUIRE(dsk_fill_random(ctx, n.dl(), &p) == DSK_OK);
  double m = 0, m2 = 0;
  for (int i = 0; i < 100000; ++i) {
    double v = n.data<float>()[i];
    m += v;
    m2 += v * v;
  }
  m /= 100000;
  double var = m2 / 100000 - m * m;
  CHECK(std::fabs(m - 1.0) < 5 * 3.0 / std::sqrt(100000.0));
  CHECK(std::fabs(var - 9.0) < 5 * 9.0 * std::sqrt(2.0 / 100000));
}

TEST_CASE("random fill rejects bad parameters") {
  CpuContext ctx;
  Owned x(make(ctx, {4}, DSK_DTYPE_F32));
  Owned ints(make(ctx, {4}, DSK_DTYPE_INT32));
  dsk_random_params p;
  dsk_random_params_init(&p);
  expect_error(dsk_fill_random(ctx, ints.dl(), &p), DSK_ERR_INVALID_ARGUMENT,
               {"int32", "floating dtype"});
  p.distribution = 9;
  expect_error(dsk_fill_random(ctx, x.dl(), &p), DSK_ERR_INVALID_ARGUMENT,
               {"params->distribution = 9"});
  dsk_random_params_init(&p);
  p.struct_size = 4;
  expect_error(dsk_fill_random(ctx, x.dl(), &p), DSK_ERR_VERSION_MISMATCH,
               {"params->struct_size = 4"});
  expect_error(dsk_fill_random(ctx, x.dl(), nullptr), DSK_ERR_INVALID_ARGUMENT, {"params is NULL"});
  expect_error(dsk_random_params_init(nullptr), DSK_ERR_INVALID_ARGUMENT, {"params is NULL"});
}

TEST_CASE("clone copies into a new contiguous tensor with the requested dtype") {
  CpuContext ctx;
  std::vector<float> src = {1.5f, -2.0f, 3.25f, 100.0f, 0.0f, -0.5f};
  Borrowed s(src.data(), {3, 2}, DSK_DTYPE_F32, {1, 3});
  dsk_tensor* c = nullptr;
  REQUIRE(dsk_tensor_clone(ctx, &s, dtype(DSK_DTYPE_F16), &c) == DSK_OK);
  CHECK(dsk_tensor_is_contiguous(c) == 1);
  std::vector<float> back(6);
  Borrowed b(back.data(), {3, 2}, DSK_DTYPE_F32);
  REQUIRE(dsk_copy(ctx, dsk_tensor_dltensor(c), &b) == DSK_OK);
  CHECK(back == std::vector<float>{1.5f, 100.0f, -2.0f, 0.0f, 3.25f, -0.5f});
  dsk_tensor_release(c);
  c = nullptr;
  expect_error(dsk_tensor_clone(ctx, &s, DLDataType{kDLFloat, 64, 1}, &c), DSK_ERR_INVALID_ARGUMENT,
               {"dtype"});
  CHECK(c == nullptr);
}

TEST_CASE("validate reports the caller's name") {
  float x = 0;
  Borrowed good(&x, {1}, DSK_DTYPE_F32);
  CHECK(dsk_dltensor_validate(&good, "q") == DSK_OK);
  Borrowed bad(&x, {-1}, DSK_DTYPE_F32);
  expect_error(dsk_dltensor_validate(&bad, "kv_cache"), DSK_ERR_INVALID_ARGUMENT,
               {"kv_cache: shape[0] = -1"});
}

TEST_CASE("layout facts that would reach outside memory are refused") {
  CpuContext ctx;
  std::vector<float> a(8), b(8);
  Borrowed dst(b.data(), {8}, DSK_DTYPE_F32);
  Borrowed far(a.data(), {8}, DSK_DTYPE_F32);
  // Only offsets that provably leave the address space can be caught (like a wild data pointer,
  // a wild offset that stays inside it cannot).
  far.dl.byte_offset = UINT64_C(1) << 63;
  expect_error(dsk_dltensor_validate(&far, "x"), DSK_ERR_INVALID_ARGUMENT,
               {"x: byte_offset = 9223372036854775808"});
  expect_error(dsk_fill(ctx, &far, 1.0), DSK_ERR_INVALID_ARGUMENT, {"byte_offset"});
  far.dl.byte_offset = UINT64_MAX - 64;
  expect_error(dsk_copy(ctx, &far, &dst), DSK_ERR_INVALID_ARGUMENT, {"src: byte_offset"});

  // Host memory has a single device: another id cannot hide an overlap.
  Borrowed src(a.data(), {4}, DSK_DTYPE_F32);
  Borrowed alias(a.data() + 2, {4}, DSK_DTYPE_F32);
  alias.dl.device.device_id = 1;
  expect_error(dsk_copy(ctx, &src, &alias), DSK_ERR_INVALID_ARGUMENT,
               {"dst: device_id = 1 for host memory, expected 0"});
}

TEST_CASE("size-1 dims may carry any stride") {
  CpuContext ctx;
  std::vector<float> a(2, 0.0f);
  Borrowed odd(a.data(), {2, 1}, DSK_DTYPE_F32, {1, INT64_MAX});
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.seed = 3;
  REQUIRE(dsk_fill_random(ctx, &odd, &p) == DSK_OK);
  REQUIRE(dsk_fill(ctx, &odd, 2.0) == DSK_OK);
  CHECK(a[0] == 2.0f);
  CHECK(a[1] == 2.0f);
  std::vector<float> c(2);
  Borrowed dense(c.data(), {2, 1}, DSK_DTYPE_F32);
  REQUIRE(dsk_copy(ctx, &odd, &dense) == DSK_OK);
  CHECK(c[1] == 2.0f);
}

TEST_CASE("random parameters must make sense in f32") {
  CpuContext ctx;
  Owned x(make(ctx, {4}, DSK_DTYPE_F32));
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.b = NAN;
  expect_error(dsk_fill_random(ctx, x.dl(), &p), DSK_ERR_INVALID_ARGUMENT,
               {"expected finite values"});
  p.b = 1e300;
  expect_error(dsk_fill_random(ctx, x.dl(), &p), DSK_ERR_INVALID_ARGUMENT, {"f32 range"});
  p.distribution = DSK_RANDOM_NORMAL;
  p.b = -1.0;
  expect_error(dsk_fill_random(ctx, x.dl(), &p), DSK_ERR_INVALID_ARGUMENT,
               {"negative standard deviation"});
}
