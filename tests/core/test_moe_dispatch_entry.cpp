// The CPU backend's MoE dispatch family called directly (lib/cpu/moe_dispatch.cpp,
// moe_permute.cpp, moe_stats.cpp): worked examples for dispatch (packed and block-padded, local
// expert ranges, T = 0), permute (float and fp8 outputs, the latter equal to quant_fp8 of the
// gathered rows), combine (order of the sum, shared == out), load statistics, the bias update and
// the EP layout; a large random dispatch against a naive reference for several thread counts; the
// index checks (nothing written on a bad value).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk.h"

namespace {

constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kBf16{kDLBfloat, 16, 1};
constexpr DLDataType kFp8{kDLFloat8_e4m3fn, 8, 1};
constexpr DLDataType kI32{kDLInt, 32, 1};
constexpr DLDataType kI64{kDLInt, 64, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};

// A host tensor view over `data` with explicit strides (elements).
struct View {
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
  View(void* data, DLDataType dt, std::vector<int64_t> s, std::vector<int64_t> st = {})
      : shape(std::move(s)), strides(std::move(st)) {
    if (strides.empty()) {
      strides.assign(shape.size(), 1);
      for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
    }
    dl.data = data;
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dt;
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
};

struct ThreadsEnv {
  std::string old;
  bool had = false;
  explicit ThreadsEnv(const char* value) {
    const char* o = std::getenv("DSK_NUM_THREADS");
    had = o != nullptr;
    if (had) old = o;
    setenv("DSK_NUM_THREADS", value, 1);
  }
  ~ThreadsEnv() {
    if (had) {
      setenv("DSK_NUM_THREADS", old.c_str(), 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
  }
};

using I32s = std::vector<int32_t>;

struct DispatchOut {
  I32s counts, offsets, sorted, blocks, dest;
  dsk_status status = DSK_OK;
};

// Runs the CPU dispatch over ids [T, k] int32 with capacity rows (block_experts and dest given).
DispatchOut dispatch(const I32s& ids, int64_t T, int64_t k, int32_t E, int32_t begin, int32_t block,
                     int64_t capacity) {
  DispatchOut o;
  o.counts.assign(static_cast<size_t>(E), 77);
  o.offsets.assign(static_cast<size_t>(E + 1), 77);
  o.sorted.assign(static_cast<size_t>(capacity), 77);
  o.blocks.assign(static_cast<size_t>((capacity + block - 1) / block), 77);
  o.dest.assign(static_cast<size_t>(T * k), 77);
  I32s ids_copy = ids;
  View iv(ids_copy.data(), kI32, {T, k});
  View cv(o.counts.data(), kI32, {E});
  View ov(o.offsets.data(), kI32, {E + 1});
  View sv(o.sorted.data(), kI32, {capacity});
  View bv(o.blocks.data(), kI32, {static_cast<int64_t>(o.blocks.size())});
  View dv(o.dest.data(), kI32, {T, k});
  dsk_exec ex{};
  o.status =
      dsk::cpu::moe_dispatch(&ex, &iv.dl, E, begin, block, &cv.dl, &ov.dl, &sv.dl, &bv.dl, &dv.dl);
  return o;
}

// The dispatch by its definition: a stable sort by local expert, segments padded to block.
DispatchOut naive_dispatch(const std::vector<int64_t>& ids, int64_t T, int64_t k, int32_t E,
                           int32_t begin, int32_t block, int64_t capacity) {
  DispatchOut o;
  const int64_t n = T * k;
  o.counts.assign(static_cast<size_t>(E), 0);
  o.offsets.assign(static_cast<size_t>(E + 1), 0);
  o.sorted.assign(static_cast<size_t>(capacity), static_cast<int32_t>(n));
  o.blocks.assign(static_cast<size_t>((capacity + block - 1) / block), -1);
  o.dest.assign(static_cast<size_t>(n), -1);
  for (int64_t a = 0; a < n; ++a) {
    const int64_t e = ids[static_cast<size_t>(a)] - begin;
    if (e >= 0 && e < E) ++o.counts[static_cast<size_t>(e)];
  }
  for (int32_t e = 0; e < E; ++e) {
    const int32_t c = o.counts[static_cast<size_t>(e)];
    o.offsets[static_cast<size_t>(e + 1)] =
        o.offsets[static_cast<size_t>(e)] + (c + block - 1) / block * block;
    int32_t row = o.offsets[static_cast<size_t>(e)];
    for (int64_t a = 0; a < n; ++a) {
      if (ids[static_cast<size_t>(a)] - begin == e) {
        o.sorted[static_cast<size_t>(row)] = static_cast<int32_t>(a);
        o.dest[static_cast<size_t>(a)] = row;
        ++row;
      }
    }
    for (int32_t b = o.offsets[static_cast<size_t>(e)] / block;
         b < o.offsets[static_cast<size_t>(e + 1)] / block; ++b) {
      o.blocks[static_cast<size_t>(b)] = e;
    }
  }
  return o;
}

void check_same(const DispatchOut& got, const DispatchOut& want) {
  CHECK(got.counts == want.counts);
  CHECK(got.offsets == want.offsets);
  CHECK(got.sorted == want.sorted);
  CHECK(got.blocks == want.blocks);
  CHECK(got.dest == want.dest);
}

std::string error_text() { return dsk::cpu::last_error(); }

}  // namespace

TEST_CASE("moe dispatch entry: worked examples") {
  // ids [3, 2]; assignment a = t * 2 + j: a0 -> 1, a1 -> 0, a2 -> 1, a3 -> 3, a4 -> -1, a5 -> 1.
  const I32s ids = {1, 0, 1, 3, -1, 1};
  SUBCASE("packed (block_size 1)") {
    const DispatchOut o = dispatch(ids, 3, 2, 4, 0, 1, 6);
    REQUIRE(o.status == DSK_OK);
    CHECK(o.counts == I32s{1, 3, 0, 1});
    CHECK(o.offsets == I32s{0, 1, 4, 4, 5});
    CHECK(o.sorted == I32s{1, 0, 2, 5, 3, 6});
    CHECK(o.blocks == I32s{0, 1, 1, 1, 3, -1});
    CHECK(o.dest == I32s{1, 0, 2, 4, -1, 3});
  }
  SUBCASE("block_size 2: segments padded with the sentinel T * k = 6") {
    const DispatchOut o = dispatch(ids, 3, 2, 4, 0, 2, 10);
    REQUIRE(o.status == DSK_OK);
    CHECK(o.counts == I32s{1, 3, 0, 1});
    CHECK(o.offsets == I32s{0, 2, 6, 6, 8});
    CHECK(o.sorted == I32s{1, 6, 0, 2, 5, 6, 3, 6, 6, 6});
    CHECK(o.blocks == I32s{0, 1, 1, 3, -1});
    CHECK(o.dest == I32s{2, 0, 3, 6, -1, 4});
  }
  SUBCASE("local experts 1..2 (expert_begin 1, E 2): other ids are skipped") {
    const DispatchOut o = dispatch(ids, 3, 2, 2, 1, 1, 6);
    REQUIRE(o.status == DSK_OK);
    CHECK(o.counts == I32s{3, 0});
    CHECK(o.offsets == I32s{0, 3, 3});
    CHECK(o.sorted == I32s{0, 2, 5, 6, 6, 6});
    CHECK(o.blocks == I32s{0, 0, 0, -1, -1, -1});
    CHECK(o.dest == I32s{0, -1, 1, -1, -1, 2});
  }
  SUBCASE("T = 0: zero counts and offsets, every row the sentinel 0, every block -1") {
    const DispatchOut o = dispatch({}, 0, 2, 3, 0, 4, 6);
    REQUIRE(o.status == DSK_OK);
    CHECK(o.counts == I32s{0, 0, 0});
    CHECK(o.offsets == I32s{0, 0, 0, 0});
    CHECK(o.sorted == I32s{0, 0, 0, 0, 0, 0});
    CHECK(o.blocks == I32s{-1, -1});
    const DispatchOut empty = dispatch({}, 0, 2, 3, 0, 4, 0);
    REQUIRE(empty.status == DSK_OK);
    CHECK(empty.offsets == I32s{0, 0, 0, 0});
  }
  SUBCASE("int64 ids with strides, no block_experts and no dest") {
    // ids [2, 2] as the even elements of a buffer, values 2, 0, 2, 5 (5 is skipped with E = 3).
    std::vector<int64_t> buf = {2, 9, 0, 9, 2, 9, 5, 9};
    View iv(buf.data(), kI64, {2, 2}, {4, 2});
    I32s counts(3), offsets(4), sorted(4);
    View cv(counts.data(), kI32, {3});
    View ov(offsets.data(), kI32, {4});
    View sv(sorted.data(), kI32, {4});
    dsk_exec ex{};
    REQUIRE(dsk::cpu::moe_dispatch(&ex, &iv.dl, 3, 0, 1, &cv.dl, &ov.dl, &sv.dl, nullptr,
                                   nullptr) == DSK_OK);
    CHECK(counts == I32s{1, 0, 2});
    CHECK(offsets == I32s{0, 1, 1, 3});
    CHECK(sorted == I32s{1, 0, 2, 4});
  }
}

TEST_CASE("moe dispatch entry: random ids equal the naive stable sort for any thread count") {
  std::mt19937 rng(7);
  struct Shape {
    int64_t T, k;
    int32_t E, begin, block;
  };
  for (const Shape s : {Shape{1, 8, 256, 0, 1}, Shape{37, 6, 160, 0, 16}, Shape{512, 8, 64, 32, 64},
                        Shape{40000, 8, 256, 0, 128}, Shape{20000, 16, 8192, 100, 1}}) {
    const int64_t n = s.T * s.k;
    std::vector<int64_t> ids(static_cast<size_t>(n));
    // Skewed: a quarter of the ids on a few hot experts, some -1 and some outside the range.
    std::uniform_int_distribution<int64_t> any(-1, s.begin + s.E + 10);
    std::uniform_int_distribution<int64_t> hot(s.begin, s.begin + 3);
    for (auto& v : ids) v = rng() % 4 == 0 ? hot(rng) : any(rng);
    const I32s ids32(ids.begin(), ids.end());
    const int64_t capacity = n + std::min<int64_t>(s.E, n) * (s.block - 1) + 3;
    const DispatchOut want = naive_dispatch(ids, s.T, s.k, s.E, s.begin, s.block, capacity);
    for (const char* threads : {"1", "3", "8"}) {
      INFO("T " << s.T << " k " << s.k << " E " << s.E << " threads " << threads);
      ThreadsEnv env(threads);
      const DispatchOut got = dispatch(ids32, s.T, s.k, s.E, s.begin, s.block, capacity);
      REQUIRE(got.status == DSK_OK);
      check_same(got, want);
    }
  }
}

TEST_CASE("moe permute entry: gathers rows, zeroes padding, converts") {
  // x [2, 3] f32, k = 2: sorted_rows 1 -> token 0, 4 = T * k padding, 2 -> token 1, 0 -> token 0.
  std::vector<float> x = {1.5f, -2.0f, 3.0f, 4.0f, 5.0f, 1.0f / 3.0f};
  I32s rows = {1, 4, 2, 0};
  View xv(x.data(), kF32, {2, 3});
  View rv(rows.data(), kI32, {4});
  dsk_exec ex{};
  SUBCASE("f32 out") {
    std::vector<float> out(12, 9.0f);
    View ov(out.data(), kF32, {4, 3});
    REQUIRE(dsk::cpu::moe_permute(&ex, &xv.dl, &rv.dl, 2, &ov.dl, nullptr, 0) == DSK_OK);
    CHECK(out == std::vector<float>{1.5f, -2.0f, 3.0f, 0, 0, 0, 4.0f, 5.0f, 1.0f / 3.0f, 1.5f,
                                    -2.0f, 3.0f});
  }
  SUBCASE("bf16 out, strided (rows 4 apart)") {
    std::vector<uint16_t> out(16, 0xFFFF);
    View ov(out.data(), kBf16, {4, 3}, {4, 1});
    REQUIRE(dsk::cpu::moe_permute(&ex, &xv.dl, &rv.dl, 2, &ov.dl, nullptr, 0) == DSK_OK);
    CHECK(out[4] == 0);
    CHECK(out[6] == 0);
    CHECK(out[7] == 0xFFFF);
    CHECK(out[8] == dsk::f32_to_bf16(4.0f));
    CHECK(out[10] == dsk::f32_to_bf16(1.0f / 3.0f));
    CHECK(out[12] == dsk::f32_to_bf16(1.5f));
  }
  SUBCASE("a value outside [0, T * k] is rejected before anything is written") {
    I32s bad = {1, 5, 0, 0};
    View bv(bad.data(), kI32, {4});
    std::vector<float> out(12, 9.0f);
    View ov(out.data(), kF32, {4, 3});
    CHECK(dsk::cpu::moe_permute(&ex, &xv.dl, &bv.dl, 2, &ov.dl, nullptr, 0) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(error_text() == "sorted_rows[1] = 5, expected [0, 4] (T * top_k = 4 marks padding)");
    CHECK(out == std::vector<float>(12, 9.0f));
    bad[1] = -1;
    CHECK(dsk::cpu::moe_permute(&ex, &xv.dl, &bv.dl, 2, &ov.dl, nullptr, 0) ==
          DSK_ERR_INVALID_ARGUMENT);
  }
}

TEST_CASE("moe permute entry: fp8 out equals quant_fp8 of the gathered rows bit for bit") {
  const int64_t T = 5, D = 300, k = 3, R = 9;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<uint16_t> x(static_cast<size_t>(T * D));
  for (int64_t i = 0; i < T * D; ++i) {
    // Token 2's second tile is all zero (scale 0).
    const bool zero = i / D == 2 && (i % D) / 128 == 1;
    x[static_cast<size_t>(i)] =
        dsk::f32_to_bf16(zero ? 0.0f : std::ldexp(u(rng), static_cast<int>((i % D) / 128)));
  }
  I32s rows = {14, 0, 15, 6, 7, 8, 2, 15, 3};  // 15 = T * k: padding
  View xv(x.data(), kBf16, {T, D});
  View rv(rows.data(), kI32, {R});
  dsk_exec ex{};
  for (uint32_t flags : {0u, static_cast<uint32_t>(DSK_QUANT_SCALE_POW2)}) {
    std::vector<uint8_t> q(static_cast<size_t>(R * D), 0xAA);
    std::vector<float> s(static_cast<size_t>(R * 3), -1.0f);
    View qv(q.data(), kFp8, {R, D});
    View sv(s.data(), kF32, {R, 3});
    REQUIRE(dsk::cpu::moe_permute(&ex, &xv.dl, &rv.dl, static_cast<int32_t>(k), &qv.dl, &sv.dl,
                                  flags) == DSK_OK);
    // The reference: gather (bf16, exact), then quant_fp8 per 1 x 128 tile.
    std::vector<uint16_t> g(static_cast<size_t>(R * D), 0);
    for (int64_t r = 0; r < R; ++r) {
      if (rows[static_cast<size_t>(r)] == T * k) continue;
      std::memcpy(&g[static_cast<size_t>(r * D)],
                  &x[static_cast<size_t>(rows[static_cast<size_t>(r)] / k * D)], D * 2);
    }
    std::vector<uint8_t> q_ref(static_cast<size_t>(R * D));
    std::vector<float> s_ref(static_cast<size_t>(R * 3));
    View gv(g.data(), kBf16, {R, D});
    View qrv(q_ref.data(), kFp8, {R, D});
    View srv(s_ref.data(), kF32, {R, 3});
    REQUIRE(dsk::cpu::quant_fp8(&ex, &gv.dl, &qrv.dl, &srv.dl, 0, flags) == DSK_OK);
    CHECK(q == q_ref);
    CHECK(std::memcmp(s.data(), s_ref.data(), s.size() * 4) == 0);
    CHECK(s[2 * 3 + 0] == 0.0f);  // padding row: scale 0
    CHECK(s[3 * 3 + 1] == 0.0f);  // token 2's zero tile
  }
  SUBCASE("a NaN in a gathered row is rejected as quant_fp8 rejects it") {
    x[static_cast<size_t>(4 * D + 257)] = 0x7FC0;  // token 4, column 257
    std::vector<uint8_t> q(static_cast<size_t>(R * D));
    std::vector<float> s(static_cast<size_t>(R * 3));
    View qv(q.data(), kFp8, {R, D});
    View sv(s.data(), kF32, {R, 3});
    CHECK(dsk::cpu::moe_permute(&ex, &xv.dl, &rv.dl, static_cast<int32_t>(k), &qv.dl, &sv.dl, 0) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(error_text() ==
          "x[4, 257] (the source of row 0 of sorted_rows) is nan, expected finite values (NaN "
          "and Inf cannot be quantized)");
  }
}

TEST_CASE("moe combine entry: weighted sum in slot order plus shared, rounded once") {
  // y [3, 2]; token 0 takes y[0] * 0.5 (slot 1 skipped), token 1 y[2] * 2 + y[1] * 0.25.
  std::vector<float> y = {1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 1e-8f};
  I32s dest = {0, -1, 2, 1};
  std::vector<float> w = {0.5f, 99.0f, 2.0f, 0.25f};
  std::vector<float> shared = {1.0f, 1.0f, 0.0f, 1.0f};
  View yv(y.data(), kF32, {3, 2});
  View dv(dest.data(), kI32, {2, 2});
  View wv(w.data(), kF32, {2, 2});
  dsk_exec ex{};
  SUBCASE("f32 out, with shared") {
    std::vector<float> out(4, 7.0f);
    View sv(shared.data(), kF32, {2, 2});
    View ov(out.data(), kF32, {2, 2});
    REQUIRE(dsk::cpu::moe_combine(&ex, &yv.dl, &dv.dl, &wv.dl, &sv.dl, &ov.dl) == DSK_OK);
    // Column 1 of token 1: (0 + 2 * 1e-8) + 0.25 * 8 = 2.00000002 is 2 in f32; then 1 + 2 = 3.
    CHECK(out == std::vector<float>{1.5f, 2.0f, 33.0f, 3.0f});
  }
  SUBCASE("out is shared itself, bf16") {
    std::vector<uint16_t> io = {dsk::f32_to_bf16(1.0f), dsk::f32_to_bf16(1.0f), 0,
                                dsk::f32_to_bf16(1.0f / 3.0f)};
    View iov(io.data(), kBf16, {2, 2});
    REQUIRE(dsk::cpu::moe_combine(&ex, &yv.dl, &dv.dl, &wv.dl, &iov.dl, &iov.dl) == DSK_OK);
    const float third = dsk::bf16_to_f32(dsk::f32_to_bf16(1.0f / 3.0f));
    CHECK(io[0] == dsk::f32_to_bf16(1.5f));
    CHECK(io[2] == dsk::f32_to_bf16(33.0f));
    CHECK(io[3] == dsk::f32_to_bf16(third + (0.0f + 2.0f * 1e-8f + 0.25f * 8.0f)));
  }
  SUBCASE("no shared; a bad dest is rejected before anything is written") {
    std::vector<float> out(4, 7.0f);
    View ov(out.data(), kF32, {2, 2});
    REQUIRE(dsk::cpu::moe_combine(&ex, &yv.dl, &dv.dl, &wv.dl, nullptr, &ov.dl) == DSK_OK);
    CHECK(out == std::vector<float>{0.5f, 1.0f, 33.0f, 2.0f});
    out.assign(4, 7.0f);
    dest[3] = 3;
    CHECK(dsk::cpu::moe_combine(&ex, &yv.dl, &dv.dl, &wv.dl, nullptr, &ov.dl) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(error_text() == "dest[1, 1] = 3, expected [-1, 3)");
    CHECK(out == std::vector<float>(4, 7.0f));
    dest[3] = -2;
    CHECK(dsk::cpu::moe_combine(&ex, &yv.dl, &dv.dl, &wv.dl, nullptr, &ov.dl) ==
          DSK_ERR_INVALID_ARGUMENT);
  }
}

TEST_CASE("moe combine entry: a dispatch/permute/combine round trip equals the dense sum") {
  const int64_t T = 300, k = 6, D = 130;
  const int32_t E = 20;
  std::mt19937 rng(11);
  std::vector<int64_t> ids(static_cast<size_t>(T * k));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < k; ++j) ids[static_cast<size_t>(t * k + j)] = (t * 7 + j * 3) % E;
  }
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * D)), w(static_cast<size_t>(T * k));
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  const int64_t capacity = T * k + E * 15;
  const DispatchOut d = dispatch(I32s(ids.begin(), ids.end()), T, k, E, 0, 16, capacity);
  REQUIRE(d.status == DSK_OK);
  // Permute, "experts" = scale rows by (expert + 1), combine.
  std::vector<float> px(static_cast<size_t>(capacity * D));
  View xv(x.data(), kF32, {T, D});
  I32s sorted = d.sorted;
  View sv(sorted.data(), kI32, {capacity});
  View pv(px.data(), kF32, {capacity, D});
  dsk_exec ex{};
  REQUIRE(dsk::cpu::moe_permute(&ex, &xv.dl, &sv.dl, static_cast<int32_t>(k), &pv.dl, nullptr, 0) ==
          DSK_OK);
  for (int32_t e = 0; e < E; ++e) {
    for (int64_t r = d.offsets[static_cast<size_t>(e)]; r < d.offsets[static_cast<size_t>(e + 1)];
         ++r) {
      for (int64_t c = 0; c < D; ++c)
        px[static_cast<size_t>(r * D + c)] *= static_cast<float>(e + 1);
    }
  }
  std::vector<float> out(static_cast<size_t>(T * D));
  I32s dest = d.dest;
  View dv(dest.data(), kI32, {T, k});
  View wv(w.data(), kF32, {T, k});
  View ov(out.data(), kF32, {T, D});
  REQUIRE(dsk::cpu::moe_combine(&ex, &pv.dl, &dv.dl, &wv.dl, nullptr, &ov.dl) == DSK_OK);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < D; ++c) {
      float want = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const auto e = static_cast<float>(ids[static_cast<size_t>(t * k + j)] + 1);
        want += w[static_cast<size_t>(t * k + j)] * (x[static_cast<size_t>(t * D + c)] * e);
      }
      REQUIRE(out[static_cast<size_t>(t * D + c)] == want);
    }
  }
}

TEST_CASE("moe stats entries: load accumulation, bias update, EP layout") {
  dsk_exec ex{};
  SUBCASE("load_accumulate adds the histogram of local ids") {
    I32s ids = {0, 3, 3, -1, 5, 2};  // [3, 2]
    std::vector<int64_t> load = {10, 0, 0, 1};
    View iv(ids.data(), kI32, {3, 2});
    View lv(load.data(), kI64, {4});
    REQUIRE(dsk::cpu::moe_load_accumulate(&ex, &iv.dl, 2, &lv.dl) == DSK_OK);  // experts 2..5
    CHECK(load == std::vector<int64_t>{11, 2, 0, 2});
    REQUIRE(dsk::cpu::moe_load_accumulate(&ex, &iv.dl, 0, &lv.dl) == DSK_OK);
    CHECK(load == std::vector<int64_t>{12, 2, 1, 4});
  }
  SUBCASE("bias_update moves bias by gamma toward the mean load") {
    std::vector<int64_t> load = {1, 2, 3, 6};  // mean 3
    std::vector<float> bias = {0.5f, -0.25f, 0.125f, 1.0f};
    View lv(load.data(), kI64, {4});
    View bv(bias.data(), kF32, {4});
    const float g = 0.001f;
    REQUIRE(dsk::cpu::moe_bias_update(&ex, &lv.dl, &bv.dl, g) == DSK_OK);
    CHECK(bias[0] == static_cast<float>(0.5 + static_cast<double>(g)));
    CHECK(bias[1] == static_cast<float>(-0.25 + static_cast<double>(g)));
    CHECK(bias[2] == 0.125f);
    CHECK(bias[3] == static_cast<float>(1.0 - static_cast<double>(g)));
    // f32 load, strided.
    std::vector<float> fload = {2.0f, 9.0f, 2.5f, 9.0f, 3.5f, 9.0f};  // 2, 2.5, 3.5: mean 8/3
    std::vector<float> fbias = {0.0f, 0.0f, 0.0f};
    View flv(fload.data(), kF32, {3}, {2});
    View fbv(fbias.data(), kF32, {3});
    REQUIRE(dsk::cpu::moe_bias_update(&ex, &flv.dl, &fbv.dl, 0.25f) == DSK_OK);
    CHECK(fbias == std::vector<float>{0.25f, 0.25f, -0.25f});
  }
  SUBCASE("bias_update sums 1000 f32 loads in the canonical lane order") {
    std::vector<float> load(1000);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.0f, 1000.0f);
    for (auto& v : load) v = u(rng);
    double lane[256] = {};
    for (size_t e = 0; e < load.size(); ++e) lane[e % 256] += static_cast<double>(load[e]);
    for (int s = 128; s > 0; s /= 2) {
      for (int l = 0; l < s; ++l) lane[l] += lane[l + s];
    }
    const double mean = lane[0] / 1000.0;
    std::vector<float> bias(1000, 0.0f);
    View lv(load.data(), kF32, {1000});
    View bv(bias.data(), kF32, {1000});
    REQUIRE(dsk::cpu::moe_bias_update(&ex, &lv.dl, &bv.dl, 0.001f) == DSK_OK);
    for (size_t e = 0; e < load.size(); ++e) {
      const double d = mean - static_cast<double>(load[e]);
      const float want = d > 0 ? 0.001f : (d < 0 ? -0.001f : 0.0f);
      REQUIRE(bias[e] == want);
    }
  }
  SUBCASE("ep_layout: E 8 over 4 ranks") {
    std::vector<int64_t> ids = {0, 1, 7, -1, 2, 5, 6, 7};  // [4, 2]
    I32s per_rank(4, 77), per_expert(8, 77);
    std::vector<uint8_t> in_rank(16, 77);
    View iv(ids.data(), kI64, {4, 2});
    View rv(per_rank.data(), kI32, {4});
    View ev(per_expert.data(), kI32, {8});
    View mv(in_rank.data(), kU8, {4, 4});
    REQUIRE(dsk::cpu::moe_ep_layout(&ex, &iv.dl, 8, 4, &rv.dl, &ev.dl, &mv.dl) == DSK_OK);
    CHECK(per_expert == I32s{1, 1, 1, 0, 0, 1, 1, 2});
    CHECK(per_rank == I32s{1, 1, 1, 2});
    CHECK(in_rank == std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1});
    ids[5] = 8;
    per_rank.assign(4, 77);
    CHECK(dsk::cpu::moe_ep_layout(&ex, &iv.dl, 8, 4, &rv.dl, &ev.dl, &mv.dl) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(error_text() == "ids[2, 1] = 8, expected [-1, 8)");
    CHECK(per_rank == I32s(4, 77));
  }
}
