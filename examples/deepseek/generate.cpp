// generate.cpp - the prefill + decode loop (see generate.h).
#include "generate.h"

#include <chrono>
#include <stdexcept>

#include "device_io.h"
#include "generator.h"

namespace deepseek {

GenerateResult generate(Model& model, OpTimer& timer,
                        const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& options) {
  if (options.tokens < 1) throw std::invalid_argument("--tokens must be at least 1");
  dsk::Context& ctx = model.context();
  const size_t batch = prompts.size();
  std::vector<int64_t> capacity;
  GenerateResult r;
  for (const auto& p : prompts) {
    capacity.push_back(static_cast<int64_t>(p.size()) + options.tokens - 1);
    r.prompt_tokens += static_cast<int64_t>(p.size());
  }
  KvCache cache = model.make_cache(capacity);
  r.cache_bytes = cache.bytes();
  r.tokens.assign(batch, {});

  dsk_sampling_params params =
      dsk::sampling_params(options.temperature, options.top_k, options.top_p, 0.0f, options.seed);
  // One Philox key per request: with a shared key every row would draw the same noise for the
  // same token id, and requests with similar logits would pick the same tokens.
  std::vector<int64_t> seeds(batch);
  for (size_t b = 0; b < batch; ++b) seeds[b] = static_cast<int64_t>(splitmix64(options.seed + b));
  const dsk::Tensor seed_tensor = to_device(ctx, seeds, {static_cast<int64_t>(batch)});
  params.seeds = seed_tensor;
  dsk::Tensor sampled =
      dsk::Tensor::empty(ctx, {static_cast<int64_t>(batch)}, dsk::dtype(DSK_DTYPE_INT32));
  std::vector<int32_t> next(batch);
  // Samples step `step` from logits: a request's draw depends on its key and the step only.
  auto sample = [&](const dsk::Tensor& logits, int64_t step) {
    if (options.keep_logits) {
      auto t = timer.scope(Op::kCopy);
      const std::vector<float> all = read_device<float>(ctx, logits.dl());
      const size_t v = all.size() / batch;
      std::vector<std::vector<float>> rows(batch);
      for (size_t b = 0; b < batch; ++b) {
        rows[b].assign(all.begin() + b * v, all.begin() + (b + 1) * v);
      }
      r.logits.push_back(std::move(rows));
    }
    auto t = timer.scope(Op::kSampling);
    params.offset = static_cast<uint64_t>(step);
    dsk::sample(ctx, params, logits, sampled);
    next = read_device<int32_t>(ctx, sampled.dl());
    for (size_t b = 0; b < batch; ++b) r.tokens[b].push_back(next[b]);
  };

  using Clock = std::chrono::steady_clock;
  timer.set_phase(Phase::kPrefill);
  auto start = Clock::now();
  sample(model.prefill(cache, prompts), 0);
  ctx.synchronize();
  r.prefill_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  timer.set_phase(Phase::kDecode);
  start = Clock::now();
  const int64_t steps = options.tokens - 1;
  for (int64_t s = 1; s <= steps; ++s) {
    if (options.forced != nullptr) {
      if (options.forced->size() < static_cast<size_t>(s) ||
          (*options.forced)[static_cast<size_t>(s - 1)].size() != batch) {
        throw std::invalid_argument("teacher forcing: no tokens for step " + std::to_string(s));
      }
      next = (*options.forced)[static_cast<size_t>(s - 1)];
    }
    sample(model.decode(cache, next), s);
    r.decode_tokens += static_cast<int64_t>(batch);
    if (options.progress) {
      options.progress(s, steps, std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  ctx.synchronize();
  r.decode_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace deepseek
