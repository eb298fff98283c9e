// The argument helpers every core op shares (lib/ops/op_common.h).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "dsk/dsk.h"
#include "ops/op_common.h"

namespace {

using dsk::ops::Arg;
using dsk::ops::View;

struct Host {
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
  Host(void* data, std::vector<int64_t> s, std::vector<int64_t> st = {}, DLDevice dev = {kDLCPU, 0})
      : shape(std::move(s)), strides(std::move(st)) {
    dl.data = data;
    dl.device = dev;
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = DLDataType{kDLFloat, 32, 1};
    dl.shape = shape.data();
    dl.strides = strides.empty() ? nullptr : strides.data();
  }
};

// The status and message of what `f` throws.
template <typename F>
std::string error_of(F&& f, dsk_status expected) {
  try {
    f();
  } catch (const dsk::Error& e) {
    CHECK(e.status() == expected);
    return e.what();
  }
  FAIL("no error thrown");
  return "";
}

}  // namespace

TEST_CASE("as_rows merges leading dimensions of contiguous and last-dim-sliced views") {
  float buf[2 * 3 * 8] = {};
  Host full(buf, {2, 3, 8});
  View v;
  dsk::ops::as_rows(dsk::ops::input(&full.dl, "x"), v);
  CHECK(v.shape(0) == 6);
  CHECK(v.shape(1) == 8);
  CHECK(v.stride(0) == 8);
  CHECK(v.stride(1) == 1);
  CHECK(v.get()->ndim == 2);

  // The last 4 of 8 columns: rows keep stride 8.
  Host sliced(buf + 4, {2, 3, 4}, {24, 8, 1});
  dsk::ops::as_rows(dsk::ops::input(&sliced.dl, "x"), v);
  CHECK(v.shape(0) == 6);
  CHECK(v.stride(0) == 8);

  // A 1-D tensor is one row; size-1 leading dims never step.
  Host vec(buf, {8});
  dsk::ops::as_rows(dsk::ops::input(&vec.dl, "x"), v);
  CHECK(v.shape(0) == 1);
  Host ones(buf, {1, 1, 8}, {999, 5, 1});
  dsk::ops::as_rows(dsk::ops::input(&ones.dl, "x"), v);
  CHECK(v.shape(0) == 1);
  CHECK(v.stride(0) == 0);

  // An empty leading dim gives no rows, whatever the other strides say.
  Host empty(buf, {2, 0, 4}, {30, 8, 1});
  dsk::ops::as_rows(dsk::ops::input(&empty.dl, "x"), v);
  CHECK(v.shape(0) == 0);
}

TEST_CASE("as_rows rejects leading dimensions that do not form one stride") {
  float buf[64] = {};
  // Rows of the middle dim step by 8, the outer dim by 30 (not 3 * 8).
  Host gappy(buf, {2, 3, 4}, {30, 8, 1});
  View v;
  std::string m = error_of([&] { dsk::ops::as_rows(dsk::ops::input(&gappy.dl, "x"), v); },
                           DSK_ERR_INVALID_ARGUMENT);
  CHECK(m.find("x: the leading dimensions of shape [2, 3, 4] cannot be merged") !=
        std::string::npos);
}

TEST_CASE("as_batches keeps the last two dimensions and merges the rest") {
  float buf[4 * 5 * 6] = {};
  Host t(buf, {2, 2, 5, 6});
  View v;
  dsk::ops::as_batches(dsk::ops::input(&t.dl, "a"), v);
  CHECK(v.shape(0) == 4);
  CHECK(v.shape(1) == 5);
  CHECK(v.shape(2) == 6);
  CHECK(v.stride(0) == 30);
}

TEST_CASE("check_no_overlap accepts exact aliases only when asked") {
  float buf[32] = {};
  Host a(buf, {4, 4});
  Host b(buf, {4, 4});
  Host c(buf + 16, {4, 4});
  Host d(buf + 8, {4, 4});
  Arg A = dsk::ops::output(&a.dl, "y");
  Arg B = dsk::ops::input(&b.dl, "x");
  CHECK(dsk::ops::same_view(A, B));
  dsk::ops::check_no_overlap(A, B, true);
  std::string m = error_of([&] { dsk::ops::check_no_overlap(A, B); }, DSK_ERR_INVALID_ARGUMENT);
  CHECK(m == "y overlaps x, expected separate memory");
  dsk::ops::check_no_overlap(A, dsk::ops::input(&c.dl, "z"));
  m = error_of([&] { dsk::ops::check_no_overlap(A, dsk::ops::input(&d.dl, "w"), true); },
               DSK_ERR_INVALID_ARGUMENT);
  CHECK(m.find("or exactly the same view (in place)") != std::string::npos);
}

TEST_CASE("target requires one device and entry reports a missing backend function") {
  dsk_context_options o;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  dsk_context* ctx = nullptr;
  REQUIRE(dsk_context_create(&o, &ctx) == DSK_OK);
  float buf[4] = {};
  Host host(buf, {4});
  Host cuda(buf, {4}, {}, DLDevice{kDLCUDA, 0});
  Arg h = dsk::ops::input(&host.dl, "x");
  Arg g = dsk::ops::output(&cuda.dl, "y");
  Arg absent = dsk::ops::optional_input(nullptr, "bias");
  CHECK_FALSE(absent.present);
  std::string m = error_of(
      [&] {
        dsk::ops::target(*ctx, {&h, &absent, &g});
      },
      DSK_ERR_INVALID_ARGUMENT);
  CHECK(m == "y is on cuda:0, expected the device of x (cpu)");

  dsk::ops::Target t = dsk::ops::target(*ctx, {&absent, &h});
  CHECK(t.backend->kind == DSK_BACKEND_CPU);
  using Fn = dsk_status (*)(const dsk_exec*);
  m = error_of([&] { dsk::ops::entry(t, Fn{nullptr}, "gemm"); }, DSK_ERR_UNSUPPORTED);
  CHECK(m == "the cpu backend does not implement gemm");
  dsk_context_destroy(ctx);
}

TEST_CASE("dtype and shape checks name the argument") {
  float buf[6] = {};
  Host t(buf, {2, 3});
  Arg a = dsk::ops::input(&t.dl, "w");
  dsk::ops::check_float(a);
  std::string m = error_of([&] { dsk::ops::check_index(a); }, DSK_ERR_INVALID_ARGUMENT);
  CHECK(m == "w.dtype is f32, expected int32 or int64");
  m = error_of([&] { dsk::ops::check_dim(a, -1, 4, "K = x.shape[1]"); }, DSK_ERR_INVALID_ARGUMENT);
  CHECK(m == "w.shape[1] = 3 (shape [2, 3]), expected 4 (K = x.shape[1])");
  m = error_of([&] { dsk::ops::check_ndim(a, 3); }, DSK_ERR_INVALID_ARGUMENT);
  CHECK(m == "w has 2 dimensions (shape [2, 3]), expected 3");
  CHECK(dsk::ops::rows_of(a) == 2);
}
