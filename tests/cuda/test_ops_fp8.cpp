// FP8 block quantization and the FP8 linear layer on CUDA against the CPU reference: quantization
// and dequantization bit for bit, dsk_linear_fp8 within stated tolerances for both CUDA kernels
// (the block-scaled cuBLASLt GEMM where the device has it, and the dequantize-then-GEMM fallback
// forced with DSK_FP8_GEMM=dequant).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

constexpr int32_t kInputDtypes[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16};

// Sets DSK_FP8_GEMM for the scope (restores the previous value).
class ScopedGemmMode {
 public:
  explicit ScopedGemmMode(const char* value) {
    const char* old = std::getenv("DSK_FP8_GEMM");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value != nullptr) {
      setenv("DSK_FP8_GEMM", value, 1);
    } else {
      unsetenv("DSK_FP8_GEMM");
    }
  }
  ~ScopedGemmMode() {
    if (had_) {
      setenv("DSK_FP8_GEMM", old_.c_str(), 1);
    } else {
      unsetenv("DSK_FP8_GEMM");
    }
  }
  ScopedGemmMode(const ScopedGemmMode&) = delete;
  ScopedGemmMode& operator=(const ScopedGemmMode&) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

// Values whose magnitude changes per 128-column tile, with zeros and an all-zero tile mixed in.
std::vector<float> tile_values(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> mag(-10, 10);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  std::vector<int> m(static_cast<size_t>((cols + 127) / 128 + 1));
  for (int64_t r = 0; r < rows; ++r) {
    if (r % 32 == 0) {
      for (int& x : m) x = mag(rng);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const bool zero_tile = r == 1 && c < 128;
      v[static_cast<size_t>(r * cols + c)] =
          zero_tile || rng() % 19 == 0 ? 0.0f : std::ldexp(u(rng), m[static_cast<size_t>(c / 128)]);
    }
  }
  return v;
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("quant_fp8_act and dequant_fp8_act match the CPU bit for bit") {
    Env env;
    const std::vector<std::vector<int64_t>> shapes = {{3, 300}, {1, 7168}, {2, 37, 128}, {5, 1}};
    uint32_t seed = 1;
    for (const auto& shape : shapes) {
      const int64_t k = shape.back();
      int64_t rows = 1;
      for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
      std::vector<int64_t> sshape = shape;
      sshape.back() = (k + 127) / 128;
      for (int32_t id : kInputDtypes) {
        for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
          CAPTURE(shape.size());
          CAPTURE(k);
          CAPTURE(dtype_name(id));
          CAPTURE(flags);
          Pair x = upload_values(env, tile_values(rows, k, seed++), shape, id);
          Pair q = zeros_pair(env, shape, DSK_DTYPE_FP8_E4M3FN);
          Pair s = zeros_pair(env, sshape, DSK_DTYPE_F32);
          DSK_REQUIRE_OK(
              dsk_quant_fp8_act(env.cpu.get(), x.cpu.dl(), q.cpu.dl(), s.cpu.dl(), flags));
          DSK_REQUIRE_OK(
              dsk_quant_fp8_act(env.gpu.get(), x.gpu.dl(), q.gpu.dl(), s.gpu.dl(), flags));
          check_same_bytes(env, q, "q");
          check_same_bytes(env, s, "scales");
          for (int32_t out : kInputDtypes) {
            Pair back = zeros_pair(env, shape, out);
            DSK_REQUIRE_OK(
                dsk_dequant_fp8_act(env.cpu.get(), q.cpu.dl(), s.cpu.dl(), back.cpu.dl()));
            DSK_REQUIRE_OK(
                dsk_dequant_fp8_act(env.gpu.get(), q.gpu.dl(), s.gpu.dl(), back.gpu.dl()));
            check_same_bytes(env, back, "dequantized");
          }
        }
      }
    }
  }

  TEST_CASE("quant_fp8 writes strided q and column-major scales like the CPU") {
    Env env;
    const int64_t m = 40, k = 300;
    Pair x = upload_values(env, tile_values(m, k, 77), {m, k}, DSK_DTYPE_BF16);
    // q with padded rows, scales [m, 3] column-major (strides 1, m).
    Pair qb = zeros_pair(env, {m * 320}, DSK_DTYPE_FP8_E4M3FN);
    Pair sb = zeros_pair(env, {m * 3}, DSK_DTYPE_F32);
    const Layout ql{{m, k}, {320, 1}, 0};
    const Layout sl{{m, 3}, {1, m}, 0};
    Tensor qc = view(qb.cpu, ql);
    Tensor qg = view(qb.gpu, ql);
    Tensor sc = view(sb.cpu, sl);
    Tensor sg = view(sb.gpu, sl);
    DSK_REQUIRE_OK(dsk_quant_fp8_act(env.cpu.get(), x.cpu.dl(), qc.dl(), sc.dl(), 0));
    DSK_REQUIRE_OK(dsk_quant_fp8_act(env.gpu.get(), x.gpu.dl(), qg.dl(), sg.dl(), 0));
    check_same_bytes(env, qb, "strided q");
    check_same_bytes(env, sb, "column-major scales");
    // A transposed weight view and column-major weight scales.
    const int64_t n = 200;
    Pair wb = upload_values(env, tile_values(k, n, 78), {k * n}, DSK_DTYPE_F32);
    const Layout wl{{n, k}, {1, n}, 0};
    Tensor wc = view(wb.cpu, wl);
    Tensor wg = view(wb.gpu, wl);
    Pair wq = zeros_pair(env, {n, k}, DSK_DTYPE_FP8_E4M3FN);
    Pair ws = zeros_pair(env, {6}, DSK_DTYPE_F32);
    const Layout wsl{{2, 3}, {1, 2}, 0};
    Tensor wsc = view(ws.cpu, wsl);
    Tensor wsg = view(ws.gpu, wsl);
    DSK_REQUIRE_OK(
        dsk_quant_fp8_weight(env.cpu.get(), wc.dl(), wq.cpu.dl(), wsc.dl(), DSK_QUANT_SCALE_POW2));
    DSK_REQUIRE_OK(
        dsk_quant_fp8_weight(env.gpu.get(), wg.dl(), wq.gpu.dl(), wsg.dl(), DSK_QUANT_SCALE_POW2));
    check_same_bytes(env, wq, "weight q");
    check_same_bytes(env, ws, "weight scales");
  }

  TEST_CASE("quant_fp8_weight and dequant_fp8_weight match the CPU bit for bit") {
    Env env;
    const std::vector<std::vector<int64_t>> shapes = {{200, 300}, {256, 1024}, {1, 129}};
    uint32_t seed = 100;
    for (const auto& shape : shapes) {
      const std::vector<int64_t> sshape = {(shape[0] + 127) / 128, (shape[1] + 127) / 128};
      for (int32_t id : kInputDtypes) {
        for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
          CAPTURE(shape[0]);
          CAPTURE(shape[1]);
          CAPTURE(dtype_name(id));
          CAPTURE(flags);
          Pair w = upload_values(env, tile_values(shape[0], shape[1], seed++), shape, id);
          Pair q = zeros_pair(env, shape, DSK_DTYPE_FP8_E4M3FN);
          Pair s = zeros_pair(env, sshape, DSK_DTYPE_F32);
          DSK_REQUIRE_OK(
              dsk_quant_fp8_weight(env.cpu.get(), w.cpu.dl(), q.cpu.dl(), s.cpu.dl(), flags));
          DSK_REQUIRE_OK(
              dsk_quant_fp8_weight(env.gpu.get(), w.gpu.dl(), q.gpu.dl(), s.gpu.dl(), flags));
          check_same_bytes(env, q, "q");
          check_same_bytes(env, s, "scales");
          Pair back = zeros_pair(env, shape, id);
          DSK_REQUIRE_OK(
              dsk_dequant_fp8_weight(env.cpu.get(), q.cpu.dl(), s.cpu.dl(), back.cpu.dl()));
          DSK_REQUIRE_OK(
              dsk_dequant_fp8_weight(env.gpu.get(), q.gpu.dl(), s.gpu.dl(), back.gpu.dl()));
          check_same_bytes(env, back, "dequantized");
        }
      }
    }
  }

  TEST_CASE("quant_fp8_act on CUDA gives NaN scales for NaN tiles instead of an error") {
    Env env;
    std::vector<float> v = tile_values(2, 256, 5);
    v[256 + 130] = std::numeric_limits<float>::quiet_NaN();
    Pair x = upload_values(env, v, {2, 256}, DSK_DTYPE_F32);
    Pair q = zeros_pair(env, {2, 256}, DSK_DTYPE_FP8_E4M3FN);
    Pair s = zeros_pair(env, {2, 2}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_quant_fp8_act(env.gpu.get(), x.gpu.dl(), q.gpu.dl(), s.gpu.dl(), 0));
    const std::vector<float> scales = read_f32(env, s.gpu.dl());
    CHECK(std::isnan(scales[3]));
    CHECK_FALSE(std::isnan(scales[0]));
    CHECK(dsk_quant_fp8_act(env.cpu.get(), x.cpu.dl(), q.cpu.dl(), s.cpu.dl(), 0) ==
          DSK_ERR_INVALID_ARGUMENT);
  }

  TEST_CASE("linear_fp8 on CUDA matches the CPU reference within tolerance for both kernels") {
    Env env;
    struct Shape {
      int64_t m, n, k;
    };
    // Decode and prefill sizes at V3 widths, plus a ragged one (K, N not multiples of 128).
    const Shape shapes[] = {{1, 576, 7168}, {128, 1536, 7168}, {33, 200, 300}, {256, 7168, 2048}};
    for (const char* mode : {static_cast<const char*>(nullptr), "dequant"}) {
      ScopedGemmMode scoped(mode);
      int32_t kernel = 0;
      DSK_REQUIRE_OK(dsk_linear_fp8_kernel(env.gpu.get(), &kernel));
      CAPTURE(kernel);
      if (mode != nullptr) {
        CHECK(kernel == DSK_FP8_KERNEL_DEQUANT_GEMM);
      } else {
        CHECK((kernel == DSK_FP8_KERNEL_BLOCK_SCALED || kernel == DSK_FP8_KERNEL_DEQUANT_GEMM));
      }
      MESSAGE("dsk_linear_fp8 kernel with DSK_FP8_GEMM=" << (mode ? mode : "(unset)") << ": "
                                                         << kernel);
      uint32_t seed = 500;
      for (const Shape& sh : shapes) {
        for (int32_t y_id : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
          for (bool prequantized : {false, true}) {
            CAPTURE(sh.m);
            CAPTURE(sh.n);
            CAPTURE(sh.k);
            CAPTURE(dtype_name(y_id));
            CAPTURE(prequantized);
            const int64_t kb = (sh.k + 127) / 128;
            Pair w =
                upload_values(env, tile_values(sh.n, sh.k, seed++), {sh.n, sh.k}, DSK_DTYPE_BF16);
            Pair wq = zeros_pair(env, {sh.n, sh.k}, DSK_DTYPE_FP8_E4M3FN);
            Pair ws = zeros_pair(env, {(sh.n + 127) / 128, kb}, DSK_DTYPE_F32);
            DSK_REQUIRE_OK(
                dsk_quant_fp8_weight(env.cpu.get(), w.cpu.dl(), wq.cpu.dl(), ws.cpu.dl(), 0));
            DSK_REQUIRE_OK(
                dsk_quant_fp8_weight(env.gpu.get(), w.gpu.dl(), wq.gpu.dl(), ws.gpu.dl(), 0));
            Pair x =
                upload_values(env, tile_values(sh.m, sh.k, seed++), {sh.m, sh.k}, DSK_DTYPE_BF16);
            Pair y = zeros_pair(env, {sh.m, sh.n}, y_id);
            // The fp8 x (column-major x_scales) for the prequantized form, and the CPU's
            // dequantized operands for the tolerance.
            Pair xq = zeros_pair(env, {sh.m, sh.k}, DSK_DTYPE_FP8_E4M3FN);
            Pair xsb = zeros_pair(env, {sh.m * kb}, DSK_DTYPE_F32);
            const Layout xsl{{sh.m, kb}, {1, sh.m}, 0};
            Tensor xsc = view(xsb.cpu, xsl);
            Tensor xsg = view(xsb.gpu, xsl);
            DSK_REQUIRE_OK(dsk_quant_fp8_act(env.cpu.get(), x.cpu.dl(), xq.cpu.dl(), xsc.dl(), 0));
            DSK_REQUIRE_OK(dsk_quant_fp8_act(env.gpu.get(), x.gpu.dl(), xq.gpu.dl(), xsg.dl(), 0));
            if (prequantized) {
              DSK_REQUIRE_OK(dsk_linear_fp8(env.cpu.get(), xq.cpu.dl(), xsc.dl(), wq.cpu.dl(),
                                            ws.cpu.dl(), y.cpu.dl(), 0));
              DSK_REQUIRE_OK(dsk_linear_fp8(env.gpu.get(), xq.gpu.dl(), xsg.dl(), wq.gpu.dl(),
                                            ws.gpu.dl(), y.gpu.dl(), 0));
            } else {
              DSK_REQUIRE_OK(dsk_linear_fp8(env.cpu.get(), x.cpu.dl(), nullptr, wq.cpu.dl(),
                                            ws.cpu.dl(), y.cpu.dl(), 0));
              DSK_REQUIRE_OK(dsk_linear_fp8(env.gpu.get(), x.gpu.dl(), nullptr, wq.gpu.dl(),
                                            ws.gpu.dl(), y.gpu.dl(), 0));
            }
            Pair xd = zeros_pair(env, {sh.m, sh.k}, DSK_DTYPE_F32);
            Pair wd = zeros_pair(env, {sh.n, sh.k}, DSK_DTYPE_F32);
            DSK_REQUIRE_OK(dsk_dequant_fp8_act(env.cpu.get(), xq.cpu.dl(), xsc.dl(), xd.cpu.dl()));
            DSK_REQUIRE_OK(
                dsk_dequant_fp8_weight(env.cpu.get(), wq.cpu.dl(), ws.cpu.dl(), wd.cpu.dl()));
            // sum_l |x_il w_jl| for the tolerance, as an f32 GEMM of the absolute values.
            std::vector<float> xa(static_cast<size_t>(sh.m * sh.k));
            std::vector<float> wa(static_cast<size_t>(sh.n * sh.k));
            std::memcpy(xa.data(), xd.cpu.host_bytes(), xa.size() * sizeof(float));
            std::memcpy(wa.data(), wd.cpu.host_bytes(), wa.size() * sizeof(float));
            for (float& v : xa) v = std::fabs(v);
            for (float& v : wa) v = std::fabs(v);
            Pair xabs = upload_values(env, xa, {sh.m, sh.k}, DSK_DTYPE_F32);
            Pair wabs = upload_values(env, wa, {sh.n, sh.k}, DSK_DTYPE_F32);
            Pair abs_out = zeros_pair(env, {sh.m, sh.n}, DSK_DTYPE_F32);
            DSK_REQUIRE_OK(
                dsk_linear(env.gpu.get(), xabs.gpu.dl(), wabs.gpu.dl(), nullptr, abs_out.gpu.dl()));
            const std::vector<float> bound = read_f32(env, abs_out.gpu.dl());
            const std::vector<float> want = read_f32(env, y.cpu.dl());
            const std::vector<float> got = read_f32(env, y.gpu.dl());
            // Tolerance per element, relative to sum |x_l w_l|: 2^-7 for the bf16 fallback (both
            // operands rounded to bf16: 2^-8 per product, plus accumulation), 2^-9 for the
            // block-scaled GEMM (exact fp8 products, accumulation in at least ~14 bits per
            // 128-block); plus two roundings of y's dtype.
            const bool ragged = sh.k % 128 != 0 || sh.n % 128 != 0;
            const double rel = (kernel == DSK_FP8_KERNEL_BLOCK_SCALED && !ragged)
                                   ? std::ldexp(1.0, -9)
                                   : std::ldexp(1.0, -7);
            const double out = y_id == DSK_DTYPE_BF16 ? std::ldexp(1.0, -7) : 0.0;
            int64_t bad = 0;
            double worst = 0.0;
            for (size_t idx = 0; idx < got.size(); ++idx) {
              const double sum_abs = 1.001 * bound[idx];
              const double err = std::fabs(static_cast<double>(got[idx]) - want[idx]);
              const double tol = rel * sum_abs + out * std::fabs(want[idx]) + 1e-30;
              if (!(err <= tol)) ++bad;
              if (sum_abs > 0) worst = std::max(worst, err / sum_abs);
            }
            CAPTURE(worst);
            CHECK(bad == 0);
          }
        }
      }
    }
  }

  TEST_CASE("linear_fp8 on CUDA writes a strided y like a dense one") {
    Env env;
    const int64_t m = 64, n = 256, k = 512;
    Pair w = upload_values(env, tile_values(n, k, 9), {n, k}, DSK_DTYPE_F32);
    Pair wq = zeros_pair(env, {n, k}, DSK_DTYPE_FP8_E4M3FN);
    Pair ws = zeros_pair(env, {2, 4}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_quant_fp8_weight(env.gpu.get(), w.gpu.dl(), wq.gpu.dl(), ws.gpu.dl(), 0));
    Pair x = upload_values(env, tile_values(m, k, 10), {m, k}, DSK_DTYPE_BF16);
    Pair dense = zeros_pair(env, {m, n}, DSK_DTYPE_F32);
    Pair base = zeros_pair(env, {m * (n + 5)}, DSK_DTYPE_F32);
    Tensor strided = view(base.gpu, Layout{{m, n}, {n + 5, 1}, 0});
    DSK_REQUIRE_OK(dsk_linear_fp8(env.gpu.get(), x.gpu.dl(), nullptr, wq.gpu.dl(), ws.gpu.dl(),
                                  dense.gpu.dl(), 0));
    DSK_REQUIRE_OK(dsk_linear_fp8(env.gpu.get(), x.gpu.dl(), nullptr, wq.gpu.dl(), ws.gpu.dl(),
                                  strided.dl(), 0));
    CHECK(read_f32(env, dense.gpu.dl()) == read_f32(env, strided.dl()));
  }
}

}  // namespace dsk_test
