// dsk.hpp: the C++ wrappers of Mixture of Experts (dsk_moe.h) on a CPU context, with small worked
// examples checked by hand and naive formulas computed here in double. The C functions themselves
// are tested in test_moe_*.cpp; this checks that each wrapper passes its arguments through in
// order, that MoePlan owns its plan, and that failures come back as dsk::Error naming the argument.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <dsk/dsk.hpp>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cpp_test_util.h"

namespace {

using cpp_test::expect_invalid;
using cpp_test::make_int;

const DLDataType kF32 = dsk::dtype(DSK_DTYPE_F32);
const DLDataType kI32 = dsk::dtype(DSK_DTYPE_INT32);
const DLDataType kI64 = dsk::dtype(DSK_DTYPE_INT64);
const DLDataType kU8 = dsk::dtype(DSK_DTYPE_UINT8);
const DLDataType kFP8 = dsk::dtype(DSK_DTYPE_FP8_E4M3FN);
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Deterministic values in [-1, 1).
std::vector<float> rand_vec(size_t n, uint64_t seed) {
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  std::vector<float> v(n);
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
  return v;
}

dsk::Tensor make(dsk::Context& ctx, const std::vector<int64_t>& shape,
                 const std::vector<float>& v) {
  dsk::Tensor t = dsk::Tensor::empty(ctx, shape, kF32);
  REQUIRE(static_cast<size_t>(t.numel()) == v.size());
  if (!v.empty()) std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> floats(const dsk::Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// The first two values of an f32 tensor (row 0 of a [T, 2] output).
std::vector<float> head2(const dsk::Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + 2);
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double rtol,
                 double atol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK_MESSAGE(
        std::fabs(static_cast<double>(got[i]) - want[i]) <= atol + rtol * std::fabs(want[i]),
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

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double silu(double x) { return x * sigmoid(x); }

// The worked gate example: E 8 in 4 groups of 2, k 2, 2 groups kept, sigmoid, renormalized,
// scale 2.5 (DeepSeek-V3's gate, scaled down).
dsk_moe_gate_config small_gate() {
  dsk_moe_gate_config c = dsk::moe_gate_config();
  c.num_experts = 8;
  c.top_k = 2;
  c.n_group = 4;
  c.topk_group = 2;
  return c;
}

// Row 0 of the worked example. Sigmoid scores s:
//   0.5, 0.7311, 0.2689, 0.8808, 0.6225, 0.1192, 0.9526, 0.0474
// with kBias, s' = s + bias: 0.6, 0.7311, 0.2689, 0.8808, 0.9225, 0.4192, 0.3526, 0.0474.
//   TOP2SUM (AUTO with a bias): groups {0,1} 1.3311, {2,3} 1.1497, {4,5} 1.3417, {6,7} 0.4
//     -> groups 2 and 0 stay -> ids 4 (0.9225), 1 (0.7311).
//   MAX: groups 0.7311, 0.8808, 0.9225, 0.3526 -> groups 2 and 1 -> ids 4, 3.
//   no bias (AUTO = MAX on s): groups 0.7311, 0.8808, 0.6225, 0.9526 -> groups 3 and 1 -> 6, 3.
const std::vector<float> kRow0 = {0.0f, 1.0f, -1.0f, 2.0f, 0.5f, -2.0f, 3.0f, -3.0f};
const std::vector<float> kBias = {0.1f, 0.0f, 0.0f, 0.0f, 0.3f, 0.3f, -0.6f, 0.0f};

// 2.5 * s[a] / (s[a] + s[b]), 2.5 * s[b] / (...)
std::vector<double> renorm(const std::vector<float>& row, int a, int b) {
  const double sa = sigmoid(row[static_cast<size_t>(a)]), sb = sigmoid(row[static_cast<size_t>(b)]);
  return {2.5 * sa / (sa + sb), 2.5 * sb / (sa + sb)};
}

// A dense reference of the SwiGLU expert: y = (silu(x W1^T) * (x W3^T)) W2^T, W1/W3 [I, D],
// W2 [D, I] at the given element offsets of the flattened weight arrays.
std::vector<double> ffn(const float* x, const float* w1, const float* w3, const float* w2,
                        int64_t D, int64_t I) {
  std::vector<double> h(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i) {
    double g = 0, u = 0;
    for (int64_t d = 0; d < D; ++d) {
      g += double(x[d]) * w1[i * D + d];
      u += double(x[d]) * w3[i * D + d];
    }
    h[static_cast<size_t>(i)] = silu(g) * u;
  }
  std::vector<double> y(static_cast<size_t>(D), 0.0);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t i = 0; i < I; ++i)
      y[static_cast<size_t>(d)] += h[static_cast<size_t>(i)] * w2[d * I + i];
  return y;
}

}  // namespace

TEST_CASE("dsk.hpp wraps every function of dsk_moe.h") {
  const std::string root = DSK_SOURCE_DIR;
  const std::string header = slurp(root + "/include/dsk/dsk_moe.h");
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
  CHECK(found == 17);
}

TEST_CASE("dsk.hpp moe_gate_config presets") {
  const dsk_moe_gate_config v3 = dsk::moe_gate_config();
  CHECK(v3.struct_size == sizeof(dsk_moe_gate_config));
  CHECK(v3.num_experts == 256);
  CHECK(v3.top_k == 8);
  CHECK(v3.n_group == 8);
  CHECK(v3.topk_group == 4);
  CHECK(v3.score_func == DSK_MOE_SCORE_SIGMOID);
  CHECK(v3.group_rule == DSK_MOE_GROUP_AUTO);
  CHECK(v3.renormalize == 1);
  CHECK(v3.routed_scaling_factor == 2.5f);
  CHECK(v3.score_dtype == DSK_DTYPE_F32);
  const dsk_moe_gate_config v2 = dsk::moe_gate_config_v2();
  CHECK(v2.struct_size == sizeof(dsk_moe_gate_config));
  CHECK((v2.num_experts == 160 && v2.top_k == 6 && v2.n_group == 8 && v2.topk_group == 3));
  CHECK((v2.score_func == DSK_MOE_SCORE_SOFTMAX && v2.renormalize == 0));
  CHECK(v2.routed_scaling_factor == 16.0f);
  const dsk_moe_gate_config lite = dsk::moe_gate_config_v2_lite();
  CHECK((lite.num_experts == 64 && lite.top_k == 6 && lite.n_group == 1 && lite.topk_group == 1));
  CHECK((lite.score_func == DSK_MOE_SCORE_SOFTMAX && lite.renormalize == 0));
  CHECK(lite.routed_scaling_factor == 1.0f);
  CHECK(lite.score_dtype == DSK_DTYPE_F32);

  const dsk_moe_expert_weights none = dsk::moe_expert_weights(nullptr, nullptr, nullptr);
  CHECK(none.struct_size == sizeof(dsk_moe_expert_weights));
  CHECK((none.w1 == nullptr && none.w1_scales == nullptr && none.w2_scales == nullptr));
}

TEST_CASE("dsk.hpp moe_gate: the worked example with groups, sigmoid and a bias") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // Row 1: equal top scores 3, 3 in group 0 -> ids 0, 1 with equal weights.
  std::vector<float> logits_v = kRow0;
  const std::vector<float> row1 = {3, 3, 0, 0, 0, 0, 0, 0};
  logits_v.insert(logits_v.end(), row1.begin(), row1.end());
  dsk::Tensor logits = make(ctx, {2, 8}, logits_v);
  dsk::Tensor bias = make(ctx, {8}, kBias);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2, 2}, kI32);
  dsk::Tensor weights = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::Tensor flags = dsk::Tensor::empty(ctx, {2}, kU8);
  dsk_moe_gate_config c = small_gate();

  dsk::moe_gate(ctx, c, logits, bias, ids, weights, flags);
  CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{4, 1, 0, 1});
  std::vector<double> want = renorm(kRow0, 4, 1);
  want.push_back(1.25);
  want.push_back(1.25);
  check_close(floats(weights), want, 1e-6, 0);
  CHECK(cpp_test::host_values<uint8_t>(flags) == std::vector<uint8_t>{0, 0});

  // MAX keeps groups 2 and 1 instead; int64 ids; no row_flags.
  c.group_rule = DSK_MOE_GROUP_MAX;
  dsk::Tensor ids64 = dsk::Tensor::empty(ctx, {2, 2}, kI64);
  dsk::moe_gate(ctx, c, logits, bias, ids64, weights);
  CHECK(cpp_test::host_values<int64_t>(ids64)[0] == 4);
  CHECK(cpp_test::host_values<int64_t>(ids64)[1] == 3);
  check_close(head2(weights), renorm(kRow0, 4, 3), 1e-6, 0);

  // Without a bias, AUTO is MAX over the plain scores: groups 3 and 1, ids 6, 3.
  c.group_rule = DSK_MOE_GROUP_AUTO;
  dsk::moe_gate(ctx, c, logits, nullptr, ids, weights, flags);
  CHECK(cpp_test::host_values<int32_t>(ids)[0] == 6);
  CHECK(cpp_test::host_values<int32_t>(ids)[1] == 3);
  check_close(head2(weights), renorm(kRow0, 6, 3), 1e-6, 0);

  // Without renormalization the weights are the scores times the scale.
  c.renormalize = 0;
  c.routed_scaling_factor = 1.0f;
  dsk::moe_gate(ctx, c, logits, bias, ids, weights, flags);
  CHECK(cpp_test::host_values<int32_t>(ids)[0] == 4);
  check_close(head2(weights), {sigmoid(0.5), sigmoid(1.0)}, 1e-6, 0);
}

TEST_CASE("dsk.hpp moe_gate: rows without enough finite scores are flagged") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk_moe_gate_config c = dsk::moe_gate_config();
  c.num_experts = 8;
  c.top_k = 2;
  c.n_group = 1;
  c.topk_group = 1;
  c.score_func = DSK_MOE_SCORE_NONE;
  c.renormalize = 0;
  c.routed_scaling_factor = 1.0f;
  std::vector<float> v(16, kNaN);
  v[8 + 1] = 5.0f;  // row 1: one finite candidate
  dsk::Tensor logits = make(ctx, {2, 8}, v);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2, 2}, kI32);
  dsk::Tensor weights = dsk::Tensor::empty(ctx, {2, 2}, kF32);
  dsk::Tensor flags = dsk::Tensor::empty(ctx, {2}, kU8);
  dsk::moe_gate(ctx, c, logits, nullptr, ids, weights, flags);
  // Row 0: the lowest free indices; row 1: expert 1, then the lowest free one.
  CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{0, 1, 1, 0});
  CHECK(floats(weights) == std::vector<float>{0, 0, 5, 0});
  // A row without finite scores is flagged NO_FINITE (and may be SHORT too: it has fewer than k
  // finite candidates); a row with some is SHORT only.
  CHECK((cpp_test::host_values<uint8_t>(flags)[0] & DSK_MOE_ROW_NO_FINITE) != 0);
  CHECK(cpp_test::host_values<uint8_t>(flags)[1] == DSK_MOE_ROW_SHORT);

  // T = 0 is fine.
  dsk::Tensor none = make(ctx, {0, 8}, {});
  dsk::moe_gate(ctx, c, none, nullptr, dsk::Tensor::empty(ctx, {0, 2}, kI32),
                dsk::Tensor::empty(ctx, {0, 2}, kF32));
}

TEST_CASE("dsk.hpp moe_gate_router: x @ w^T, then the gate") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // w = I, so the logits are x itself: the worked example's row 0.
  std::vector<float> eye(64, 0.0f);
  for (int i = 0; i < 8; ++i) eye[static_cast<size_t>(i * 9)] = 1.0f;
  dsk::Tensor x = make(ctx, {1, 8}, kRow0);
  dsk::Tensor w = make(ctx, {8, 8}, eye);
  dsk::Tensor bias = make(ctx, {8}, kBias);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {1, 2}, kI32);
  dsk::Tensor weights = dsk::Tensor::empty(ctx, {1, 2}, kF32);
  dsk::Tensor flags = dsk::Tensor::empty(ctx, {1}, kU8);
  dsk::moe_gate_router(ctx, small_gate(), x, w, bias, ids, weights, flags);
  CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{4, 1});
  check_close(floats(weights), renorm(kRow0, 4, 1), 1e-6, 0);
  CHECK(cpp_test::host_values<uint8_t>(flags)[0] == 0);
  dsk::moe_gate_router(ctx, small_gate(), x, w, nullptr, ids, weights);
  CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{6, 3});

  expect_invalid([&] { dsk::moe_gate_router(ctx, small_gate(), x, bias, nullptr, ids, weights); },
                 "w");
}

TEST_CASE("dsk.hpp moe_dispatch_capacity and moe_dispatch") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  CHECK(dsk::moe_dispatch_capacity(3, 2, 8) == 6);
  CHECK(dsk::moe_dispatch_capacity(3, 2, 8, 4) == 6 + 6 * 3);  // min(E, T k) = 6
  CHECK(dsk::moe_dispatch_capacity(3, 2, 4, 4) == 6 + 4 * 3);  // min(E, T k) = 4
  CHECK(dsk::moe_dispatch_capacity(0, 8, 256, 128) == 0);
  expect_invalid([] { (void)dsk::moe_dispatch_capacity(-1, 2, 8); }, "num_tokens");
  expect_invalid([] { (void)dsk::moe_dispatch_capacity(3, 2, 8, 0); }, "block_size");

  // Assignments a = t * k + j: a0 -> 4, a1 -> 1, a2 -> 1, a3 -> 6, a4 -> 6, a5 -> 4.
  dsk::Tensor ids = make_int(ctx, {3, 2}, std::vector<int32_t>{4, 1, 1, 6, 6, 4});
  {  // packed (block_size 1)
    dsk::Tensor counts = dsk::Tensor::empty(ctx, {8}, kI32);
    dsk::Tensor offsets = dsk::Tensor::empty(ctx, {9}, kI32);
    dsk::Tensor rows = dsk::Tensor::empty(ctx, {6}, kI32);
    dsk::Tensor dest = dsk::Tensor::empty(ctx, {3, 2}, kI32);
    dsk::moe_dispatch(ctx, ids, 8, 0, 1, counts, offsets, rows, nullptr, dest);
    CHECK(cpp_test::host_values<int32_t>(counts) == std::vector<int32_t>{0, 2, 0, 0, 2, 0, 2, 0});
    CHECK(cpp_test::host_values<int32_t>(offsets) ==
          std::vector<int32_t>{0, 0, 2, 2, 2, 4, 4, 6, 6});
    CHECK(cpp_test::host_values<int32_t>(rows) == std::vector<int32_t>{1, 2, 0, 5, 3, 4});
    CHECK(cpp_test::host_values<int32_t>(dest) == std::vector<int32_t>{2, 0, 1, 4, 5, 3});
  }
  {  // block_size 4, int64 ids: segments padded with the sentinel T * k = 6
    dsk::Tensor ids64 = make_int(ctx, {3, 2}, std::vector<int64_t>{4, 1, 1, 6, 6, 4});
    const int64_t cap = dsk::moe_dispatch_capacity(3, 2, 8, 4);
    dsk::Tensor counts = dsk::Tensor::empty(ctx, {8}, kI32);
    dsk::Tensor offsets = dsk::Tensor::empty(ctx, {9}, kI32);
    dsk::Tensor rows = dsk::Tensor::empty(ctx, {cap}, kI32);
    dsk::Tensor blocks = dsk::Tensor::empty(ctx, {cap / 4}, kI32);
    dsk::Tensor dest = dsk::Tensor::empty(ctx, {3, 2}, kI32);
    dsk::moe_dispatch(ctx, ids64, 8, 0, 4, counts, offsets, rows, blocks, dest);
    CHECK(cpp_test::host_values<int32_t>(counts) == std::vector<int32_t>{0, 2, 0, 0, 2, 0, 2, 0});
    CHECK(cpp_test::host_values<int32_t>(offsets) ==
          std::vector<int32_t>{0, 0, 4, 4, 4, 8, 8, 12, 12});
    std::vector<int32_t> want_rows(static_cast<size_t>(cap), 6);
    const std::vector<int32_t> head = {1, 2, 6, 6, 0, 5, 6, 6, 3, 4};
    std::copy(head.begin(), head.end(), want_rows.begin());
    CHECK(cpp_test::host_values<int32_t>(rows) == want_rows);
    CHECK(cpp_test::host_values<int32_t>(blocks) == std::vector<int32_t>{1, 4, 6, -1, -1, -1});
    CHECK(cpp_test::host_values<int32_t>(dest) == std::vector<int32_t>{4, 0, 1, 8, 9, 5});
  }
  {  // this device owns experts 4 .. 7: expert 1's assignments are skipped
    dsk::Tensor counts = dsk::Tensor::empty(ctx, {4}, kI32);
    dsk::Tensor offsets = dsk::Tensor::empty(ctx, {5}, kI32);
    dsk::Tensor rows = dsk::Tensor::empty(ctx, {6}, kI32);
    dsk::Tensor dest = dsk::Tensor::empty(ctx, {3, 2}, kI32);
    dsk::moe_dispatch(ctx, ids, 4, 4, 1, counts, offsets, rows, nullptr, dest);
    CHECK(cpp_test::host_values<int32_t>(counts) == std::vector<int32_t>{2, 0, 2, 0});
    CHECK(cpp_test::host_values<int32_t>(offsets) == std::vector<int32_t>{0, 2, 2, 4, 4});
    CHECK(cpp_test::host_values<int32_t>(rows) == std::vector<int32_t>{0, 5, 3, 4, 6, 6});
    CHECK(cpp_test::host_values<int32_t>(dest) == std::vector<int32_t>{0, -1, -1, 2, 3, 1});
  }
  // sorted_rows shorter than the capacity.
  expect_invalid(
      [&] {
        dsk::moe_dispatch(ctx, ids, 8, 0, 4, dsk::Tensor::empty(ctx, {8}, kI32),
                          dsk::Tensor::empty(ctx, {9}, kI32), dsk::Tensor::empty(ctx, {6}, kI32));
      },
      "sorted_rows");
}

TEST_CASE("dsk.hpp moe_permute and moe_combine round trip") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t T = 3, k = 2, D = 5, R = 12;
  const std::vector<float> xv = rand_vec(static_cast<size_t>(T * D), 1);
  dsk::Tensor x = make(ctx, {T, D}, xv);
  // The block-4 layout of the dispatch test: rows of tokens 0, 1 | 0, 2 | 1, 2, padding 6.
  const std::vector<int32_t> rows_v = {1, 2, 6, 6, 0, 5, 6, 6, 3, 4, 6, 6};
  dsk::Tensor rows = make_int(ctx, {R}, rows_v);
  dsk::Tensor y = make(ctx, {R, D}, std::vector<float>(static_cast<size_t>(R * D), 9.0f));
  dsk::moe_permute(ctx, x, rows, static_cast<int32_t>(k), y);
  std::vector<double> want(static_cast<size_t>(R * D), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const int32_t a = rows_v[static_cast<size_t>(r)];
    if (a == T * k) continue;
    for (int64_t d = 0; d < D; ++d)
      want[static_cast<size_t>(r * D + d)] = xv[static_cast<size_t>(a / k * D + d)];
  }
  check_close(floats(y), want, 0, 0);

  // Combine with the matching dest: out[t] = shared[t] + sum_j w[t, j] x[t].
  dsk::Tensor dest = make_int(ctx, {T, k}, std::vector<int32_t>{4, 0, 1, 8, 9, 5});
  const std::vector<float> wv = {0.25f, 0.5f, 1.0f, -2.0f, 0.125f, 3.0f};
  dsk::Tensor w = make(ctx, {T, k}, wv);
  const std::vector<float> sv = rand_vec(static_cast<size_t>(T * D), 2);
  dsk::Tensor shared = make(ctx, {T, D}, sv);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {T, D}, kF32);
  dsk::moe_combine(ctx, y, dest, w, nullptr, out);
  std::vector<double> plain(static_cast<size_t>(T * D)), with_shared(plain.size());
  for (int64_t t = 0; t < T; ++t) {
    const double ws = double(wv[static_cast<size_t>(t * k)]) + wv[static_cast<size_t>(t * k + 1)];
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = static_cast<size_t>(t * D + d);
      plain[i] = ws * xv[i];
      with_shared[i] = plain[i] + sv[i];
    }
  }
  check_close(floats(out), plain, 1e-6, 1e-7);
  dsk::moe_combine(ctx, y, dest, w, shared, out);
  check_close(floats(out), with_shared, 1e-6, 1e-7);
  // In place on shared; a skipped slot (dest -1) adds nothing.
  dsk::Tensor dest_skip = make_int(ctx, {T, k}, std::vector<int32_t>{4, -1, 1, 8, 9, 5});
  dsk::moe_combine(ctx, y, dest_skip, w, shared, shared);
  for (int64_t d = 0; d < D; ++d)
    with_shared[static_cast<size_t>(d)] =
        sv[static_cast<size_t>(d)] + 0.25 * xv[static_cast<size_t>(d)];
  check_close(floats(shared), with_shared, 1e-6, 1e-7);

  // fp8 output: each row quantized exactly as quant_fp8_act does; padding rows q = 0, scale 0.
  dsk::Tensor q = dsk::Tensor::empty(ctx, {R, D}, kFP8);
  dsk::Tensor scales = dsk::Tensor::empty(ctx, {R, 1}, kF32);
  dsk::moe_permute(ctx, x, rows, static_cast<int32_t>(k), q, scales);
  dsk::Tensor q_ref = dsk::Tensor::empty(ctx, {R, D}, kFP8);
  dsk::Tensor s_ref = dsk::Tensor::empty(ctx, {R, 1}, kF32);
  dsk::Tensor y_pad = make(ctx, {R, D}, std::vector<float>(want.begin(), want.end()));
  dsk::quant_fp8_act(ctx, y_pad, q_ref, s_ref);
  CHECK(std::memcmp(q.data<uint8_t>(), q_ref.data<uint8_t>(), static_cast<size_t>(R * D)) == 0);
  for (int64_t r = 0; r < R; ++r) {
    if (rows_v[static_cast<size_t>(r)] == T * k) {
      CHECK(scales.data<float>()[r] == 0.0f);
      for (int64_t d = 0; d < D; ++d) CHECK(q.data<uint8_t>()[r * D + d] == 0);
    } else {
      CHECK(scales.data<float>()[r] == s_ref.data<float>()[r]);
    }
  }

  // Index values are checked before anything is written.
  const std::vector<float> before = floats(y);
  dsk::Tensor bad_rows =
      make_int(ctx, {R}, std::vector<int32_t>{1, 2, 7, 6, 0, 5, 6, 6, 3, 4, 6, 6});
  expect_invalid([&] { dsk::moe_permute(ctx, x, bad_rows, 2, y); }, "sorted_rows");
  CHECK(floats(y) == before);
  const std::vector<float> out_before = floats(out);
  dsk::Tensor bad_dest = make_int(ctx, {T, k}, std::vector<int32_t>{4, 0, 1, 12, 9, 5});
  expect_invalid([&] { dsk::moe_combine(ctx, y, bad_dest, w, nullptr, out); }, "dest");
  CHECK(floats(out) == out_before);
  // Float outputs take no scales.
  expect_invalid([&] { dsk::moe_permute(ctx, x, rows, 2, y, scales); }, "out_scales");
}

TEST_CASE("dsk.hpp moe_experts against a dense SwiGLU") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t E = 2, I = 3, D = 4, R = 5;
  const std::vector<float> w1 = rand_vec(static_cast<size_t>(E * I * D), 3);
  const std::vector<float> w3 = rand_vec(static_cast<size_t>(E * I * D), 4);
  const std::vector<float> w2 = rand_vec(static_cast<size_t>(E * D * I), 5);
  const std::vector<float> xv = rand_vec(static_cast<size_t>(R * D), 6);
  dsk::Tensor t1 = make(ctx, {E, I, D}, w1), t3 = make(ctx, {E, I, D}, w3),
              t2 = make(ctx, {E, D, I}, w2);
  const dsk_moe_expert_weights ew = dsk::moe_expert_weights(t1, t3, t2);
  dsk::Tensor x = make(ctx, {R, D}, xv);
  // Expert 0 gets rows 0 .. 2, expert 1 row 3; row 4 is past offsets[E] and is not written.
  dsk::Tensor offsets = make_int(ctx, {E + 1}, std::vector<int32_t>{0, 3, 4});
  dsk::Tensor y = make(ctx, {R, D}, std::vector<float>(static_cast<size_t>(R * D), 7.0f));
  dsk::moe_experts(ctx, ew, x, nullptr, offsets, y);
  std::vector<double> want(static_cast<size_t>(R * D), 7.0);
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t e = r < 3 ? 0 : 1;
    const std::vector<double> yr =
        ffn(&xv[static_cast<size_t>(r * D)], &w1[static_cast<size_t>(e * I * D)],
            &w3[static_cast<size_t>(e * I * D)], &w2[static_cast<size_t>(e * D * I)], D, I);
    std::copy(yr.begin(), yr.end(), want.begin() + r * D);
  }
  check_close(floats(y), want, 1e-5, 1e-6);

  // A w2 of the wrong shape is named.
  dsk::Tensor bad_w2 = make(ctx, {E, I, D}, w2);
  expect_invalid(
      [&] {
        dsk::moe_experts(ctx, dsk::moe_expert_weights(t1, t3, bad_w2), x, nullptr, offsets, y);
      },
      "w2");
}

namespace {

// A small layer: T 4, D 8, E 4 in 2 groups (1 kept), k 2, I 4, sigmoid + bias, renormalized,
// scale 1.5, and a shared expert of width 6; all f32.
struct Layer {
  static constexpr int64_t T = 4, D = 8, E = 4, K = 2, I = 4, Is = 6;
  std::vector<float> x, router, bias, w1, w3, w2, s1, s3, s2;
  dsk::Tensor tx, trouter, tbias, t1, t3, t2, ts1, ts3, ts2;
  dsk_moe_expert_weights experts{}, shared{};
  dsk_moe_gate_config config{};

  explicit Layer(dsk::Context& ctx)
      : x(rand_vec(T * D, 11)),
        router(rand_vec(E * D, 12)),
        bias({0.05f, -0.05f, 0.0f, 0.1f}),
        w1(rand_vec(E * I * D, 13)),
        w3(rand_vec(E * I * D, 14)),
        w2(rand_vec(E * D * I, 15)),
        s1(rand_vec(Is * D, 16)),
        s3(rand_vec(Is * D, 17)),
        s2(rand_vec(D * Is, 18)) {
    tx = make(ctx, {T, D}, x);
    trouter = make(ctx, {E, D}, router);
    tbias = make(ctx, {E}, bias);
    t1 = make(ctx, {E, I, D}, w1);
    t3 = make(ctx, {E, I, D}, w3);
    t2 = make(ctx, {E, D, I}, w2);
    ts1 = make(ctx, {Is, D}, s1);
    ts3 = make(ctx, {Is, D}, s3);
    ts2 = make(ctx, {D, Is}, s2);
    experts = dsk::moe_expert_weights(t1, t3, t2);
    shared = dsk::moe_expert_weights(ts1, ts3, ts2);
    config = dsk::moe_gate_config();
    config.num_experts = E;
    config.top_k = K;
    config.n_group = 2;
    config.topk_group = 1;
    config.routed_scaling_factor = 1.5f;
  }

  // The gate in double: ids [T, K] and weights [T, K].
  void gate(std::vector<int32_t>& ids, std::vector<double>& weights) const {
    ids.clear();
    weights.clear();
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> s(E), sb(E);
      for (int64_t e = 0; e < E; ++e) {
        double l = 0;
        for (int64_t d = 0; d < D; ++d)
          l += double(x[static_cast<size_t>(t * D + d)]) * router[static_cast<size_t>(e * D + d)];
        s[static_cast<size_t>(e)] = sigmoid(l);
        sb[static_cast<size_t>(e)] = s[static_cast<size_t>(e)] + bias[static_cast<size_t>(e)];
      }
      // Two groups of two, top-2 sum (bias given), one kept: both picks come from that group.
      const int g = sb[0] + sb[1] >= sb[2] + sb[3] ? 0 : 1;
      int a = 2 * g, b = 2 * g + 1;
      if (sb[static_cast<size_t>(b)] > sb[static_cast<size_t>(a)]) std::swap(a, b);
      ids.push_back(a);
      ids.push_back(b);
      const double sum = s[static_cast<size_t>(a)] + s[static_cast<size_t>(b)];
      weights.push_back(1.5 * s[static_cast<size_t>(a)] / sum);
      weights.push_back(1.5 * s[static_cast<size_t>(b)] / sum);
    }
  }

  // out [T, D] for the given routing, with or without the shared expert.
  std::vector<double> forward(const std::vector<int32_t>& ids, const std::vector<double>& weights,
                              bool with_shared) const {
    std::vector<double> out(static_cast<size_t>(T * D), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = &x[static_cast<size_t>(t * D)];
      if (with_shared) {
        const std::vector<double> ys = ffn(xt, s1.data(), s3.data(), s2.data(), D, Is);
        for (int64_t d = 0; d < D; ++d)
          out[static_cast<size_t>(t * D + d)] += ys[static_cast<size_t>(d)];
      }
      for (int64_t j = 0; j < K; ++j) {
        const int64_t e = ids[static_cast<size_t>(t * K + j)];
        const std::vector<double> ye =
            ffn(xt, &w1[static_cast<size_t>(e * I * D)], &w3[static_cast<size_t>(e * I * D)],
                &w2[static_cast<size_t>(e * D * I)], D, I);
        for (int64_t d = 0; d < D; ++d)
          out[static_cast<size_t>(t * D + d)] +=
              weights[static_cast<size_t>(t * K + j)] * ye[static_cast<size_t>(d)];
      }
    }
    return out;
  }
};

}  // namespace

TEST_CASE("dsk.hpp MoePlan, moe_forward_run and moe_forward against a dense layer") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  Layer L(ctx);
  std::vector<int32_t> want_ids;
  std::vector<double> want_w;
  L.gate(want_ids, want_w);
  const std::vector<double> want = L.forward(want_ids, want_w, true);
  const std::vector<double> want_routed = L.forward(want_ids, want_w, false);

  dsk::Tensor out = dsk::Tensor::empty(ctx, {Layer::T, Layer::D}, kF32);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {Layer::T, Layer::K}, kI32);
  dsk::Tensor weights = dsk::Tensor::empty(ctx, {Layer::T, Layer::K}, kF32);
  dsk::MoePlan plan(ctx, L.config, L.tx, L.trouter, L.experts, &L.shared, out);
  REQUIRE(plan);
  const size_t ws = plan.workspace_size();
  CHECK(ws > 0);
  plan.run(ctx, L.tx, L.trouter, L.tbias, L.experts, &L.shared, out, ids, weights);
  CHECK(cpp_test::host_values<int32_t>(ids) == want_ids);
  check_close(floats(weights), want_w, 1e-5, 0);
  check_close(floats(out), want, 1e-4, 1e-5);
  const std::vector<float> first = floats(out);

  // The free function with the workspace reserved, without the gate outputs.
  dsk::check(dsk_context_reserve_workspace(ctx.get(), ws));
  dsk::fill(ctx, out, 0.0);
  dsk::moe_forward_run(ctx, plan, L.tx, L.trouter, L.tbias, L.experts, &L.shared, out);
  CHECK(floats(out) == first);

  // One-shot form.
  dsk::fill(ctx, out, 0.0);
  dsk::moe_forward(ctx, L.config, L.tx, L.trouter, L.tbias, L.experts, &L.shared, out);
  CHECK(floats(out) == first);

  // Without shared experts (planned without them too).
  dsk::MoePlan routed(ctx, L.config, L.tx, L.trouter, L.experts, nullptr, out);
  routed.run(ctx, L.tx, L.trouter, L.tbias, L.experts, nullptr, out);
  check_close(floats(out), want_routed, 1e-4, 1e-5);
  dsk::moe_forward(ctx, L.config, L.tx, L.trouter, L.tbias, L.experts, nullptr, out);
  check_close(floats(out), want_routed, 1e-4, 1e-5);

  // shared must be given exactly when it was at plan time.
  expect_invalid([&] { routed.run(ctx, L.tx, L.trouter, L.tbias, L.experts, &L.shared, out); },
                 "shared");
  expect_invalid([&] { plan.run(ctx, L.tx, L.trouter, L.tbias, L.experts, nullptr, out); },
                 "shared");
}

TEST_CASE("dsk.hpp MoePlan owns and releases its plan") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  Layer L(ctx);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {Layer::T, Layer::D}, kF32);
  dsk::MoePlan a(ctx, L.config, L.tx, L.trouter, L.experts, nullptr, out);
  const dsk_moe_plan* raw = a.get();
  REQUIRE(raw != nullptr);
  dsk::MoePlan b(std::move(a));
  CHECK(a.get() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(b.get() == raw);
  dsk::MoePlan c;
  CHECK(!c);
  c = std::move(b);
  CHECK(c.get() == raw);
  dsk::MoePlan& alias = c;
  c = std::move(alias);  // self-move keeps the plan
  CHECK(c.get() == raw);
  c.reset();
  c.reset();  // idempotent
  CHECK(!c);
  dsk_moe_plan_release(nullptr);  // a no-op

  expect_invalid([&] { (void)c.workspace_size(); }, "plan");
  expect_invalid([&] { c.run(ctx, L.tx, L.trouter, nullptr, L.experts, nullptr, out); }, "plan");

  // A plan adopted from the C API, made with another context on the same device.
  dsk_moe_plan* made = nullptr;
  {
    dsk::Context other(DSK_BACKEND_CPU);
    dsk::check(dsk_moe_plan_create(other.get(), &L.config, L.tx, L.trouter, &L.experts, nullptr,
                                   out, &made));
  }
  dsk::MoePlan adopted(made);
  adopted.run(ctx, L.tx, L.trouter, nullptr, L.experts, nullptr, out);

  // Gate parameters are validated: k > topk_group * E / G.
  dsk_moe_gate_config bad = L.config;
  bad.top_k = 3;
  expect_invalid([&] { dsk::MoePlan p(ctx, bad, L.tx, L.trouter, L.experts, nullptr, out); },
                 "top_k");
}

TEST_CASE("dsk.hpp moe_load_accumulate and moe_bias_update") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor ids = make_int(ctx, {3, 2}, std::vector<int32_t>{4, 1, 1, 6, 6, -1});
  dsk::Tensor load = make_int(ctx, {8}, std::vector<int64_t>(8, 0));
  dsk::moe_load_accumulate(ctx, ids, 0, load);
  CHECK(cpp_test::host_values<int64_t>(load) == std::vector<int64_t>{0, 2, 0, 0, 1, 0, 2, 0});
  dsk::moe_load_accumulate(ctx, ids, 0, load);  // accumulates
  CHECK(cpp_test::host_values<int64_t>(load) == std::vector<int64_t>{0, 4, 0, 0, 2, 0, 4, 0});
  // A device owning experts 4 .. 7 counts only those.
  dsk::Tensor local = make_int(ctx, {4}, std::vector<int64_t>(4, 0));
  dsk::moe_load_accumulate(ctx, make_int(ctx, {3, 2}, std::vector<int64_t>{4, 1, 1, 6, 6, 7}), 4,
                           local);
  CHECK(cpp_test::host_values<int64_t>(local) == std::vector<int64_t>{1, 0, 2, 1});

  // mean = 16 / 8 = 2: overloaded experts lose gamma, underloaded ones gain it, equal ones keep.
  dsk::Tensor counts = make_int(ctx, {8}, std::vector<int64_t>{3, 1, 2, 2, 0, 4, 2, 2});
  dsk::Tensor bias = make(ctx, {8}, {0, 0, 0, 0, 0.5f, -0.5f, 1, 0});
  dsk::moe_bias_update(ctx, counts, bias, 0.125f);
  CHECK(floats(bias) == std::vector<float>{-0.125f, 0.125f, 0, 0, 0.625f, -0.625f, 1, 0});
  // f32 loads and the default gamma 0.001.
  dsk::Tensor fload = make(ctx, {2}, {1.0f, 3.0f});
  dsk::Tensor b2 = make(ctx, {2}, {0.0f, 0.0f});
  dsk::moe_bias_update(ctx, fload, b2);
  CHECK(floats(b2) == std::vector<float>{0.001f, -0.001f});
  expect_invalid([&] { dsk::moe_bias_update(ctx, counts, bias, -1.0f); }, "gamma");
}

TEST_CASE("dsk.hpp moe_ep_layout") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // E 8 on 4 ranks (2 experts each): token 0 -> experts 4, 1 (ranks 2, 0); token 1 -> 1, 6
  // (ranks 0, 3); token 2 -> 6 and nothing (-1).
  dsk::Tensor ids = make_int(ctx, {3, 2}, std::vector<int32_t>{4, 1, 1, 6, 6, -1});
  dsk::Tensor per_rank = dsk::Tensor::empty(ctx, {4}, kI32);
  dsk::Tensor per_expert = dsk::Tensor::empty(ctx, {8}, kI32);
  dsk::Tensor in_rank = dsk::Tensor::empty(ctx, {3, 4}, dsk::dtype(DSK_DTYPE_BOOL));
  dsk::moe_ep_layout(ctx, ids, 8, 4, per_rank, per_expert, in_rank);
  CHECK(cpp_test::host_values<int32_t>(per_rank) == std::vector<int32_t>{2, 0, 1, 2});
  CHECK(cpp_test::host_values<int32_t>(per_expert) == std::vector<int32_t>{0, 2, 0, 0, 1, 0, 2, 0});
  CHECK(cpp_test::host_values<uint8_t>(in_rank) ==
        std::vector<uint8_t>{1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1});

  // An id outside [-1, E) is refused before anything is written.
  dsk::Tensor bad = make_int(ctx, {3, 2}, std::vector<int32_t>{4, 1, 1, 8, 6, -1});
  dsk::fill(ctx, per_rank, 5.0);
  expect_invalid([&] { dsk::moe_ep_layout(ctx, bad, 8, 4, per_rank, per_expert, in_rank); }, "ids");
  CHECK(cpp_test::host_values<int32_t>(per_rank) == std::vector<int32_t>{5, 5, 5, 5});
  expect_invalid([&] { dsk::moe_ep_layout(ctx, ids, 8, 3, per_rank, per_expert, in_rank); },
                 "num_ranks");
}
