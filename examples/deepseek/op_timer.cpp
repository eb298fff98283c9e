// op_timer.cpp - per-op-group timing and its table (see op_timer.h).
#include "op_timer.h"

#include <cstdio>
#include <exception>

namespace deepseek {

const char* op_name(Op op) {
  // In the order of the Op enum.
  static const char* const kNames[] = {
      "embedding",
      "rmsnorm (+ residual add)",
      "GEMM (projections, dense MLP)",
      "rope (YaRN)",
      "MLA cache append",
      "MLA decompress kv (prefill)",
      "MLA prefill attention",
      "MLA absorb q / out (decode)",
      "MLA decode attention",
      "SwiGLU",
      "MoE gate (router + top-k)",
      "MoE dispatch + permute",
      "MoE experts",
      "MoE combine",
      "MoE layer (fused)",
      "lm_head",
      "sampling",
      "copies / transfers",
  };
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(Op::kCount),
                "one name per op group");
  const size_t i = static_cast<size_t>(op);
  return i < static_cast<size_t>(Op::kCount) ? kNames[i] : "?";
}

void OpTimer::sync() {
  if (sync_) ctx_.synchronize();
}

OpTimer::Scope::Scope(OpTimer& t, Op op) : t_(t), op_(op) {
  t_.sync();  // earlier groups' queued work must not be charged to this one
  start_ = std::chrono::steady_clock::now();
}

OpTimer::Scope::~Scope() noexcept(false) {
  // While an exception unwinds, neither synchronize nor record: the error is already on its way.
  if (std::uncaught_exceptions() > 0) return;
  t_.sync();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  Entry& e = t_.entries_[static_cast<size_t>(op_)];
  ++e.calls;
  e.seconds[t_.phase_ == Phase::kPrefill ? 0 : 1] += s;
}

std::string OpTimer::table() const {
  double total[2] = {0.0, 0.0};
  for (const Entry& e : entries_) {
    total[0] += e.seconds[0];
    total[1] += e.seconds[1];
  }
  const double all = total[0] + total[1];
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%-30s %8s %12s %12s %7s\n", "op", "calls", "prefill ms",
                "decode ms", "share");
  out += line;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (e.calls == 0) continue;
    std::snprintf(line, sizeof line, "%-30s %8lld %12.3f %12.3f %6.1f%%\n",
                  op_name(static_cast<Op>(i)), static_cast<long long>(e.calls), e.seconds[0] * 1e3,
                  e.seconds[1] * 1e3, all > 0 ? 100.0 * (e.seconds[0] + e.seconds[1]) / all : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-30s %8s %12.3f %12.3f %6.1f%%\n", "total (timed ops)", "",
                total[0] * 1e3, total[1] * 1e3, 100.0);
  out += line;
  return out;
}

}  // namespace deepseek
