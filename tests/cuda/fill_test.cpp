// dsk_fill and dsk_fill_random on CUDA tensors, compared byte for byte with the CPU reference.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

std::vector<Layout> destination_layouts() {
  Layout eight_d = column_major({2, 1, 3, 1, 2, 1, 2, 3}, 4);
  eight_d.strides[3] = 1000;
  return {
      row_major({1}),
      row_major({1000}),
      row_major({4099}, 3),
      column_major({5, 7, 3}),
      Layout{{4, 5}, {11, 2}, 3},
      Layout{{2, 3, 4, 5}, {4, 40, 1, 8}, 1},
      eight_d,
      Layout{{64, 100}, {128, 1}, 0},
      row_major({}, 2),
      row_major({0, 3}),
      column_major({33, 65, 17}),
  };
}

TEST_CASE("fill matches the CPU for every dtype, value and layout") {
  Env env;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double values[] = {0.0,     -0.0,    1.0,   -2.5,         3.14159265358979,
                           65504.0, 65520.0, 448.0, 464.0,        57344.0,
                           1e6,     -1e30,   1e39,  -1e39,        inf,
                           -inf,    nan,     -nan,  255.5,        256.0,
                           -1.0,    1e-40,   1e-10, 2147483648.0, -2147483649.0,
                           9.3e18,  -9.3e18, 127.0};
  uint64_t seed = 1;
  for (const Layout& l : destination_layouts()) {
    CAPTURE(describe(l));
    for (int32_t id : kAllDtypes) {
      CAPTURE(dtype_name(id));
      Twin base = make_twin(env, id, l.span(), seed++);
      Tensor cpu = view(base.cpu, l);
      Tensor gpu = view(base.gpu, l);
      for (double value : values) {
        CAPTURE(value);
        DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), cpu.dl(), value));
        DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), gpu.dl(), value));
        check_twin(env, base);
      }
    }
  }
}

TEST_CASE("fill_random matches the CPU bit for bit") {
  Env env;
  const uint64_t seeds[] = {0, 42, 0xDEADBEEFCAFEF00Dull};
  const uint64_t offsets[] = {0, 3, (uint64_t{1} << 33) + 5};
  struct Params {
    int32_t distribution;
    double a;
    double b;
  };
  const Params params_list[] = {
      {DSK_RANDOM_UNIFORM, 0.0, 1.0},
      {DSK_RANDOM_UNIFORM, -2.0, 3.5},
      {DSK_RANDOM_NORMAL, 0.0, 1.0},
      {DSK_RANDOM_NORMAL, 1.5, 0.02},
  };
  uint64_t bytes_seed = 1;
  for (const Layout& l : destination_layouts()) {
    CAPTURE(describe(l));
    for (int32_t id : kFloatDtypes) {
      CAPTURE(dtype_name(id));
      Twin base = make_twin(env, id, l.span(), bytes_seed++);
      Tensor cpu = view(base.cpu, l);
      Tensor gpu = view(base.gpu, l);
      for (const Params& p : params_list) {
        for (uint64_t seed : seeds) {
          for (uint64_t offset : offsets) {
            CAPTURE(p.distribution);
            CAPTURE(p.a);
            CAPTURE(p.b);
            CAPTURE(seed);
            CAPTURE(offset);
            dsk_random_params params;
            DSK_REQUIRE_OK(dsk_random_params_init(&params));
            params.distribution = p.distribution;
            params.a = p.a;
            params.b = p.b;
            params.seed = seed;
            params.offset = offset;
            DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), cpu.dl(), &params));
            DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), gpu.dl(), &params));
            check_twin(env, base);
          }
        }
      }
    }
  }
}

TEST_CASE("fill_random gives element i the same value whatever the destination strides") {
  Env env;
  dsk_random_params params;
  DSK_REQUIRE_OK(dsk_random_params_init(&params));
  params.distribution = DSK_RANDOM_NORMAL;
  params.seed = 77;
  // A transposed destination holds, at row-major index i of its shape, what a compact one does.
  Tensor compact = create(env.gpu.get(), {37, 29}, DSK_DTYPE_F32);
  Tensor base = create(env.gpu.get(), {37 * 29}, DSK_DTYPE_F32);
  Tensor transposed = view(base, Layout{{37, 29}, {1, 37}, 0});
  DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), compact.dl(), &params));
  DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), transposed.dl(), &params));
  Tensor gathered = create(env.gpu.get(), {37, 29}, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), transposed.dl(), gathered.dl()));
  CHECK(download(env, gathered) == download(env, compact));
}

TEST_CASE("zero-element tensors are accepted and left alone") {
  Env env;
  Tensor empty = create(env.gpu.get(), {4, 0, 2}, DSK_DTYPE_BF16);
  Tensor other = create(env.gpu.get(), {4, 0, 2}, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), empty.dl(), 1.0));
  dsk_random_params params;
  DSK_REQUIRE_OK(dsk_random_params_init(&params));
  DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), empty.dl(), &params));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), empty.dl(), other.dl()));
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

}  // namespace
}  // namespace dsk_test
