// The CPU backend's MoE grouped GEMM entry (lib/cpu/moe_grouped_gemm.cpp) called directly: bit for
// bit a loop of the CPU GEMM entry over the groups (what dsk_linear per expert computes), close to
// a naive double-precision reference, rows outside [offsets[0], offsets[G]) untouched, any
// strides, empty groups, any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk.h"

namespace {

DLDataType dl_dtype(int32_t id) {
  switch (id) {
    case DSK_DTYPE_BF16:
      return DLDataType{kDLBfloat, 16, 1};
    case DSK_DTYPE_F16:
      return DLDataType{kDLFloat, 16, 1};
    default:
      return DLDataType{kDLFloat, 32, 1};
  }
}

// A host tensor over a byte buffer with explicit element strides (row-major by default), at an
// element offset `base` into the buffer.
struct HostT {
  std::vector<uint8_t> bytes;
  std::vector<int64_t> shape, strides;
  int32_t dtype = 0;
  int64_t base = 0;
  DLTensor dl{};

  HostT(int32_t id, std::vector<int64_t> s, std::vector<int64_t> st = {}, int64_t b = 0)
      : shape(std::move(s)), strides(std::move(st)), dtype(id), base(b) {
    if (strides.empty()) {
      strides.assign(shape.size(), 1);
      for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    }
    int64_t span = base + 1;
    for (size_t d = 0; d < shape.size(); ++d) span += (shape[d] - 1) * strides[d];
    bytes.assign(static_cast<size_t>(span) * dsk::dtype_id_size(id), 0);
    dl.data = bytes.data() + base * static_cast<int64_t>(dsk::dtype_id_size(id));
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dl_dtype(id);
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
  HostT(const HostT&) = delete;
  HostT& operator=(const HostT&) = delete;

  uint8_t* at(std::initializer_list<int64_t> idx) {
    int64_t o = base;
    size_t d = 0;
    for (int64_t i : idx) o += i * strides[d++];
    return bytes.data() + o * static_cast<int64_t>(dsk::dtype_id_size(dtype));
  }
  float get(std::initializer_list<int64_t> idx) { return dsk::load_as_f32(dtype, at(idx)); }
  void set(std::initializer_list<int64_t> idx, float v) { dsk::store_from_f32(dtype, v, at(idx)); }
};

enum class Lay { kRowMajor, kColMajor, kPadded };

// Strides of a 2-D [r, c] tensor in layout `l` (padded: rows padded by 3, last dim step 2).
std::vector<int64_t> strides2(Lay l, int64_t r, int64_t c) {
  switch (l) {
    case Lay::kColMajor:
      return {1, r};
    case Lay::kPadded:
      return {2 * c + 3, 2};
    default:
      return {c, 1};
  }
}

// Strides of w [G, N, K]: row-major, each matrix K-major (transposed), or padded.
std::vector<int64_t> strides3(Lay l, int64_t g, int64_t n, int64_t k) {
  (void)g;
  switch (l) {
    case Lay::kColMajor:
      return {n * k, 1, n};
    case Lay::kPadded:
      return {n * (k + 5) + 7, k + 5, 1};
    default:
      return {n * k, k, 1};
  }
}

struct Case {
  int32_t x_dtype;
  int32_t y_dtype;
  int64_t n, k;
  std::vector<int64_t> offsets;  // G + 1
  int64_t rows;                  // R
  Lay x_lay = Lay::kRowMajor, w_lay = Lay::kRowMajor, y_lay = Lay::kRowMajor;
};

std::string name(const Case& c) {
  std::string s = std::string(dsk_dtype_name(dl_dtype(c.x_dtype))) + "->" +
                  dsk_dtype_name(dl_dtype(c.y_dtype)) + " N " + std::to_string(c.n) + " K " +
                  std::to_string(c.k) + " R " + std::to_string(c.rows) + " offsets {";
  for (size_t i = 0; i < c.offsets.size(); ++i) s += (i ? "," : "") + std::to_string(c.offsets[i]);
  return s + "} layouts " + std::to_string(static_cast<int>(c.x_lay)) +
         std::to_string(static_cast<int>(c.w_lay)) + std::to_string(static_cast<int>(c.y_lay));
}

// y through a loop of the GEMM entry, one dsk_linear-shaped problem per non-empty group.
void gemm_loop(const Case& c, HostT& x, HostT& w, HostT& y) {
  const int64_t groups = static_cast<int64_t>(c.offsets.size()) - 1;
  dsk_exec ex{};
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = c.offsets[static_cast<size_t>(g)];
    const int64_t m = c.offsets[static_cast<size_t>(g) + 1] - r0;
    if (m == 0) continue;
    int64_t a_shape[3] = {1, m, c.k};
    int64_t a_strides[3] = {0, x.strides[0], x.strides[1]};
    int64_t b_shape[3] = {1, c.k, c.n};
    int64_t b_strides[3] = {0, w.strides[2], w.strides[1]};
    int64_t d_shape[3] = {1, m, c.n};
    int64_t d_strides[3] = {0, y.strides[0], y.strides[1]};
    DLTensor a = x.dl, b = w.dl, d = y.dl;
    a.ndim = b.ndim = d.ndim = 3;
    a.data = x.at({r0, 0});
    a.shape = a_shape;
    a.strides = a_strides;
    b.data = w.at({g, 0, 0});
    b.shape = b_shape;
    b.strides = b_strides;
    d.data = y.at({r0, 0});
    d.shape = d_shape;
    d.strides = d_strides;
    const dsk_status st = dsk::cpu::gemm(&ex, &a, &b, nullptr, nullptr, &d, 1.0f, 0.0f);
    REQUIRE_MESSAGE(st == DSK_OK, dsk::cpu::last_error());
  }
}

void check(const Case& c, uint64_t seed) {
  CAPTURE(name(c));
  const int64_t groups = static_cast<int64_t>(c.offsets.size()) - 1;
  HostT x(c.x_dtype, {c.rows, c.k}, strides2(c.x_lay, c.rows, c.k), 1);
  HostT w(c.x_dtype, {groups, c.n, c.k}, strides3(c.w_lay, groups, c.n, c.k), 3);
  HostT y(c.y_dtype, {c.rows, c.n}, strides2(c.y_lay, c.rows, c.n), 2);
  HostT y_ref(c.y_dtype, {c.rows, c.n}, strides2(c.y_lay, c.rows, c.n), 2);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t i = 0; i < c.k; ++i) x.set({r, i}, ud(rng));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t i = 0; i < c.k; ++i) w.set({g, n, i}, ud(rng));
  // Sentinels everywhere, padding included (the whole buffers start equal).
  for (size_t i = 0; i < y.bytes.size(); ++i) y.bytes[i] = static_cast<uint8_t>(0x3c + i % 7);
  std::memcpy(y_ref.bytes.data(), y.bytes.data(), y.bytes.size());
  const std::vector<uint8_t> before = y.bytes;

  dsk_exec ex{};
  const dsk_status st = dsk::cpu::moe_grouped_gemm(&ex, &x.dl, &w.dl, c.offsets.data(), &y.dl);
  REQUIRE_MESSAGE(st == DSK_OK, dsk::cpu::last_error());
  gemm_loop(c, x, w, y_ref);
  // Bit for bit the GEMM loop (padding bytes included).
  CHECK(y.bytes == y_ref.bytes);

  // Against double math; rows outside the groups keep their sentinels.
  const double tol_rel = c.y_dtype == DSK_DTYPE_F32   ? 1e-5
                         : c.y_dtype == DSK_DTYPE_F16 ? 1e-3
                                                      : 8e-3;
  int64_t bad = 0;
  int64_t untouched_bad = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    int64_t g = -1;
    for (int64_t gg = 0; gg < groups; ++gg) {
      if (r >= c.offsets[static_cast<size_t>(gg)] && r < c.offsets[static_cast<size_t>(gg) + 1])
        g = gg;
    }
    for (int64_t n = 0; n < c.n; ++n) {
      const size_t esz = dsk::dtype_id_size(c.y_dtype);
      const size_t off = static_cast<size_t>(y.at({r, n}) - y.bytes.data());
      if (g < 0) {
        if (std::memcmp(y.bytes.data() + off, before.data() + off, esz) != 0) ++untouched_bad;
        continue;
      }
      double ref = 0.0;
      double mag = 0.0;
      for (int64_t i = 0; i < c.k; ++i) {
        const double p = static_cast<double>(x.get({r, i})) * w.get({g, n, i});
        ref += p;
        mag += std::fabs(p);
      }
      const double got = y.get({r, n});
      if (!(std::fabs(got - ref) <= tol_rel * std::fabs(ref) + 4e-6 * mag)) {
        if (bad++ < 5) MESSAGE("row " << r << " col " << n << ": " << got << " vs " << ref);
      }
    }
  }
  CHECK(bad == 0);
  CHECK(untouched_bad == 0);
}

// DSK_NUM_THREADS set for the scope of one object.
struct ThreadsEnv {
  explicit ThreadsEnv(const char* value) {
    const char* old = std::getenv("DSK_NUM_THREADS");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value != nullptr) {
      setenv("DSK_NUM_THREADS", value, 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
  }
  ~ThreadsEnv() {
    if (had_) {
      setenv("DSK_NUM_THREADS", old_.c_str(), 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
  }
  bool had_ = false;
  std::string old_;
};

}  // namespace

TEST_CASE("moe_grouped_gemm entry: every dtype pair equals the GEMM loop and double math") {
  for (int32_t xd : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int32_t yd : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
      check(Case{xd, yd, 24, 40, {0, 3, 3, 10, 11, 20}, 20}, 1);
    }
  }
}

TEST_CASE("moe_grouped_gemm entry: empty groups, rows outside the groups untouched") {
  // Leading and trailing rows outside, all-empty groups, one group only, decode-like single rows.
  check(Case{DSK_DTYPE_BF16, DSK_DTYPE_BF16, 16, 32, {2, 2, 5, 5, 9}, 12}, 2);
  check(Case{DSK_DTYPE_F32, DSK_DTYPE_F32, 16, 32, {4, 4, 4, 4}, 8}, 3);
  check(Case{DSK_DTYPE_BF16, DSK_DTYPE_F32, 16, 32, {0, 7}, 7}, 4);
  check(Case{DSK_DTYPE_BF16, DSK_DTYPE_BF16, 33, 17, {0, 1, 2, 3, 4, 5, 6, 7, 8}, 8}, 5);
  // K == 1 and N == 1.
  check(Case{DSK_DTYPE_F32, DSK_DTYPE_BF16, 5, 1, {0, 2, 6}, 6}, 6);
  check(Case{DSK_DTYPE_F32, DSK_DTYPE_F32, 1, 9, {1, 2, 6}, 7}, 7);
}

TEST_CASE("moe_grouped_gemm entry: transposed and strided x, w, y") {
  for (Lay xl : {Lay::kRowMajor, Lay::kColMajor, Lay::kPadded}) {
    for (Lay wl : {Lay::kRowMajor, Lay::kColMajor, Lay::kPadded}) {
      for (Lay yl : {Lay::kRowMajor, Lay::kColMajor, Lay::kPadded}) {
        for (int32_t xd : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          Case c{
              xd, xd == DSK_DTYPE_F32 ? DSK_DTYPE_F32 : DSK_DTYPE_BF16, 20, 36, {1, 6, 6, 14, 15},
              17};
          c.x_lay = xl;
          c.w_lay = wl;
          c.y_lay = yl;
          check(c, 8);
        }
      }
    }
  }
}

TEST_CASE("moe_grouped_gemm entry: large and small groups at several thread counts") {
  // Groups of 1 .. 200 rows at N 256, K 192: the big ones cross the GEMM's threading threshold
  // (split inside the GEMM), the small ones are spread over threads whole.
  std::vector<int64_t> offsets{0};
  for (int64_t rows : {1, 0, 3, 200, 2, 64, 0, 5, 130, 1, 1, 17})
    offsets.push_back(offsets.back() + rows);
  for (const char* threads : {"1", "3", "8", static_cast<const char*>(nullptr)}) {
    CAPTURE(threads != nullptr ? threads : "default");
    ThreadsEnv env(threads);
    check(Case{DSK_DTYPE_BF16, DSK_DTYPE_BF16, 256, 192, offsets, offsets.back() + 3}, 9);
    check(Case{DSK_DTYPE_F32, DSK_DTYPE_F32, 256, 192, offsets, offsets.back()}, 10);
  }
}
