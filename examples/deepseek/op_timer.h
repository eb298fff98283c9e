// op_timer.h - wall-clock time per op group, split into prefill and decode, for the per-op table.
//
// CPU ops are synchronous, so the wall clock around a call is its cost. CUDA ops are asynchronous:
// with synchronization on, each group is bracketed by dsk_context_synchronize, so the numbers are
// the group's device time plus launch overhead, and the synchronizations slow the whole run down
// (turn timing off for the best tokens/s). Without it only the totals are meaningful.
#ifndef DSK_EXAMPLES_DEEPSEEK_OP_TIMER_H_
#define DSK_EXAMPLES_DEEPSEEK_OP_TIMER_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <dsk/dsk.hpp>
#include <string>

namespace deepseek {

enum class Op {
  kEmbedding,
  kNorm,  // RMSNorm, fused residual add + RMSNorm
  kGemm,  // dense projections (q_a, q_b, kv_a, o_proj, dense MLP, shared expert)
  kRope,
  kCacheAppend,    // dsk_mla_cache_append
  kMlaDecompress,  // latent -> per-head k, v for the MHA prefill
  kMlaPrefill,     // dsk_mla_prefill
  kMlaAbsorb,      // dsk_mla_absorb_q / absorb_out
  kMlaDecode,      // dsk_mla_decode_run
  kActivation,     // SwiGLU
  kMoeGate,        // router GEMM + DeepSeek gate
  kMoeDispatch,    // dispatch + permute
  kMoeExperts,     // routed expert FFN (grouped GEMMs)
  kMoeCombine,     // weighted sum + shared expert output
  kMoeLayer,       // the fused dsk_moe_forward_run (--moe layer)
  kLmHead,
  kSampling,
  kCopy,  // dtype conversions and host <-> device transfers
  kCount
};

const char* op_name(Op op);

enum class Phase { kPrefill, kDecode };

class OpTimer {
 public:
  OpTimer(dsk::Context& ctx, bool synchronize) : ctx_(ctx), sync_(synchronize) {}

  void set_phase(Phase p) { phase_ = p; }
  bool synchronizes() const { return sync_; }

  // Times a scope: { auto t = timer.scope(Op::kGemm); dsk::linear(...); }
  class Scope {
   public:
    Scope(OpTimer& t, Op op);
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() noexcept(false);

   private:
    OpTimer& t_;
    Op op_;
    std::chrono::steady_clock::time_point start_;
  };
  Scope scope(Op op) { return Scope(*this, op); }

  struct Entry {
    int64_t calls = 0;
    double seconds[2] = {0.0, 0.0};  // prefill, decode
  };
  const Entry& entry(Op op) const { return entries_[static_cast<size_t>(op)]; }

  // The table as text (ops that never ran are left out).
  std::string table() const;

 private:
  void sync();
  dsk::Context& ctx_;
  bool sync_;
  Phase phase_ = Phase::kPrefill;
  std::array<Entry, static_cast<size_t>(Op::kCount)> entries_{};
};

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_OP_TIMER_H_
