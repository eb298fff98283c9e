// RMSNorm, SwiGLU and RoPE on CUDA against the CPU reference, same inputs on both: RoPE (table and
// apply) bit for bit; RMSNorm and SwiGLU within the tolerances of docs/ops/norm.md (the sum of
// squares is reduced in another order, expf differs from std::exp in the last bits), and
// add_rmsnorm's residual_out bit for bit.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

constexpr int32_t kF[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16};

const char* label(int32_t id) {
  return id == DSK_DTYPE_F32 ? "f32" : id == DSK_DTYPE_F16 ? "f16" : "bf16";
}

// A CPU tensor and a CUDA tensor of one shape and dtype holding the same uniform values.
Pair make_pair(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id, uint64_t seed,
               float lo = -2.0f, float hi = 2.0f) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return upload_values(env, v, shape, dtype_id);
}

Pair view_pair(const Pair& base, const Layout& l) {
  return Pair{view(base.cpu, l), view(base.gpu, l)};
}

// Values of any float tensor (either device) as doubles, row-major.
std::vector<double> values(const Env& env, const DLTensor* t) {
  const std::vector<float> f = read_f32(env, t);
  return std::vector<double>(f.begin(), f.end());
}

// CUDA within `rel` of the CPU (relative, plus `abs`); 1 ulp of a narrow output dtype.
double rel_of(int32_t dtype, double f32_rel) {
  return dtype == DSK_DTYPE_BF16  ? std::ldexp(1.0, -7)
         : dtype == DSK_DTYPE_F16 ? std::ldexp(1.0, -10)
                                  : f32_rel;
}

void check_near(const Env& env, const Pair& p, int32_t dtype, double f32_rel,
                const std::string& what) {
  const auto want = values(env, p.cpu.dl());
  const auto got = values(env, p.gpu.dl());
  REQUIRE(got.size() == want.size());
  const double rel = rel_of(dtype, f32_rel);
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!same_nan && !(std::fabs(got[i] - want[i]) <= rel * std::fabs(want[i]) + 1e-30)) {
      if (bad++ == 0) {
        FAIL_CHECK(what << ": element " << i << " cuda " << got[i] << " cpu " << want[i]);
      }
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " elements off");
}

void check_bitwise(const Env& env, const Pair& p, const std::string& what) {
  const auto want = values(env, p.cpu.dl());
  const auto got = values(env, p.gpu.dl());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(double)) != 0 && bad++ == 0) {
      FAIL_CHECK(what << ": element " << i << " cuda " << got[i] << " cpu " << want[i]);
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " elements differ");
}

// f32 tolerance of RMSNorm: the sum of squares in another order (a few ulp of the sum; the
// inverse square root halves it).
constexpr double kNormRel = 4e-6;
// f32 tolerance of SwiGLU: expf vs std::exp (2 ulp), then a division and a product.
constexpr double kSwigluRel = 1e-6;

TEST_SUITE("cuda_ops") {
  TEST_CASE("rmsnorm on CUDA matches the CPU") {
    Env env;
    for (const std::vector<int64_t>& shape :
         {std::vector<int64_t>{3, 37}, std::vector<int64_t>{4, 7168},
          std::vector<int64_t>{2, 5, 64}, std::vector<int64_t>{1, 1030}}) {
      const int64_t d = shape.back();
      for (int32_t xt : kF) {
        for (int32_t wt : kF) {
          for (int32_t yt : kF) {
            Pair x = make_pair(env, shape, xt, 1);
            Pair w = make_pair(env, {d}, wt, 2, 0.5f, 1.5f);
            Pair y = zeros_pair(env, shape, yt);
            DSK_REQUIRE_OK(dsk_rmsnorm(env.cpu.get(), x.cpu.dl(), w.cpu.dl(), y.cpu.dl(), 1e-6f));
            DSK_REQUIRE_OK(dsk_rmsnorm(env.gpu.get(), x.gpu.dl(), w.gpu.dl(), y.gpu.dl(), 1e-6f));
            check_near(env, y, yt, kNormRel,
                       std::string("d ") + std::to_string(d) + " x " + label(xt) + " w " +
                           label(wt) + " y " + label(yt));
          }
        }
      }
    }
  }

  TEST_CASE("rmsnorm on CUDA: strided, misaligned and in place") {
    Env env;
    const int64_t rows = 6;
    const int64_t d = 2048;
    // Strided columns (the scalar kernel) and a row stride that keeps the vector kernel.
    Pair xb = make_pair(env, {rows * 2 * d + 1}, DSK_DTYPE_BF16, 3);
    Pair wb = make_pair(env, {2 * d}, DSK_DTYPE_F32, 4);
    Pair x = view_pair(xb, Layout{{rows, d}, {2 * d, 2}, 1});
    Pair w = view_pair(wb, Layout{{d}, {2}, 0});
    Pair y = zeros_pair(env, {rows, d}, DSK_DTYPE_BF16);
    DSK_REQUIRE_OK(dsk_rmsnorm(env.cpu.get(), x.cpu.dl(), w.cpu.dl(), y.cpu.dl(), 1e-6f));
    DSK_REQUIRE_OK(dsk_rmsnorm(env.gpu.get(), x.gpu.dl(), w.gpu.dl(), y.gpu.dl(), 1e-6f));
    check_near(env, y, DSK_DTYPE_BF16, kNormRel, "strided columns");
    Pair xr = view_pair(xb, Layout{{rows, d}, {2 * d, 1}, 4});
    Pair wr = view_pair(wb, Layout{{d}, {1}, 0});
    DSK_REQUIRE_OK(dsk_rmsnorm(env.cpu.get(), xr.cpu.dl(), wr.cpu.dl(), y.cpu.dl(), 1e-6f));
    DSK_REQUIRE_OK(dsk_rmsnorm(env.gpu.get(), xr.gpu.dl(), wr.gpu.dl(), y.gpu.dl(), 1e-6f));
    check_near(env, y, DSK_DTYPE_BF16, kNormRel, "row stride 2d");
    // Misaligned: bf16 elements at an odd byte address of a uint8 buffer.
    Tensor raw = create(env.gpu.get(), {rows * d * 2 + 1}, DSK_DTYPE_UINT8);
    SourceView mis{{rows, d}, {d, 1}, *raw.dl()};
    mis.tensor.ndim = 2;
    mis.tensor.shape = mis.shape.data();
    mis.tensor.strides = mis.strides.data();
    mis.tensor.dtype = dtype(DSK_DTYPE_BF16);
    mis.tensor.data = static_cast<char*>(mis.tensor.data) + 1;
    Pair xc = make_pair(env, {rows, d}, DSK_DTYPE_BF16, 5);
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), xc.gpu.dl(), mis.dl()));
    DSK_REQUIRE_OK(dsk_rmsnorm(env.cpu.get(), xc.cpu.dl(), wr.cpu.dl(), y.cpu.dl(), 1e-6f));
    DSK_REQUIRE_OK(dsk_rmsnorm(env.gpu.get(), mis.dl(), wr.gpu.dl(), y.gpu.dl(), 1e-6f));
    check_near(env, y, DSK_DTYPE_BF16, kNormRel, "misaligned x");
    // In place.
    DSK_REQUIRE_OK(dsk_rmsnorm(env.cpu.get(), xc.cpu.dl(), wr.cpu.dl(), xc.cpu.dl(), 1e-6f));
    DSK_REQUIRE_OK(dsk_rmsnorm(env.gpu.get(), xc.gpu.dl(), wr.gpu.dl(), xc.gpu.dl(), 1e-6f));
    check_near(env, xc, DSK_DTYPE_BF16, kNormRel, "in place");
  }

  TEST_CASE("add_rmsnorm on CUDA matches the CPU, residual_out bit for bit") {
    Env env;
    for (const std::vector<int64_t>& shape :
         {std::vector<int64_t>{3, 41}, std::vector<int64_t>{5, 7168}}) {
      const int64_t d = shape.back();
      for (int32_t xt : kF) {
        for (int32_t rt : kF) {
          for (int32_t rot : kF) {
            Pair x = make_pair(env, shape, xt, 6);
            Pair r = make_pair(env, shape, rt, 7);
            Pair w = make_pair(env, {d}, DSK_DTYPE_BF16, 8);
            Pair y = zeros_pair(env, shape, DSK_DTYPE_BF16);
            Pair ro = zeros_pair(env, shape, rot);
            DSK_REQUIRE_OK(dsk_add_rmsnorm(env.cpu.get(), x.cpu.dl(), r.cpu.dl(), w.cpu.dl(),
                                           y.cpu.dl(), ro.cpu.dl(), 1e-6f));
            DSK_REQUIRE_OK(dsk_add_rmsnorm(env.gpu.get(), x.gpu.dl(), r.gpu.dl(), w.gpu.dl(),
                                           y.gpu.dl(), ro.gpu.dl(), 1e-6f));
            const std::string what = std::string("d ") + std::to_string(d) + " x " + label(xt) +
                                     " r " + label(rt) + " ro " + label(rot);
            check_bitwise(env, ro, what + " residual_out");
            check_near(env, y, DSK_DTYPE_BF16, kNormRel, what + " y");
          }
        }
      }
      // In place: y = x, residual_out = residual.
      Pair x = make_pair(env, shape, DSK_DTYPE_BF16, 9);
      Pair r = make_pair(env, shape, DSK_DTYPE_BF16, 10);
      Pair w = make_pair(env, {d}, DSK_DTYPE_BF16, 11);
      DSK_REQUIRE_OK(dsk_add_rmsnorm(env.cpu.get(), x.cpu.dl(), r.cpu.dl(), w.cpu.dl(), x.cpu.dl(),
                                     r.cpu.dl(), 1e-6f));
      DSK_REQUIRE_OK(dsk_add_rmsnorm(env.gpu.get(), x.gpu.dl(), r.gpu.dl(), w.gpu.dl(), x.gpu.dl(),
                                     r.gpu.dl(), 1e-6f));
      check_bitwise(env, r, "in place residual");
      check_near(env, x, DSK_DTYPE_BF16, kNormRel, "in place y");
    }
  }

  TEST_CASE("swiglu on CUDA matches the CPU") {
    Env env;
    for (const std::vector<int64_t>& shape :
         {std::vector<int64_t>{4, 33}, std::vector<int64_t>{3, 2048}}) {
      for (int32_t gt : kF) {
        for (int32_t ut : kF) {
          for (int32_t yt : kF) {
            Pair g = make_pair(env, shape, gt, 12, -10.0f, 10.0f);
            Pair u = make_pair(env, shape, ut, 13);
            Pair y = zeros_pair(env, shape, yt);
            DSK_REQUIRE_OK(dsk_swiglu(env.cpu.get(), g.cpu.dl(), u.cpu.dl(), y.cpu.dl()));
            DSK_REQUIRE_OK(dsk_swiglu(env.gpu.get(), g.gpu.dl(), u.gpu.dl(), y.gpu.dl()));
            check_near(env, y, yt, kSwigluRel,
                       std::string("n ") + std::to_string(shape.back()) + " g " + label(gt) +
                           " u " + label(ut) + " y " + label(yt));
          }
        }
      }
    }
    // Fused (vector path: I % 4 == 0) and fused with I odd (scalar path), and a strided gate.
    for (int64_t i_size : {int64_t{2048}, int64_t{17}}) {
      Pair gu = make_pair(env, {5, 2 * i_size}, DSK_DTYPE_BF16, 14, -8.0f, 8.0f);
      Pair y = zeros_pair(env, {5, i_size}, DSK_DTYPE_BF16);
      DSK_REQUIRE_OK(dsk_swiglu_fused(env.cpu.get(), gu.cpu.dl(), y.cpu.dl()));
      DSK_REQUIRE_OK(dsk_swiglu_fused(env.gpu.get(), gu.gpu.dl(), y.gpu.dl()));
      check_near(env, y, DSK_DTYPE_BF16, kSwigluRel, "fused I " + std::to_string(i_size));
    }
    Pair gb = make_pair(env, {3 * 2 * 40}, DSK_DTYPE_F32, 15);
    Pair g = view_pair(gb, Layout{{3, 40}, {80, 2}, 1});
    Pair u = make_pair(env, {3, 40}, DSK_DTYPE_F16, 16);
    Pair y = zeros_pair(env, {3, 40}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_swiglu(env.cpu.get(), g.cpu.dl(), u.cpu.dl(), y.cpu.dl()));
    DSK_REQUIRE_OK(dsk_swiglu(env.gpu.get(), g.gpu.dl(), u.gpu.dl(), y.gpu.dl()));
    check_near(env, y, DSK_DTYPE_F32, kSwigluRel, "strided gate");
  }

  TEST_CASE("rope table on CUDA is the host table") {
    Env env;
    dsk_rope_config c;
    dsk_rope_config_init(&c);
    Pair cs = zeros_pair(env, {4096, 32}, DSK_DTYPE_F32);
    Pair sn = zeros_pair(env, {4096, 32}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_rope_table(env.cpu.get(), &c, cs.cpu.dl(), sn.cpu.dl()));
    DSK_REQUIRE_OK(dsk_rope_table(env.gpu.get(), &c, cs.gpu.dl(), sn.gpu.dl()));
    check_bitwise(env, cs, "cos");
    check_bitwise(env, sn, "sin");
    // A strided device table.
    Pair base = zeros_pair(env, {4096 * 64}, DSK_DTYPE_F32);
    Pair csv = view_pair(base, Layout{{4096, 32}, {64, 2}, 0});
    Pair other = zeros_pair(env, {4096, 32}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_rope_table(env.cpu.get(), &c, csv.cpu.dl(), other.cpu.dl()));
    DSK_REQUIRE_OK(dsk_rope_table(env.gpu.get(), &c, csv.gpu.dl(), other.gpu.dl()));
    check_bitwise(env, csv, "strided cos");
  }

  TEST_CASE("rope apply on CUDA is bitwise the CPU's") {
    Env env;
    dsk_rope_config c;
    dsk_rope_config_init(&c);
    const int64_t n_pos = 4096;
    Pair cs = zeros_pair(env, {n_pos, 32}, DSK_DTYPE_F32);
    Pair sn = zeros_pair(env, {n_pos, 32}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_rope_table(env.cpu.get(), &c, cs.cpu.dl(), sn.cpu.dl()));
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), cs.cpu.dl(), cs.gpu.dl()));
    DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), sn.cpu.dl(), sn.gpu.dl()));
    const int64_t tokens = 9;
    const int64_t heads = 16;
    std::mt19937_64 rng(17);
    std::vector<int64_t> pos(tokens);
    for (auto& p : pos) p = static_cast<int64_t>(rng() % n_pos);
    for (int32_t pt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      Pair positions = zeros_pair(env, {tokens}, pt);
      for (int64_t t = 0; t < tokens; ++t) {
        if (pt == DSK_DTYPE_INT32) {
          reinterpret_cast<int32_t*>(positions.cpu.host_bytes())[t] = static_cast<int32_t>(pos[t]);
        } else {
          reinterpret_cast<int64_t*>(positions.cpu.host_bytes())[t] = pos[t];
        }
      }
      DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), positions.cpu.dl(), positions.gpu.dl()));
      for (int32_t layout : {DSK_ROPE_INTERLEAVED, DSK_ROPE_HALF_SPLIT}) {
        for (int32_t xt : kF) {
          for (int32_t yt : kF) {
            Pair x = make_pair(env, {tokens, heads, 64}, xt, 18);
            Pair y = zeros_pair(env, {tokens, heads, 64}, yt);
            DSK_REQUIRE_OK(dsk_rope_apply(env.cpu.get(), x.cpu.dl(), positions.cpu.dl(),
                                          cs.cpu.dl(), sn.cpu.dl(), y.cpu.dl(), layout));
            DSK_REQUIRE_OK(dsk_rope_apply(env.gpu.get(), x.gpu.dl(), positions.gpu.dl(),
                                          cs.gpu.dl(), sn.gpu.dl(), y.gpu.dl(), layout));
            check_bitwise(env, y,
                          std::string(layout == 0 ? "interleaved" : "half-split") + " x " +
                              label(xt) + " y " + label(yt));
          }
        }
        // q_pe: the last 64 of 192 dims of each head, in place; k_pe [T, 64] from a latent.
        Pair q = make_pair(env, {tokens, heads, 192}, DSK_DTYPE_BF16, 19);
        Pair q_pe = view_pair(q, Layout{{tokens, heads, 64}, {heads * 192, 192, 1}, 128});
        DSK_REQUIRE_OK(dsk_rope_apply(env.cpu.get(), q_pe.cpu.dl(), positions.cpu.dl(), cs.cpu.dl(),
                                      sn.cpu.dl(), q_pe.cpu.dl(), layout));
        DSK_REQUIRE_OK(dsk_rope_apply(env.gpu.get(), q_pe.gpu.dl(), positions.gpu.dl(), cs.gpu.dl(),
                                      sn.gpu.dl(), q_pe.gpu.dl(), layout));
        check_bitwise(env, q, "q_pe in place");
        Pair kv = make_pair(env, {tokens, 576}, DSK_DTYPE_BF16, 20);
        Pair k_pe = view_pair(kv, Layout{{tokens, 64}, {576, 1}, 512});
        Pair k = zeros_pair(env, {tokens, 64}, DSK_DTYPE_F32);
        DSK_REQUIRE_OK(dsk_rope_apply(env.cpu.get(), k_pe.cpu.dl(), positions.cpu.dl(), cs.cpu.dl(),
                                      sn.cpu.dl(), k.cpu.dl(), layout));
        DSK_REQUIRE_OK(dsk_rope_apply(env.gpu.get(), k_pe.gpu.dl(), positions.gpu.dl(), cs.gpu.dl(),
                                      sn.gpu.dl(), k.gpu.dl(), layout));
        check_bitwise(env, k, "k_pe");
      }
    }
  }

  TEST_CASE("rope apply on CUDA rejects out-of-range positions") {
    Env env;
    dsk_rope_config c;
    dsk_rope_config_init(&c);
    Pair cs = zeros_pair(env, {8, 32}, DSK_DTYPE_F32);
    Pair sn = zeros_pair(env, {8, 32}, DSK_DTYPE_F32);
    DSK_REQUIRE_OK(dsk_rope_table(env.gpu.get(), &c, cs.gpu.dl(), sn.gpu.dl()));
    for (int32_t pt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      for (int64_t badv : {int64_t{8}, int64_t{-1}}) {
        Pair positions = zeros_pair(env, {3}, pt);
        if (pt == DSK_DTYPE_INT32) {
          reinterpret_cast<int32_t*>(positions.cpu.host_bytes())[2] = static_cast<int32_t>(badv);
        } else {
          reinterpret_cast<int64_t*>(positions.cpu.host_bytes())[2] = badv;
        }
        DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), positions.cpu.dl(), positions.gpu.dl()));
        Pair x = make_pair(env, {3, 2, 64}, DSK_DTYPE_BF16, 21);
        const dsk_status st = dsk_rope_apply(env.gpu.get(), x.gpu.dl(), positions.gpu.dl(),
                                             cs.gpu.dl(), sn.gpu.dl(), x.gpu.dl(), 0);
        CHECK(st == DSK_ERR_INVALID_ARGUMENT);
        const std::string msg = dsk_last_error_message();
        CHECK_MESSAGE(msg.find("positions[2] = " + std::to_string(badv)) != std::string::npos, msg);
      }
    }
    // The context stays usable.
    Pair x = make_pair(env, {1, 64}, DSK_DTYPE_F32, 22);
    Pair positions = zeros_pair(env, {1}, DSK_DTYPE_INT32);
    DSK_REQUIRE_OK(dsk_rope_apply(env.gpu.get(), x.gpu.dl(), positions.gpu.dl(), cs.gpu.dl(),
                                  sn.gpu.dl(), x.gpu.dl(), 1));
  }
}

}  // namespace
}  // namespace dsk_test
