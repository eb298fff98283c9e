// dsk-run: generate tokens from a DeepSeek-V3-architecture checkpoint with dsk's ops only.
//
//   dsk-run [--checkpoint DIR] [--backend cpu|cuda|auto] [--dtype f32|bf16|fp8]
//           [--prompts "1,2,3;4,5"] [--batch N] [--tokens N] [--seed S] [--golden FILE] ...
//
// Without --checkpoint it writes the tiny DeepSeek-V3-shaped model ("dsk-tiny-v1" weights) to a
// temporary directory and loads it through the same loader. See docs/deepseek.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dsk/dsk.hpp>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "generate.h"
#include "generator.h"
#include "golden.h"
#include "runner.h"
#include "tiny_model.h"

namespace {

using namespace deepseek;

const char kUsage[] =
    "usage: dsk-run [options]\n"
    "  --checkpoint PATH   Hugging Face DeepSeek-V3 checkpoint: a directory with config.json and\n"
    "                      *.safetensors (or model.safetensors.index.json); default: the tiny\n"
    "                      model, written to a temporary directory\n"
    "  --backend B         cpu, cuda or auto (default auto: CUDA when usable)\n"
    "  --dtype D           f32, bf16 or fp8 (default bf16)\n"
    "  --prompts LIST      token ids: requests separated by ';', ids by ',' (\"1,2,3;4,5\")\n"
    "  --batch N           requests when --prompts is not given (default 2; lengths 7, 13, 19...)\n"
    "  --tokens N          tokens to generate per request (default 16)\n"
    "  --seed S            weight seed of the tiny model (default 1234)\n"
    "  --tiny-dtype D      f32 or bf16 weights in the tiny checkpoint (default f32)\n"
    "  --save-tiny DIR     write the tiny checkpoint to DIR (which must exist) and exit\n"
    "  --temperature T     0 = greedy (default); with --top-k K, --top-p P, --sample-seed S\n"
    "  --moe M             pieces (default: gate, dispatch, experts, combine, each timed) or\n"
    "                      layer (dsk_moe_forward_run, the fused layer)\n"
    "  --no-sync-timing    CUDA: do not synchronize around op groups (faster; table then shows\n"
    "                      launch times only)\n"
    "  --golden FILE       compare with a Hugging Face fixture (tests/golden/tiny_v3.golden.json)\n"
    "                      and exit 0 on pass, 1 on failure\n"
    "exit status: 0 done, 1 error (or a golden mismatch), 77 the backend asked for with --backend\n"
    "is not usable here (test harnesses count that as a skip)\n";

struct Args {
  std::string checkpoint, backend = "auto", dtype = "bf16", prompts, golden, save_tiny;
  std::string tiny_dtype = "f32", moe = "pieces";
  int64_t batch = 2, tokens = 16;
  uint64_t seed = kDefaultWeightSeed, sample_seed = 0;
  float temperature = 0.0f, top_p = 1.0f;
  int32_t top_k = 0;
  bool sync_timing = true;
};

int64_t to_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size() && x >= lo && x <= hi) return x;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + " " + v + ": expected an integer in [" + std::to_string(lo) +
                              ", " + std::to_string(hi) + "]");
}

float to_float(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    const float x = std::stof(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + " " + v + ": expected a number");
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--no-sync-timing") {
      a.sync_timing = false;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + ": missing value (see --help)");
    const std::string v = argv[++i];
    const std::map<std::string, std::string*> strings = {
        {"--checkpoint", &a.checkpoint}, {"--backend", &a.backend}, {"--dtype", &a.dtype},
        {"--prompts", &a.prompts},       {"--golden", &a.golden},   {"--save-tiny", &a.save_tiny},
        {"--tiny-dtype", &a.tiny_dtype}, {"--moe", &a.moe}};
    if (auto it = strings.find(flag); it != strings.end()) {
      *it->second = v;
    } else if (flag == "--batch") {
      a.batch = to_int(flag, v, 1, 4096);
    } else if (flag == "--tokens") {
      a.tokens = to_int(flag, v, 1, 1 << 20);
    } else if (flag == "--seed" || flag == "--sample-seed") {
      (flag == "--seed" ? a.seed : a.sample_seed) =
          static_cast<uint64_t>(to_int(flag, v, 0, INT64_MAX));
    } else if (flag == "--temperature" || flag == "--top-p") {
      (flag == "--temperature" ? a.temperature : a.top_p) = to_float(flag, v);
    } else if (flag == "--top-k") {
      a.top_k = static_cast<int32_t>(to_int(flag, v, 0, INT32_MAX));
    } else {
      throw std::invalid_argument("unknown option " + flag + " (see --help)");
    }
  }
  if (a.tiny_dtype != "f32" && a.tiny_dtype != "bf16") {
    throw std::invalid_argument("--tiny-dtype " + a.tiny_dtype + ": expected f32 or bf16");
  }
  if (a.moe != "pieces" && a.moe != "layer") {
    throw std::invalid_argument("--moe " + a.moe + ": expected pieces or layer");
  }
  return a;
}

std::vector<std::vector<int32_t>> parse_prompts(const std::string& text) {
  std::vector<std::vector<int32_t>> out;
  std::stringstream requests(text);
  std::string request;
  while (std::getline(requests, request, ';')) {
    std::vector<int32_t> ids;
    std::stringstream items(request);
    std::string item;
    while (std::getline(items, item, ',')) {
      if (item.find_first_not_of(" \t") == std::string::npos) continue;
      ids.push_back(static_cast<int32_t>(to_int("--prompts", item, 0, INT32_MAX)));
    }
    if (ids.empty())
      throw std::invalid_argument("--prompts: request " + std::to_string(out.size()) + " is empty");
    out.push_back(ids);
  }
  if (out.empty()) throw std::invalid_argument("--prompts: no requests");
  return out;
}

// Default prompts: request b has 7 + 6 b tokens (different lengths exercise the varlen prefill
// and the per-request cache lengths), ids drawn from splitmix64 of the seed.
std::vector<std::vector<int32_t>> default_prompts(int64_t batch, int64_t vocab, uint64_t seed) {
  std::vector<std::vector<int32_t>> out;
  uint64_t state = seed;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int32_t> ids;
    for (int64_t t = 0; t < 7 + 6 * (b % 8); ++t) {
      state = splitmix64(state);
      ids.push_back(static_cast<int32_t>(state % static_cast<uint64_t>(vocab)));
    }
    out.push_back(ids);
  }
  return out;
}

int32_t backend_kind(const std::string& name) {
  if (name == "cpu") return DSK_BACKEND_CPU;
  if (name == "cuda") return DSK_BACKEND_CUDA;
  if (name == "auto") return DSK_BACKEND_AUTO;
  throw std::invalid_argument("--backend " + name + ": expected cpu, cuda or auto");
}

// A line on stderr at most every 2 seconds, so long loads and decodes show progress.
class Progress {
 public:
  bool due() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(2)) return false;
    last_ = now;
    return true;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

void print_model(const Model& model, double load_seconds) {
  const ModelConfig& c = model.config();
  int64_t moe_layers = 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) moe_layers += c.is_moe_layer(i) ? 1 : 0;
  auto ll = [](int64_t x) { return static_cast<long long>(x); };
  std::printf(
      "model: %lld layers (%lld dense, %lld MoE: %lld experts, top-%lld, %lld shared), hidden "
      "%lld, %lld heads, vocab %lld\n",
      ll(c.num_hidden_layers), ll(c.num_hidden_layers - moe_layers), ll(moe_layers),
      ll(c.n_routed_experts), ll(c.num_experts_per_tok), ll(c.n_shared_experts), ll(c.hidden_size),
      ll(c.num_attention_heads), ll(c.vocab_size));
  std::printf("weights: %.1f MiB (%.1f MiB used in place from the mapped file), loaded in %.2f s\n",
              static_cast<double>(model.weights().bytes) / (1 << 20),
              static_cast<double>(model.weights().mapped_bytes) / (1 << 20), load_seconds);
}

void print_results(const std::vector<std::vector<int32_t>>& prompts, const GenerateResult& r) {
  for (size_t b = 0; b < prompts.size(); ++b) {
    std::printf("request %zu: prompt (%zu tokens) %s\n", b, prompts[b].size(),
                join(prompts[b]).c_str());
    std::printf("  generated (%zu tokens): %s\n", r.tokens[b].size(), join(r.tokens[b]).c_str());
  }
  std::printf("latent cache: %.2f MiB\n", static_cast<double>(r.cache_bytes) / (1 << 20));
  std::printf("prefill: %lld tokens in %.2f ms: %.1f tokens/s\n",
              static_cast<long long>(r.prompt_tokens), r.prefill_seconds * 1e3,
              static_cast<double>(r.prompt_tokens) / r.prefill_seconds);
  if (r.decode_tokens > 0) {
    const int64_t steps = r.decode_tokens / static_cast<int64_t>(prompts.size());
    std::printf(
        "decode: %lld tokens (%lld steps x %zu requests) in %.2f ms: %.1f tokens/s, "
        "%.2f ms/step\n",
        static_cast<long long>(r.decode_tokens), static_cast<long long>(steps), prompts.size(),
        r.decode_seconds * 1e3, static_cast<double>(r.decode_tokens) / r.decode_seconds,
        r.decode_seconds * 1e3 / static_cast<double>(steps));
  }
}

int run_golden_mode(dsk::Context& ctx, const Args& a) {
  const GoldenFixture fixture = load_golden(a.golden);
  OpTimer timer(ctx, false);
  const GoldenReport rep = run_golden(ctx, fixture, a.dtype,
                                      a.moe == "layer" ? MoeMode::kLayer : MoeMode::kPieces, timer);
  std::fputs(rep.text.c_str(), stdout);
  std::printf("%s\n", rep.pass ? "PASS" : "FAIL");
  return rep.pass ? 0 : 1;
}

int run(const Args& a) {
  if (!a.save_tiny.empty()) {
    write_tiny_checkpoint(a.save_tiny, a.seed, a.tiny_dtype == "bf16");
    std::printf("wrote the tiny model (dsk-tiny-v1, seed %llu, %s) to %s\n",
                static_cast<unsigned long long>(a.seed), a.tiny_dtype.c_str(), a.save_tiny.c_str());
    return 0;
  }
  dsk::Context ctx(backend_kind(a.backend));
  const bool cuda = ctx.backend() == DSK_BACKEND_CUDA;
  if (!a.golden.empty()) return run_golden_mode(ctx, a);

  std::unique_ptr<TempDir> tmp;
  std::string checkpoint = a.checkpoint, source;
  if (checkpoint.empty()) {
    tmp = std::make_unique<TempDir>();
    write_tiny_checkpoint(tmp->path(), a.seed, a.tiny_dtype == "bf16");
    checkpoint = tmp->path();
    source = " (tiny model, dsk-tiny-v1 seed " + std::to_string(a.seed) + ", " + a.tiny_dtype +
             " weights)";
  }
  const ModelConfig peek = load_config(config_path_for(checkpoint));
  const auto prompts = a.prompts.empty() ? default_prompts(a.batch, peek.vocab_size, a.seed)
                                         : parse_prompts(a.prompts);
  int64_t longest = 0;
  for (const auto& p : prompts) {
    longest = std::max<int64_t>(longest, p.size());
    for (int32_t id : p) {
      if (id >= peek.vocab_size) {  // before the (possibly long) load
        throw std::invalid_argument("--prompts: token id " + std::to_string(id) +
                                    " is outside the vocabulary [0, " +
                                    std::to_string(peek.vocab_size) + ")");
      }
    }
  }

  std::printf("dsk-run: backend %s, dtype %s, checkpoint %s%s\n", cuda ? "cuda" : "cpu",
              a.dtype.c_str(), checkpoint.c_str(), source.c_str());
  OpTimer timer(ctx, cuda && a.sync_timing);
  Progress load_progress;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Model> model = load_model(
      ctx, checkpoint, make_precision(a.dtype), timer, longest + a.tokens,
      a.moe == "layer" ? MoeMode::kLayer : MoeMode::kPieces, [&](size_t done, size_t total) {
        if (load_progress.due()) std::fprintf(stderr, "loading: %zu / %zu tensors\n", done, total);
      });
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_model(*model, load_s);

  GenerateOptions opt;
  opt.tokens = a.tokens;
  opt.temperature = a.temperature;
  opt.top_k = a.top_k;
  opt.top_p = a.top_p;
  opt.seed = a.sample_seed;
  Progress decode_progress;
  opt.progress = [&](int64_t step, int64_t steps, double seconds) {
    if (decode_progress.due()) {
      std::fprintf(stderr, "decode: step %lld / %lld, %.1f tokens/s\n",
                   static_cast<long long>(step), static_cast<long long>(steps),
                   static_cast<double>(step * static_cast<int64_t>(prompts.size())) / seconds);
    }
  };
  print_results(prompts, generate(*model, timer, prompts, opt));
  std::printf("\nper-op time (%s):\n%s",
              cuda ? (a.sync_timing ? "CUDA, context synchronized around each op group"
                                    : "CUDA without synchronization: launch times, plus the waits "
                                      "of ops that synchronize themselves")
                   : "CPU wall clock",
              timer.table().c_str());
  return 0;
}

}  // namespace

// The exit status for a backend that was asked for by name but is not usable on this machine (77:
// what ctest's SKIP_RETURN_CODE and automake-style harnesses read as a skip).
constexpr int kExitBackendUnavailable = 77;

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const dsk::Error& e) {
    std::fprintf(stderr, "dsk-run: error: %s\n", e.what());
    return e.status() == DSK_ERR_BACKEND_UNAVAILABLE ? kExitBackendUnavailable : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk-run: error: %s\n", e.what());
    return 1;
  }
}
