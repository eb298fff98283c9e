// CPU reference of the moe_dispatch entry (dsk_moe.h): a stable counting sort of the assignments
// a = t * k + j of ids [T, k] by local expert e = id - expert_begin, each expert's segment starting
// at a multiple of block_size and padded with the sentinel T * k.
//
// The assignments are cut into contiguous shares (one per thread). Each share counts its local
// experts; expert e's rows start at offsets[e], and within the segment the shares follow each other
// in assignment order, so every assignment's row is fixed by the ids alone: the same result for any
// thread count, and the one the CUDA kernels produce.
#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/index_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {
namespace {

// Assignments each share handles at least (about 50 us of work: a share must outweigh waking a
// worker, 1-15 us).
constexpr int64_t kMinAssignmentsPerShare = int64_t{1} << 13;

// A 1-D int32 output (element i at data + i * step bytes).
struct I32Vec {
  char* data = nullptr;
  int64_t step = 0;
  int64_t size = 0;
  void set(int64_t i, int32_t v) const { std::memcpy(data + i * step, &v, sizeof(v)); }
};

I32Vec i32_vec(const Layout& l) {
  return I32Vec{l.data, l.strides[0] * static_cast<int64_t>(l.elem_size), l.shape[0]};
}

}  // namespace

dsk_status moe_dispatch(const dsk_exec* /*ex*/, const DLTensor* ids_t, int32_t num_experts,
                        int32_t expert_begin, int32_t block_size, const DLTensor* counts_t,
                        const DLTensor* offsets_t, const DLTensor* sorted_rows_t,
                        const DLTensor* block_experts_t, const DLTensor* dest_t) noexcept {
  return guarded([&] {
    const Layout ids = check_tensor(ids_t, "ids", Access::kRead);
    const Layout counts_l = check_tensor(counts_t, "counts", Access::kWrite);
    const Layout offsets_l = check_tensor(offsets_t, "offsets", Access::kWrite);
    const Layout sorted_l = check_tensor(sorted_rows_t, "sorted_rows", Access::kWrite);
    const int64_t E = num_experts;
    check_arg(ids.ndim == 2 && counts_l.ndim == 1 && counts_l.shape[0] == E &&
                  offsets_l.ndim == 1 && offsets_l.shape[0] == E + 1 && sorted_l.ndim == 1 &&
                  E >= 1 && block_size >= 1,
              "moe_dispatch: expected ids [T, k], counts [E], offsets [E + 1], sorted_rows "
              "[capacity], E >= 1 and block_size >= 1");
    const int64_t T = ids.shape[0];
    const int64_t k = ids.shape[1];
    const int64_t n = T * k;
    const int64_t capacity = sorted_l.shape[0];
    check_arg(capacity <= INT32_MAX && n <= INT32_MAX,
              "moe_dispatch: sorted_rows has {} rows and ids {} assignments, expected at most "
              "2^31 - 1 (int32 row numbers)",
              capacity, n);
    const int64_t block = block_size;
    I32Vec block_experts;
    if (block_experts_t != nullptr) {
      const Layout l = check_tensor(block_experts_t, "block_experts", Access::kWrite);
      check_arg(l.ndim == 1 && l.shape[0] == (capacity + block - 1) / block,
                "moe_dispatch: expected block_experts [ceil(capacity / block_size)] = [{}]",
                (capacity + block - 1) / block);
      block_experts = i32_vec(l);
    }
    Layout dest;
    if (dest_t != nullptr) {
      dest = check_tensor(dest_t, "dest", Access::kWrite);
      check_arg(dest.ndim == 2 && dest.shape[0] == T && dest.shape[1] == k,
                "moe_dispatch: expected dest [T, k] like ids");
    }

    // 1. The local expert of every assignment (E for a skipped one) and per-share histograms.
    const int64_t shares =
        std::max<int64_t>(1, std::min<int64_t>(configured_threads(), n / kMinAssignmentsPerShare));
    auto share_begin = [&](int64_t s) { return n * s / shares; };
    std::vector<int32_t> local(static_cast<size_t>(n));
    std::vector<int64_t> hist(static_cast<size_t>(shares * E), 0);
    const int64_t id_step0 = ids.strides[0] * static_cast<int64_t>(ids.elem_size);
    const int64_t id_step1 = ids.strides[1] * static_cast<int64_t>(ids.elem_size);
    const int64_t lo_id = expert_begin;
    const int64_t hi_id = lo_id + E;
    run_shares(shares, [&](int64_t s) {
      int64_t* h = hist.data() + s * E;
      int32_t* out = local.data();
      const int64_t end = share_begin(s + 1);
      int64_t a = share_begin(s);
      int64_t t = a / k;
      int64_t j = a - t * k;
      for (; a < end; ++a) {
        const int64_t id = load_index(ids.dtype_id, ids.data + t * id_step0 + j * id_step1);
        int32_t e = static_cast<int32_t>(E);
        if (id >= lo_id && id < hi_id) {
          e = static_cast<int32_t>(id - lo_id);
          ++h[e];
        }
        out[a] = e;
        if (++j == k) {
          j = 0;
          ++t;
        }
      }
    });

    // 2. Counts and padded segment offsets; base[s][e] = the first row of share s in segment e.
    std::vector<int64_t> count(static_cast<size_t>(E), 0);
    std::vector<int64_t> offset(static_cast<size_t>(E + 1), 0);
    for (int64_t e = 0; e < E; ++e) {
      int64_t row = offset[static_cast<size_t>(e)];
      for (int64_t s = 0; s < shares; ++s) {
        int64_t& h = hist[static_cast<size_t>(s * E + e)];
        const int64_t c = h;
        h = row;  // from here on: share s's next row in segment e
        row += c;
      }
      const int64_t c = row - offset[static_cast<size_t>(e)];
      count[static_cast<size_t>(e)] = c;
      offset[static_cast<size_t>(e + 1)] =
          offset[static_cast<size_t>(e)] + (c + block - 1) / block * block;
    }
    const int64_t used = offset[static_cast<size_t>(E)];
    check_arg(used <= capacity,
              "moe_dispatch: the ids need {} rows with block_size {}, sorted_rows has {} "
              "(see dsk_moe_dispatch_capacity)",
              used, block_size, capacity);

    // 3. Outputs (nothing was written before this point).
    const I32Vec counts = i32_vec(counts_l);
    const I32Vec offsets = i32_vec(offsets_l);
    const I32Vec sorted = i32_vec(sorted_l);
    for (int64_t e = 0; e < E; ++e)
      counts.set(e, static_cast<int32_t>(count[static_cast<size_t>(e)]));
    for (int64_t e = 0; e <= E; ++e) {
      offsets.set(e, static_cast<int32_t>(offset[static_cast<size_t>(e)]));
    }
    const auto sentinel = static_cast<int32_t>(n);
    // Padding at the end of every segment, then every row at or past offsets[E].
    for (int64_t e = 0; e < E; ++e) {
      const int64_t end = offset[static_cast<size_t>(e + 1)];
      for (int64_t r = offset[static_cast<size_t>(e)] + count[static_cast<size_t>(e)]; r < end;
           ++r) {
        sorted.set(r, sentinel);
      }
    }
    for (int64_t r = used; r < capacity; ++r) sorted.set(r, sentinel);
    if (block_experts.data != nullptr) {
      for (int64_t e = 0; e < E; ++e) {
        const int64_t b_end = offset[static_cast<size_t>(e + 1)] / block;
        for (int64_t b = offset[static_cast<size_t>(e)] / block; b < b_end; ++b) {
          block_experts.set(b, static_cast<int32_t>(e));
        }
      }
      for (int64_t b = used / block; b < block_experts.size; ++b) block_experts.set(b, -1);
    }
    const int64_t dest_step0 = dest.strides[0] * static_cast<int64_t>(dest.elem_size);
    const int64_t dest_step1 = dest.strides[1] * static_cast<int64_t>(dest.elem_size);
    run_shares(shares, [&](int64_t s) {
      int64_t* next = hist.data() + s * E;
      const int32_t* in = local.data();
      const int64_t end = share_begin(s + 1);
      int64_t a = share_begin(s);
      int64_t t = a / k;
      int64_t j = a - t * k;
      for (; a < end; ++a) {
        const int32_t e = in[a];
        int32_t row = -1;
        if (e < E) {
          row = static_cast<int32_t>(next[e]++);
          sorted.set(row, static_cast<int32_t>(a));
        }
        if (dest_t != nullptr) {
          std::memcpy(dest.data + t * dest_step0 + j * dest_step1, &row, sizeof(row));
        }
        if (++j == k) {
          j = 0;
          ++t;
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
