// moe_scratch.h - scratch memory for the MoE ops that stage intermediates (router logits, expert
// activations, the layer's buffers): the context's workspace when it is large enough, else memory
// allocated for the call, handed out in 256-byte aligned pieces.
#ifndef DSK_LIB_OPS_MOE_SCRATCH_H_
#define DSK_LIB_OPS_MOE_SCRATCH_H_

#include <stddef.h>

#include "core/context.h"
#include "core/storage.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {

constexpr size_t kScratchAlign = 256;

inline size_t align_up(size_t bytes) {
  return (bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
}

class Scratch {
 public:
  // `bytes` is the sum of align_up() of every piece that take() will hand out.
  Scratch(dsk_context& ctx, const Target& t, size_t bytes);
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // The next piece of `bytes` (256-byte aligned); DSK_ERR_INTERNAL past the reserved size.
  char* take(size_t bytes);
  // The exec for backend calls while the scratch is in use: the workspace shrinks to the part the
  // scratch does not occupy, so a backend never overwrites it.
  const dsk_exec& exec() const { return exec_; }
  bool in_workspace() const { return in_workspace_; }
  // Frees allocated scratch once the queued work that reads it is done (memory from an allocator
  // hook may be reused as soon as it is freed, so a device context waits for its stream first).
  void release();

 private:
  dsk_context& ctx_;
  const Target& t_;
  dsk_exec exec_{};
  StoragePtr owned_;
  char* base_ = nullptr;
  size_t bytes_ = 0;
  size_t used_ = 0;
  bool in_workspace_ = false;
};

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_MOE_SCRATCH_H_
