// FP8 family: block quantization of activations [T, 7168] and of a [7168, 7168] weight, the
// matching dequantization, and dsk_linear_fp8 (bf16 x quantized on the fly, fp8 weight with
// 128 x 128 scales, bf16 y) on DeepSeek-V3's linear shapes.
//
// The kernel dsk_linear_fp8 runs (dsk_linear_fp8_kernel: cpu_reference, block_scaled or
// dequant_gemm) is in each linear_fp8 benchmark's label and in the report context
// (dsk_fp8_kernel). On CUDA, DSK_FP8_GEMM=dequant forces the dequantize-then-GEMM kernel, so the
// two can be compared on the same shapes.
//
// CPU cases are capped to stay affordable on a small machine: quantization at tokens <= 1024, and
// the linear layer at tokens {1, 128} without lm_head (the CPU reference dequantizes the whole
// weight to f32 on every call, which for lm_head is 926M elements). CUDA runs the full grid.
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

std::string token_suffix(int64_t tokens) { return "/tokens:" + std::to_string(tokens); }

int64_t blocks(int64_t n) { return (n + 127) / 128; }

const char* kernel_name(int32_t kernel) {
  switch (kernel) {
    case DSK_FP8_KERNEL_CPU_REFERENCE:
      return "cpu_reference";
    case DSK_FP8_KERNEL_BLOCK_SCALED:
      return "block_scaled";
    case DSK_FP8_KERNEL_DEQUANT_GEMM:
      return "dequant_gemm";
    default:
      return "unknown";
  }
}

// flags 0 or DSK_QUANT_SCALE_POW2 (power-of-two scales: the CPU multiplies by the reciprocal).
void add_quant_act(const OpsEnv& env, int64_t tokens, uint32_t flags) {
  const std::string name = flags == DSK_QUANT_SCALE_POW2 ? "quant_fp8_act_pow2/bf16/dim:7168"
                                                         : "quant_fp8_act/bf16/dim:7168";
  env.add(name + token_suffix(tokens), [&env, tokens, flags](benchmark::State& state) {
    dsk::Tensor x = env.random({tokens, kV3Dim}, DSK_DTYPE_BF16);
    dsk::Tensor q = env.tensor({tokens, kV3Dim}, DSK_DTYPE_FP8_E4M3FN);
    dsk::Tensor s = env.tensor({tokens, blocks(kV3Dim)}, DSK_DTYPE_F32);
    const double seconds = env.run(
        state, [&] { return dsk_quant_fp8_act(env.ctx->get(), &x.dl(), &q.dl(), &s.dl(), flags); });
    const auto n = static_cast<double>(tokens * kV3Dim);
    report(state, env, seconds, 3.0 * n + 4.0 * static_cast<double>(tokens * blocks(kV3Dim)), 0.0);
  });
}

void add_dequant_act(const OpsEnv& env, int64_t tokens) {
  env.add("dequant_fp8_act/bf16/dim:7168" + token_suffix(tokens), [&env, tokens](
                                                                      benchmark::State& state) {
    dsk::Tensor x = env.random({tokens, kV3Dim}, DSK_DTYPE_BF16);
    dsk::Tensor q = env.tensor({tokens, kV3Dim}, DSK_DTYPE_FP8_E4M3FN);
    dsk::Tensor s = env.tensor({tokens, blocks(kV3Dim)}, DSK_DTYPE_F32);
    dsk::check(dsk_quant_fp8_act(env.ctx->get(), &x.dl(), &q.dl(), &s.dl(), 0));
    const double seconds = env.run(
        state, [&] { return dsk_dequant_fp8_act(env.ctx->get(), &q.dl(), &s.dl(), &x.dl()); });
    const auto n = static_cast<double>(tokens * kV3Dim);
    report(state, env, seconds, 3.0 * n + 4.0 * static_cast<double>(tokens * blocks(kV3Dim)), 0.0);
  });
}

void add_weight(const OpsEnv& env) {
  const int64_t n = kV3Dim;
  const int64_t k = kV3Dim;
  const double elems = static_cast<double>(n * k);
  const double scale_bytes = 4.0 * static_cast<double>(blocks(n) * blocks(k));
  env.add("quant_fp8_weight/bf16/7168x7168",
          [&env, n, k, elems, scale_bytes](benchmark::State& state) {
            dsk::Tensor w = env.random({n, k}, DSK_DTYPE_BF16);
            dsk::Tensor q = env.tensor({n, k}, DSK_DTYPE_FP8_E4M3FN);
            dsk::Tensor s = env.tensor({blocks(n), blocks(k)}, DSK_DTYPE_F32);
            const double seconds = env.run(state, [&] {
              return dsk_quant_fp8_weight(env.ctx->get(), &w.dl(), &q.dl(), &s.dl(), 0);
            });
            report(state, env, seconds, 3.0 * elems + scale_bytes, 0.0);
          });
  env.add("dequant_fp8_weight/bf16/7168x7168",
          [&env, n, k, elems, scale_bytes](benchmark::State& state) {
            dsk::Tensor w = env.random({n, k}, DSK_DTYPE_BF16);
            dsk::Tensor q = env.tensor({n, k}, DSK_DTYPE_FP8_E4M3FN);
            dsk::Tensor s = env.tensor({blocks(n), blocks(k)}, DSK_DTYPE_F32);
            dsk::check(dsk_quant_fp8_weight(env.ctx->get(), &w.dl(), &q.dl(), &s.dl(), 0));
            const double seconds = env.run(state, [&] {
              return dsk_dequant_fp8_weight(env.ctx->get(), &q.dl(), &s.dl(), &w.dl());
            });
            report(state, env, seconds, 3.0 * elems + scale_bytes, 0.0);
          });
}

void add_linear(const OpsEnv& env, const LinearShape& sh, int64_t tokens, const char* kernel) {
  const std::string name = std::string("linear_fp8/") + sh.name + token_suffix(tokens);
  const std::string label = std::string("kernel:") + kernel;
  env.add(name, [&env, sh, tokens, label](benchmark::State& state) {
    dsk::Tensor w = env.random({sh.out, sh.in}, DSK_DTYPE_BF16, -0.05f, 0.05f);
    dsk::Tensor wq = env.tensor({sh.out, sh.in}, DSK_DTYPE_FP8_E4M3FN);
    dsk::Tensor ws = env.tensor({blocks(sh.out), blocks(sh.in)}, DSK_DTYPE_F32);
    dsk::check(dsk_quant_fp8_weight(env.ctx->get(), &w.dl(), &wq.dl(), &ws.dl(), 0));
    dsk::Tensor x = env.random({tokens, sh.in}, DSK_DTYPE_BF16);
    dsk::Tensor y = env.tensor({tokens, sh.out}, DSK_DTYPE_BF16);
    const double seconds = env.run(state, [&] {
      return dsk_linear_fp8(env.ctx->get(), &x.dl(), nullptr, &wq.dl(), &ws.dl(), &y.dl(), 0);
    });
    state.SetLabel(label);
    const auto t = static_cast<double>(tokens);
    const auto in = static_cast<double>(sh.in);
    const auto out = static_cast<double>(sh.out);
    const double bytes = 2.0 * t * in + in * out +
                         4.0 * static_cast<double>(blocks(sh.out) * blocks(sh.in)) + 2.0 * t * out;
    report(state, env, seconds, bytes, 2.0 * t * in * out);
  });
}

}  // namespace

void register_fp8_benchmarks(const OpsEnv& env) {
  const bool cpu = env.backend == DSK_BACKEND_CPU;
  int32_t kernel = 0;
  dsk::check(dsk_linear_fp8_kernel(env.ctx->get(), &kernel));
  benchmark::AddCustomContext("dsk_fp8_kernel", kernel_name(kernel));

  for (int64_t tokens : kTokenCounts) {
    if (cpu && tokens > 1024) continue;
    add_quant_act(env, tokens, 0);
    add_quant_act(env, tokens, DSK_QUANT_SCALE_POW2);
    add_dequant_act(env, tokens);
  }
  add_weight(env);
  const std::vector<int64_t> linear_tokens = cpu ? std::vector<int64_t>{1, 128} : kTokenCounts;
  for (const LinearShape& sh : kV3Linears) {
    if (cpu && std::string(sh.name) == "lm_head") continue;
    for (int64_t tokens : linear_tokens) add_linear(env, sh, tokens, kernel_name(kernel));
  }
}

}  // namespace dsk::bench
