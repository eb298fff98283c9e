// dsk.hpp: the C++ wrappers of the core ops (dsk_ops.h) on a CPU context, with worked numbers.
// The C functions themselves are tested in test_ops_*.cpp; this checks that each wrapper passes
// its arguments through in order and turns a failure into dsk::Error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <dsk/dsk.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const DLDataType kF32 = dsk::dtype(DSK_DTYPE_F32);

dsk::Tensor make(dsk::Context& ctx, std::vector<int64_t> shape, const std::vector<float>& v) {
  dsk::Tensor t = dsk::Tensor::empty(ctx, shape, kF32);
  REQUIRE(static_cast<size_t>(t.numel()) == v.size());
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> read(const dsk::Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

template <typename T>
std::vector<T> read_as(const dsk::Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

void check_close(const std::vector<float>& got, const std::vector<double>& want,
                 double tol = 1e-5) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK_MESSAGE(
        std::fabs(static_cast<double>(got[i]) - want[i]) <= tol * (1 + std::fabs(want[i])),
        "element ", i, ": ", got[i], " vs ", want[i]);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read ", path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("dsk.hpp wraps every function of dsk_ops.h") {
  const std::string root = DSK_SOURCE_DIR;
  const std::string header = slurp(root + "/include/dsk/dsk_ops.h");
  const std::string hpp = slurp(root + "/include/dsk/dsk.hpp");
  int found = 0;
  for (size_t pos = header.find("DSK_API"); pos != std::string::npos;
       pos = header.find("DSK_API", pos + 1)) {
    const size_t open = header.find('(', pos);
    size_t begin = header.rfind(' ', open) + 1;
    if (header[begin] == '*') ++begin;
    const std::string name = header.substr(begin, open - begin);
    CHECK_MESSAGE(hpp.find(name + "(") != std::string::npos, "dsk.hpp does not call ", name);
    ++found;
  }
  CHECK(found >= 20);
}

TEST_CASE("dsk.hpp gemm and linear") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor a = make(ctx, {2, 3}, {1, 2, 3, 4, 5, 6});
  dsk::Tensor b = make(ctx, {3, 2}, {1, 0, 0, 1, 1, 1});
  dsk::Tensor c = make(ctx, {2, 2}, {10, 20, 30, 40});
  dsk::Tensor d = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::gemm(ctx, a, b, nullptr, d);
  check_close(read(d), {4, 5, 10, 11});
  dsk::gemm(ctx, a, b, c, d, false, false, 2.0f, 0.5f);
  check_close(read(d), {13, 20, 35, 42});
  // op(A) = (A^T)^T: the same A given as a [3, 2] transposed view.
  dsk::Tensor at = a.view({3, 2}, {1, 3});
  dsk::gemm(ctx, at, b, nullptr, d, /*trans_a=*/true);
  check_close(read(d), {4, 5, 10, 11});

  dsk::Tensor w = make(ctx, {2, 3}, {1, 0, 0, 0, 1, 1});  // [out, in]
  dsk::Tensor bias = make(ctx, {2}, {0.5f, -0.5f});
  dsk::Tensor y = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::linear(ctx, a, w, bias, y);
  check_close(read(y), {1.5, 4.5, 4.5, 10.5});
  dsk::linear(ctx, a, w, nullptr, y);
  check_close(read(y), {1, 5, 4, 11});

  try {
    dsk::gemm(ctx, a, a, nullptr, d);  // [2, 3] @ [2, 3]
    FAIL("expected dsk::Error");
  } catch (const dsk::Error& e) {
    CHECK(e.status() == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::strstr(e.what(), "dsk_gemm") != nullptr);
  }
}

TEST_CASE("dsk.hpp fp8 quantization and linear_fp8") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const DLDataType fp8 = dsk::dtype(DSK_DTYPE_FP8_E4M3FN);
  // amax 448 -> scale 1: e4m3-representable values survive exactly.
  std::vector<float> xv = {448, -2, 1.5f, 0.25f, 0, 96, -448, 3};
  dsk::Tensor x = make(ctx, {2, 4}, xv);
  dsk::Tensor q = dsk::Tensor::empty(ctx, {2, 4}, fp8);
  dsk::Tensor s = dsk::Tensor::empty(ctx, {2, 1}, kF32);
  dsk::quant_fp8_act(ctx, x, q, s);
  CHECK(read(s) == std::vector<float>{1, 1});
  dsk::Tensor back = dsk::Tensor::empty(ctx, {2, 4}, kF32);
  dsk::dequant_fp8_act(ctx, q, s, back);
  CHECK(read(back) == xv);
  dsk::quant_fp8_act(ctx, make(ctx, {2, 4}, {224, 1, 0, 0, 0, 0, 0, 0}), q, s,
                     DSK_QUANT_SCALE_POW2);
  CHECK(read(s) == std::vector<float>{0.5f, 0});

  dsk::Tensor w = make(ctx, {2, 4}, {1, 0, 0, 0, 448, 0, 0, 1});
  dsk::Tensor wq = dsk::Tensor::empty(ctx, {2, 4}, fp8);
  dsk::Tensor ws = dsk::Tensor::empty(ctx, {1, 1}, kF32);
  dsk::quant_fp8_weight(ctx, w, wq, ws);
  CHECK(read(ws) == std::vector<float>{1});
  dsk::Tensor wd = dsk::Tensor::empty(ctx, {2, 4}, kF32);
  dsk::dequant_fp8_weight(ctx, wq, ws, wd);
  CHECK(read(wd) == read(w));

  dsk::quant_fp8_act(ctx, x, q, s);
  dsk::Tensor y = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::linear_fp8(ctx, q, s, wq, ws, y);
  check_close(read(y), {448, 448 * 448 + 0.25, 0, 3});
  dsk::linear_fp8(ctx, x, nullptr, wq, ws, y);
  check_close(read(y), {448, 448 * 448 + 0.25, 0, 3});
  CHECK(dsk::linear_fp8_kernel(ctx) == DSK_FP8_KERNEL_CPU_REFERENCE);
  CHECK_THROWS_AS(dsk::quant_fp8_act(ctx, x, x, s), dsk::Error);  // q must be fp8
}

TEST_CASE("dsk.hpp rmsnorm, add_rmsnorm, swiglu") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor x = make(ctx, {1, 2}, {3, 4});
  dsk::Tensor w = make(ctx, {2}, {1, 2});
  dsk::Tensor y = dsk::Tensor::empty(ctx, {1, 2}, kF32);
  dsk::rmsnorm(ctx, x, w, y, 0.0f);
  const double inv = 1 / std::sqrt(12.5);
  check_close(read(y), {3 * inv, 8 * inv});

  dsk::Tensor r = make(ctx, {1, 2}, {1, -2});
  dsk::Tensor r_out = dsk::Tensor::empty(ctx, {1, 2}, kF32);
  dsk::add_rmsnorm(ctx, x, r, w, y, r_out, 0.0f);
  CHECK(read(r_out) == std::vector<float>{4, 2});
  const double inv2 = 1 / std::sqrt(10.0);
  check_close(read(y), {4 * inv2, 4 * inv2});

  dsk::Tensor g = make(ctx, {2}, {0, 1});
  dsk::Tensor u = make(ctx, {2}, {5, 2});
  dsk::Tensor o = dsk::Tensor::empty(ctx, {2}, kF32);
  dsk::swiglu(ctx, g, u, o);
  check_close(read(o), {0, 2 / (1 + std::exp(-1.0))});
  dsk::Tensor gu = make(ctx, {1, 4}, {0, 1, 5, 2});
  dsk::Tensor o2 = dsk::Tensor::empty(ctx, {1, 2}, kF32);
  dsk::swiglu_fused(ctx, gu, o2);
  check_close(read(o2), {0, 2 / (1 + std::exp(-1.0))});
  dsk::Tensor w3 = make(ctx, {3}, {1, 1, 1});
  CHECK_THROWS_AS(dsk::rmsnorm(ctx, x, w3, y, 1e-6f), dsk::Error);  // weight must be [2]
}

TEST_CASE("dsk.hpp rope") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk_rope_config cfg = dsk::rope_config();
  CHECK(cfg.struct_size == sizeof(dsk_rope_config));
  CHECK(cfg.dim == 64);
  CHECK(cfg.factor == 40.0);
  cfg.dim = 4;
  cfg.factor = 1.0;
  dsk::Tensor cos = dsk::Tensor::empty(ctx, {3, 2}, kF32);
  dsk::Tensor sin = dsk::Tensor::empty(ctx, {3, 2}, kF32);
  dsk::rope_table(ctx, cfg, cos, sin);
  std::vector<float> c = read(cos), s = read(sin);
  // freq = [1, 1/100]; angle(p, i) = p * freq[i].
  check_close(c, {1, 1, std::cos(1.0), std::cos(0.01), std::cos(2.0), std::cos(0.02)});
  check_close(s, {0, 0, std::sin(1.0), std::sin(0.01), std::sin(2.0), std::sin(0.02)});

  dsk::Tensor x = make(ctx, {1, 4}, {1, 0, 0, 1});
  dsk::Tensor pos = dsk::Tensor::empty(ctx, {1}, dsk::dtype(DSK_DTYPE_INT32));
  pos.data<int32_t>()[0] = 2;
  dsk::Tensor y = dsk::Tensor::empty(ctx, {1, 4}, kF32);
  dsk::rope_apply(ctx, x, pos, cos, sin, y);  // interleaved: pairs (1, 0) and (0, 1)
  check_close(read(y), {c[4], s[4], -s[5], c[5]});
  dsk::rope_apply(ctx, x, pos, cos, sin, y, DSK_ROPE_HALF_SPLIT);  // pairs (1, 0) and (0, 1)
  check_close(read(y), {c[4], -s[5], s[4], c[5]});
  pos.data<int32_t>()[0] = 3;  // outside the table
  CHECK_THROWS_AS(dsk::rope_apply(ctx, x, pos, cos, sin, y), dsk::Error);
}

TEST_CASE("dsk.hpp softmax, argmax, topk, embedding") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor x = make(ctx, {1, 3}, {0, std::log(3.0f), 0});
  dsk::Tensor y = dsk::Tensor::empty(ctx, {1, 3}, kF32);
  dsk::softmax(ctx, x, y);
  check_close(read(y), {0.2, 0.6, 0.2});
  dsk::log_softmax(ctx, x, y);
  check_close(read(y), {std::log(0.2), std::log(0.6), std::log(0.2)});
  dsk::softmax(ctx, x, y, 0.5f);
  check_close(read(y), {1 / 11.0, 9 / 11.0, 1 / 11.0});

  dsk::Tensor v = make(ctx, {2, 3}, {1, 5, 5, 2, 0, 7});
  dsk::Tensor am = dsk::Tensor::empty(ctx, {2}, dsk::dtype(DSK_DTYPE_INT64));
  dsk::argmax(ctx, v, am);
  CHECK(read_as<int64_t>(am) == std::vector<int64_t>{1, 2});
  dsk::Tensor ti = dsk::Tensor::empty(ctx, {2, 2}, dsk::dtype(DSK_DTYPE_INT32));
  dsk::Tensor tv = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::topk(ctx, v, 2, tv, ti);
  CHECK(read_as<int32_t>(ti) == std::vector<int32_t>{1, 2, 2, 0});
  CHECK(read(tv) == std::vector<float>{5, 5, 7, 2});
  dsk::topk(ctx, v, 1, nullptr, am.view({2, 1}));
  CHECK(read_as<int64_t>(am) == std::vector<int64_t>{1, 2});
  CHECK_THROWS_AS(dsk::topk(ctx, v, 4, nullptr, ti), dsk::Error);

  dsk::Tensor table = make(ctx, {3, 2}, {0, 1, 10, 11, 20, 21});
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2}, dsk::dtype(DSK_DTYPE_INT64));
  ids.data<int64_t>()[0] = 2;
  ids.data<int64_t>()[1] = 0;
  dsk::Tensor out = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::embedding(ctx, table, ids, out);
  CHECK(read(out) == std::vector<float>{20, 21, 0, 1});
  ids.data<int64_t>()[1] = 3;
  CHECK_THROWS_AS(dsk::embedding(ctx, table, ids, out), dsk::Error);
}
