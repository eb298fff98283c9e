// Softmax, log_softmax, argmax and top-k at DeepSeek-V3's shapes (vocabulary 129280: sampling
// rows; 256 routed experts with k = 8: the gate), and the embedding gather from the
// [129280, 7168] bf16 table. Memory-bound: the byte counters are the logical traffic (each input
// read once, each output written once); softmax actually reads x twice.
//
// Sizes: rows {1, 16, 128} of the vocabulary everywhere, plus 1024 on CUDA; the gate shape at
// every token count of kTokenCounts. The CPU embedding table is [16384, 7168] instead of
// [129280, 7168] (1.85 GB): a gather's cost depends on the rows copied, not on V, and the smaller
// table keeps the CPU program's memory and set-up time modest.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

constexpr int64_t kVocab = 129280;
constexpr int64_t kExperts = 256;
constexpr int32_t kTopExperts = 8;
constexpr double kVocabD = static_cast<double>(kVocab);

std::string name(const std::string& op, const char* what, int64_t count) {
  return "softmax/" + op + "/" + what + ":" + std::to_string(count);
}

// ids [t] int32, uniform in [0, v), on the benchmarked device.
dsk::Tensor random_ids(const OpsEnv& env, int64_t t, int64_t v) {
  std::vector<int32_t> host(static_cast<size_t>(t));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(v - 1));
  for (int32_t& id : host) id = dist(rng);
  return env.int32s(host);
}

}  // namespace

void register_softmax_benchmarks(const OpsEnv& env) {
  const OpsEnv* e = &env;
  std::vector<int64_t> rows = {1, 16, 128};
  if (env.backend == DSK_BACKEND_CUDA) rows.push_back(1024);

  for (int64_t b : rows) {
    const double bd = static_cast<double>(b);
    for (bool is_log : {false, true}) {
      env.add(name(is_log ? "log_softmax_f32" : "softmax_f32", "rows", b),
              [e, b, bd, is_log](benchmark::State& state) {
                dsk::Tensor x = e->random({b, kVocab}, DSK_DTYPE_F32, -10.0f, 10.0f);
                dsk::Tensor y = e->tensor({b, kVocab}, DSK_DTYPE_F32);
                const double seconds = e->run(state, [&] {
                  return is_log ? dsk_log_softmax(e->ctx->get(), x, y, 1.0f)
                                : dsk_softmax(e->ctx->get(), x, y, 1.0f);
                });
                report(state, *e, seconds, 2.0 * 4.0 * bd * kVocabD, 0.0);
              });
    }
    env.add(name("argmax_f32", "rows", b), [e, b, bd](benchmark::State& state) {
      dsk::Tensor x = e->random({b, kVocab}, DSK_DTYPE_F32);
      dsk::Tensor idx = e->tensor({b}, DSK_DTYPE_INT64);
      const double seconds = e->run(state, [&] { return dsk_argmax(e->ctx->get(), x, idx); });
      report(state, *e, seconds, 4.0 * bd * kVocabD + 8.0 * bd, 0.0);
    });
    env.add(name("topk50_f32", "rows", b), [e, b, bd](benchmark::State& state) {
      dsk::Tensor x = e->random({b, kVocab}, DSK_DTYPE_F32);
      dsk::Tensor idx = e->tensor({b, 50}, DSK_DTYPE_INT64);
      dsk::Tensor val = e->tensor({b, 50}, DSK_DTYPE_F32);
      const double seconds =
          e->run(state, [&] { return dsk_topk(e->ctx->get(), x, 50, val, idx); });
      report(state, *e, seconds, 4.0 * bd * kVocabD + 12.0 * 50.0 * bd, 0.0);
    });
  }

  // The gate: top-8 of 256 expert scores per token.
  for (int64_t t : kTokenCounts) {
    const double td = static_cast<double>(t);
    env.add(name("topk8_gate_f32", "tokens", t), [e, t, td](benchmark::State& state) {
      dsk::Tensor x = e->random({t, kExperts}, DSK_DTYPE_F32);
      dsk::Tensor idx = e->tensor({t, kTopExperts}, DSK_DTYPE_INT32);
      dsk::Tensor val = e->tensor({t, kTopExperts}, DSK_DTYPE_F32);
      const double seconds =
          e->run(state, [&] { return dsk_topk(e->ctx->get(), x, kTopExperts, val, idx); });
      report(state, *e, seconds, 4.0 * td * kExperts + 8.0 * td * kTopExperts, 0.0);
    });
  }

  // Embedding gather: one table shared by every token count (created on first use, never filled:
  // the gather moves bytes whatever they hold).
  const int64_t table_rows = env.backend == DSK_BACKEND_CUDA ? kVocab : 16384;
  auto table = std::make_shared<dsk::Tensor>();
  for (int64_t t : kTokenCounts) {
    const double td = static_cast<double>(t);
    env.add(name("embedding_bf16", "tokens", t), [e, t, td, table,
                                                  table_rows](benchmark::State& state) {
      if (table->get() == nullptr) *table = e->tensor({table_rows, kV3Dim}, DSK_DTYPE_BF16);
      dsk::Tensor ids = random_ids(*e, t, table_rows);
      dsk::Tensor out = e->tensor({t, kV3Dim}, DSK_DTYPE_BF16);
      const double seconds =
          e->run(state, [&] { return dsk_embedding(e->ctx->get(), *table, ids, out); });
      report(state, *e, seconds, 2.0 * 2.0 * td * static_cast<double>(kV3Dim) + 4.0 * td, 0.0);
    });
  }
}

}  // namespace dsk::bench
