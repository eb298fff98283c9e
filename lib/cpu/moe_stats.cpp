// CPU reference of the MoE statistics entries (dsk_moe.h): moe_load_accumulate (per-expert
// assignment counts added into an int64 load), moe_bias_update (DeepSeek-V3's auxiliary-loss-free
// update, common/moe_bias.h, shared with the CUDA kernel) and moe_ep_layout (DeepEP's
// get_dispatch_layout). Counts are integers, so splitting the work over threads changes nothing.
#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/convert.h"
#include "common/moe_bias.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/index_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {
namespace {

// Assignments a share counts at least (about 25 us: a share must outweigh waking a worker).
constexpr int64_t kMinAssignmentsPerShare = int64_t{1} << 14;

// The [T, k] id tensor: id (t, j) at data + t * s0 + j * s1 bytes.
struct Ids {
  const char* data;
  int32_t dtype;
  int64_t tokens;
  int64_t k;
  int64_t s0;
  int64_t s1;
  int64_t at(int64_t t, int64_t j) const { return load_index(dtype, data + t * s0 + j * s1); }
};

Ids ids_of(const Layout& l) {
  const auto elem = static_cast<int64_t>(l.elem_size);
  return Ids{l.data, l.dtype_id, l.shape[0], l.shape[1], l.strides[0] * elem, l.strides[1] * elem};
}

// Number of shares for n items (one per thread, each at least kMinAssignmentsPerShare).
int64_t share_count(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>(configured_threads(), n / kMinAssignmentsPerShare));
}

// Sums share histograms [shares][n] into the first one.
void fold_shares(std::vector<int64_t>& hist, int64_t shares, int64_t n) {
  for (int64_t s = 1; s < shares; ++s) {
    for (int64_t e = 0; e < n; ++e) {
      hist[static_cast<size_t>(e)] += hist[static_cast<size_t>(s * n + e)];
    }
  }
}

}  // namespace

dsk_status moe_load_accumulate(const dsk_exec* /*ex*/, const DLTensor* ids_t, int32_t expert_begin,
                               const DLTensor* load_t) noexcept {
  return guarded([&] {
    const Layout il = check_tensor(ids_t, "ids", Access::kRead);
    const Layout ll = check_tensor(load_t, "load", Access::kWrite);
    check_arg(il.ndim == 2 && ll.ndim == 1 && ll.dtype_id == DSK_DTYPE_INT64,
              "moe_load_accumulate: expected ids [T, k] and load [E] int64");
    const Ids ids = ids_of(il);
    const int64_t E = ll.shape[0];
    const int64_t n = ids.tokens * ids.k;
    const int64_t shares = share_count(n);
    std::vector<int64_t> hist(static_cast<size_t>(shares * E), 0);
    const int64_t lo_id = expert_begin;
    const int64_t hi_id = lo_id + E;
    run_shares(shares, [&](int64_t s) {
      int64_t* h = hist.data() + s * E;
      const int64_t end = n * (s + 1) / shares;
      int64_t a = n * s / shares;
      int64_t t = a / ids.k;
      int64_t j = a - t * ids.k;
      for (; a < end; ++a) {
        const int64_t id = ids.at(t, j);
        if (id >= lo_id && id < hi_id) ++h[id - lo_id];
        if (++j == ids.k) {
          j = 0;
          ++t;
        }
      }
    });
    fold_shares(hist, shares, E);
    const int64_t step = ll.strides[0] * static_cast<int64_t>(ll.elem_size);
    for (int64_t e = 0; e < E; ++e) {
      char* p = ll.data + e * step;
      int64_t v;
      std::memcpy(&v, p, sizeof(v));
      // Wraps like the CUDA kernel's unsigned addition instead of overflowing.
      v = static_cast<int64_t>(static_cast<uint64_t>(v) +
                               static_cast<uint64_t>(hist[static_cast<size_t>(e)]));
      std::memcpy(p, &v, sizeof(v));
    }
  });
}

dsk_status moe_bias_update(const dsk_exec* /*ex*/, const DLTensor* load_t, const DLTensor* bias_t,
                           float gamma) noexcept {
  return guarded([&] {
    const Layout ll = check_tensor(load_t, "load", Access::kRead);
    const Layout bl = check_tensor(bias_t, "bias", Access::kWrite);
    check_arg(ll.ndim == 1 && bl.ndim == 1 && ll.shape[0] == bl.shape[0] && ll.shape[0] >= 1 &&
                  (ll.dtype_id == DSK_DTYPE_INT64 || ll.dtype_id == DSK_DTYPE_F32) &&
                  bl.dtype_id == DSK_DTYPE_F32,
              "moe_bias_update: expected load [E] int64 or f32 and bias [E] f32, E >= 1");
    const int64_t E = ll.shape[0];
    const int64_t lstep = ll.strides[0] * static_cast<int64_t>(ll.elem_size);
    const int64_t bstep = bl.strides[0] * static_cast<int64_t>(bl.elem_size);
    const bool is_f32 = ll.dtype_id == DSK_DTYPE_F32;
    auto load_at = [&](int64_t e) -> double {
      const char* p = ll.data + e * lstep;
      if (is_f32) return static_cast<double>(load_as_f32(DSK_DTYPE_F32, p));
      int64_t v;
      std::memcpy(&v, p, sizeof(v));
      return static_cast<double>(v);
    };
    // The canonical order of common/moe_bias.h: lane sums, then the pairwise fold.
    double lane[moe::kBiasLanes];
    for (int l = 0; l < moe::kBiasLanes; ++l) {
      double s = 0.0;
      for (int64_t e = l; e < E; e += moe::kBiasLanes) s += load_at(e);
      lane[l] = s;
    }
    for (int s = moe::kBiasLanes / 2; s > 0; s /= 2) {
      for (int l = 0; l < s; ++l) lane[l] += lane[l + s];
    }
    const double mean = lane[0] / static_cast<double>(E);
    for (int64_t e = 0; e < E; ++e) {
      char* p = bl.data + e * bstep;
      float b;
      std::memcpy(&b, p, sizeof(b));
      b = moe::bias_step(b, gamma, mean, load_at(e));
      std::memcpy(p, &b, sizeof(b));
    }
  });
}

dsk_status moe_ep_layout(const dsk_exec* /*ex*/, const DLTensor* ids_t, int32_t num_experts,
                         int32_t num_ranks, const DLTensor* tokens_per_rank_t,
                         const DLTensor* tokens_per_expert_t,
                         const DLTensor* is_token_in_rank_t) noexcept {
  return guarded([&] {
    const Layout il = check_tensor(ids_t, "ids", Access::kRead);
    const Layout rl = check_tensor(tokens_per_rank_t, "tokens_per_rank", Access::kWrite);
    const Layout el = check_tensor(tokens_per_expert_t, "tokens_per_expert", Access::kWrite);
    const Layout fl = check_tensor(is_token_in_rank_t, "is_token_in_rank", Access::kWrite);
    const int64_t E = num_experts;
    const int64_t R = num_ranks;
    check_arg(il.ndim == 2 && E >= 1 && R >= 1 && E % R == 0 && rl.ndim == 1 && rl.shape[0] == R &&
                  el.ndim == 1 && el.shape[0] == E && fl.ndim == 2 && fl.shape[0] == il.shape[0] &&
                  fl.shape[1] == R && fl.elem_size == 1,
              "moe_ep_layout: expected ids [T, k], tokens_per_rank [R], tokens_per_expert [E], "
              "is_token_in_rank [T, R] (1-byte elements) and E % R == 0");
    const Ids ids = ids_of(il);
    // Every id first: nothing is written when one is out of range.
    for (int64_t t = 0; t < ids.tokens; ++t) {
      for (int64_t j = 0; j < ids.k; ++j) {
        const int64_t id = ids.at(t, j);
        check_arg(id >= -1 && id < E, "ids[{}, {}] = {}, expected [-1, {})", t, j, id, E);
      }
    }
    const int64_t per_rank = E / R;
    const int64_t shares = share_count(ids.tokens * ids.k);
    // Per share: E expert counts, then R rank counts.
    std::vector<int64_t> hist(static_cast<size_t>(shares * (E + R)), 0);
    const int64_t fs0 = fl.strides[0];
    const int64_t fs1 = fl.strides[1];
    run_shares(shares, [&](int64_t s) {
      int64_t* h = hist.data() + s * (E + R);
      std::vector<uint8_t> in_rank(static_cast<size_t>(R));
      const int64_t end = ids.tokens * (s + 1) / shares;
      for (int64_t t = ids.tokens * s / shares; t < end; ++t) {
        std::fill(in_rank.begin(), in_rank.end(), uint8_t{0});
        for (int64_t j = 0; j < ids.k; ++j) {
          const int64_t id = ids.at(t, j);
          if (id < 0) continue;
          ++h[id];
          in_rank[static_cast<size_t>(id / per_rank)] = 1;
        }
        for (int64_t r = 0; r < R; ++r) {
          const uint8_t f = in_rank[static_cast<size_t>(r)];
          h[E + r] += f;
          fl.data[t * fs0 + r * fs1] = static_cast<char>(f);
        }
      }
    });
    fold_shares(hist, shares, E + R);
    const int64_t estep = el.strides[0] * static_cast<int64_t>(el.elem_size);
    for (int64_t e = 0; e < E; ++e) {
      const auto v = static_cast<int32_t>(hist[static_cast<size_t>(e)]);
      std::memcpy(el.data + e * estep, &v, sizeof(v));
    }
    const int64_t rstep = rl.strides[0] * static_cast<int64_t>(rl.elem_size);
    for (int64_t r = 0; r < R; ++r) {
      const auto v = static_cast<int32_t>(hist[static_cast<size_t>(E + r)]);
      std::memcpy(rl.data + r * rstep, &v, sizeof(v));
    }
  });
}

}  // namespace cpu
}  // namespace dsk
