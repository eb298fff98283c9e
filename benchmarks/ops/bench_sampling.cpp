// Token sampling (dsk_sampling.h) through the public C API at DeepSeek-V3's vocabulary
// (V = 129280): dsk_sample over the scenario grid and dsk_speculative_verify.
//
// Names: sampling/<scenario>/<dtype>/<logits>/B:<rows> and
//        sampling/verify_<mode>/<dtype>/<logits>/n:<drafts>/B:<rows>.
//
// Scenarios (outputs ids [B] int32 and status [B] uint8; scalar parameters, seed 42, offset 7):
//   greedy                        T = 0
//   temp0.6                       T = 0.6 (plain sampling: the Gumbel race over every token)
//   temp0.6_topp0.95              T = 0.6, top_p 0.95
//   topk50_topp0.95               T = 1, top_k 50, top_p 0.95
//   minp0.05                      T = 1, min_p 0.05
//   temp0.6_topp0.95_penalties    + repetition 1.1, frequency 0.5, presence 0.5 with 256 output ids
//                                 and 1024 prompt ids per row (uniform random ids, int32 CSR)
//   temp0.6_topp0.95_seeded10     + per-row seeds [B] int64 (every 10th row its own seed, the
//                                 other rows seed 0) and per-row offsets [B] int64
//   temp0.6_topp0.95_logprobs20   + logprobs [B], top-20 processed logprobs, raw_logprobs [B]
// dtypes: bf16 and f32 logits. B in {1, 8, 32, 128, 256, 512} on CUDA; the CPU stops at B = 32
// unless DSK_BENCH_SAMPLING_MAX_B says otherwise (e.g. DSK_BENCH_SAMPLING_MAX_B=512 for the whole
// grid: minutes).
//
// Logits generators (the <logits> part of the name; select with --benchmark_filter):
//   normal  x ~ N(0, 1), i.i.d.: a flat row, the worst case for pruning (at T = 0.6 the top-p 0.95
//           nucleus holds most of the vocabulary).
//   peaked  an LLM-like row: x ~ N(0, 2^2) plus 6 tokens per row (random ids) raised by 8, 9.4,
//           10.8, 12.2, 13.6 and 15: a few dominant tokens over a long tail.
// (Measured on one row of each: the top-p 0.95 nucleus at T = 0.6 holds about 64k tokens of a
// normal row and 2 of a peaked one; min_p 0.05 at T = 1 keeps about 8k and 2.)
// Rows are generated once per process in host f32 (dsk_fill_random, row r with seed 0x5A17 + kind
// and offset r, so a row is the same in every case and on every backend) and converted to the
// benchmarked dtype on the device.
//
// Speculative verification (dsk_speculative_verify), n drafts in {1, 3}, B in {32, 128} (CPU: 32):
// target probs [B, n + 1, V] = softmax(x) of generated rows, in the benchmarked dtype;
//   verify_sample  draft probs q = softmax(1.25 x) (a sharper draft) [B, n, V], drafts argmax q
//   verify_mtp     draft_probs NULL (a deterministic draft, as greedy MTP), drafts argmax p
//   verify_greedy  mode GREEDY, drafts argmax p: every draft is accepted (the most rows read)
// Seeds: one per row ([B] int64), offset 7. The accept_rate counter is the mean accepted / n of
// the warm-up call.
//
// Counters: bytes_per_second counts the one-read floor, bytes = B * V * sizeof(dtype) (verify:
// B * V * sizeof(dtype) times 2 for verify_sample (the emitted token's target row and the draft row
// beside it), 1 for verify_mtp, n + 1 for verify_greedy), whatever the op actually reads;
// items_per_second counts rows. floor_us is the time of those bytes at copy_gbps, and
// pct_of_copy = 100 * floor_us / (measured us per call): 100 means one read of every logits row at
// copy speed. copy_gbps is, on CUDA, the device's memory bandwidth (dsk_device_props or
// DSK_CUDA_PEAK_GBPS); on the CPU, DSK_CPU_PEAK_GBPS when set, else a multi-threaded memcpy of
// 256 MiB measured once (best of 5, counting bytes read + written as dsk_bench_tensor's copy/f32
// does; one thread per core or DSK_NUM_THREADS). The CPU loops run warm: a batch of up to a few
// hundred MB may sit in a large L3, so pct_of_copy can pass 100 there.
//
// Every case makes one untimed warm-up call first and fails when a row's status is not OK (the
// generated rows are finite, so a non-OK row means the case measures the wrong thing).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

constexpr int64_t kVocab = 129280;
constexpr size_t kVocabZ = static_cast<size_t>(kVocab);
constexpr int64_t kOutputIdsPerRow = 256;
constexpr int64_t kPromptIdsPerRow = 1024;
constexpr int64_t kTopLogprobs = 20;

DLDataType dtype_of(int32_t id) {
  DLDataType t{};
  dsk::check(dsk_dtype_from_id(id, &t));
  return t;
}

const char* dtype_name(int32_t dtype) { return dtype == DSK_DTYPE_F32 ? "f32" : "bf16"; }

double dtype_bytes(int32_t dtype) { return dtype == DSK_DTYPE_F32 ? 4.0 : 2.0; }

// bytes_per_second / %peak for the floor bytes, rows per second, and floor_us / pct_of_copy.
void report_floor(benchmark::State& state, const OpsEnv& env, double seconds, double bytes,
                  int64_t rows) {
  report(state, env, seconds, bytes, 0.0);
  report_items(state, rows);
  report_copy_floor(state, env, seconds, bytes);
}

// ---- Logits
// --------------------------------------------------------------------------------------

enum class Logits { kNormal = 0, kPeaked = 1 };

const char* logits_name(Logits kind) { return kind == Logits::kNormal ? "normal" : "peaked"; }

// A host CPU context for generating rows (whatever the benchmarked backend).
dsk::Context& host_ctx() {
  static dsk::Context ctx(DSK_BACKEND_CPU);
  return ctx;
}

// Host f32 rows of one generator, generated on demand and kept for the whole process.
class LogitsCache {
 public:
  explicit LogitsCache(Logits kind) : kind_(kind) {}

  // The first `rows` rows, contiguous [rows, V]; valid until the next call.
  const float* rows(int64_t rows) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (rows > have_) {
      data_.resize(static_cast<size_t>(rows) * kVocabZ);
      for (int64_t r = have_; r < rows; ++r)
        make_row(r, data_.data() + static_cast<size_t>(r) * kVocabZ);
      have_ = rows;
    }
    return data_.data();
  }

 private:
  void make_row(int64_t r, float* row) const {
    int64_t shape[1] = {kVocab};
    DLTensor t{};
    t.data = row;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = 1;
    t.dtype = DLDataType{kDLFloat, 32, 1};
    t.shape = shape;
    dsk_random_params p;
    dsk::check(dsk_random_params_init(&p));
    p.distribution = DSK_RANDOM_NORMAL;
    p.seed = 0x5A17u + static_cast<uint64_t>(kind_);
    p.offset = static_cast<uint64_t>(r);
    p.a = 0.0;
    p.b = kind_ == Logits::kNormal ? 1.0 : 2.0;
    dsk::check(dsk_fill_random(host_ctx().get(), &t, &p));
    if (kind_ == Logits::kPeaked) {
      std::mt19937_64 rng(static_cast<uint64_t>(r) * 7919u + 17u);
      std::uniform_int_distribution<int64_t> id(0, kVocab - 1);
      for (int k = 0; k < 6; ++k) row[id(rng)] += 8.0f + 1.4f * static_cast<float>(k);
    }
  }

  Logits kind_;
  std::mutex mutex_;
  std::vector<float> data_;
  int64_t have_ = 0;
};

LogitsCache& cache(Logits kind) {
  static LogitsCache normal(Logits::kNormal);
  static LogitsCache peaked(Logits::kPeaked);
  return kind == Logits::kNormal ? normal : peaked;
}

// A host f32 DLTensor over `data` with `shape` (contiguous).
DLTensor host_f32(const float* data, std::vector<int64_t>* shape) {
  DLTensor t{};
  t.data = const_cast<float*>(data);
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = static_cast<int32_t>(shape->size());
  t.dtype = DLDataType{kDLFloat, 32, 1};
  t.shape = shape->data();
  return t;
}

// Logits [b, V] of generator `kind` in `dtype` on the benchmarked device.
dsk::Tensor device_logits(const OpsEnv& env, Logits kind, int64_t b, int32_t dtype) {
  std::vector<int64_t> shape = {b, kVocab};
  const DLTensor src = host_f32(cache(kind).rows(b), &shape);
  return dsk::Tensor::clone(*env.ctx, src, dtype_of(dtype));
}

// Copies a device tensor of `count` elements of type T (dtype_id) to the host.
template <typename T>
std::vector<T> to_host(const OpsEnv& env, const dsk::Tensor& t, int32_t dtype_id) {
  std::vector<T> host(static_cast<size_t>(t.numel()));
  std::vector<int64_t> shape(t.dl().shape, t.dl().shape + t.dl().ndim);
  DLTensor dst{};
  dst.data = host.data();
  dst.device = DLDevice{kDLCPU, 0};
  dst.ndim = t.dl().ndim;
  dst.dtype = dtype_of(dtype_id);
  dst.shape = shape.data();
  dsk::check(dsk_copy(env.ctx->get(), t, &dst));
  dsk::check(dsk_context_synchronize(env.ctx->get()));
  return host;
}

// Uniform random ids in CSR form: offsets [b + 1] and ids [b * per_row], int32.
void random_csr(const OpsEnv& env, int64_t b, int64_t per_row, uint32_t seed, dsk::Tensor* offsets,
                dsk::Tensor* ids) {
  std::vector<int32_t> offs(static_cast<size_t>(b + 1));
  for (int64_t r = 0; r <= b; ++r) offs[static_cast<size_t>(r)] = static_cast<int32_t>(r * per_row);
  std::vector<int32_t> values(static_cast<size_t>(b * per_row));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(kVocab - 1));
  for (int32_t& v : values) v = id(rng);
  *offsets = env.int32s(offs);
  *ids = env.int32s(values);
}

// ---- dsk_sample
// ----------------------------------------------------------------------------------

struct Scenario {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  bool penalties;
  bool seeded;
  bool logprobs;
};

const Scenario kScenarios[] = {
    {"greedy", 0.0f, 0, 1.0f, 0.0f, false, false, false},
    {"temp0.6", 0.6f, 0, 1.0f, 0.0f, false, false, false},
    {"temp0.6_topp0.95", 0.6f, 0, 0.95f, 0.0f, false, false, false},
    {"topk50_topp0.95", 1.0f, 50, 0.95f, 0.0f, false, false, false},
    {"minp0.05", 1.0f, 0, 1.0f, 0.05f, false, false, false},
    {"temp0.6_topp0.95_penalties", 0.6f, 0, 0.95f, 0.0f, true, false, false},
    {"temp0.6_topp0.95_seeded10", 0.6f, 0, 0.95f, 0.0f, false, true, false},
    {"temp0.6_topp0.95_logprobs20", 0.6f, 0, 0.95f, 0.0f, false, false, true},
};

// Fails the case (and returns false) when a row of the warm-up call is not DSK_SAMPLE_OK.
bool check_rows_ok(benchmark::State& state, const OpsEnv& env, const dsk::Tensor& status) {
  const std::vector<uint8_t> host = to_host<uint8_t>(env, status, DSK_DTYPE_UINT8);
  for (size_t r = 0; r < host.size(); ++r) {
    if (host[r] != DSK_SAMPLE_OK) {
      fail(state, "row " + std::to_string(r) + " has status " + std::to_string(host[r]) +
                      " after the warm-up call (expected DSK_SAMPLE_OK)");
      return false;
    }
  }
  return true;
}

void add_sample(const OpsEnv& env, const Scenario& s, int32_t dtype, Logits kind, int64_t b) {
  const OpsEnv* e = &env;
  const std::string name = std::string("sampling/") + s.name + "/" + dtype_name(dtype) + "/" +
                           logits_name(kind) + "/B:" + std::to_string(b);
  env.add(name, [e, s, dtype, kind, b](benchmark::State& state) {
    guarded_case(state, [&] {
      dsk::Tensor logits = device_logits(*e, kind, b, dtype);
      dsk_sampling_params p;
      dsk::check(dsk_sampling_params_init(&p));
      p.temperature = s.temperature;
      p.top_k = s.top_k;
      p.top_p = s.top_p;
      p.min_p = s.min_p;
      p.seed = 42;
      p.offset = 7;
      dsk::Tensor out_offs, out_ids, prompt_offs, prompt_ids, seeds, offsets;
      if (s.penalties) {
        random_csr(*e, b, kOutputIdsPerRow, 3, &out_offs, &out_ids);
        random_csr(*e, b, kPromptIdsPerRow, 5, &prompt_offs, &prompt_ids);
        p.repetition_penalty = 1.1f;
        p.frequency_penalty = 0.5f;
        p.presence_penalty = 0.5f;
        p.output_offsets = out_offs;
        p.output_ids = out_ids;
        p.prompt_offsets = prompt_offs;
        p.prompt_ids = prompt_ids;
      }
      if (s.seeded) {
        std::vector<int64_t> seed_values(static_cast<size_t>(b), 0);
        std::vector<int64_t> offset_values(static_cast<size_t>(b));
        for (int64_t r = 0; r < b; ++r) {
          if (r % 10 == 0) seed_values[static_cast<size_t>(r)] = 1000003 + r;
          offset_values[static_cast<size_t>(r)] = 100 + r;
        }
        seeds = e->int64s(seed_values);
        offsets = e->int64s(offset_values);
        p.seeds = seeds;
        p.offsets = offsets;
      }
      dsk::Tensor ids = e->tensor({b}, DSK_DTYPE_INT32);
      dsk::Tensor status = e->tensor({b}, DSK_DTYPE_UINT8);
      dsk::Tensor logprobs, top_ids, top_logprobs, raw_logprobs;
      dsk_sampling_outputs o;
      dsk::check(dsk_sampling_outputs_init(&o));
      o.ids = ids;
      o.status = status;
      if (s.logprobs) {
        logprobs = e->tensor({b}, DSK_DTYPE_F32);
        top_ids = e->tensor({b, kTopLogprobs}, DSK_DTYPE_INT32);
        top_logprobs = e->tensor({b, kTopLogprobs}, DSK_DTYPE_F32);
        raw_logprobs = e->tensor({b}, DSK_DTYPE_F32);
        o.logprobs = logprobs;
        o.top_ids = top_ids;
        o.top_logprobs = top_logprobs;
        o.raw_logprobs = raw_logprobs;
      }
      const std::function<dsk_status()> op = [&] {
        return dsk_sample(e->ctx->get(), &p, logits, &o);
      };
      if (!check_status(state, op(), "warm-up call")) return;
      if (!check_status(state, dsk_context_synchronize(e->ctx->get()), "warm-up synchronize")) {
        return;
      }
      if (!check_rows_ok(state, *e, status)) return;
      const double seconds = e->run(state, op);
      if (!check_status(state, dsk_context_synchronize(e->ctx->get()), "synchronize")) return;
      const double bytes =
          static_cast<double>(b) * static_cast<double>(kVocab) * dtype_bytes(dtype);
      report_floor(state, *e, seconds, bytes, b);
    });
  });
}

// ---- dsk_speculative_verify
// ----------------------------------------------------------------------

enum class VerifyMode { kSample, kMtp, kGreedy };

const char* verify_name(VerifyMode m) {
  switch (m) {
    case VerifyMode::kSample:
      return "verify_sample";
    case VerifyMode::kMtp:
      return "verify_mtp";
    case VerifyMode::kGreedy:
      return "verify_greedy";
  }
  return "verify";
}

// out = softmax(scale * x) over one row (double accumulation); returns the argmax of x (ties to
// the lower id).
int32_t softmax_row(const float* x, float scale, float* out) {
  int32_t best = 0;
  for (size_t j = 1; j < kVocabZ; ++j) {
    if (x[j] > x[static_cast<size_t>(best)]) best = static_cast<int32_t>(j);
  }
  const double m = static_cast<double>(scale) * static_cast<double>(x[static_cast<size_t>(best)]);
  double sum = 0.0;
  for (size_t j = 0; j < kVocabZ; ++j) {
    const double w = std::exp(static_cast<double>(scale) * static_cast<double>(x[j]) - m);
    out[j] = static_cast<float>(w);
    sum += w;
  }
  const double inv = 1.0 / sum;
  for (size_t j = 0; j < kVocabZ; ++j)
    out[j] = static_cast<float>(static_cast<double>(out[j]) * inv);
  return best;
}

void add_verify(const OpsEnv& env, VerifyMode mode, int32_t dtype, Logits kind, int64_t n,
                int64_t b) {
  const OpsEnv* e = &env;
  const std::string name = std::string("sampling/") + verify_name(mode) + "/" + dtype_name(dtype) +
                           "/" + logits_name(kind) + "/n:" + std::to_string(n) +
                           "/B:" + std::to_string(b);
  env.add(name, [e, mode, dtype, kind, n, b](benchmark::State& state) {
    guarded_case(state, [&] {
      // Target row (r, i) is generated row r * (n + 1) + i; the draft of position i sharpens it.
      const float* x = cache(kind).rows(b * (n + 1));
      const size_t vz = kVocabZ;
      std::vector<float> target(static_cast<size_t>(b * (n + 1)) * vz);
      std::vector<float> draft(mode == VerifyMode::kSample ? static_cast<size_t>(b * n) * vz : 0);
      std::vector<int32_t> draft_ids(static_cast<size_t>(b * n));
      for (int64_t r = 0; r < b; ++r) {
        for (int64_t i = 0; i <= n; ++i) {
          const size_t row = static_cast<size_t>(r * (n + 1) + i);
          const int32_t top = softmax_row(x + row * vz, 1.0f, target.data() + row * vz);
          if (i == n) continue;
          const size_t d = static_cast<size_t>(r * n + i);
          draft_ids[d] = top;
          if (mode == VerifyMode::kSample) softmax_row(x + row * vz, 1.25f, draft.data() + d * vz);
        }
      }
      std::vector<int64_t> target_shape = {b, n + 1, kVocab};
      std::vector<int64_t> draft_shape = {b, n, kVocab};
      dsk::Tensor target_t =
          dsk::Tensor::clone(*e->ctx, host_f32(target.data(), &target_shape), dtype_of(dtype));
      dsk::Tensor draft_t;
      if (mode == VerifyMode::kSample) {
        draft_t =
            dsk::Tensor::clone(*e->ctx, host_f32(draft.data(), &draft_shape), dtype_of(dtype));
      }
      dsk::Tensor ids_t = e->int32s(draft_ids).view({b, n});
      dsk::Tensor out_ids = e->tensor({b, n + 1}, DSK_DTYPE_INT32);
      dsk::Tensor accepted = e->tensor({b}, DSK_DTYPE_INT32);
      dsk::Tensor emitted = e->tensor({b}, DSK_DTYPE_INT32);
      dsk_verify_params p;
      dsk::check(dsk_verify_params_init(&p));
      p.mode = mode == VerifyMode::kGreedy ? DSK_VERIFY_GREEDY : DSK_VERIFY_SAMPLE;
      // Every row its own seed: with one seed for the batch every row would draw the same
      // acceptance uniforms, and the accept rate would be all or nothing.
      std::vector<int64_t> seed_values(static_cast<size_t>(b));
      for (int64_t r = 0; r < b; ++r) seed_values[static_cast<size_t>(r)] = 1000 + r;
      dsk::Tensor seeds = e->int64s(seed_values);
      p.seeds = seeds;
      p.offset = 7;
      const DLTensor* draft_dl =
          mode == VerifyMode::kSample ? static_cast<const DLTensor*>(draft_t) : nullptr;
      const std::function<dsk_status()> op = [&] {
        return dsk_speculative_verify(e->ctx->get(), &p, ids_t, draft_dl, target_t, out_ids,
                                      accepted, emitted);
      };
      if (!check_status(state, op(), "warm-up call")) return;
      if (!check_status(state, dsk_context_synchronize(e->ctx->get()), "warm-up synchronize")) {
        return;
      }
      const std::vector<int32_t> acc = to_host<int32_t>(*e, accepted, DSK_DTYPE_INT32);
      double total = 0.0;
      for (int32_t a : acc) total += a;
      const double seconds = e->run(state, op);
      if (!check_status(state, dsk_context_synchronize(e->ctx->get()), "synchronize")) return;
      const double rows = mode == VerifyMode::kSample ? 2.0
                          : mode == VerifyMode::kMtp  ? 1.0
                                                      : static_cast<double>(n + 1);
      const double bytes =
          static_cast<double>(b) * rows * static_cast<double>(kVocab) * dtype_bytes(dtype);
      report_floor(state, *e, seconds, bytes, b);
      state.counters["accept_rate"] =
          n > 0 ? total / (static_cast<double>(b) * static_cast<double>(n)) : 0.0;
    });
  });
}

// The largest B the CPU registers (DSK_BENCH_SAMPLING_MAX_B, default 32).
int64_t cpu_max_rows() {
  const double v = env_positive("DSK_BENCH_SAMPLING_MAX_B");
  return v > 0.0 ? static_cast<int64_t>(v) : 32;
}

}  // namespace

void register_sampling_benchmarks(const OpsEnv& env) {
  const bool cuda = env.backend == DSK_BACKEND_CUDA;
  const int64_t max_rows = cuda ? int64_t{1} << 40 : cpu_max_rows();
  const std::vector<int64_t> batch = {1, 8, 32, 128, 256, 512};
  for (const Scenario& s : kScenarios) {
    for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
      for (Logits kind : {Logits::kNormal, Logits::kPeaked}) {
        for (int64_t b : batch) {
          if (b <= max_rows) add_sample(env, s, dtype, kind, b);
        }
      }
    }
  }
  for (VerifyMode mode : {VerifyMode::kSample, VerifyMode::kMtp, VerifyMode::kGreedy}) {
    for (int32_t dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
      for (Logits kind : {Logits::kNormal, Logits::kPeaked}) {
        for (int64_t n : {int64_t{1}, int64_t{3}}) {
          for (int64_t b : {int64_t{32}, int64_t{128}}) {
            if (b <= max_rows) add_verify(env, mode, dtype, kind, n, b);
          }
        }
      }
    }
  }
}

}  // namespace dsk::bench
