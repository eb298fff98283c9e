// Sizes where launch shapes and index arithmetic matter: more elements than one grid covers
// (2^27 + 3), and more than 2^32 (64-bit index decoding in the kernels).
#include <cstdint>
#include <cstring>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

uint64_t total_device_memory() {
  dsk_device_props props;
  require_ok(dsk_device_props_init(&props), "dsk_device_props_init");
  require_ok(dsk_device_get_props(DSK_BACKEND_CUDA, 0, &props), "dsk_device_get_props");
  return props.total_memory_bytes;
}

TEST_CASE("2^27 + 3 elements: fill_random, converting copy and fill match the CPU") {
  Env env;
  const int64_t n = (int64_t{1} << 27) + 3;
  Twin values = make_twin(env, DSK_DTYPE_F32, n, 1);
  dsk_random_params params;
  DSK_REQUIRE_OK(dsk_random_params_init(&params));
  params.seed = 2024;
  params.offset = 11;
  params.a = -3.0;
  params.b = 3.0;
  DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), values.cpu.dl(), &params));
  DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), values.gpu.dl(), &params));
  check_twin(env, values);

  Twin narrowed = make_twin(env, DSK_DTYPE_BF16, n, 2);
  DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), values.cpu.dl(), narrowed.cpu.dl()));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), values.gpu.dl(), narrowed.gpu.dl()));
  check_twin(env, narrowed);

  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), narrowed.cpu.dl(), 0.333));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), narrowed.gpu.dl(), 0.333));
  check_twin(env, narrowed);
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

// D is a 65537 x 65539 uint8 matrix with D[i][j] = (31 i + j) % 251; E = D^T as f16 has
// 4,295,229,443 elements (> 2^32), so the copy kernel decodes 64-bit row-major indices.
TEST_CASE("more than 2^32 elements: a transposing, converting copy and a strided fill") {
  constexpr int64_t kRows = 65537;
  constexpr int64_t kCols = 65539;
  if (total_device_memory() < (uint64_t{24} << 30)) {
    MESSAGE("skipped: needs a device with 24 GiB of memory");
    return;
  }
  Env env;
  Tensor d = create(env.gpu.get(), {kRows, kCols}, DSK_DTYPE_UINT8);
  auto value = [](int64_t i, int64_t j) { return static_cast<uint8_t>((31 * i + j) % 251); };
  // Uploaded in row blocks so the host never holds all 4 GiB.
  constexpr int64_t kBlock = 2048;
  Tensor block = create(env.cpu.get(), {kBlock, kCols}, DSK_DTYPE_UINT8);
  for (int64_t r0 = 0; r0 < kRows; r0 += kBlock) {
    const int64_t rows = r0 + kBlock <= kRows ? kBlock : kRows - r0;
    uint8_t* p = block.host_bytes();
    for (int64_t i = 0; i < rows; ++i) {
      // value(r0 + i, j) without a division per byte: 4 Gi of them would dominate the test.
      uint8_t v = value(r0 + i, 0);
      for (int64_t j = 0; j < kCols; ++j) {
        *p++ = v;
        v = v == 250 ? 0 : static_cast<uint8_t>(v + 1);
      }
    }
    Tensor host_rows = view(block, row_major({rows, kCols}));
    Tensor device_rows = view(d, row_major({rows, kCols}, r0 * kCols));
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), host_rows.dl(), device_rows.dl()));
  }

  Tensor e = create(env.gpu.get(), {kCols, kRows}, DSK_DTYPE_F16);
  REQUIRE(e.numel() > (int64_t{1} << 32));
  Tensor d_transposed = view(d, Layout{{kCols, kRows}, {1, kCols}, 0});
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), d_transposed.dl(), e.dl()));

  // E[j][i] == D[i][j] on rows at the start, the middle and past 2^32 elements.
  auto check_row = [&](int64_t j, int64_t columns_filled) {
    CAPTURE(j);
    Tensor row = view(e, row_major({kRows}, j * kRows));
    Tensor host = create(env.cpu.get(), {kRows}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), row.dl(), host.dl()));
    std::vector<float> got(kRows);
    std::memcpy(got.data(), host.host_bytes(), host.nbytes());
    int64_t bad = 0;
    for (int64_t i = 0; i < kRows; ++i) {
      const float want = i < columns_filled ? 2.0f : static_cast<float>(value(i, j));
      if (got[i] != want && bad++ == 0) {
        FAIL_CHECK("E[" << j << "][" << i << "] = " << got[i] << ", expected " << want);
      }
    }
    CHECK(bad == 0);
  };
  for (int64_t j : {int64_t{0}, int64_t{1}, int64_t{32768}, kCols - 2, kCols - 1}) {
    check_row(j, 0);
  }

  // Every column but the last of E, as a strided view of more than 2^32 elements.
  Tensor most = view(e, Layout{{kCols, kRows - 1}, {kRows, 1}, 0});
  REQUIRE(most.numel() > (int64_t{1} << 32));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), most.dl(), 2.0));
  for (int64_t j : {int64_t{0}, int64_t{40000}, kCols - 1}) check_row(j, kRows - 1);
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

}  // namespace
}  // namespace dsk_test
