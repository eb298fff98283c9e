// CPU reference of the MLA latent cache append (dsk_mla.h, backend_iface.h mla_cache_append):
//   kv_cache[s / page, s % page, h, :Dv] = c_kv[t, h, :], kv_cache[..., h, Dv:] = k_pe[t, h, :]
// for every token t with s = slots[t] >= 0; -1 skips the token.
//
// Every slot is checked before anything is written, so a bad slot leaves the cache untouched.
// Elements are converted with the shared conversion runs (lib/common/convert.h: round to nearest
// even; equal dtypes copy the bytes), the same rule the CUDA kernel applies per element, so both
// backends write the same bits.
#include <stdint.h>

#include <cstring>

#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/convert_run.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dsk {
namespace cpu {

dsk_status mla_cache_append(const dsk_exec* /*ex*/, const DLTensor* c_kv_t, const DLTensor* k_pe_t,
                            const DLTensor* slots_t, const DLTensor* kv_cache_t) noexcept {
  return guarded([&] {
    const Layout c_kv = check_tensor(c_kv_t, "c_kv", Access::kRead);
    const Layout k_pe = check_tensor(k_pe_t, "k_pe", Access::kRead);
    const Layout slots = check_tensor(slots_t, "slot_mapping", Access::kRead);
    const Layout kv = check_tensor(kv_cache_t, "kv_cache", Access::kWrite);
    check_arg(c_kv.ndim == 3 && k_pe.ndim == 3 && slots.ndim == 1 && kv.ndim == 4,
              "mla_cache_append: expected c_kv [T, Hkv, Dv], k_pe [T, Hkv, D - Dv], "
              "slot_mapping [T], kv_cache [P, page, Hkv, D]");
    const int64_t tokens = slots.shape[0];
    const int64_t heads = kv.shape[2];
    const int64_t d = kv.shape[3];
    const int64_t dv = c_kv.shape[2];
    check_arg(c_kv.shape[0] == tokens && k_pe.shape[0] == tokens && c_kv.shape[1] == heads &&
                  k_pe.shape[1] == heads && dv <= d && k_pe.shape[2] == d - dv,
              "mla_cache_append: c_kv, k_pe, slot_mapping and kv_cache shapes disagree");
    const int64_t num_slots = kv.shape[0] * kv.shape[1];
    const auto slot_step = slots.strides[0] * static_cast<int64_t>(slots.elem_size);
    auto slot_at = [&](int64_t t) {
      int64_t s;
      std::memcpy(&s, slots.data + t * slot_step, sizeof(s));
      return s;
    };
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t s = slot_at(t);
      check_arg(s >= -1 && s < num_slots,
                "slot_mapping[{}] = {}, expected -1 or a slot in [0, {}) (num_pages * page_size)",
                t, s, num_slots);
    }
    if (tokens == 0 || heads == 0 || d == 0) return;
    const int64_t page = kv.shape[1];
    const auto ke = static_cast<int64_t>(kv.elem_size);
    const auto ce = static_cast<int64_t>(c_kv.elem_size);
    const auto pe = static_cast<int64_t>(k_pe.elem_size);
    const ConvertRun c_run = convert_run(c_kv.dtype_id, kv.dtype_id);
    const ConvertRun p_run = convert_run(k_pe.dtype_id, kv.dtype_id);
    const bool c_plain = c_kv.dtype_id == kv.dtype_id && c_kv.strides[2] == 1 && kv.strides[3] == 1;
    const bool p_plain = k_pe.dtype_id == kv.dtype_id && k_pe.strides[2] == 1 && kv.strides[3] == 1;
    // Tokens write distinct slots (dsk_mla.h), so they split over threads without changing a bit.
    parallel_for(tokens, min_rows_per_thread(heads * d), [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t s = slot_at(t);
        if (s < 0) continue;
        const int64_t pg = s / page;
        const int64_t off = s % page;
        for (int64_t h = 0; h < heads; ++h) {
          char* dst = kv.data + (pg * kv.strides[0] + off * kv.strides[1] + h * kv.strides[2]) * ke;
          const char* cs = c_kv.data + (t * c_kv.strides[0] + h * c_kv.strides[1]) * ce;
          const char* ps = k_pe.data + (t * k_pe.strides[0] + h * k_pe.strides[1]) * pe;
          if (dv > 0) {
            if (c_plain) {
              std::memcpy(dst, cs, static_cast<size_t>(dv * ke));
            } else {
              c_run(cs, c_kv.strides[2] * ce, dst, kv.strides[3] * ke, dv);
            }
          }
          if (d > dv) {
            char* pdst = dst + dv * kv.strides[3] * ke;
            if (p_plain) {
              std::memcpy(pdst, ps, static_cast<size_t>((d - dv) * ke));
            } else {
              p_run(ps, k_pe.strides[2] * pe, pdst, kv.strides[3] * ke, d - dv);
            }
          }
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
