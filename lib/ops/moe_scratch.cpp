#include "ops/moe_scratch.h"

#include "core/error.h"
#include "dsk/dsk_backend.h"

namespace dsk {
namespace ops {

Scratch::Scratch(dsk_context& ctx, const Target& t, size_t bytes)
    : ctx_(ctx), t_(t), exec_(t.exec), bytes_(bytes) {
  if (bytes == 0) return;
  if (t.exec.workspace != nullptr && t.exec.workspace_bytes >= bytes) {
    base_ = static_cast<char*>(t.exec.workspace);
    in_workspace_ = true;
    exec_.workspace = base_ + bytes;
    exec_.workspace_bytes = t.exec.workspace_bytes - bytes;
    if (exec_.workspace_bytes == 0) exec_.workspace = nullptr;
    return;
  }
  owned_ = t.backend->kind == DSK_BACKEND_CPU ? allocate_host(bytes) : allocate(ctx, bytes);
  base_ = static_cast<char*>(owned_->data);
}

char* Scratch::take(size_t bytes) {
  const size_t n = align_up(bytes);
  if (n > bytes_ - used_) {
    fail(DSK_ERR_INTERNAL, "MoE scratch: a piece of {} bytes does not fit ({} of {} used)", bytes,
         used_, bytes_);
  }
  char* p = base_ + used_;
  used_ += n;
  return p;
}

void Scratch::release() {
  if (owned_ && t_.backend->kind != DSK_BACKEND_CPU && ctx_.has_allocator) {
    call(t_, t_.backend->iface->synchronize(t_.exec.device, t_.exec.stream), "synchronize");
  }
  owned_.reset();
}

}  // namespace ops
}  // namespace dsk
