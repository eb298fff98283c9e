// MoE dispatch, permute, combine, load statistics, bias update and EP layout (dsk_moe.h) on CUDA
// against the CPU reference: every output bit for bit (dispatch is a deterministic stable sort;
// permute's fp8 quantization, combine's sum order and the bias update's summation order are shared
// with the CPU). Covers the single-block and the multi-kernel dispatch paths, vector and
// element-wise permute/combine paths (strided, odd widths, shared == out), and the index checks
// that CUDA reports at the next synchronize.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

// ids [T, k] of dtype (int32 or int64) holding `ids`.
Pair upload_ids(const Env& env, const std::vector<int64_t>& ids, int64_t tokens, int64_t k,
                int32_t dtype_id) {
  if (dtype_id == DSK_DTYPE_INT64) return upload_raw(env, ids, {tokens, k}, dtype_id);
  return upload_raw(env, std::vector<int32_t>(ids.begin(), ids.end()), {tokens, k}, dtype_id);
}

// Tensors filled with `value` on both sides (unwritten elements show up in the comparison).
Pair filled(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id, double value) {
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), p.cpu.dl(), value));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), p.gpu.dl(), value));
  return p;
}

// Skewed ids: a quarter on four hot experts, some -1, some outside [begin, begin + E).
std::vector<int64_t> random_ids(int64_t n, int32_t num_experts, int32_t begin, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> any(-1, int64_t{begin} + num_experts + 3);
  std::uniform_int_distribution<int64_t> hot(begin, begin + std::min(num_experts, 4) - 1);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (auto& v : ids) v = rng() % 4 == 0 ? hot(rng) : any(rng);
  return ids;
}

std::vector<float> random_values(int64_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

struct Dispatched {
  Pair counts, offsets, sorted, blocks, dest;
  int64_t capacity = 0;
};

Dispatched run_dispatch(const Env& env, const Pair& ids, int64_t tokens, int64_t k,
                        int32_t num_experts, int32_t begin, int32_t block) {
  Dispatched d;
  DSK_REQUIRE_OK(
      dsk_moe_dispatch_capacity(tokens, static_cast<int32_t>(k), num_experts, block, &d.capacity));
  d.capacity += 5;
  d.counts = filled(env, {num_experts}, DSK_DTYPE_INT32, -7);
  d.offsets = filled(env, {int64_t{num_experts} + 1}, DSK_DTYPE_INT32, -7);
  d.sorted = filled(env, {d.capacity}, DSK_DTYPE_INT32, -7);
  d.blocks = filled(env, {(d.capacity + block - 1) / block}, DSK_DTYPE_INT32, -7);
  d.dest = filled(env, {tokens, k}, DSK_DTYPE_INT32, -7);
  DSK_REQUIRE_OK(dsk_moe_dispatch(env.cpu.get(), ids.cpu.dl(), num_experts, begin, block,
                                  d.counts.cpu.dl(), d.offsets.cpu.dl(), d.sorted.cpu.dl(),
                                  d.blocks.cpu.dl(), d.dest.cpu.dl()));
  DSK_REQUIRE_OK(dsk_moe_dispatch(env.gpu.get(), ids.gpu.dl(), num_experts, begin, block,
                                  d.counts.gpu.dl(), d.offsets.gpu.dl(), d.sorted.gpu.dl(),
                                  d.blocks.gpu.dl(), d.dest.gpu.dl()));
  return d;
}

// x [T, D] of dtype with values from random_values, on both sides.
Pair make_x(const Env& env, int64_t tokens, int64_t d, int32_t dtype_id, uint32_t seed) {
  return upload_values(env, random_values(tokens * d, seed), {tokens, d}, dtype_id);
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.moe_dispatch equals the CPU stable sort on every output") {
    Env env;
    struct Case {
      int64_t tokens, k;
      int32_t experts, begin, block, ids_dtype;
    };
    const Case cases[] = {
        {1, 8, 256, 0, 1, DSK_DTYPE_INT32},       // decode: single block
        {64, 8, 256, 0, 1, DSK_DTYPE_INT32},      // single block
        {256, 8, 256, 0, 128, DSK_DTYPE_INT64},   // N = 2048: the single block's limit
        {37, 6, 160, 0, 16, DSK_DTYPE_INT32},     // V2
        {300, 8, 8192, 0, 1, DSK_DTYPE_INT32},    // E > 2048: multi-kernel with few ids
        {2000, 4, 64, 32, 16, DSK_DTYPE_INT64},   // local expert range, multi-kernel
        {4096, 8, 256, 0, 64, DSK_DTYPE_INT32},   // prefill
        {65536, 16, 256, 0, 1, DSK_DTYPE_INT32},  // 2^20 assignments
        {20000, 8, 8192, 100, 128, DSK_DTYPE_INT32},
        {0, 8, 256, 0, 16, DSK_DTYPE_INT32},  // T = 0, single block
        {0, 8, 4096, 0, 1, DSK_DTYPE_INT64},  // T = 0, multi-kernel
    };
    uint32_t seed = 1;
    for (const Case& c : cases) {
      CAPTURE(c.tokens);
      CAPTURE(c.k);
      CAPTURE(c.experts);
      CAPTURE(c.block);
      const std::vector<int64_t> ids = random_ids(c.tokens * c.k, c.experts, c.begin, ++seed);
      const Pair idp = upload_ids(env, ids, c.tokens, c.k, c.ids_dtype);
      const Dispatched d = run_dispatch(env, idp, c.tokens, c.k, c.experts, c.begin, c.block);
      check_same_bytes(env, d.counts, "counts");
      check_same_bytes(env, d.offsets, "offsets");
      check_same_bytes(env, d.sorted, "sorted_rows");
      check_same_bytes(env, d.blocks, "block_experts");
      check_same_bytes(env, d.dest, "dest");
    }
  }

  TEST_CASE("cuda.moe_dispatch with strided ids and outputs") {
    Env env;
    const int64_t tokens = 700, k = 6;
    const int32_t experts = 64;
    const std::vector<int64_t> ids = random_ids(tokens * k, experts, 0, 77);
    // ids as the transpose of a [k, T] buffer; dest column-major.
    std::vector<int32_t> t_ids(static_cast<size_t>(tokens * k));
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        t_ids[static_cast<size_t>(j * tokens + t)] =
            static_cast<int32_t>(ids[static_cast<size_t>(t * k + j)]);
      }
    }
    const Pair base = upload_raw(env, t_ids, {tokens * k}, DSK_DTYPE_INT32);
    const Layout ids_layout{{tokens, k}, {1, tokens}, 0};
    Tensor ids_cpu = view(base.cpu, ids_layout);
    Tensor ids_gpu = view(base.gpu, ids_layout);
    for (int32_t block : {1, 64}) {
      int64_t capacity = 0;
      DSK_REQUIRE_OK(
          dsk_moe_dispatch_capacity(tokens, static_cast<int32_t>(k), experts, block, &capacity));
      Pair counts = filled(env, {2 * experts}, DSK_DTYPE_INT32, -7);
      Pair sorted = filled(env, {2 * capacity}, DSK_DTYPE_INT32, -7);
      Pair offsets = filled(env, {experts + 1}, DSK_DTYPE_INT32, -7);
      Pair dest = filled(env, {tokens * k}, DSK_DTYPE_INT32, -7);
      const Layout every_other{{experts}, {2}, 1};
      const Layout rows_layout{{capacity}, {2}, 0};
      const Layout dest_layout{{tokens, k}, {1, tokens}, 0};
      for (bool gpu : {false, true}) {
        dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
        Tensor cv = view(gpu ? counts.gpu : counts.cpu, every_other);
        Tensor sv = view(gpu ? sorted.gpu : sorted.cpu, rows_layout);
        Tensor dv = view(gpu ? dest.gpu : dest.cpu, dest_layout);
        DSK_REQUIRE_OK(dsk_moe_dispatch(ctx, (gpu ? ids_gpu : ids_cpu).dl(), experts, 0, block,
                                        cv.dl(), (gpu ? offsets.gpu : offsets.cpu).dl(), sv.dl(),
                                        nullptr, dv.dl()));
      }
      check_same_bytes(env, counts, "counts");
      check_same_bytes(env, offsets, "offsets");
      check_same_bytes(env, sorted, "sorted_rows");
      check_same_bytes(env, dest, "dest");
    }
  }

  TEST_CASE("cuda.moe_permute equals the CPU for float and fp8 outputs") {
    Env env;
    struct Case {
      int64_t tokens, d, k;
      int32_t experts, block, x_dtype, out_dtype;
      uint32_t flags;
    };
    const Case cases[] = {
        {64, 7168, 8, 256, 128, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 0},  // 16-byte copies
        {64, 7168, 8, 256, 128, DSK_DTYPE_BF16, DSK_DTYPE_FP8_E4M3FN, 0},
        {64, 7168, 8, 256, 1, DSK_DTYPE_BF16, DSK_DTYPE_FP8_E4M3FN, DSK_QUANT_SCALE_POW2},
        {37, 300, 6, 64, 16, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN, 0},  // partial tile
        {37, 300, 6, 64, 16, DSK_DTYPE_F16, DSK_DTYPE_FP8_E4M3FN, DSK_QUANT_SCALE_POW2},
        {37, 301, 6, 64, 16, DSK_DTYPE_BF16, DSK_DTYPE_FP8_E4M3FN, 0},  // no vector loads
        {37, 300, 6, 64, 16, DSK_DTYPE_F32, DSK_DTYPE_BF16, 0},         // typed conversion
        {37, 300, 6, 64, 16, DSK_DTYPE_BF16, DSK_DTYPE_F32, 0},
        {37, 301, 6, 64, 16, DSK_DTYPE_F16, DSK_DTYPE_F16, 0},  // element-wise copy
        {5, 1, 2, 4, 4, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN, 0},
    };
    uint32_t seed = 100;
    for (const Case& c : cases) {
      CAPTURE(c.tokens);
      CAPTURE(c.d);
      CAPTURE(c.x_dtype);
      CAPTURE(c.out_dtype);
      CAPTURE(c.flags);
      const std::vector<int64_t> ids = random_ids(c.tokens * c.k, c.experts, 0, ++seed);
      const Pair idp = upload_ids(env, ids, c.tokens, c.k, DSK_DTYPE_INT32);
      const Dispatched disp = run_dispatch(env, idp, c.tokens, c.k, c.experts, 0, c.block);
      check_same_bytes(env, disp.sorted, "sorted_rows");
      const Pair x = make_x(env, c.tokens, c.d, c.x_dtype, ++seed);
      const int64_t rows = disp.capacity;
      const bool fp8 = c.out_dtype == DSK_DTYPE_FP8_E4M3FN;
      Pair out = filled(env, {rows, c.d}, c.out_dtype, 3.0);
      Pair scales = filled(env, {rows, (c.d + 127) / 128}, DSK_DTYPE_F32, -1.0);
      for (bool gpu : {false, true}) {
        dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
        const Tensor& xs = gpu ? x.gpu : x.cpu;
        DSK_REQUIRE_OK(dsk_moe_permute(ctx, xs.dl(), (gpu ? disp.sorted.gpu : disp.sorted.cpu).dl(),
                                       static_cast<int32_t>(c.k), (gpu ? out.gpu : out.cpu).dl(),
                                       fp8 ? (gpu ? scales.gpu : scales.cpu).dl() : nullptr,
                                       c.flags));
      }
      check_same_bytes(env, out, "out");
      if (fp8) check_same_bytes(env, scales, "out_scales");
    }
  }

  TEST_CASE("cuda.moe_permute with strided and misaligned x and out") {
    Env env;
    const int64_t tokens = 20, d = 260, k = 4, pitch = d + 3;
    const std::vector<int64_t> ids = random_ids(tokens * k, 16, 0, 9);
    const Pair idp = upload_ids(env, ids, tokens, k, DSK_DTYPE_INT32);
    const Dispatched disp = run_dispatch(env, idp, tokens, k, 16, 0, 16);
    const int64_t rows = disp.capacity;
    const Pair xb = upload_values(env, random_values(tokens * pitch + 1, 5), {tokens * pitch + 1},
                                  DSK_DTYPE_BF16);
    const Layout x_layout{{tokens, d}, {pitch, 1}, 1};  // odd element offset: 2-byte aligned only
    for (int32_t out_dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN}) {
      CAPTURE(out_dtype);
      const bool fp8 = out_dtype == DSK_DTYPE_FP8_E4M3FN;
      Pair ob = filled(env, {rows * (d + 1) + 1}, out_dtype, 3.0);
      Pair sb = filled(env, {rows * 3 + 1}, DSK_DTYPE_F32, -1.0);
      const Layout out_layout{{rows, d}, {d + 1, 1}, 1};
      const Layout s_layout{{rows, 3}, {1, rows}, 1};  // column-major scales at offset 1
      for (bool gpu : {false, true}) {
        dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
        Tensor xv = view(gpu ? xb.gpu : xb.cpu, x_layout);
        Tensor ov = view(gpu ? ob.gpu : ob.cpu, out_layout);
        Tensor sv = view(gpu ? sb.gpu : sb.cpu, s_layout);
        DSK_REQUIRE_OK(dsk_moe_permute(ctx, xv.dl(), (gpu ? disp.sorted.gpu : disp.sorted.cpu).dl(),
                                       static_cast<int32_t>(k), ov.dl(), fp8 ? sv.dl() : nullptr,
                                       0));
      }
      check_same_bytes(env, ob, "out");
      if (fp8) check_same_bytes(env, sb, "out_scales");
    }
  }

  TEST_CASE("cuda.moe_combine equals the CPU bit for bit") {
    Env env;
    struct Case {
      int64_t tokens, d, k;
      int32_t experts, y_dtype, out_dtype;
      int shared;  // 0 none, 1 separate (out's dtype), 2 out itself, 3 separate f32
    };
    const Case cases[] = {
        {64, 7168, 8, 256, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1},
        {64, 7168, 8, 256, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 2},
        {64, 7168, 8, 256, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 0},
        {33, 130, 6, 64, DSK_DTYPE_F32, DSK_DTYPE_BF16, 1},  // rows not 16-byte aligned: generic
        {33, 132, 6, 64, DSK_DTYPE_F32, DSK_DTYPE_F32, 1},   // vector path, a partial group of 8
        {33, 132, 6, 64, DSK_DTYPE_F32, DSK_DTYPE_F32, 2},
        {33, 130, 6, 64, DSK_DTYPE_BF16, DSK_DTYPE_F32, 2},
        {33, 136, 6, 64, DSK_DTYPE_F16, DSK_DTYPE_F16, 1},
        {33, 136, 6, 64, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 3},  // element-wise (shared dtype)
        {1, 7168, 8, 256, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1},
        {7, 5, 3, 4, DSK_DTYPE_F32, DSK_DTYPE_F32, 1},
    };
    uint32_t seed = 300;
    for (const Case& c : cases) {
      CAPTURE(c.tokens);
      CAPTURE(c.d);
      CAPTURE(c.y_dtype);
      CAPTURE(c.out_dtype);
      CAPTURE(c.shared);
      const std::vector<int64_t> ids = random_ids(c.tokens * c.k, c.experts, 0, ++seed);
      const Pair idp = upload_ids(env, ids, c.tokens, c.k, DSK_DTYPE_INT32);
      const Dispatched disp = run_dispatch(env, idp, c.tokens, c.k, c.experts, 0, 1);
      check_same_bytes(env, disp.dest, "dest");
      const int64_t rows = disp.capacity;
      const Pair y = upload_values(env, random_values(rows * c.d, ++seed), {rows, c.d}, c.y_dtype);
      const Pair w = upload_values(env, random_values(c.tokens * c.k, ++seed, 0.0f, 1.0f),
                                   {c.tokens, c.k}, DSK_DTYPE_F32);
      Pair out = filled(env, {c.tokens, c.d}, c.out_dtype, 3.0);
      const int32_t s_dtype = c.shared == 3 ? DSK_DTYPE_F32 : c.out_dtype;
      Pair shared =
          upload_values(env, random_values(c.tokens * c.d, ++seed), {c.tokens, c.d}, s_dtype);
      if (c.shared == 2) {
        out = upload_values(env, random_values(c.tokens * c.d, seed), {c.tokens, c.d}, c.out_dtype);
      }
      for (bool gpu : {false, true}) {
        dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
        const DLTensor* o = (gpu ? out.gpu : out.cpu).dl();
        const DLTensor* s = c.shared == 0   ? nullptr
                            : c.shared == 2 ? o
                                            : (gpu ? shared.gpu : shared.cpu).dl();
        DSK_REQUIRE_OK(dsk_moe_combine(ctx, (gpu ? y.gpu : y.cpu).dl(),
                                       (gpu ? disp.dest.gpu : disp.dest.cpu).dl(),
                                       (gpu ? w.gpu : w.cpu).dl(), s, o));
      }
      check_same_bytes(env, out, "out");
    }
  }

  TEST_CASE("cuda.moe_combine with a strided out") {
    Env env;
    const int64_t tokens = 9, d = 40, k = 3;
    const std::vector<int64_t> ids = random_ids(tokens * k, 8, 0, 12);
    const Pair idp = upload_ids(env, ids, tokens, k, DSK_DTYPE_INT32);
    const Dispatched disp = run_dispatch(env, idp, tokens, k, 8, 0, 1);
    const Pair y = upload_values(env, random_values(disp.capacity * d, 13), {disp.capacity, d},
                                 DSK_DTYPE_BF16);
    const Pair w = upload_values(env, random_values(tokens * k, 14), {tokens, k}, DSK_DTYPE_F32);
    Pair ob = filled(env, {tokens * d * 2}, DSK_DTYPE_BF16, 3.0);
    const Layout out_layout{{tokens, d}, {1, 2 * tokens}, 0};  // column-major, every other column
    for (bool gpu : {false, true}) {
      dsk_context* ctx = gpu ? env.gpu.get() : env.cpu.get();
      Tensor ov = view(gpu ? ob.gpu : ob.cpu, out_layout);
      DSK_REQUIRE_OK(dsk_moe_combine(ctx, (gpu ? y.gpu : y.cpu).dl(),
                                     (gpu ? disp.dest.gpu : disp.dest.cpu).dl(),
                                     (gpu ? w.gpu : w.cpu).dl(), nullptr, ov.dl()));
    }
    check_same_bytes(env, ob, "out");
  }

  TEST_CASE("cuda.moe load statistics and bias update equal the CPU") {
    Env env;
    for (int32_t experts : {7, 256, 10000}) {
      for (int32_t ids_dtype : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
        CAPTURE(experts);
        CAPTURE(ids_dtype);
        const int64_t tokens = 3000, k = 8;
        Pair load = filled(env, {experts}, DSK_DTYPE_INT64, 5.0);
        for (int32_t begin : {0, 3}) {
          const std::vector<int64_t> ids =
              random_ids(tokens * k, experts, begin, static_cast<uint32_t>(experts + begin));
          const Pair idp = upload_ids(env, ids, tokens, k, ids_dtype);
          DSK_REQUIRE_OK(
              dsk_moe_load_accumulate(env.cpu.get(), idp.cpu.dl(), begin, load.cpu.dl()));
          DSK_REQUIRE_OK(
              dsk_moe_load_accumulate(env.gpu.get(), idp.gpu.dl(), begin, load.gpu.dl()));
        }
        check_same_bytes(env, load, "load");
        Pair bias = upload_values(env, random_values(experts, 21), {experts}, DSK_DTYPE_F32);
        DSK_REQUIRE_OK(dsk_moe_bias_update(env.cpu.get(), load.cpu.dl(), bias.cpu.dl(), 0.001f));
        DSK_REQUIRE_OK(dsk_moe_bias_update(env.gpu.get(), load.gpu.dl(), bias.gpu.dl(), 0.001f));
        check_same_bytes(env, bias, "bias (int64 load)");
        // f32 loads: the summation order matters; equal loads (mean == load) keep the bias.
        std::vector<float> fl = random_values(experts, 22, 0.0f, 1000.0f);
        fl[0] = 1.0f;
        const Pair fload = upload_values(env, fl, {experts}, DSK_DTYPE_F32);
        DSK_REQUIRE_OK(dsk_moe_bias_update(env.cpu.get(), fload.cpu.dl(), bias.cpu.dl(), 0.25f));
        DSK_REQUIRE_OK(dsk_moe_bias_update(env.gpu.get(), fload.gpu.dl(), bias.gpu.dl(), 0.25f));
        check_same_bytes(env, bias, "bias (f32 load)");
      }
    }
  }

  TEST_CASE("cuda.moe_ep_layout equals the CPU") {
    Env env;
    for (int32_t ranks : {1, 8, 64}) {
      for (int32_t flag_dtype : {DSK_DTYPE_BOOL, DSK_DTYPE_UINT8}) {
        CAPTURE(ranks);
        const int64_t tokens = 1000, k = 8;
        const int32_t experts = 256;
        std::vector<int64_t> ids =
            random_ids(tokens * k, experts, 0, 40u + static_cast<uint32_t>(ranks));
        for (auto& v : ids) v = v >= experts ? -1 : v;
        const Pair idp = upload_ids(env, ids, tokens, k, DSK_DTYPE_INT64);
        Pair per_rank = filled(env, {ranks}, DSK_DTYPE_INT32, -7);
        Pair per_expert = filled(env, {experts}, DSK_DTYPE_INT32, -7);
        Pair in_rank = filled(env, {tokens, ranks}, flag_dtype, 1.0);
        for (bool gpu : {false, true}) {
          DSK_REQUIRE_OK(dsk_moe_ep_layout(gpu ? env.gpu.get() : env.cpu.get(),
                                           (gpu ? idp.gpu : idp.cpu).dl(), experts, ranks,
                                           (gpu ? per_rank.gpu : per_rank.cpu).dl(),
                                           (gpu ? per_expert.gpu : per_expert.cpu).dl(),
                                           (gpu ? in_rank.gpu : in_rank.cpu).dl()));
        }
        check_same_bytes(env, per_rank, "tokens_per_rank");
        check_same_bytes(env, per_expert, "tokens_per_expert");
        check_same_bytes(env, in_rank, "is_token_in_rank");
      }
    }
  }

  TEST_CASE("cuda.moe permute, combine and EP layout report bad indices at the next synchronize") {
    Env env;
    // permute: sorted_rows value 99 > T * k = 8.
    const Pair x = make_x(env, 4, 16, DSK_DTYPE_F32, 1);
    const Pair rows = upload_raw(env, std::vector<int32_t>{0, 99, 8, 3}, {4}, DSK_DTYPE_INT32);
    Pair out = filled(env, {4, 16}, DSK_DTYPE_F32, 3.0);
    DSK_REQUIRE_OK(
        dsk_moe_permute(env.gpu.get(), x.gpu.dl(), rows.gpu.dl(), 2, out.gpu.dl(), nullptr, 0));
    CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
    std::string message = dsk_last_error_message();
    CHECK_MESSAGE(message.find("sorted_rows[1] = 99") != std::string::npos, message);
    DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
    // The bad row is zeroed, the others are right.
    const std::vector<float> got = read_f32(env, out.gpu.dl());
    CHECK(got[16] == 0.0f);
    CHECK(dsk_moe_permute(env.cpu.get(), x.cpu.dl(), rows.cpu.dl(), 2, out.cpu.dl(), nullptr, 0) ==
          DSK_ERR_INVALID_ARGUMENT);

    // combine: dest value 4 with R = 4.
    const Pair y = make_x(env, 4, 16, DSK_DTYPE_F32, 2);
    const Pair dest = upload_raw(env, std::vector<int32_t>{0, -1, 4, 1}, {2, 2}, DSK_DTYPE_INT32);
    const Pair w = upload_values(env, {1.0f, 1.0f, 1.0f, 1.0f}, {2, 2}, DSK_DTYPE_F32);
    Pair cout = filled(env, {2, 16}, DSK_DTYPE_F32, 3.0);
    DSK_REQUIRE_OK(dsk_moe_combine(env.gpu.get(), y.gpu.dl(), dest.gpu.dl(), w.gpu.dl(), nullptr,
                                   cout.gpu.dl()));
    CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
    message = dsk_last_error_message();
    CHECK_MESSAGE(message.find("dest[1, 0] = 4") != std::string::npos, message);
    DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));

    // EP layout: id 8 with E = 8.
    const Pair ids = upload_raw(env, std::vector<int32_t>{0, 1, 7, 8}, {2, 2}, DSK_DTYPE_INT32);
    Pair per_rank = filled(env, {2}, DSK_DTYPE_INT32, 0);
    Pair per_expert = filled(env, {8}, DSK_DTYPE_INT32, 0);
    Pair in_rank = filled(env, {2, 2}, DSK_DTYPE_UINT8, 0);
    DSK_REQUIRE_OK(dsk_moe_ep_layout(env.gpu.get(), ids.gpu.dl(), 8, 2, per_rank.gpu.dl(),
                                     per_expert.gpu.dl(), in_rank.gpu.dl()));
    CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_ERR_INVALID_ARGUMENT);
    message = dsk_last_error_message();
    CHECK_MESSAGE(message.find("ids[1, 1] = 8") != std::string::npos, message);
    DSK_REQUIRE_OK(dsk_context_synchronize(env.gpu.get()));
  }
}

}  // namespace dsk_test
